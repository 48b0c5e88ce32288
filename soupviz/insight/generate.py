"""Images a robust classifier draws: targeted large-budget L2 PGD from a test image, or from
class-conditional Gaussian seeds as in Santurkar et al. (2019), with the intermediate images
for a strip and the target-class probability at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from soupviz.attacks.engine import Ascent, Iterate, ascend
from soupviz.data import ImageSet
from soupviz.errors import SoupvizError
from soupviz.progress import Progress, ProgressCallback

Classifier = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GenerationSettings:
    """Targeted L2 PGD that minimises the cross-entropy to the target class.

    Defaults are Santurkar et al.'s for CIFAR-10: eps 30, step 0.5, 60 steps (pixels in [0, 1];
    a 32x32 RGB image has L2 diameter √3072 ≈ 55). Each step moves `step_size` along the
    per-example normalised gradient, then projects onto the L2 ball around the start
    intersected with the [0, 1] box. `frame_every` says how often the strip keeps an image.
    """

    eps: float = 30.0
    step_size: float = 0.5
    steps: int = 60
    frame_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.eps > 0 and self.step_size > 0 and self.steps >= 1 and self.frame_every >= 1):
            raise SoupvizError(
                "Generation needs a positive budget and step size and at least one step, got "
                f"eps={self.eps:g}, step={self.step_size:g}, steps={self.steps}, frame every "
                f"{self.frame_every}."
            )

    @property
    def ascent(self) -> Ascent:
        """The settings as the projected-gradient engine takes them."""
        return Ascent("l2", self.eps, self.steps, self.step_size)

    @property
    def label(self) -> str:
        return (f"targeted L2 PGD on the cross-entropy, ε = {self.eps:g}, "
                f"step {self.step_size:g}, {self.steps} steps")


@dataclass(frozen=True)
class Generation:
    """A generation run on N images.

    Attributes:
        start: the starting images (N, 3, H, W) in [0, 1].
        frames: images (F, N, 3, H, W) after the steps in `frame_steps` (0 = start, last = final).
        final: the final images (N, 3, H, W).
        target: target classes (N,).
        target_probability: softmax probability of the target after each step (steps + 1, N).
        prediction: the model's class for each final image (N,).
        label: the settings in words.
    """

    start: torch.Tensor
    frames: torch.Tensor
    frame_steps: list[int]
    final: torch.Tensor
    target: torch.Tensor
    target_probability: torch.Tensor
    prediction: torch.Tensor
    label: str


def towards_class(
    model: Classifier, images: torch.Tensor, target: torch.Tensor | int,
    settings: GenerationSettings | None = None, progress: ProgressCallback | None = None,
) -> Generation:
    """Walk images (N, 3, H, W) in [0, 1] towards `target` classes (N,) or one class for all.

    A thin use of the projected-gradient engine whose per-step hook records the strip.
    Deterministic: there is no random start. `progress` gets a `Progress` after each step.

    Example:
        >>> run = towards_class(soup.folded(weights), x[:4], 3)
        >>> run.target_probability[-1]  # final probability of "cat"
    """
    settings = settings or GenerationSettings()
    x = images.detach().float()
    if x.dim() != 4 or x.numel() == 0 or x.min() < 0 or x.max() > 1:
        raise SoupvizError("Generation starts from images (N, 3, H, W) with pixels in [0, 1].")
    target = torch.as_tensor(target, dtype=torch.long, device=x.device).expand(x.shape[0]).clone()
    frames, frame_steps, probabilities, last_logits = [], [], [], []

    def record(now: Iterate) -> None:
        """The strip: the target's probability at every iterate, an image every `frame_every` steps."""
        probabilities.append(now.logits.softmax(1).gather(1, target[:, None])[:, 0].cpu())
        if now.step % settings.frame_every == 0 or now.step == settings.steps:
            frames.append(now.images.cpu())
            frame_steps.append(now.step)
        if now.step == settings.steps:
            last_logits.append(now.logits)
        if progress is not None and now.step > 0:
            progress(Progress(now.step, settings.steps, "generation steps"))

    def towards_target(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(logits, target, reduction="sum")

    final = ascend(model, x, settings.ascent, towards_target, hook=record).images.clamp(0, 1)
    return Generation(
        start=x.cpu(), frames=torch.stack(frames), frame_steps=frame_steps, final=final.cpu(),
        target=target.cpu(), target_probability=torch.stack(probabilities),
        prediction=last_logits[0].argmax(1).cpu(), label=settings.label,
    )


@dataclass(frozen=True)
class ClassGaussians:
    """Per-class Gaussians over flattened images: `means` (C', D) and lower Cholesky factors
    `factors` (C', D, D) of covariance + jitter·I, float32, for the classes in `fitted`."""

    means: torch.Tensor
    factors: torch.Tensor
    fitted: tuple[int, ...]
    counts: tuple[int, ...]
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    jitter: float
    source: str

    def row(self, class_index: int) -> int:
        """The row of `class_index` in `means` and `factors`."""
        if class_index not in self.fitted:
            raise SoupvizError(f"No Gaussian was fitted for class {class_index}; fit it first "
                               f"(fitted: {list(self.fitted)}).")
        return self.fitted.index(class_index)


def fit_class_gaussians(
    images: ImageSet, max_per_class: int = 5000, classes: Sequence[int] | None = None,
    jitter: float = 1e-4, seed: int = 0,
) -> ClassGaussians:
    """Fit mean and full covariance (+ `jitter`·I) of each class's images, pixels in [0, 1].

    As Santurkar et al. for CIFAR: full resolution, no downsampling (D = 3·H·W = 3072). Up to
    `max_per_class` images per class are drawn with `seed`; covariances are the unbiased
    estimate (summed in float32 over centred pixels), factorised in float64 by
    `torch.linalg.cholesky`. For CIFAR-10 each class's
    factor is 36 MiB: fit only the `classes` you need, and cache the result.
    """
    fitted = tuple(range(len(images.classes)) if classes is None else (int(c) for c in classes))
    chosen = images.per_class(max_per_class, seed)
    shape = tuple(images.images.shape[1:])
    dimension = math.prod(shape)
    means, factors, counts = [], [], []
    for c in fitted:
        data = chosen.images[chosen.labels == c].reshape(-1, dimension).float() / 255
        if len(data) < 2:
            raise SoupvizError(
                f"Class {c} has {len(data)} image(s); fitting its Gaussian needs at least two."
            )
        mean = data.double().mean(0)
        centred = data - mean.float()
        covariance = (centred.T @ centred).double() / (len(data) - 1)  # float32 product: 2x faster
        covariance.diagonal().add_(jitter)
        factors.append(torch.linalg.cholesky(covariance).float())
        means.append(mean.float())
        counts.append(len(data))
    return ClassGaussians(torch.stack(means), torch.stack(factors), fitted, tuple(counts), shape,
                          tuple(images.classes), jitter, images.source)


def sample_seeds(gaussians: ClassGaussians, class_index: int, n: int, seed: int = 0
                 ) -> torch.Tensor:
    """`n` seed images (n, 3, H, W) from the class's Gaussian, drawn with `seed`, clamped to
    [0, 1]."""
    row = gaussians.row(int(class_index))
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, gaussians.means.shape[1], generator=generator)
    samples = gaussians.means[row] + noise @ gaussians.factors[row].T
    return samples.clamp(0, 1).reshape(n, *gaussians.shape)


def generate_classes(
    model: Classifier, gaussians: ClassGaussians, classes: Sequence[int] | None = None,
    per_class: int = 1, settings: GenerationSettings | None = None,
    *, device: torch.device | str = "cpu", progress: ProgressCallback | None = None,
) -> Generation:
    """Generate `per_class` images of each class: seeds from its Gaussian, then targeted PGD.

    Seeds for class c use seed `settings.seed + c`, so a class's images do not depend on
    which other classes are generated. Images are ordered class by class.
    """
    settings = settings or GenerationSettings()
    classes = list(gaussians.fitted if classes is None else classes)
    seeds = torch.cat([sample_seeds(gaussians, c, per_class, settings.seed + c) for c in classes])
    targets = torch.tensor(classes, dtype=torch.long).repeat_interleave(per_class)
    return towards_class(model, seeds.to(device), targets.to(device), settings, progress)
