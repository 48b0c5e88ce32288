"""Specification of transfer attacks: the metric spec names its source (a key that parses back), the
evaluator crafts examples on that source and judges every soup on them, per image and stored with
the source's content in the key, on a tiny family."""

from __future__ import annotations

import pytest
import torch

from soupviz.attacks.transfer import survives_transfer, transfer_examples
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.evaluate.factory import open_evaluator
from soupviz.evaluate.methods import method_label, spec_attacks
from soupviz.models.registry import create_model
from soupviz.results.metric_specs import MetricSpec, parse_metrics
from soupviz.results.records import Record
from soupviz.results.store import ResultStore, unpackbits

TRANSFER = "linf:8/255:pgd:3@test-linf"


def test_a_transfer_metric_names_its_source_in_key_column_label_and_data():
    spec = MetricSpec.parse("linf:8/255:pgd+pgd-t:10:1:t3@l2")
    assert spec.source == "l2"
    assert spec.key == "linf:0.0313725:pgd+pgd-t:10:1:t3@l2"
    assert MetricSpec.from_key(spec.key) == spec
    assert MetricSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["source"] == "l2"
    assert spec.column == "L∞ 8/255 transfer from l2"
    assert method_label(spec) == "PGD-10 + PGD-T-10 (3 targets) transferred from the l2 ingredient, L∞ 8/255"
    assert method_label(MetricSpec.parse("linf:8/255:pgd:10@uniform")) == (
        "PGD-10 transferred from the uniform soup, L∞ 8/255")
    assert [s.source for s in parse_metrics("linf,linf@uniform")] == [None, "uniform"]
    assert MetricSpec.parse("linf").key == "linf:0.0313725:pgd+pgd-t:10:1:t3"  # white-box keys unchanged


@pytest.mark.parametrize("text", ["clean@l2", "union@l2", "fog:3@l2", "linf@"])
def test_only_attacks_transfer_from_a_named_source(text):
    with pytest.raises(SoupvizError):
        MetricSpec.parse(text)


def ingredient_module(family, index):
    card = family.ingredients[index].card
    model = create_model(card.arch, card.num_classes, card.mean, card.std)
    model.load_state_dict(family.ingredients[index].state_dict)
    return model.eval()


@pytest.fixture
def labelled(family, synthetic_images) -> ImageSet:
    """The synthetic images labelled by the linf ingredient, so clean accuracy is high and the
    attack has something to break."""
    with torch.no_grad():
        labels = ingredient_module(family, 1)(synthetic_images.images.float() / 255).argmax(1)
    return ImageSet(synthetic_images.images, labels, CIFAR10_CLASSES, "synthetic")


def test_transfer_records_match_examples_crafted_on_the_source_by_hand(family, labelled, tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    evaluator = open_evaluator(family, test=labelled, seed=0, batch_size=20, store=store)
    spec = MetricSpec.parse(TRANSFER)
    records = evaluator.evaluate(torch.eye(4, dtype=torch.float64), [spec])

    source = ingredient_module(family, 1)
    x, y = labelled.images.float() / 255, labelled.labels
    expected = []
    for index in range(4):
        target, masks = ingredient_module(family, index), []
        for xb, yb in zip(x.split(20), y.split(20), strict=True):
            examples = transfer_examples(spec_attacks(spec, source, seed=0), xb, yb)
            masks.append(survives_transfer(target, xb, yb, examples))
        expected.append(torch.cat(masks))
    for record, mask in zip(records, expected, strict=True):
        assert record.measure.source == "test-linf" and "transferred from the test-linf ingredient" in record.method
        assert torch.equal(unpackbits(record.mask, len(labelled)), mask)
    white_box = evaluator.evaluate([0, 1, 0, 0], [MetricSpec.parse("linf:8/255:pgd:3")])[0]
    assert records[1].correct == white_box.correct  # on its own source a transfer attack is white-box
    assert records[1].accuracy < 1.0 and max(r.accuracy for r in records) > records[1].accuracy

    stored = [r for r in store.records() if r.measure.source == "test-linf"]
    assert len(stored) == 4 and Record.from_dict(stored[0].to_dict()).measure == spec
    again = open_evaluator(family, test=labelled, seed=0, batch_size=20, store=store)
    assert [r.mask for r in again.evaluate(torch.eye(4, dtype=torch.float64), [spec])] == [r.mask for r in records]


def test_the_source_is_part_of_the_stored_key(evaluator):
    row = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    keys = {evaluator.key(row, MetricSpec.parse(f"linf@{source}")) for source in ("test-linf", "test-l2", "uniform")}
    assert len(keys) == 3


def test_an_unknown_source_is_refused_with_the_family_named(evaluator):
    with pytest.raises(SoupvizError, match="not an ingredient.*uniform"):
        evaluator.evaluate([1, 0, 0, 0], [MetricSpec.parse("linf@resnet")])


def test_the_uniform_soup_is_a_source(evaluator):
    record = evaluator.evaluate([1, 0, 0, 0], [MetricSpec.parse("linf:8/255:pgd:2@uniform")])[0]
    assert record.n == 40 and "uniform soup" in record.method
