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
    max_gap: float | None = None  # largest measured excess over the reference (points); None: it is the reference
    images: int = 0  # images per ingredient behind `max_gap`


# From bench/results/attack_strength.md (images per ingredient in `images`; at L∞ the reference
# includes AutoAttack's full standard version). At L1 no chain cheaper than AutoAttack's own
# gradient stages came within 1 point (APGD-CE-100 + APGD-T-100 with 5 targets stayed up to 1.3
# points above it, for lack of AutoAttack's 5 restarts), so L1 uses them.
DEFAULT_ATTACKS: dict[str, AttackChoice] = {
    "linf": AttackChoice("pgd+pgd-t", 10, 3, max_gap=0.8, images=1000),
    "l2": AttackChoice("pgd+pgd-t", 10, 3, max_gap=0.4, images=1000),
    "l1": AttackChoice("autoattack-apgd", 0, None, images=1000),
}

PREVIEW_ATTACK = AttackChoice("pgd", 10)
# The preview's largest excess over the reference per threat, in accuracy points (same table).
PREVIEW_GAPS: dict[str, float] = {"linf": 4.9, "l2": 2.3, "l1": 12.2}


def is_preview(attack: str, steps: int, targets: int | None) -> bool:
    """Whether this is the preview attack, which overstates robustness by `PREVIEW_GAPS`."""
    return (attack, steps, targets) == (PREVIEW_ATTACK.attack, PREVIEW_ATTACK.steps, PREVIEW_ATTACK.targets)


def strength_note(attack: str, steps: int, targets: int | None, threat: str) -> str:
    """What the strength/cost table says of this attack at `threat`: within 1 point of
    AutoAttack for the default, the measured excess for the preview, '' for other attacks."""
    chosen = DEFAULT_ATTACKS[threat]
    if (attack, steps, targets) == (chosen.attack, chosen.steps, chosen.targets):
        if chosen.max_gap is None:
            return "default attack: AutoAttack's own APGD-CE + APGD-T stages (no cheaper chain came within 1 point)"
        return (
            f"default attack: at most {chosen.max_gap:.1f} points above AutoAttack on every shipped "
            f"ingredient ({chosen.images} images each)"
        )
    if is_preview(attack, steps, targets):
        gap = PREVIEW_GAPS[threat]
        return (
            f"preview: overstated robustness by up to {gap:.1f} points against AutoAttack on the shipped "
            "ingredients; choose the default attack for numbers within 1 point"
        )
    return ""
