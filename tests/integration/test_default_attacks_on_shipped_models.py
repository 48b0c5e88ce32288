"""Cross-check on the shipped ingredients: each threat's default attack against AutoAttack.

The defaults in `soupviz.attacks.defaults` were chosen on 1,000 images per ingredient by
`bench/bench_attack_strength.py`, which commits per-image robust masks of every candidate and of
AutoAttack's standard gradient stages (pyautoattack's APGD-CE + APGD-T as that version
configures them) with each ingredient's content hash (`bench/results/attack_strength/`). The
reference of an image is the bench's: robust only if every attack there failed on it.

Here, on the first 100 images of the same seed-0 test subset, the default attack runs live on
the shipped ingredients and may not count more robust images than the committed reference by
more than 1 point of the images plus one image for random-start luck. At L1 the default *is*
AutoAttack's gradient stages (about 1,000 gradient steps per robust image), so a short live run
guards our pyautoattack wrapper instead: on the few images that cheaper attacks missed most, it
must break what the reference broke (at most one image of luck). The cases are the ingredient × threat
pairs where the first wave's defaults overstated robustness most.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from soupviz.attacks import robust_mask
from soupviz.attacks.defaults import DEFAULT_ATTACKS
from soupviz.attacks.robust import describe_attacks
from soupviz.checkpoints.families import load_family
from soupviz.data import load_split
from soupviz.errors import DataError
from soupviz.evaluate.methods import spec_attacks
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import unpackbits

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FAMILY = ROOT / "assets" / "families" / "cifar10-preact_resnet_small"
MASKS = ROOT / "bench" / "results" / "attack_strength"
IMAGES = 100  # the bench's first chunk (start 0) of the seed-0 test subset
CASES = [("linf", "linf"), ("linf", "l2"), ("l2", "l2")]  # default cheaper than the reference: run live on all
L1_CASES = [("linf", "l1"), ("l2", "l1"), ("l1", "l1")]  # default = the reference's own attack: a short live run
L1_IMAGES = 3  # per L1 case: the images the reference broke that the most cheaper candidates missed
CANDIDATE_STAGE = "pgd-10+pgd-t-10x3"  # the bench's name for the L∞ / L2 default
AUTOATTACK_STAGE = "autoattack-apgd"  # the bench's name for AutoAttack's APGD-CE + APGD-T


@pytest.fixture(scope="module")
def shipped():
    try:
        test = load_split(None, "test").subset(IMAGES, 0)
    except DataError as error:
        pytest.skip(f"CIFAR-10 is not available here: {error}")
    return load_family(FAMILY), test.floats(), test.labels


def committed_masks(family, ingredient: str, threat: str) -> dict[str, tuple[torch.Tensor, dict]]:
    """Stage name -> (per-image robust mask, its line) of the bench's first chunk for this
    ingredient × threat, checked to be of the shipped ingredient (its content hash)."""
    lines = [json.loads(text) for text in (MASKS / f"{ingredient}-{threat}.jsonl").read_text().splitlines() if text]
    chunk = [line for line in lines if line["start"] == 0 and line["n"] == IMAGES]
    expected = family.hashes[family.names.index(ingredient)]
    for line in chunk:
        assert line["ingredient_hash"] == expected, (
            f"bench/results/attack_strength/{ingredient}-{threat}.jsonl is of another {ingredient} ingredient: "
            "rerun bench/bench_attack_strength.py on the shipped family"
        )
    return {line["stage"]: (unpackbits(line["mask"], IMAGES), line) for line in chunk}


def reference_of(masks: dict[str, tuple[torch.Tensor, dict]]) -> torch.Tensor:
    """Per image, robust only if every committed stage (AutoAttack's included) failed on it."""
    assert AUTOATTACK_STAGE in masks, "the committed chunk lacks AutoAttack's stages"
    return torch.stack([mask for mask, _ in masks.values()]).all(0)


def default_chain(family, ingredient: str, threat: str):
    model = family.ingredients[family.names.index(ingredient)].build_model("cpu").eval()
    spec = MetricSpec("attack", threat=threat)
    assert (spec.attack, spec.steps) == (DEFAULT_ATTACKS[threat].attack, DEFAULT_ATTACKS[threat].steps)
    return model, spec_attacks(spec, model, seed=0)


@pytest.mark.parametrize(("ingredient", "threat"), CASES)
def test_the_default_attack_is_within_a_point_of_autoattack(shipped, ingredient, threat):
    family, x, y = shipped
    masks = committed_masks(family, ingredient, threat)
    reference = reference_of(masks)
    model, chain = default_chain(family, ingredient, threat)
    assert masks[CANDIDATE_STAGE][1]["label"] == describe_attacks(chain), "the committed masks are of another attack"
    ours = robust_mask(chain, model, x, y)
    excess = int(ours.sum()) - int(reference.sum())
    assert excess <= 1 + IMAGES // 100, (
        f"{ingredient} at {threat}: the default ({describe_attacks(chain)}) leaves {int(ours.sum())} robust "
        f"images, the reference (AutoAttack's APGD-CE + APGD-T and the bench's candidates) {int(reference.sum())}"
    )
    assert 0.05 < reference.float().mean() < 0.9, "the ingredient must be neither broken nor unattackable here"


@pytest.mark.parametrize(("ingredient", "threat"), L1_CASES)
def test_the_l1_default_breaks_what_the_committed_autoattack_run_broke(shipped, ingredient, threat):
    """Our AutoAttack wrapper, live, on the images the reference broke that the most cheaper
    candidates missed: a weaker wrapper, a wrong budget or norm would leave them robust."""
    family, x, y = shipped
    masks = committed_masks(family, ingredient, threat)
    reference = reference_of(masks)
    cheaper = [mask for stage, (mask, _) in masks.items() if not stage.startswith("autoattack")]
    missed = torch.stack(cheaper) & ~reference
    hardest = sorted(missed.sum(0).nonzero()[:, 0].tolist(), key=lambda i: -int(missed[:, i].sum()))[:L1_IMAGES]
    assert len(hardest) == L1_IMAGES, "too few images in the chunk that a cheaper attack missed"
    model, chain = default_chain(family, ingredient, threat)
    assert masks[AUTOATTACK_STAGE][1]["label"] == describe_attacks(chain), "the committed masks are of another attack"
    chosen = torch.tensor(hardest)
    ours = robust_mask(chain, model, x[chosen], y[chosen])
    assert int(ours.sum()) <= 1, (
        f"{ingredient} at {threat}: {describe_attacks(chain)} leaves images {chosen[ours].tolist()} of the first "
        f"{IMAGES} robust, which the committed AutoAttack run broke"
    )
