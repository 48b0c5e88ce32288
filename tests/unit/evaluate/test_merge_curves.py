"""Specification of soupviz.evaluate.merge_curves: TIES and DARE at the soups' own coordinates, on
the soup evaluator's images and metrics, pairing by weights with the linear soup's records."""

from __future__ import annotations

import pytest

from soupviz.errors import SoupvizError
from soupviz.evaluate.factory import open_evaluator
from soupviz.evaluate.merge_curves import merge_curves
from soupviz.evaluate.merges import Merge, merge_evaluator
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore

CLEAN = MetricSpec("clean")
LINF = MetricSpec("attack", threat="linf", eps=8 / 255, attack="pgd", steps=1)
ROWS = [[0.0, 1.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]]


@pytest.fixture
def evaluator(family, synthetic_images, tmp_path):
    return open_evaluator(family, test=synthetic_images, seed=0, batch_size=20,
                          store=ResultStore(tmp_path / "results.sqlite"))


def test_each_merge_is_measured_at_every_soup_coordinate_on_the_soups_images_and_metrics(evaluator):
    curves = merge_curves(evaluator, ROWS, [CLEAN, LINF])
    soups = evaluator.evaluate(ROWS, [CLEAN, LINF])
    assert list(curves) == ["ties", "dare"]
    for method, records in curves.items():
        assert [(r.weights, r.spec, r.images, r.n) for r in records] == [
            (s.weights, s.spec, s.images, s.n) for s in soups]
        assert all(f"/merges/{method}-" in r.family for r in records)
    assert curves["ties"] == merge_evaluator(evaluator, Merge("ties")).evaluate(ROWS, [CLEAN, LINF])


def test_at_the_base_every_task_vector_is_scaled_to_zero_so_each_merge_is_the_base_itself(evaluator):
    base = ROWS[0]  # the test family's lineage base, test-linf: every λ is 0
    soup = evaluator.evaluate(base, [CLEAN])[0]
    for records in merge_curves(evaluator, [base], [CLEAN]).values():
        assert records[0].mask == soup.mask


def test_a_merge_away_from_the_base_is_not_the_linear_soup(evaluator):
    ties = merge_evaluator(evaluator, Merge("ties"))
    row = evaluator.check_rows(ROWS[2])[0]
    evaluator.soup.set_weights(row)
    x = evaluator.x[:8]
    assert not ties.classifier(row)(x).allclose(evaluator.soup(x), atol=1e-4)


def test_only_ties_and_dare_have_curves(evaluator):
    with pytest.raises(SoupvizError, match="is the linear soup"):
        merge_curves(evaluator, ROWS, [CLEAN], ["sum"])
