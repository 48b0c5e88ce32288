"""Attacks under one interface: construct with the model and the budget, call on (x, y).

Threat models are 'linf', 'l2' and 'l1' with budgets in pixel scale (pixels in [0, 1]);
every perturbed image stays inside both the norm ball and the [0, 1] box. Our PGD is the
fast attack (training, interactive estimates, batches of soups); APGD and AutoAttack come
from pyautoattack, the reference. Robust accuracy from any of them is an upper bound.
"""

from soupviz.attacks.apgd import APGD
from soupviz.attacks.autoattack import AutoAttack
from soupviz.attacks.base import Attack
from soupviz.attacks.pgd import PGD
from soupviz.attacks.registry import DEFAULT_STEPS, FIXED_ITERATIONS, TARGETED, attack_names, make_attack, make_attacks
from soupviz.attacks.robust import describe_attacks, robust_mask
from soupviz.threats import DEFAULT_BUDGETS, THREAT_LABELS, THREATS, format_budget

__all__ = [
    "APGD",
    "Attack",
    "AutoAttack",
    "DEFAULT_BUDGETS",
    "DEFAULT_STEPS",
    "FIXED_ITERATIONS",
    "PGD",
    "THREATS",
    "TARGETED",
    "THREAT_LABELS",
    "attack_names",
    "describe_attacks",
    "format_budget",
    "make_attack",
    "make_attacks",
    "robust_mask",
]
