"""Page-side logic of the insight pages (saliency, generation, few-shot adaptation) without
Streamlit: the models a page compares (each ingredient and the current soup), picking test
images, a store of finished results keyed by their inputs, and runs of the library's insight
functions reporting progress as `Progress`, shared by the pages and `soupviz saliency`/`soupviz
generate`. Few-shot adaptation itself is `few_shot.adapt_to_shift`; what its page and `soupviz
adapt` show of it is `insight.adaptation_views`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import torch

from soupviz.checkpoints.families import SoupFamily
from soupviz.data import ImageSet
from soupviz.errors import SoupvizError
from soupviz.insight.generate import (
    ClassGaussians,
    Generation,
    GenerationSettings,
    fit_class_gaussians,
    generate_classes,
    towards_class,
)
from soupviz.insight.saliency import SaliencyResult, SaliencySettings, soup_panel
from soupviz.present.insight_figures import saliency_figure
from soupviz.progress import Progress, ProgressCallback, silent
from soupviz.soups.soup import Soup
from soupviz.soups.weights import EXTRAPOLATION_LIMIT

CURRENT = "current soup"
MAX_PICKED = 12  # images one saliency grid shows
WALK_AT_ONCE = 600  # attack steps in all (models × steps) a page walks without asking: about 2 s on a 2-core CPU


class ResultStore:
    """Finished results by request key; the least recently used go beyond `max_entries`.

    Results are deterministic in their key, so sessions share one store: treat values as
    read-only. Thread-safe (Streamlit runs each session in its own thread).
    """

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> object | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: str, value: object) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def request_key(*parts: object) -> str:
    """A short key for inputs with a stable repr (strings, numbers, tuples, frozen settings)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def tensor_digest(x: torch.Tensor) -> str:
    """A digest of a tensor's shape and values, to key results computed from it."""
    data = x.detach().cpu().contiguous()
    return hashlib.sha256(str(tuple(data.shape)).encode() + data.numpy().tobytes()).hexdigest()[:20]


def comparison_rows(k: int, weights: Sequence[float]) -> torch.Tensor:
    """Weights (k + 1, k) of the models a page compares: each ingredient, then the current soup."""
    return torch.cat([torch.eye(k, dtype=torch.float64), torch.as_tensor([list(weights)], dtype=torch.float64)])


def compared_models(family: SoupFamily, weights: Sequence[float]) -> tuple[torch.Tensor, list[str]]:
    """The weights (K + 1, K) of the models a page compares (`comparison_rows`) and their titles:
    each ingredient's label, then 'current soup'."""
    return comparison_rows(len(family.names), weights), [*family.labels, CURRENT]


def default_classes(labels: torch.Tensor, single: bool = False) -> list[int]:
    """The classes shown before the user picks: airplane, cat, dog and horse (dog alone when
    `single`) where `labels` (N,) hold them, else the first classes present."""
    present = sorted(set(labels.tolist()))
    liked = [c for c in (5, 0, 3, 7) if c in present] if single else [c for c in (0, 3, 5, 7) if c in present]
    return (liked + [c for c in present if c not in liked])[:1 if single else 4]


def class_index(name: str, classes: Sequence[str]) -> int:
    """The index of a class given by name ('cat') or number ('3').

    Raises:
        SoupvizError: neither a class name nor a class number.
    """
    text = name.strip()
    if text in classes:
        return list(classes).index(text)
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    raise SoupvizError(f"{name!r} is not a class of the data; use one of {', '.join(classes)} (or 0 to "
                       f"{len(classes) - 1}).")


def images_at(split: ImageSet, indices: Sequence[int]) -> tuple[torch.Tensor, list[int], list[str]]:
    """The test images at `indices`: floats (N, 3, H, W) in [0, 1], their labels and their names."""
    index = torch.tensor(list(indices))
    return split.images[index].float() / 255, split.labels[index].tolist(), [f"test #{i}" for i in indices]


def parse_indices(text: str, n: int, limit: int = MAX_PICKED) -> list[int]:
    """Test-split indices from text such as '3, 17 42'.

    Raises:
        SoupvizError: a value that is not a whole number in 0..n-1, none at all, or over `limit`.
    """
    values = []
    for part in text.replace(",", " ").split():
        if not part.isdigit() or int(part) >= n:
            raise SoupvizError(f"The image index {part!r} is not a whole number from 0 to {n - 1}; "
                               "give indices into the test split, separated by commas.")
        values.append(int(part))
    if not values:
        raise SoupvizError("No image index was given: type indices into the test split, e.g. 0, 7, 42.")
    if len(values) > limit:
        raise SoupvizError(f"{len(values)} images were asked for; show at most {limit} at once.")
    return list(dict.fromkeys(values))


def class_positions(labels: torch.Tensor, classes: Sequence[int], offset: int, per_class: int,
                    names: Sequence[str]) -> list[int]:
    """Indices of `per_class` images of each class, skipping the first `offset` of each (split order).

    Raises:
        SoupvizError: a class with no image at that offset.
    """
    chosen = []
    for c in classes:
        members = (labels == c).nonzero()[:, 0].tolist()
        if offset >= len(members):
            raise SoupvizError(f"The test split has {len(members)} images of class {names[c]!r}, so there is "
                               f"no image number {offset}; choose a smaller offset.")
        chosen += members[offset:offset + per_class]
    return chosen


def saliency_panels(
    soup: Soup, images: torch.Tensor, labels: Sequence[int], weights: Sequence[float],
    settings: SaliencySettings, *, names: Sequence[str], report: ProgressCallback = silent,
) -> list[dict[str, SaliencyResult]]:
    """For each image (N, 3, H, W) in [0, 1], its map under each ingredient (keyed by `names`)
    and under the soup with `weights` (key 'soup'), by `saliency.soup_panel`."""
    panels = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        report(Progress.at(i / len(images), f"maps of image {i + 1} of {len(images)}"))
        panels.append(dict(soup_panel(soup, image.to(soup.params.device), int(label), weights, settings, names=names)))
    report(Progress.at(1.0, "done"))
    return panels


def saliency_view(
    family: SoupFamily, images: torch.Tensor, labels: Sequence[int], names: Sequence[str],
    panels: Sequence[Mapping[str, SaliencyResult]], *, settings: SaliencySettings, classes: Sequence[str],
    weights: Sequence[float], paper: bool = False,
) -> go.Figure:
    """The saliency figure of `saliency_panels`' maps: one row per image, one column per
    ingredient and the soup, the figure's rows (for CSV) attached."""
    titles = compared_models(family, weights)[1]
    return saliency_figure(images, labels, panels, [*family.names, "soup"], titles, classes, settings.method,
                           family.name, weights, names, paper)


def generation_settings(eps: float, step_size: float, steps: int, frames: int, seed: int) -> GenerationSettings:
    """Generation settings keeping about `frames` images of each walk for its strip."""
    return GenerationSettings(eps, step_size, steps, frame_every=max(1, steps // max(1, frames)), seed=seed)


def walk_towards(
    soup: Soup, rows: torch.Tensor, image: torch.Tensor, target: int, settings: GenerationSettings,
    *, report: ProgressCallback = silent,
) -> list[Generation]:
    """`generate.towards_class` from one image (3, H, W) for each model of `rows` (S, K)."""
    start = image[None].to(soup.params.device)
    return _per_model(soup, rows, report, lambda model, step: towards_class(model, start, target, settings, step))


def walks_at_once(models: int, settings: GenerationSettings) -> bool:
    """Whether a walk is cheap enough for a page to run it as soon as it is asked for (the defaults
    are: each ingredient and a soup × 60 steps), so the page opens on a figure; dearer walks wait
    for a button press."""
    return models * settings.steps <= WALK_AT_ONCE


def fit_gaussians(
    images: ImageSet, classes: Sequence[int], max_per_class: int = 5000, seed: int = 0,
    store: ResultStore | None = None, *, key: str = "", report: ProgressCallback = silent,
) -> ClassGaussians:
    """`generate.fit_class_gaussians` one class at a time (each class's fit kept in `store`
    under `key`), merged; the same Gaussians as fitting the classes together."""
    parts = []
    for i, c in enumerate(classes):
        message = f"fitting the Gaussian of {images.classes[c]!r} ({i + 1} of {len(classes)})"
        report(Progress.at(i / len(classes), message))
        part = store.get(f"{key}|{c}") if store is not None else None
        if part is None:
            part = fit_class_gaussians(images, max_per_class, [c], seed=seed)
            if store is not None:
                store.put(f"{key}|{c}", part)
        parts.append(part)
    report(Progress.at(1.0, "fitted"))
    first = parts[0]
    return dataclasses.replace(
        first, means=torch.cat([p.means for p in parts]), factors=torch.cat([p.factors for p in parts]),
        fitted=tuple(c for p in parts for c in p.fitted), counts=tuple(n for p in parts for n in p.counts),
    )


def generate_per_model(
    soup: Soup, rows: torch.Tensor, gaussians: ClassGaussians, classes: Sequence[int], per_class: int,
    *, settings: GenerationSettings, report: ProgressCallback = silent,
) -> list[Generation]:
    """`generate.generate_classes` for each model of `rows` (S, K): the same seeds for every model."""
    device = soup.params.device
    return _per_model(
        soup, rows, report,
        lambda model, step: generate_classes(
            model, gaussians, classes, per_class, settings, device=device, progress=step
        ),
    )


def _per_model(soup: Soup, rows: torch.Tensor, report: ProgressCallback, run) -> list[Generation]:
    """`run(model, step_callback)` for the soup at each row, reporting progress across all rows."""
    runs = []
    for s, row in enumerate(rows):
        def step(now: Progress, s: int = s) -> None:
            message = f"model {s + 1} of {len(rows)}: step {now.done} of {now.total}"
            report(Progress.at((s + now.fraction) / len(rows), message))

        runs.append(run(soup.folded(row, extrapolate=True, margin=EXTRAPOLATION_LIMIT), step))
    return runs
