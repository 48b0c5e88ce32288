"""The default attack of each threat, chosen from a measured strength/cost table, and what that
table says of an attack at a threat and budget.

`bench/bench_attack_strength.py` runs candidate attacks on every shipped ingredient against
AutoAttack's gradient stages (APGD-CE-100 + APGD-T-100, as its standard version configures them)
at each threat's default budget only (L∞ 8/255, L2 0.5, L1 12), keeps per-image results and writes
`bench/results/attack_strength.json` (and `.md`, the table). The default for a threat is the
cheapest candidate within 1 point of that reference on every ingredient. The preview is what the
dashboard runs while the user moves a slider: fast, and labelled as a preview because it
overstates robustness by the gap the table shows. Gaps are read from the JSON, never retyped.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from soupviz.threats import DEFAULT_BUDGETS, threat_label

DEFAULT = "default"  # the attack name that stands for the threat's measured default
STRENGTH_TABLE = Path(__file__).resolve().parents[2] / "bench" / "results" / "attack_strength.json"
_TARGETED = ("pgd-t", "apgd-t")
_BUDGET_TOLERANCE = 1e-6


@dataclass(frozen=True)
class AttackChoice:
    """An attack chain as metric specs name it: registry names joined by '+', steps per stage,
    and the target classes of a targeted stage (None: the attack's own default)."""

    attack: str
    steps: int
    targets: int | None = None


# The table's choices (its "defaults": the cheapest candidate within 1 point; a test ties them).
# At L1 no chain cheaper than AutoAttack's own gradient stages came within 1 point, so L1 uses them.
DEFAULT_ATTACKS: dict[str, AttackChoice] = {
    "linf": AttackChoice("pgd+pgd-t", 10, 3),
    "l2": AttackChoice("pgd+pgd-t", 10, 3),
    "l1": AttackChoice("autoattack-apgd", 0, None),
}

PREVIEW_ATTACK = AttackChoice("pgd", 10)


@dataclass(frozen=True)
class MeasuredGap:
    """A candidate's largest excess over the reference across the shipped ingredients, in
    accuracy points, at one threat's default budget, on `images` images per ingredient."""

    points: float
    images: int


def candidate_name(attack: str, steps: int, targets: int | None) -> str:
    """The strength table's name of an attack chain, e.g. 'pgd-10+pgd-t-10x3'."""
    return "+".join(f"{stage}-{steps}" + (f"x{targets}" if stage in _TARGETED and targets else "")
                    for stage in attack.split("+"))


@functools.cache
def measured_gaps(path: Path = STRENGTH_TABLE) -> dict[str, dict[str, MeasuredGap]]:
    """Per threat and candidate (`candidate_name`), the largest measured gap over the shipped
    ingredients, read from the strength table's JSON; empty where the file is absent (an install
    without the bench results: every strength then reads as unmeasured)."""
    if not path.is_file():
        return {}
    gaps: dict[str, dict[str, MeasuredGap]] = {}
    for row in json.loads(path.read_text())["rows"]:
        for name, candidate in row["candidates"].items():
            known = gaps.setdefault(row["threat"], {}).get(name)
            points = 100 * candidate["gap"]
            if known is None or points > known.points:
                images = row["images"] if known is None else min(known.images, row["images"])
                gaps[row["threat"]][name] = MeasuredGap(points, images)
    return gaps


def is_preview(attack: str, steps: int, targets: int | None) -> bool:
    """Whether this is the preview attack, which overstates robustness by its measured gap."""
    return (attack, steps, targets) == (PREVIEW_ATTACK.attack, PREVIEW_ATTACK.steps, PREVIEW_ATTACK.targets)


def strength_note(attack: str, steps: int, targets: int | None, threat: str, eps: float) -> str:
    """What the strength/cost table says of this attack at `threat` and budget `eps`: for the
    default, its measured distance from AutoAttack; for the preview, its measured excess; at a
    budget the table did not measure, that the strength is unmeasured there (with what it measured
    at the default budget); '' for AutoAttack itself and for attacks the table does not hold."""
    measured_at = threat_label(threat, DEFAULT_BUDGETS[threat])
    chosen = DEFAULT_ATTACKS[threat]
    gap = measured_gaps().get(threat, {}).get(candidate_name(attack, steps, targets))
    default = (attack, steps, targets) == (chosen.attack, chosen.steps, chosen.targets)
    if attack.startswith("autoattack") and not default:
        return ""
    if attack.startswith("autoattack"):
        return ("default attack: AutoAttack's own APGD-CE + APGD-T stages (no cheaper chain came within 1 point "
                f"at {measured_at})")
    if gap is None:
        return f"strength unmeasured at {threat_label(threat, eps)}" if is_preview(attack, steps, targets) else ""
    role = "default attack" if default else "preview" if is_preview(attack, steps, targets) else "measured attack"
    found = (f"up to {gap.points:.1f} points above AutoAttack at {measured_at} on the shipped ingredients "
             f"({gap.images} images each)")
    if abs(eps - DEFAULT_BUDGETS[threat]) > _BUDGET_TOLERANCE * max(1.0, eps):
        return f"{role}: strength unmeasured at {threat_label(threat, eps)} ({found})"
    if is_preview(attack, steps, targets):
        return f"preview, overstates robustness: {found}"
    return f"{role}: {found}"
