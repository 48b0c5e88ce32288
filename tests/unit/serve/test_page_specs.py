"""The specs the dashboard's pages measure (soupviz/serve/page_specs.py), built from the evaluation settings."""

from __future__ import annotations

from soupviz.serve.page_specs import budget_specs
from soupviz.serve.settings import EvalSettings

SETTINGS = EvalSettings(images=40, steps=1, batch_size=20)


def test_budget_specs_cover_every_threat_and_budget() -> None:
    specs = budget_specs({"linf": [4 / 255, 8 / 255], "l2": [0.5]}, SETTINGS)
    assert [(s.threat, s.eps, s.steps, s.attack) for s in specs] == [
        ("linf", 4 / 255, 1, "pgd"), ("linf", 8 / 255, 1, "pgd"), ("l2", 0.5, 1, "pgd")]
