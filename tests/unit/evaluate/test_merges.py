"""Specification of soupviz.evaluate.merges: the base from the family's lineage, layer-wise and
task-vector merges evaluated like soups (same images, seed, store), their records named by the merge
and kept apart from the plain soups' in the store."""

from __future__ import annotations

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.factory import open_evaluator
from soupviz.evaluate.merges import Merge, lambdas_to_weights, lineage_base, merge_evaluator, parse_groups
from soupviz.models.registry import create_model
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore, family_fingerprint, unpackbits

CLEAN = MetricSpec("clean")


def test_the_base_is_the_parent_the_cards_name(family):
    assert family.names[lineage_base(family)] == "test-linf"
    assert lineage_base(family, "test-l2") == 2
    with pytest.raises(SoupvizError, match="not an ingredient"):
        lineage_base(family, "resnet")


def test_lambdas_become_soup_coordinates_around_the_base():
    assert lambdas_to_weights([1, 1, 1], 4, base=1) == [1.0, -2.0, 1.0, 1.0]
    with pytest.raises(SoupvizError, match="one coefficient per task vector"):
        lambdas_to_weights([1, 1], 4, base=1)


def test_groups_parse_from_ingredient_names_or_weights():
    names = ["a", "b", "c"]
    assert parse_groups("layer3=b, head=0.5:0.5:0", names) == (("layer3", (0.0, 1.0, 0.0)), ("head", (0.5, 0.5, 0.0)))
    for bad in ("layer3", "layer3=x", "layer3=b,layer3=c", ""):
        with pytest.raises(SoupvizError):
            parse_groups(bad, names)
    with pytest.raises(SoupvizError, match="needs block groups"):
        Merge("soup")
    with pytest.raises(SoupvizError, match="plain soup only"):
        Merge("ties", groups=(("head", (1.0, 0, 0)),))


@pytest.fixture
def stored(family, synthetic_images, tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    return open_evaluator(family, test=synthetic_images, seed=0, batch_size=20, store=store)


def test_a_layer_swap_is_measured_on_the_swapped_model(family, synthetic_images, stored):
    merge = Merge(groups=parse_groups("layer2=test-l2", family.names))
    evaluator = merge_evaluator(stored, merge)
    record = evaluator.evaluate([0, 1, 0, 0], [CLEAN])[0]

    linf, l2 = family.ingredients[1].state_dict, family.ingredients[2].state_dict
    card = family.ingredients[0].card
    swapped = create_model(card.arch, card.num_classes, card.mean, card.std)
    swapped.load_state_dict({key: (l2 if key.startswith("layer2.") else linf)[key] for key in linf})
    with torch.no_grad():
        expected = swapped.eval()(synthetic_images.images.float() / 255).argmax(1) == synthetic_images.labels
    assert torch.equal(unpackbits(record.mask, 40), expected)
    assert record.family.endswith("/merges/layers-layer2=test-l2")
    assert record.method.startswith("layer-wise soup (layer2 (0, 0, 1, 0)): clean accuracy")
    assert "per block group" in record.batchnorm


def test_merge_records_are_kept_apart_from_the_soups(family, stored):
    plain = stored.evaluate([0, 1, 0, 0], [CLEAN])[0]
    same = Merge(groups=(("layer2", (0.0, 1.0, 0.0, 0.0)),))
    merged = merge_evaluator(stored, same).evaluate([0, 1, 0, 0], [CLEAN])[0]
    assert merged.mask == plain.mask  # layer2 from linf in linf: the same model
    soups = stored.store.records(family=family_fingerprint(family.hashes))
    assert [r.family for r in soups] == [family.name]
    assert len(stored.store.records()) == 2


def test_task_arithmetic_at_a_row_is_the_soup_of_that_row(family, stored):
    row = torch.tensor([0.2, 0.1, 0.4, 0.3], dtype=torch.float64)
    evaluator = merge_evaluator(stored, Merge("sum"))
    x = stored.x[:8]
    stored.soup.set_weights(row)
    assert torch.allclose(evaluator.classifier(row)(x), stored.soup(x), atol=1e-4)


def test_ties_and_dare_records_name_their_settings_and_differ_in_key(family, stored):
    ties = merge_evaluator(stored, Merge("ties", top_k=0.2))
    dare = merge_evaluator(stored, Merge("dare", drop=0.5, seed=1))
    row = torch.tensor(lambdas_to_weights([1, 1, 1], 4, base=1), dtype=torch.float64)
    record = ties.evaluate(row, [CLEAN])[0]
    assert record.method.startswith("TIES merge (top 20% of each task vector, signs elected, disjoint mean) "
                                    "on the base test-linf: ")
    assert record.family.endswith("/merges/ties-k0.2-test-linf") and record.weights == [1.0, -2.0, 1.0, 1.0]
    assert "never trimmed or dropped" in record.batchnorm
    assert dare.evaluate(row, [CLEAN])[0].method.startswith("DARE merge (drop p=0.5, rescaled, seed 1")
    keys = {ties.key(row, CLEAN), dare.key(row, CLEAN), stored.key(row, CLEAN),
            merge_evaluator(stored, Merge("dare", drop=0.5, seed=2)).key(row, CLEAN)}
    assert len(keys) == 4


def test_merges_refuse_reestimated_statistics(family, synthetic_images):
    evaluator = open_evaluator(family, test=synthetic_images, train=synthetic_images, batchnorm="reestimate",
                               seed=0, batch_size=20, cache=False)
    with pytest.raises(SoupvizError, match="batchnorm mix"):
        merge_evaluator(evaluator, Merge("ties"))


def test_an_unknown_group_is_refused(stored):
    with pytest.raises(SoupvizError, match="No block group 'layer9'"):
        merge_evaluator(stored, Merge(groups=(("layer9", (1.0, 0, 0, 0)),)))
