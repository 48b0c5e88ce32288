"""The default attack of each threat, chosen from a measured strength/cost table.

`bench/bench_attack_strength.py` runs candidate attacks on every shipped ingredient against
AutoAttack's gradient stages (APGD-CE-100 + APGD-T-100, as its standard version configures them)
and keeps per-image results; `bench/results/attack_strength.md` is the table. The default for a
threat is the cheapest candidate within 1 point of that reference on every ingredient. The
preview is what the dashboard runs while the user moves a slider: fast, and labelled as a preview
because it overstates robustness by the gap the table shows.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT = "default"  # the attack name that stands for the threat's measured default


@dataclass(frozen=True)
class AttackChoice:
    """An attack chain as metric specs name it: registry names joined by '+', steps per stage,
    and the target classes of a targeted stage (None: the attack's own default)."""

    attack: str
    steps: int
    targets: int | None = None
    max_gap: float = 0.0  # largest measured excess over the reference, in accuracy points
    images: int = 0  # images per ingredient behind `max_gap`


DEFAULT_ATTACKS: dict[str, AttackChoice] = {
    "linf": AttackChoice("apgd-ce+apgd-t", 20, 3),
    "l2": AttackChoice("apgd-ce+apgd-t", 20, 3),
    "l1": AttackChoice("apgd-ce+apgd-t", 20, 3),
}

PREVIEW_ATTACK = AttackChoice("pgd", 10)
# The preview's largest excess over the reference per threat, in accuracy points.
PREVIEW_GAPS: dict[str, float] = {"linf": 3.0, "l2": 2.0, "l1": 9.0}


def strength_note(attack: str, steps: int, targets: int | None, threat: str) -> str:
    """What the strength/cost table says of this attack at `threat`: within 1 point of
    AutoAttack for the default, the measured excess for the preview, '' for other attacks."""
    chosen = DEFAULT_ATTACKS[threat]
    if (attack, steps, targets) == (chosen.attack, chosen.steps, chosen.targets):
        return f"default attack: within 1 point of AutoAttack on every shipped ingredient ({chosen.images} images)"
    if (attack, steps, targets) == (PREVIEW_ATTACK.attack, PREVIEW_ATTACK.steps, PREVIEW_ATTACK.targets):
        gap = PREVIEW_GAPS[threat]
        return (
            f"preview: overstated robustness by up to {gap:.1f} points against AutoAttack on the shipped "
            "ingredients; choose the default attack for numbers within 1 point"
        )
    return ""
