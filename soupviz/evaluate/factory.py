"""Building evaluators: `open_evaluator`, the one way the CLI, the dashboard, the benches and the
tests get an `Evaluator` from their settings (data source, image count, seed, device, BatchNorm
rule, store), and `BuiltEvaluator`, which pairs one with the settings it was built for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from soupviz.checkpoints.families import SoupFamily
from soupviz.data import ImageSet, load_split
from soupviz.errors import SoupvizError
from soupviz.evaluate.evaluator import Evaluator
from soupviz.results.store import ResultStore
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.soup import Soup


@dataclass(frozen=True)
class BuiltEvaluator:
    """An evaluator with the key of what it was built for (family, data, settings), so a session
    reuses it until one of those changes."""

    context: str
    evaluator: Evaluator


def open_evaluator(
    family: SoupFamily,
    *,
    data: str | None = None,
    images: int = 1000,
    seed: int = 0,
    device: str | torch.device = "auto",
    batchnorm: str = "mix",
    calibration_images: int = 512,
    cache: bool = True,
    batch_size: int = 250,
    store: ResultStore | None = None,
    fold: int | None = None,
    test: ImageSet | None = None,
    train: ImageSet | None = None,
    params: ParameterMatrix | None = None,
) -> Evaluator:
    """The evaluator the CLI, the dashboard, the benches and the tests share.

    Evaluates on `images` test images drawn with `seed` from `data` (or on `test` when given),
    with BatchNorm statistics mixed ('mix': means linearly, variances in log space) or re-estimated
    ('reestimate') on `calibration_images` clean training images (or on `train` when given).
    Records persist in `store` (default: the cache folder's) unless `cache` is False; `fold` soups
    at most share a batch (see `Evaluator`).

    Args:
        params: a shared, read-only parameter matrix to build this evaluator's own `Soup` on (each
            dashboard session needs its own soup, as `set_weights` writes into it, but the K x P
            matrix is the big object); the evaluator then runs on `params.device`.

    Raises:
        SoupvizError: an unknown BatchNorm mode.
    """
    if batchnorm not in ("mix", "reestimate"):
        raise SoupvizError(f"BatchNorm mode must be 'mix' or 'reestimate', not {batchnorm!r}.")
    test = test if test is not None else load_split(data, "test").subset(images, seed)
    soup = None
    if params is not None:
        soup, device = Soup(family.template(), params), params.device
    evaluator = Evaluator(
        family, test, device=device, seed=seed, batch_size=batch_size,
        store=(store if store is not None else ResultStore()) if cache else None, soup=soup, fold=fold,
    )
    if batchnorm == "reestimate":
        train = train if train is not None else load_split(data, "train").subset(calibration_images, seed)
        evaluator.soup.reestimate_batchnorm(
            train.floats(evaluator.device), batch_size=128, batches=max(1, -(-len(train) // 128))
        )
    return evaluator
