"""The metric specs the dashboard's pages measure, built from its evaluation settings: robust accuracy
per threat at the paper's budgets or at chosen ones, accuracy under the chosen corruptions, and the
metrics a plot can be coloured by. Specs are data (`MetricSpec`); the evaluator measures them.
"""

from __future__ import annotations

from collections.abc import Sequence

from soupviz.results.metric_specs import MetricSpec
from soupviz.serve.settings import EvalSettings
from soupviz.threats import THREATS


def robust_specs(settings: EvalSettings, threats: Sequence[str] = THREATS) -> list[MetricSpec]:
    """Robust accuracy per threat at the paper's budgets, with the settings' attack and steps."""
    return [MetricSpec("attack", threat=t, attack=settings.attack, steps=settings.steps) for t in threats]


def corruption_specs(settings: EvalSettings) -> list[MetricSpec]:
    """Accuracy under each chosen corruption at the settings' severity."""
    return [MetricSpec("corruption", corruption=c, severity=settings.severity) for c in settings.corruptions]


def metric_choices(settings: EvalSettings) -> dict[str, MetricSpec]:
    """Metrics a plot can show, by display name: clean, each threat, each chosen corruption."""
    specs = [MetricSpec("clean"), *robust_specs(settings), *corruption_specs(settings)]
    return {spec.column: spec for spec in specs}


def budget_specs(budgets: dict[str, Sequence[float]], settings: EvalSettings) -> list[MetricSpec]:
    """Robust-accuracy specs for every threat x budget, in threat then budget order."""
    return [
        MetricSpec("attack", threat=threat, eps=eps, attack=settings.attack, steps=settings.steps)
        for threat in THREATS for eps in budgets.get(threat, [])
    ]
