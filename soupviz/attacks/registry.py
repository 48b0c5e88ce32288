"""Attacks by name, so the CLI, the dashboard and evaluation records name them the same way.

Names: 'pgd', 'pgd-dlr', 'pgd-t' (ours; PGD-T targets the top wrong classes in turn), 'apgd-ce',
'apgd-dlr', 'apgd-t' (pyautoattack's APGD), 'autoattack' (pyautoattack's standard version) and
'autoattack-apgd' (only that version's APGD-CE and APGD-T stages, configured as it configures
them). `make_attacks` also reads chains such as 'apgd-ce+apgd-t', which `robust_mask` runs on the
survivors of each step.
"""

from __future__ import annotations

import inspect
from typing import Any

from soupviz.attacks.apgd import APGD
from soupviz.attacks.autoattack import AutoAttack
from soupviz.attacks.base import Attack, Classifier
from soupviz.attacks.names import DEFAULT_STEPS
from soupviz.attacks.pgd import PGD, TargetedPGD
from soupviz.errors import SoupvizError

# name -> (class, arguments the name fixes)
_SPECS: dict[str, tuple[type[Attack], dict[str, Any]]] = {
    "pgd": (PGD, {}),
    "pgd-dlr": (PGD, {"loss": "dlr"}),
    "pgd-t": (TargetedPGD, {}),
    "apgd-ce": (APGD, {"loss": "ce"}),
    "apgd-dlr": (APGD, {"loss": "dlr"}),
    "apgd-t": (APGD, {"targeted": True}),
    "autoattack": (AutoAttack, {}),
    "autoattack-apgd": (AutoAttack, {"stages": ("apgd-ce", "apgd-t")}),
}


FIXED_ITERATIONS = ("autoattack", "autoattack-apgd")  # AutoAttack's versions fix their own iterations
TARGETED = ("pgd-t", "apgd-t")  # attacks that choose `n_target_classes` target classes themselves


def attack_names() -> list[str]:
    """Names `make_attack` accepts."""
    return list(_SPECS)


def make_attack(
    name: str, model: Classifier, threat: str, eps: float, steps: int | None = None, **kwargs: Any
) -> Attack:
    """Build the attack `name` on `model` for `threat` with budget `eps` (pixel scale).

    Args:
        name: one of `attack_names()`.
        steps: iterations; default `DEFAULT_STEPS[name]`. AutoAttack's standard version has
            its own fixed iterations, so `steps` must stay None for it.
        **kwargs: further constructor arguments (seed, restarts, version, ...).

    Example:
        >>> attack = make_attack("apgd-ce", model, "linf", 8 / 255, steps=20, seed=1)
    """
    key = name.strip().lower()
    if key not in _SPECS:
        raise SoupvizError(f"Unknown attack {name!r}: use one of {', '.join(attack_names())}.")
    if key in FIXED_ITERATIONS and steps is not None:
        raise SoupvizError("AutoAttack runs its own fixed iterations; leave steps unset for it.")
    cls, fixed = _SPECS[key]
    fixed_here = {"self", "model", "threat", "eps", "steps", *fixed}
    allowed = set(inspect.signature(cls.__init__).parameters) - fixed_here
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise SoupvizError(
            f"Attack {name!r} has no option {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}."
        )
    if key not in FIXED_ITERATIONS:
        kwargs["steps"] = steps or DEFAULT_STEPS[key]
    return cls(model, threat, eps, **fixed, **kwargs)


def make_attacks(
    spec: str, model: Classifier, threat: str, eps: float, steps: int | None = None, **kwargs: Any
) -> list[Attack]:
    """A chain from 'name+name+...', e.g. 'apgd-ce+apgd-t', each built by `make_attack`."""
    return [make_attack(part, model, threat, eps, steps, **kwargs) for part in spec.split("+")]
