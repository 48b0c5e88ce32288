"""Baselines: models trained outside the soup, measured beside it on the same images.

The soups paper compares soups against a jointly trained model: SAT, a fine-tune of the base
with one of L∞/L2/L1 sampled per batch. Such a model is not an ingredient (no slider mixes it),
so it lives in the family folder's `baselines/` subfolder, where `load_family` does not look,
and is evaluated as a one-model family with the soups' images, seed, batch size and cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from soupviz.checkpoints.families import Ingredient, baseline_family_name, family_from_ingredients
from soupviz.evaluate.evaluator import Evaluator
from soupviz.progress import Progress, ProgressCallback
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record


def baseline_evaluator(evaluator: Evaluator, baseline: Ingredient) -> Evaluator:
    """An evaluator of `baseline` alone on `evaluator`'s images, seed, batch size, device and store,
    so its records compare one to one with the soups'. Its family is `baseline_family_name` and
    its only weight is 1."""
    family = family_from_ingredients([baseline], baseline_family_name(evaluator.family, baseline))
    return Evaluator(family, evaluator.images, device=evaluator.device, seed=evaluator.seed,
                     batch_size=evaluator.batch_size, store=evaluator.store)


def evaluate_baselines(
    evaluator: Evaluator, baselines: Sequence[Ingredient], specs: Sequence[MetricSpec],
    progress: ProgressCallback | None = None,
) -> list[Record]:
    """Records of every baseline on every spec (baseline-major), measured like `evaluator`'s soups.

    Progress messages name the baseline; each record's `ingredients` is the baseline's name.
    """
    records: list[Record] = []
    for baseline in baselines:
        report = None
        if progress is not None:
            def report(step: Progress, label: str = baseline.card.label) -> None:
                progress(replace(step, message=f"{label}: {step.message}"))
        records += baseline_evaluator(evaluator, baseline).evaluate([1.0], specs, report)
    return records
