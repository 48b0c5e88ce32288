"""Paired comparisons of two records on the same images: McNemar's exact test and Newcombe's
interval for the difference, checked by hand and by simulated coverage."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.comparison import DISAGREE, mcnemar_p, newcombe_interval, paired_difference
from soupviz.results.metric_specs import MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.results.store import packbits


def record(mask: list[bool], images: str = "8 images of test") -> Record:
    correct = sum(mask)
    low, high = wilson_interval(correct, len(mask))
    return Record(weights=[1.0], ingredients=["m"], measure=MetricSpec("clean"), n=len(mask), correct=correct,
                  accuracy=correct / len(mask), ci_low=low, ci_high=high, method="clean accuracy", images=images,
                  seed=0, batchnorm="mixed", mask=packbits(torch.tensor(mask)))


def test_mcnemar_matches_the_binomial_tail_by_hand() -> None:
    assert mcnemar_p(3, 0) == pytest.approx(2 / 8)
    assert mcnemar_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)
    assert mcnemar_p(5, 5) == 1.0 and mcnemar_p(0, 0) == 1.0


def test_paired_difference_counts_the_discordant_images() -> None:
    a = record([True, True, True, False, True, False, True, True])
    b = record([True, False, False, False, True, True, True, True])
    result = paired_difference(a, b)
    assert (result.only_a, result.only_b, result.n) == (2, 1, 8)
    assert result.difference == pytest.approx(1 / 8)
    assert result.ci_low < result.difference < result.ci_high and result.verdict == "within noise"
    swapped = paired_difference(b, a)
    assert (swapped.ci_low, swapped.ci_high) == pytest.approx((-result.ci_high, -result.ci_low))
    with pytest.raises(SoupvizError):
        paired_difference(a, record([True] * 8, images="8 images of train"))
    with pytest.raises(SoupvizError):
        paired_difference(a, replace(b, mask=""))


def test_identical_models_differ_by_nothing_and_a_clear_gap_gets_a_verdict() -> None:
    same = paired_difference(record([True, False] * 50), record([True, False] * 50))
    assert same.difference == 0 and same.p_value == 1.0 and same.ci_low <= 0 <= same.ci_high
    better = paired_difference(record([True] * 90 + [False] * 10), record([True] * 60 + [False] * 40))
    assert better.verdict == "a better" and better.p_value < 1e-6


def table(both: int, only_a: int, only_b: int, neither: int) -> tuple[Record, Record]:
    """Two records on the same images with the given paired 2 × 2 table."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return record(a, f"{len(a)} images of test"), record(b, f"{len(b)} images of test")


def test_a_winner_needs_the_interval_and_mcnemar_to_agree() -> None:
    # 5 discordant images, all for a: Newcombe's interval excludes 0 but McNemar's p = 2/32
    disputed = paired_difference(*table(50, 5, 0, 45))
    assert disputed.ci_low > 0 and disputed.p_value == pytest.approx(0.0625)
    assert disputed.verdict == DISAGREE
    # one more discordant image for a: both agree, so a winner is named, either way round
    clear = paired_difference(*table(50, 6, 0, 44))
    assert clear.ci_low > 0 and clear.p_value < 0.05 and clear.verdict == "a better"
    assert paired_difference(*reversed(table(50, 6, 0, 44))).verdict == "b better"
    # a small gap: neither says so
    noise = paired_difference(*table(50, 3, 2, 45))
    assert noise.ci_low < 0 < noise.ci_high and noise.p_value >= 0.05 and noise.verdict == "within noise"


def test_a_test_that_disagrees_with_the_interval_is_inconclusive_either_way() -> None:
    significant_only = replace(paired_difference(*table(50, 3, 2, 45)), p_value=0.01)
    interval_only = replace(paired_difference(*table(50, 3, 2, 45)), ci_low=0.001, p_value=0.2)
    assert significant_only.verdict == interval_only.verdict == DISAGREE


def test_paired_rows_name_no_winner_when_the_test_disagrees() -> None:
    from soupviz.present.tables import paired_table

    (row,) = paired_table(*([r] for r in table(50, 5, 0, 45)), "l2", "linf")
    assert row["verdict"] == "inconclusive: interval and test disagree" and row["McNemar p"] == "0.062"


def test_newcombe_is_close_to_wald_for_many_images() -> None:
    both, only_a, only_b, neither = 600, 60, 30, 310
    n = both + only_a + only_b + neither
    diff = (only_a - only_b) / n
    half = 1.96 * math.sqrt(((only_a + only_b) / n - diff**2) / n)
    assert newcombe_interval(both, only_a, only_b, neither) == pytest.approx((diff - half, diff + half), abs=0.004)


def test_newcombe_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = random.Random(0)
    cells = [0.55, 0.12, 0.05, 0.28]  # both, only a, only b, neither: true difference 0.07
    covered, trials = 0, 2000
    for _ in range(trials):
        counts = [0, 0, 0, 0]
        for choice in rng.choices(range(4), cells, k=120):
            counts[choice] += 1
        low, high = newcombe_interval(*counts)
        covered += low <= 0.07 <= high
    assert 0.93 <= covered / trials <= 0.975


def test_paired_rows_pair_by_metric_and_skip_metrics_only_one_side_has() -> None:
    from soupviz.present.tables import paired_table

    fog = MetricSpec("corruption", corruption="fog", severity=3)
    a = [record([True] * 90 + [False] * 10), replace(record([True] * 100), measure=fog)]
    b = [record([True] * 60 + [False] * 40)]
    (row,) = paired_table(a, b, "lrat", "pgd")
    assert (row["metric"], row["lrat"], row["pgd"]) == ("clean", "90.0% [82.6, 94.5]", "60.0% [50.2, 69.1]")
    assert row["lrat − pgd (points)"].startswith("30.0 [") and row["discordant"] == "30 / 0"
    assert row["verdict"] == "lrat better"


def test_corruption_means_are_compared_per_image_across_conditions() -> None:
    from soupviz.evaluate.comparison import paired_corruption_mean
    from soupviz.present.tables import paired_table

    def corrupted(mask, name):
        return replace(record(mask), measure=MetricSpec("corruption", corruption=name, severity=1))

    a = [corrupted([True] * 6 + [False] * 2, "fog"), corrupted([True] * 4 + [False] * 4, "snow")]
    b = [corrupted([True] * 4 + [False] * 4, "fog"), corrupted([True] * 4 + [False] * 4, "snow")]
    difference, low, high = paired_corruption_mean(a, b)
    # per image: a − b = 0.5 on two images (fog only), 0 on six: mean 1/8, sd of (.5, .5, 0 x 6)
    sd = math.sqrt((2 * (0.5 - 0.125) ** 2 + 6 * 0.125**2) / 7)
    assert difference == pytest.approx(0.125)
    assert (low, high) == pytest.approx((0.125 - 1.959964 * sd / math.sqrt(8), 0.125 + 1.959964 * sd / math.sqrt(8)))
    rows = paired_table(a, b, "a", "b")
    assert [row["kind"] for row in rows] == ["corruption-mean"]  # the conditions only through their mean
    assert rows[-1]["a"].startswith("62.5") and rows[-1]["b"].startswith("50.0")
    assert paired_corruption_mean(a, [record([True] * 8)]) is None
