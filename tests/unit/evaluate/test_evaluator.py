"""The evaluator: records with intervals, batched soups, caching, progress and union robustness."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from soupviz.errors import NonFiniteLogitsError
from soupviz.evaluate.evaluator import Evaluator
from soupviz.present.labels import method_text
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore, unpackbits

SPECS = [
    MetricSpec("clean"),
    MetricSpec("attack", threat="linf", attack="pgd", steps=2),
    MetricSpec("corruption", corruption="gaussian_noise", severity=2),
]


def test_records_have_counts_intervals_and_honest_labels(family, synthetic_images) -> None:
    records = Evaluator(family, synthetic_images, device="cpu", batch_size=16).evaluate([0, 1, 0, 0], SPECS)
    assert [r.metric for r in records] == ["clean", "L∞ 8/255", "Gaussian noise, severity 2"]
    for record in records:
        assert record.n == len(synthetic_images) and 0 <= record.correct <= record.n
        assert record.ci_low <= record.accuracy <= record.ci_high
    robust = records[1]
    assert robust.upper_bound and "PGD-2" in robust.method and "upper bound" in method_text(robust)
    assert robust.correct <= records[0].correct


def test_one_hot_soup_equals_its_ingredient_model(family, synthetic_images) -> None:
    evaluator = Evaluator(family, synthetic_images, device="cpu")
    record = evaluator.evaluate([0, 0, 1, 0], [MetricSpec("clean")])[0]
    model = family.ingredients[2].build_model()
    with torch.no_grad():
        expected = model(synthetic_images.floats()).argmax(1) == synthetic_images.labels
    assert torch.equal(unpackbits(record.mask, record.n), expected)


def test_many_soups_give_one_record_per_soup_and_spec(family, synthetic_images) -> None:
    evaluator = Evaluator(family, synthetic_images, device="cpu")
    weights = torch.eye(4, dtype=torch.float64)
    records = evaluator.evaluate(weights, [MetricSpec("clean")])
    assert [r.weights for r in records] == weights.tolist()
    assert records == evaluator.evaluate(evaluator.ingredient_weights(), [MetricSpec("clean")])


def test_soups_folded_into_one_batch_give_the_records_of_soups_evaluated_alone(family, synthetic_images) -> None:
    from soupviz.soups.weights import simplex_grid

    rows = simplex_grid(4, 0.5)[:5]
    events = []
    folded = Evaluator(family, synthetic_images, device="cpu", batch_size=16, fold=5).evaluate(
        rows, SPECS, events.append)
    alone = Evaluator(family, synthetic_images, device="cpu", batch_size=16, fold=1).evaluate(rows, SPECS)
    assert events[-1].done == events[-1].total == 5 * (1 + 3 + 1)
    assert [(r.weights, r.spec) for r in folded] == [(r.weights, r.spec) for r in alone]
    clean = {tuple(r.weights): unpackbits(r.mask, r.n) for r in folded if r.kind == "clean"}
    for mine, single in zip(folded, alone, strict=True):
        if mine.kind == "attack":  # random starts are drawn per batch: only the bound is shared
            assert not (unpackbits(mine.mask, mine.n) & ~clean[tuple(mine.weights)]).any()
        else:
            assert mine.mask == single.mask


def test_cache_returns_the_same_records_without_recomputing(
    family, synthetic_images, tmp_path: Path, monkeypatch
) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    first = Evaluator(family, synthetic_images, device="cpu", store=store).evaluate([0.5, 0.5, 0, 0], SPECS)
    import soupviz.evaluate.evaluator as evaluate_module

    def fail(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(evaluate_module, "robust_mask", fail)
    monkeypatch.setattr(evaluate_module.Evaluator, "_predicted", fail)
    second = Evaluator(family, synthetic_images, device="cpu", store=store).evaluate([0.5, 0.5, 0, 0], SPECS)
    assert second == first


def test_cache_keys_separate_weights_images_and_seeds(family, synthetic_images, tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    evaluator = Evaluator(family, synthetic_images, device="cpu", store=store)
    evaluator.evaluate(torch.eye(4, dtype=torch.float64), [MetricSpec("clean")])
    Evaluator(family, synthetic_images.subset(20), device="cpu", store=store).evaluate(
        [1, 0, 0, 0], [MetricSpec("clean")]
    )
    Evaluator(family, synthetic_images, device="cpu", store=store, seed=1).evaluate([1, 0, 0, 0], [MetricSpec("clean")])
    assert len(store) == 6


def test_records_name_the_code_that_computed_them_and_other_code_misses_the_cache(
    family, synthetic_images, tmp_path: Path
) -> None:
    from soupviz.results.store import code_fingerprint

    store = ResultStore(tmp_path / "results.sqlite")
    (first,) = Evaluator(family, synthetic_images, device="cpu", store=store).evaluate([1, 0, 0, 0], SPECS[:1])
    assert first.code_fingerprint == code_fingerprint() and len(first.code_fingerprint) == 16
    (cached,) = Evaluator(family, synthetic_images, device="cpu", store=store).evaluate([1, 0, 0, 0], SPECS[:1])
    assert cached.code_fingerprint == first.code_fingerprint
    assert len(store) == 1
    edited = Evaluator(family, synthetic_images, device="cpu", store=store)
    edited.code_fingerprint = "another version"
    (recomputed,) = edited.evaluate([1, 0, 0, 0], SPECS[:1])
    assert recomputed.code_fingerprint == "another version" and len(store) == 2


def test_the_code_fingerprint_follows_the_sources_that_compute_records(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import soupviz.results.store as store

    copy = tmp_path / "soupviz"
    shutil.copytree(Path(store.__file__).parents[1], copy, ignore=shutil.ignore_patterns("__pycache__"))

    def fingerprint_of(folder: Path) -> str:
        monkeypatch.setattr(store, "__file__", str(folder / "results/store.py"))
        store.code_fingerprint.cache_clear()
        return store.code_fingerprint()

    try:
        original = fingerprint_of(copy)
        with (copy / "cli" / "evaluation.py").open("a") as source:
            source.write("# the command line computes no record\n")
        assert fingerprint_of(copy) == original
        with (copy / "attacks" / "pgd.py").open("a") as source:
            source.write("# an edited attack\n")
        assert fingerprint_of(copy) != original
    finally:
        monkeypatch.undo()
        store.code_fingerprint.cache_clear()


def test_progress_reaches_the_total_and_reports_running_estimates(family, synthetic_images) -> None:
    events = []
    Evaluator(family, synthetic_images, device="cpu", batch_size=10).evaluate([0, 1, 0, 0], SPECS, events.append)
    assert events[-1].done == events[-1].total == 1 + 4 + 1
    partials = [e.partial for e in events if e.partial is not None]
    assert [p.n for p in partials] == [10, 20, 30, 40]


def test_progress_moves_inside_a_batch_while_a_long_attack_runs(family, synthetic_images) -> None:
    """An APGD with restarts on one batch of 40 images reports its share done before the batch
    ends, so a bar over a paper-grade attack moves between batches that take minutes each."""
    events = []
    spec = MetricSpec("attack", threat="l2", eps=0.05, attack="apgd-ce", steps=4, restarts=3)
    Evaluator(family, synthetic_images, device="cpu", batch_size=40).evaluate([0, 1, 0, 0], [spec], events.append)
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == events[-1].total == 1
    assert any(0 < d < 1 for d in done)


def test_union_is_the_intersection_of_the_threats(family, synthetic_images) -> None:
    evaluator = Evaluator(family, synthetic_images, device="cpu")
    union = MetricSpec("union", attack="pgd", steps=2)
    singles = [MetricSpec("attack", threat=t, attack="pgd", steps=2) for t in union.threats]
    records = evaluator.evaluate([0, 1, 0, 0], singles + [union])
    masks = torch.stack([unpackbits(r.mask, r.n) for r in records[:3]])
    assert torch.equal(unpackbits(records[3].mask, records[3].n), masks.all(0))
    assert records[3].metric == "union" and records[3].upper_bound


def test_extrapolated_weights_are_accepted_but_must_sum_to_one(family, synthetic_images) -> None:
    from soupviz.errors import SoupWeightsError

    evaluator = Evaluator(family, synthetic_images, device="cpu")
    assert evaluator.evaluate([-0.2, 1.2, 0, 0], [MetricSpec("clean")])[0].weights == pytest.approx([-0.2, 1.2, 0, 0])
    with pytest.raises(SoupWeightsError):
        evaluator.evaluate([0.5, 0.6, 0, 0], [MetricSpec("clean")])


def test_a_soup_is_cached_once_whichever_family_folder_holds_its_ingredients(
    family, synthetic_images, tmp_path
) -> None:
    from soupviz.checkpoints.families import family_from_ingredients

    store = ResultStore(tmp_path / "results.sqlite")
    Evaluator(family, synthetic_images, device="cpu", store=store).evaluate([0, 0.5, 0.5, 0], [MetricSpec("clean")])
    smaller = family_from_ingredients(family.ingredients[1:3], "pair")
    (record,) = Evaluator(smaller, synthetic_images, device="cpu", store=store).evaluate(
        [0.5, 0.5], [MetricSpec("clean")]
    )
    assert record.weights == [0.5, 0.5] and record.ingredients == smaller.names and record.family == "pair"
    assert len(store) == 1


def test_every_dashboard_attack_evaluates_and_the_chain_is_at_least_as_strong(family, synthetic_images) -> None:
    from soupviz.serve.settings import ATTACK_CHOICES, ATTACK_NAMES

    assert set(ATTACK_NAMES) == set(ATTACK_CHOICES)
    evaluator = Evaluator(family, synthetic_images, device="cpu", batch_size=20)
    specs = [MetricSpec("attack", threat="l2", attack=name, steps=2) for name in ATTACK_CHOICES]
    records = {spec.attack: r for spec, r in zip(specs, evaluator.evaluate([0.5, 0.5, 0, 0], specs), strict=True)}
    chain = records["apgd-ce+apgd-t"]
    assert "APGD-CE" in chain.method and "APGD-T" in chain.method
    assert chain.correct <= records["apgd-ce"].correct  # APGD-T only removes survivors of APGD-CE


def test_records_name_the_batchnorm_rule_they_were_computed_with(family, synthetic_images) -> None:
    evaluator = Evaluator(family, synthetic_images, device="cpu")
    record = evaluator.evaluate([1.4, -0.4, 0.4, -0.4], [MetricSpec("clean")])[0]
    assert "running variances in log space" in record.batchnorm
    evaluator.soup.mix_batchnorm(linear=True)
    assert "variances linearly" in evaluator.evaluate([0.5, 0.5, 0, 0], [MetricSpec("clean")])[0].batchnorm


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.kind)
def test_a_soup_with_nan_outputs_is_an_error_not_a_prediction(family, synthetic_images, nan_soup, spec) -> None:
    evaluator = Evaluator(family, synthetic_images, device="cpu", batch_size=16, soup=nan_soup)
    with pytest.raises(NonFiniteLogitsError, match=r"weights \(0.25, 0.25, 0.25, 0.25\) outputs NaN or infinite"):
        evaluator.evaluate([0.25, 0.25, 0.25, 0.25], [spec])


SHIPPED_FAMILY = Path(__file__).parents[3] / "assets" / "families" / "cifar10-preact_resnet_small"
SHIPPED_SPECS = ("clean", "linf:0.0313725:pgd+pgd-t:10:1:t3", "linf:0.0313725:pgd+pgd-t:10:1:t3@l2", "fog:3")


def test_shipped_records_keep_their_store_keys(cifar_folder) -> None:
    """The soup key rule (`weights_key`'s rounding) still finds every kind of shipped record: the
    key recomputed from a record's own fields, with weights a float step off, is the stored one."""
    import json
    import sqlite3

    from soupviz.checkpoints.families import load_family
    from soupviz.data import load_split
    from soupviz.results.grids import family_store

    family = load_family(SHIPPED_FAMILY)
    test = load_split(cifar_folder, "test")
    evaluators = {n: Evaluator(family, test.subset(n, 0), device="cpu", batch_size=250) for n in (200, 500)}
    with sqlite3.connect(family_store(SHIPPED_FAMILY).path) as connection:
        rows = [
            connection.execute(
                "SELECT key, weights, images, code FROM records WHERE spec = ? AND batchnorm = ? "
                "AND weights NOT LIKE '%1.0%' ORDER BY weights LIKE '%0.3%' DESC, key LIMIT 2",
                (spec, evaluators[500].batchnorm),
            ).fetchall()
            for spec in SHIPPED_SPECS
        ]
    assert all(len(found) == 2 for found in rows)
    for spec, found in zip(SHIPPED_SPECS, rows, strict=True):
        for key, weights, images, code in found:
            evaluator = evaluators[int(images.split()[0])]
            evaluator.code_fingerprint = code
            row = torch.tensor(json.loads(weights), dtype=torch.float64)
            row[row != 0] += 1e-12  # another float path to the same soup
            assert evaluator.key(row, MetricSpec.parse(spec)) == key, (weights, spec)
