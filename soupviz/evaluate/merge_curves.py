"""Task-vector merges beside the linear soup on the trade-off: TIES and DARE (`soupviz.evaluate.merges`)
at the soups' own coordinates, measured with the soup evaluator's images, seed, metrics and store,
so each merge's clean-robust curve compares point by point with the linear soup's (task arithmetic
at any coordinates is the linear soup itself, so it needs no curve of its own).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.merges import Merge, merge_evaluator
from soupviz.progress import ProgressCallback
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record

CURVE_METHODS = ("ties", "dare")


def merge_curves(
    evaluator: Evaluator,
    weights: Sequence[Sequence[float]] | torch.Tensor,
    specs: Sequence[MetricSpec],
    methods: Sequence[str] = CURVE_METHODS,
    progress: ProgressCallback | None = None,
) -> dict[str, list[Record]]:
    """Records of each merge method at every soup's coordinates (rows of `weights`, (S, K)) on
    `specs`, spec-major as `Evaluator.evaluate` returns them, keyed by method.

    Each merge takes the paper's defaults (`Merge`: TIES keeps the top 20% of each task vector,
    DARE drops with p = 0.9, seed 0) on the family's lineage base; a row's weights are the merge's
    coordinates (λ_i = w_i for every ingredient but the base), so the records pair by weights with
    the linear soup's records of the same rows.

    Raises:
        SoupvizError: a method is not 'ties' or 'dare', the family names no base, or the evaluator
            re-estimates BatchNorm (merges keep the soup rule).
    """
    unknown = [m for m in methods if m not in CURVE_METHODS]
    if unknown:
        raise SoupvizError(f"No trade-off curve for the merge {unknown[0]!r}: use {' or '.join(CURVE_METHODS)} "
                           "(task arithmetic at the soups' coordinates is the linear soup).")
    return {method: merge_evaluator(evaluator, Merge(method)).evaluate(weights, specs, progress)
            for method in methods}
