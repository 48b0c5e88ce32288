"""Attack names as people read them, made in one place from an attack's registry name and settings:
'PGD-10', 'PGD-DLR-20×3', 'PGD-T-10 (3 targets)', 'APGD-T-40 (9 targets)', 'AutoAttack (standard:
APGD-CE, APGD-T)', and chains joined by ' + '. Attacks' `describe`, records' methods and every
label call these, so a name is never rebuilt from another text.
"""

from __future__ import annotations

from collections.abc import Sequence

STAGE_NAMES = {"pgd": "PGD", "pgd-dlr": "PGD-DLR", "pgd-t": "PGD-T", "apgd-ce": "APGD-CE",
               "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T"}
# Steps when none are given: 20 for our fast PGD, 40 for APGD (the soups paper's evaluation).
DEFAULT_STEPS = {"pgd": 20, "pgd-dlr": 20, "pgd-t": 20, "apgd-ce": 40, "apgd-dlr": 40, "apgd-t": 40}
DEFAULT_TARGETS = {"pgd-t": 3, "apgd-t": 9}  # target classes a targeted stage tries when none are given
AUTOATTACK_STAGES = {"autoattack": None, "autoattack-apgd": ("apgd-ce", "apgd-t")}


def autoattack_name(version: str = "standard", stages: Sequence[str] | None = None) -> str:
    """'AutoAttack (standard)', or with chosen stages 'AutoAttack (standard: APGD-CE, APGD-T)'."""
    chosen = f": {', '.join(stage.upper() for stage in stages)}" if stages else ""
    return f"AutoAttack ({version}{chosen})"


def stage_name(name: str, steps: int, restarts: int = 1, targets: int | None = None) -> str:
    """One registry attack ('pgd', 'apgd-t', 'autoattack-apgd', ...) with its iterations, random
    restarts and, for a targeted stage, target classes (None: the stage's default); `steps` 0 means
    the stage's `DEFAULT_STEPS`. AutoAttack's versions fix their own iterations, so `steps` is
    ignored for them."""
    if name in AUTOATTACK_STAGES:
        return autoattack_name(stages=AUTOATTACK_STAGES[name])
    text = f"{STAGE_NAMES[name]}-{steps or DEFAULT_STEPS[name]}" + (f"×{restarts}" if restarts > 1 else "")
    if name in DEFAULT_TARGETS:
        text += f" ({targets or DEFAULT_TARGETS[name]} targets)"
    return text


def chain_name(attack: str, steps: int, restarts: int = 1, targets: int | None = None) -> str:
    """A chain of registry names joined by '+' (as metric specs hold it), each stage named by
    `stage_name`: 'pgd+pgd-t' with 10 steps and 3 targets is 'PGD-10 + PGD-T-10 (3 targets)'."""
    return " + ".join(stage_name(name, steps, restarts, targets) for name in attack.split("+"))
