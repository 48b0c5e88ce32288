"""soupviz: model soups of adversarially robust image classifiers.

The public API: what the CLI, the dashboard's pages and a user's script need, one import away
(`from soupviz import load_family, Soup, open_evaluator, MetricSpec`). Each name is imported
from its home on first use (PEP 562), so `import soupviz` and `import soupviz.errors` stay light
and no module below imports this one. The folders are layers; the README's architecture section
draws them.

Example:
    >>> from soupviz import MetricSpec, load_family, open_evaluator
    >>> family = load_family("assets/families/cifar10-preact_resnet_small")
    >>> built = open_evaluator(family, n=500)
    >>> records = built.evaluator.evaluate([[0.5, 0.5, 0.0, 0.0]], [MetricSpec("clean")])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from soupviz.errors import SoupvizError

if TYPE_CHECKING:
    from soupviz.checkpoints.families import Ingredient, SoupFamily, load_baselines, load_family
    from soupviz.checkpoints.importing import import_checkpoint, open_family
    from soupviz.data import ImageSet, load_split
    from soupviz.evaluate.evaluator import Evaluator
    from soupviz.evaluate.factory import BuiltEvaluator, open_evaluator
    from soupviz.evaluate.sweeps import sweep
    from soupviz.insight.few_shot import AdaptConfig, adapt_to_shift
    from soupviz.insight.generate import GenerationSettings, generate_classes, towards_class
    from soupviz.insight.saliency import SaliencySettings, explain
    from soupviz.results.grids import family_store
    from soupviz.results.metric_specs import MetricSpec
    from soupviz.results.records import Record
    from soupviz.results.store import ResultStore
    from soupviz.soups.soup import Soup

_HOMES: dict[str, str] = {
    "Ingredient": "soupviz.checkpoints.families",
    "SoupFamily": "soupviz.checkpoints.families",
    "load_family": "soupviz.checkpoints.families",
    "load_baselines": "soupviz.checkpoints.families",
    "open_family": "soupviz.checkpoints.importing",
    "import_checkpoint": "soupviz.checkpoints.importing",
    "ImageSet": "soupviz.data",
    "load_split": "soupviz.data",
    "Soup": "soupviz.soups.soup",
    "MetricSpec": "soupviz.results.metric_specs",
    "Record": "soupviz.results.records",
    "ResultStore": "soupviz.results.store",
    "family_store": "soupviz.results.grids",
    "Evaluator": "soupviz.evaluate.evaluator",
    "BuiltEvaluator": "soupviz.evaluate.factory",
    "open_evaluator": "soupviz.evaluate.factory",
    "sweep": "soupviz.evaluate.sweeps",
    "AdaptConfig": "soupviz.insight.few_shot",
    "adapt_to_shift": "soupviz.insight.few_shot",
    "SaliencySettings": "soupviz.insight.saliency",
    "explain": "soupviz.insight.saliency",
    "GenerationSettings": "soupviz.insight.generate",
    "towards_class": "soupviz.insight.generate",
    "generate_classes": "soupviz.insight.generate",
}

__all__ = [
    "SoupvizError",
    "Ingredient",
    "SoupFamily",
    "load_family",
    "load_baselines",
    "open_family",
    "import_checkpoint",
    "ImageSet",
    "load_split",
    "Soup",
    "MetricSpec",
    "Record",
    "ResultStore",
    "family_store",
    "Evaluator",
    "BuiltEvaluator",
    "open_evaluator",
    "sweep",
    "AdaptConfig",
    "adapt_to_shift",
    "SaliencySettings",
    "explain",
    "GenerationSettings",
    "towards_class",
    "generate_classes",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import a public name from its home module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'soupviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
