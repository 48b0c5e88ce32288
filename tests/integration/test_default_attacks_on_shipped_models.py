"""Cross-check on the shipped ingredients: each threat's default attack against AutoAttack.

The defaults in `soupviz.attacks.defaults` were chosen on 1,000 images per ingredient
(bench/results/attack_strength.md); this re-checks them in CI on the first images of the same
seed-0 test subset, against pyautoattack called directly (its standard version's APGD-CE and
APGD-T stages, configured as that version configures them: 9 targets at L∞/L2; 5 restarts,
5 targets and large reps at L1). The default may not count more robust images than AutoAttack
by more than 1 point of the images, plus one image for random-start luck. The cases are the
ingredient × threat pairs where the first wave's defaults overstated robustness most.
"""

from __future__ import annotations

import pytest
import torch
from pyautoattack import AutoAttack

from soupviz.attacks import DEFAULT_BUDGETS, robust_mask
from soupviz.attacks.defaults import DEFAULT_ATTACKS
from soupviz.checkpoints import load_family
from soupviz.data import load_split
from soupviz.errors import DataError
from soupviz.evaluate.methods import spec_attacks
from soupviz.evaluate.metrics import MetricSpec

pytestmark = pytest.mark.slow

FAMILY = "assets/families/cifar10-preact_resnet_small"
IMAGES = 100
CASES = [("linf", "linf"), ("linf", "l2"), ("linf", "l1"), ("l2", "l2"), ("l2", "l1"), ("l1", "l1")]
NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


@pytest.fixture(scope="module")
def shipped():
    try:
        test = load_split(None, "test").subset(IMAGES, 0)
    except DataError as error:
        pytest.skip(f"CIFAR-10 is not available here: {error}")
    family = load_family(FAMILY)
    return family, test.floats(), test.labels


def autoattack_robust(model: torch.nn.Module, threat: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, robust under pyautoattack's standard APGD-CE + APGD-T stages."""
    attack = AutoAttack(model, norm=NORMS[threat], eps=DEFAULT_BUDGETS[threat], seed=0, version="standard")
    attack.verbose = False
    attack.attacks_to_run = ["apgd-ce", "apgd-t"]
    x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


@pytest.mark.parametrize(("ingredient", "threat"), CASES)
def test_the_default_attack_is_within_a_point_of_autoattack(shipped, ingredient, threat):
    family, x, y = shipped
    model = family.ingredients[family.names.index(ingredient)].build_model("cpu").eval()
    spec = MetricSpec("attack", threat=threat)
    assert (spec.attack, spec.steps) == (DEFAULT_ATTACKS[threat].attack, DEFAULT_ATTACKS[threat].steps)
    ours = robust_mask(spec_attacks(spec, model, seed=0), model, x, y)
    theirs = autoattack_robust(model, threat, x, y)
    excess = int(ours.sum()) - int(theirs.sum())
    assert excess <= 1 + IMAGES // 100, (
        f"{ingredient} at {threat}: the default ({spec.attack}, {spec.steps} steps) leaves {int(ours.sum())} "
        f"robust images, AutoAttack {int(theirs.sum())}"
    )
    assert 0.05 < theirs.float().mean() < 0.9, "the ingredient must be neither broken nor unattackable here"
