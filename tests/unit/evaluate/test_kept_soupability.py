"""Soupability reports kept in a family folder come back exactly, under the key of what decides
them; any other checkpoints, images, seed, points or BatchNorm rule find nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.checkpoints.families import SoupFamily, load_family
from soupviz.evaluate.kept_soupability import (
    family_only,
    keep_soupability,
    kept_soupability,
    renamed,
    soupability_key,
)
from soupviz.evaluate.soupability import PairBarrier, Soupability
from soupviz.soups.soup import BATCHNORM_LABELS

MIX = BATCHNORM_LABELS["mix"]


@pytest.fixture
def family(tmp_path: Path) -> SoupFamily:
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).parents[2] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return load_family(module.make_family_folder(tmp_path / "family"))


def report_of(names: list[str], outsider: str | None = None) -> Soupability:
    everyone = [*names, *([outsider] if outsider else [])]
    ends = [(a, b) for n, a in enumerate(everyone) for b in everyone[n + 1:]]
    pairs = [PairBarrier(a, b, [0.0, 0.5, 1.0], [1.0, 1.5 + i, 1.2], [0.8, 0.5, 0.7], None if b == outsider else a)
             for i, (a, b) in enumerate(ends)]
    return Soupability(everyone, pairs, images=64, points=3, batchnorm=MIX, outsider=outsider)


def test_a_kept_report_comes_back_exactly_under_its_key(family: SoupFamily) -> None:
    report = report_of(family.names, outsider="unrelated")
    key = soupability_key(family, None, 64, 0, 3, batchnorm=MIX)
    keep_soupability(family.folder, key, report, "soupviz check F --keep", "64 CIFAR-10 test images, seed 0")
    kept = kept_soupability(family.folder, key)
    assert kept.report == report and kept.command == "soupviz check F --keep"
    assert kept.measured_on == "64 CIFAR-10 test images, seed 0"
    assert kept.report.outsider_verdict() == report.outsider_verdict()


@pytest.mark.parametrize("change", ["images", "seed", "points", "batchnorm"])
def test_other_inputs_find_no_kept_report(family: SoupFamily, change: str) -> None:
    inputs = {"images": 64, "seed": 0, "points": 3, "batchnorm": MIX}
    keep_soupability(family.folder, soupability_key(family, None, **inputs), report_of(family.names), "c", "m")
    others = {"images": 32, "seed": 1, "points": 7, "batchnorm": BATCHNORM_LABELS["mix-linear"]}
    other = inputs | {change: others[change]}
    assert kept_soupability(family.folder, soupability_key(family, None, **other)) is None
    assert kept_soupability(None, soupability_key(family, None, **inputs)) is None


def test_family_only_keeps_the_pairs_within_the_family() -> None:
    report = report_of(["a", "b", "c"], outsider="x")
    within = family_only(report)
    assert within.names == ["a", "b", "c"] and within.outsider is None
    assert {(p.a, p.b) for p in within.pairs} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert [row["ingredient"] for row in within.matrix()] == ["a", "b", "c"]
    assert family_only(within) is within


def test_a_renamed_report_speaks_of_what_a_person_reads() -> None:
    report = report_of(["nominal", "linf"], outsider="unrelated")
    shown = renamed(report, {"nominal": "nominal", "linf": "L∞ 8/255"})
    assert shown.names == ["nominal", "L∞ 8/255", "unrelated"] and shown.outsider == "unrelated"
    assert [row["ingredient"] for row in family_only(shown).matrix()] == ["nominal", "L∞ 8/255"]
    assert "linf" not in shown.summary() and "L∞ 8/255" in shown.outsider_verdict() + str(shown.matrix())
    assert shown.pair("L∞ 8/255", "unrelated").accuracies == report.pair("linf", "unrelated").accuracies
