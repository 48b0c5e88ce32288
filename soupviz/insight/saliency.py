"""Input-gradient maps of a classifier: the loss gradient of Tsipras et al. and Captum's
Saliency, SmoothGrad and Integrated Gradients, their display normalisation, and images
uploaded by a user (decoded, centre-cropped and resized to the model's input).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from soupviz.attacks.base import eval_mode
from soupviz.errors import SoupvizError
from soupviz.soups.soup import Soup
from soupviz.soups.weights import EXTRAPOLATION_LIMIT

Classifier = Callable[[torch.Tensor], torch.Tensor]
METHODS = ("loss", "saliency", "smoothgrad", "integrated_gradients")
MODES = ("abs", "signed")
CLIPS = ("percentile", "std", "minmax")


@dataclass(frozen=True)
class SaliencySettings:
    """How maps are computed and shown.

    Args:
        method: 'loss' (∂CE(f(x), y)/∂x by torch.autograd: the paper's map), 'saliency'
            (Captum, ∂f_t(x)/∂x of the target logit), 'smoothgrad' (Captum NoiseTunnel over
            Saliency) or 'integrated_gradients' (Captum, black baseline).
        mode: 'abs' (max |·| over colour channels, an (H, W) map) or 'signed' (an RGB map
            (3, H, W) with 0 at mid-grey).
        clip: 'percentile' (scale by the `percentile`-th percentile of |map| per image),
            'std' (the paper: clip to ±`stds` standard deviations, rescale) or 'minmax'.
        nt_samples, noise: SmoothGrad's noisy copies and their standard deviation (pixels).
        ig_steps: Integrated Gradients' steps from the black image.
        seed: seed of SmoothGrad's noise, so maps are reproducible.
    """

    method: str = "loss"
    mode: str = "abs"
    clip: str = "percentile"
    percentile: float = 99.0
    stds: float = 3.0
    nt_samples: int = 16
    noise: float = 0.1
    ig_steps: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (("method", self.method, METHODS), ("mode", self.mode, MODES),
                                     ("clipping", self.clip, CLIPS)):
            if value not in allowed:
                raise SoupvizError(
                    f"Unknown saliency {name} {value!r}: use one of {', '.join(allowed)}.")
        if not 0 < self.percentile <= 100:
            raise SoupvizError(
                f"The clipping percentile must be in (0, 100], got {self.percentile:g}.")

    @property
    def method_label(self) -> str:
        """What the map is the gradient of, and who computed it."""
        if self.method == "loss":
            return "loss gradient ∂CE(f(x), y)/∂x, true label (Tsipras et al.; torch.autograd)"
        if self.method == "saliency":
            return "Captum Saliency: gradient of the target logit ∂f_t(x)/∂x"
        if self.method == "smoothgrad":
            return (f"Captum SmoothGrad (NoiseTunnel over Saliency): mean target-logit "
                    f"gradient over {self.nt_samples} noisy copies, σ = {self.noise:g}, "
                    f"seed {self.seed}")
        return (f"Captum Integrated Gradients of the target logit from a black image, "
                f"{self.ig_steps} steps")

    @property
    def normalisation_label(self) -> str:
        """How the map was scaled for display, per image."""
        what = ("absolute value, max over colour channels" if self.mode == "abs"
                else "signed, RGB, zero at mid-grey")
        if self.clip == "percentile":
            how = f"clipped at the {self.percentile:g}th percentile of |map|"
        elif self.clip == "std":
            how = f"clipped to ±{self.stds:g} standard deviations (as in Tsipras et al.)"
        else:
            how = "min-max scaled"
        return f"{what}; {how} per image; shown in [0, 1]"


@dataclass(frozen=True)
class SaliencyResult:
    """One image's map: `map` raw (3, H, W), `display` in [0, 1] ((H, W) or (3, H, W)), the
    model's prediction and confidence (softmax probability), and what was computed."""

    map: torch.Tensor
    display: torch.Tensor
    label: int
    target: int
    prediction: int
    confidence: float
    true_probability: float
    method: str
    normalisation: str


def attribute(
    model: Classifier, images: torch.Tensor, labels: torch.Tensor, settings: SaliencySettings,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Raw maps (N, 3, H, W) for images (N, 3, H, W) in [0, 1] with true labels (N,).

    The loss method differentiates the cross-entropy on `labels`; Captum's methods
    differentiate the logit of `targets` (default: the true labels). Signs are kept. The loss
    gradient points where the loss grows, so it is roughly the negated Captum Saliency map.
    """
    x = images.detach().float().clone().requires_grad_(True)
    targets = labels if targets is None else targets
    with eval_mode(model), torch.enable_grad():
        if settings.method == "loss":
            loss = F.cross_entropy(model(x), labels.to(x.device), reduction="sum")
            return torch.autograd.grad(loss, x)[0].detach()
        from captum.attr import IntegratedGradients, NoiseTunnel, Saliency  # only here: the CLI runs without captum

        target = targets.to(x.device)
        if settings.method == "saliency":
            return Saliency(model).attribute(x, target=target, abs=False).detach()
        if settings.method == "integrated_gradients":
            ig = IntegratedGradients(model)
            black = torch.zeros_like(x)
            return ig.attribute(x, black, target=target, n_steps=settings.ig_steps).detach()
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(settings.seed)
            tunnel = NoiseTunnel(Saliency(model))
            maps = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=settings.nt_samples,
                                    stdevs=settings.noise, target=target, abs=False)
        return maps.detach()


def normalize_map(
    saliency: torch.Tensor, mode: str = "abs", percentile: float = 99.0, clip: str = "percentile",
    stds: float = 3.0,
) -> torch.Tensor:
    """Scale one raw map (3, H, W) for display in [0, 1].

    Args:
        mode: 'abs' gives (H, W) = max over channels of |map|, 0 = no gradient; 'signed'
            gives (3, H, W) with 0.5 = zero, brighter = positive.
        clip: 'percentile' divides by the `percentile`-th percentile of the absolute values
            and clips; 'std' clips to mean ± `stds` standard deviations (for 'abs': to
            [0, mean + stds·std]) and rescales; 'minmax' rescales the range.

    Returns:
        A float tensor in [0, 1]; a map of zeros gives 0 ('abs') or 0.5 ('signed').
    """
    values = saliency.detach().float().cpu()
    if mode == "abs":
        values = values.abs().amax(0) if values.dim() == 3 else values.abs()
        if clip == "percentile":
            top = torch.quantile(values.flatten(), percentile / 100)
        elif clip == "std":
            top = values.mean() + stds * values.std()
        else:
            top = values.max()
        return (values / top).clamp(0, 1) if top > 0 else torch.zeros_like(values)
    if mode != "signed":
        raise SoupvizError(f"Unknown display mode {mode!r}: use 'abs' or 'signed'.")
    if clip == "percentile":
        top = torch.quantile(values.abs().flatten(), percentile / 100)
        return (values / top).clamp(-1, 1) / 2 + 0.5 if top > 0 else torch.full_like(values, 0.5)
    if clip == "std":
        low, high = values.mean() - stds * values.std(), values.mean() + stds * values.std()
    else:
        low, high = values.min(), values.max()
    if high - low <= 0:
        return torch.full_like(values, 0.5)
    return ((values.clamp(low, high) - low) / (high - low)).clamp(0, 1)


def explain(
    model: Classifier, images: torch.Tensor, labels: torch.Tensor,
    settings: SaliencySettings | None = None, targets: torch.Tensor | None = None,
) -> list[SaliencyResult]:
    """Maps, display versions and predictions for images (N, 3, H, W) or one (3, H, W).

    Example:
        >>> results = explain(soup.folded(weights), x[:2], y[:2], SaliencySettings("smoothgrad"))
        >>> results[0].display.shape, results[0].prediction, results[0].confidence
    """
    settings = settings or SaliencySettings()
    images = images[None] if images.dim() == 3 else images
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1).to(images.device)
    if targets is not None:
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1).to(images.device)
    targets = labels if targets is None else targets
    maps = attribute(model, images, labels, settings, targets)
    with eval_mode(model), torch.no_grad():
        probabilities = model(images.float()).softmax(1).cpu()
    confidence, prediction = probabilities.max(1)
    return [
        SaliencyResult(
            map=maps[i].cpu(),
            display=normalize_map(maps[i], settings.mode, settings.percentile, settings.clip,
                                  settings.stds),
            label=int(labels[i]), target=int(targets[i]), prediction=int(prediction[i]),
            confidence=float(confidence[i]), true_probability=float(probabilities[i, labels[i]]),
            method=settings.method_label, normalisation=settings.normalisation_label,
        )
        for i in range(len(images))
    ]


def soup_panel(
    soup: Soup, image: torch.Tensor, label: int, weights: Sequence[float] | torch.Tensor,
    settings: SaliencySettings | None = None, *, names: Sequence[str] | None = None,
) -> Mapping[str, SaliencyResult]:
    """One image's map for each ingredient of `soup` and for the soup with `weights`.

    The soup is not modified: each model is `soup.folded(row)`, a one-soup classifier.
    Keys are the ingredient names (default `soup.params.names`) and 'soup'.
    """
    k = soup.params.k
    names = list(names or soup.params.names)
    current = torch.as_tensor(weights, dtype=torch.float64)[None]
    rows = torch.cat([torch.eye(k, dtype=torch.float64), current])
    keys = names + ["soup"]
    y = torch.tensor([int(label)], device=image.device)
    return {key: explain(soup.folded(row, extrapolate=True, margin=EXTRAPOLATION_LIMIT), image, y, settings)[0]
            for key, row in zip(keys, rows, strict=True)}


def load_uploaded_image(source: bytes | bytearray | BinaryIO | str | os.PathLike, size: int = 32
                        ) -> torch.Tensor:
    """Decode an uploaded picture into a model input: float (3, size, size) in [0, 1].

    The picture is converted to RGB, centre-cropped to a square (the largest one) and
    resized with PIL's bilinear filter (antialiased when shrinking). `source` is raw bytes,
    a binary file object (e.g. Streamlit's UploadedFile) or a path.

    Raises:
        SoupvizError: the data is empty or not an image PIL can decode.
    """
    name = str(getattr(source, "name", "the upload"))
    if isinstance(source, (str, os.PathLike)):
        name, path = str(source), Path(source)
        if not path.is_file():
            raise SoupvizError(f"The picture {name} does not exist; give an image file's path.")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:  # getvalue() reads a BytesIO (Streamlit's UploadedFile) whole, wherever its position
        data = source.getvalue() if hasattr(source, "getvalue") else source.read()
    if not data:
        raise SoupvizError(f"The file {name} is empty; upload a PNG or JPEG picture.")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture = picture.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise SoupvizError(f"The file {name} is not an image that can be read; upload a PNG or JPEG "
                           "picture.") from error  # not PIL's message: it names a buffer's address
    width, height = picture.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    picture = picture.crop((left, top, left + side, top + side))
    picture = picture.resize((size, size), Image.BILINEAR)
    array = np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1).copy()
    return torch.from_numpy(array).float() / 255
