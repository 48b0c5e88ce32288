"""The defaults and the strength notes come from the strength table's JSON
(`bench/results/attack_strength.json`), never retyped: the chosen chains are the table's choices,
the gaps are its largest per threat, and a note is attached only to the budget the table measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from soupviz.attacks.defaults import (
    DEFAULT_ATTACKS,
    PREVIEW_ATTACK,
    STRENGTH_TABLE,
    candidate_name,
    measured_gaps,
    strength_note,
)
from soupviz.threats import DEFAULT_BUDGETS, THREATS

ROOT = Path(__file__).resolve().parents[3]
TABLE = json.loads(STRENGTH_TABLE.read_text())


def largest_gap(threat: str, candidate: str) -> float:
    return max(100 * row["candidates"][candidate]["gap"] for row in TABLE["rows"] if row["threat"] == threat)


@pytest.mark.parametrize("threat", THREATS)
def test_the_defaults_are_the_tables_choices(threat: str) -> None:
    chosen = DEFAULT_ATTACKS[threat]
    cheapest = TABLE["defaults"][threat]["cheapest_within_1_point"]
    if cheapest is None:  # nothing cheaper came within 1 point: AutoAttack's own stages
        assert chosen.attack == "autoattack-apgd"
    else:
        assert candidate_name(chosen.attack, chosen.steps, chosen.targets) == cheapest


@pytest.mark.parametrize("threat", THREATS)
def test_notes_at_the_measured_budget_quote_the_tables_largest_gap(threat: str) -> None:
    preview = strength_note(PREVIEW_ATTACK.attack, PREVIEW_ATTACK.steps, None, threat, DEFAULT_BUDGETS[threat])
    assert preview.startswith("preview") and f"up to {largest_gap(threat, 'pgd-10'):.1f} points" in preview
    chosen = DEFAULT_ATTACKS[threat]
    default = strength_note(chosen.attack, chosen.steps, chosen.targets, threat, DEFAULT_BUDGETS[threat])
    assert default.startswith("default attack")
    if chosen.attack != "autoattack-apgd":
        gap = largest_gap(threat, candidate_name(chosen.attack, chosen.steps, chosen.targets))
        assert f"up to {gap:.1f} points" in default and gap <= 100 * TABLE["tolerance"]


@pytest.mark.parametrize(("threat", "eps", "budget"), [("linf", 2 / 255, "L∞ 2/255"), ("linf", 16 / 255, "L∞ 16/255"),
                                                       ("l2", 1.0, "L2 1"), ("l1", 6.0, "L1 6"), ("l1", 24.0, "L1 24")])
def test_elsewhere_the_note_says_the_strength_is_unmeasured_there(threat: str, eps: float, budget: str) -> None:
    note = strength_note("pgd", 10, None, threat, eps)
    assert f"strength unmeasured at {budget}" in note


def test_the_readme_quotes_the_tables_preview_gaps() -> None:
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"overstated robustness by up to ([\d.]+) / ([\d.]+) / ([\d.]+) points", readme)
    assert quoted is not None
    assert [float(x) for x in quoted.groups()] == [round(measured_gaps()[t]["pgd-10"].points, 1) for t in THREATS]
