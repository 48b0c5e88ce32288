"""Attacks under one interface: construct with the model and the budget, call on (x, y).

Threat models are 'linf', 'l2' and 'l1' with budgets in pixel scale (pixels in [0, 1]);
every perturbed image stays inside both the norm ball and the [0, 1] box.
"""

from soupviz.attacks.base import DEFAULT_BUDGETS, THREATS, Attack
from soupviz.attacks.pgd import PGD

__all__ = ["Attack", "PGD", "THREATS", "DEFAULT_BUDGETS"]
