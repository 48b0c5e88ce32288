"""Metric specs, Wilson intervals and per-image masks."""

from __future__ import annotations

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.results.metric_specs import MetricSpec, parse_metrics, wilson_interval
from soupviz.results.store import packbits, unpackbits


def test_wilson_interval_matches_textbook_values() -> None:
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)
    assert wilson_interval(20, 20)[1] == 1.0


def test_parse_threats_with_fraction_budgets_attack_and_steps() -> None:
    spec = MetricSpec.parse("linf:4/255:pgd:40")
    assert (spec.kind, spec.threat, spec.attack, spec.steps) == ("attack", "linf", "pgd", 40)
    assert spec.eps == pytest.approx(4 / 255) and spec.column == "L∞ 4/255"
    assert MetricSpec.parse("l2").eps == 0.5 and MetricSpec.parse("l1").eps == 12.0
    assert MetricSpec.parse("fog:5") == MetricSpec("corruption", corruption="fog", severity=5)
    assert MetricSpec.parse("union").threats == ("linf", "l2", "l1")
    assert MetricSpec.parse("clean").key == "clean"


def test_corruptions_stands_for_every_type_at_every_severity_or_at_one() -> None:
    from soupviz.corruptions.cifar_c import corruption_names

    every = parse_metrics("clean, corruptions ,linf::pgd:5")
    assert every[0].kind == "clean" and every[-1] == MetricSpec.parse("linf::pgd:5")
    assert {(s.corruption, s.severity) for s in every[1:-1]} == {
        (c, level) for c in corruption_names() for level in range(1, 6)}
    assert [s.severity for s in parse_metrics("corruptions:4")] == [4] * len(corruption_names())
    for bad in ("corruptions:x", "corruptions:6", "linf:8/0", "linf::pgd:0", "l2::pgd:-3"):
        with pytest.raises(SoupvizError):
            parse_metrics(bad)


@pytest.mark.parametrize("text", ["l3", "linf:abc", "fog:9", "sharpness:2"])
def test_bad_metric_text_gets_one_clear_error(text: str) -> None:
    with pytest.raises(SoupvizError):
        MetricSpec.parse(text)


def test_spec_keys_differ_whenever_the_measurement_differs() -> None:
    specs = [
        MetricSpec.parse(t) for t in ["linf", "linf:4/255", "linf::pgd", "linf::apgd-ce:40", "l2", "fog:1", "fog:2"]
    ]
    assert len({spec.key for spec in specs}) == len(specs)
    assert [s.column for s in parse_metrics("clean,linf,l2,l1")] == ["clean", "L∞ 8/255", "L2 0.5", "L1 12"]


def test_masks_round_trip_through_hex() -> None:
    for n in (1, 7, 8, 9, 1000):
        mask = torch.rand(n, generator=torch.Generator().manual_seed(n)) > 0.5
        assert torch.equal(unpackbits(packbits(mask), n), mask)


def test_the_attack_chain_is_stored_stage_by_stage() -> None:
    spec = MetricSpec.parse("linf:8/255:pgd+pgd-t:10:t3")
    assert spec.chain == ("pgd", "pgd-t")
    assert spec.to_dict() == {"kind": "attack", "threat": "linf", "eps": 8 / 255, "steps": 10, "restarts": 1,
                              "targets": 3, "chain": ["pgd", "pgd-t"]}


@pytest.mark.parametrize("text", ["linf:4/255:pgd:40", "l2:0.5:pgd+pgd-t:10:2:t3", "linf::apgd-t:20:t5",
                                  "l1::autoattack", "union", "union:linf+l2:pgd:10", "fog:2"])
def test_every_key_parses_back_to_its_spec(text: str) -> None:
    """A key copied from a CSV column or the store into --metrics measures the same thing."""
    for spec in [MetricSpec.parse(text), *parse_metrics("clean,linf,l2,l1,corruptions:3")]:
        assert MetricSpec.parse(spec.key) == spec == MetricSpec.from_key(spec.key)


def test_restarts_and_targets_are_read_from_the_text() -> None:
    spec = MetricSpec.parse("l2:0.5:pgd+pgd-t:10:2:t3")
    assert (spec.steps, spec.restarts, spec.targets) == (10, 2, 3)
    assert MetricSpec.parse("l2:0.5:pgd-t:10:t4").restarts == 1


@pytest.mark.parametrize("text", ["linf:8/255:pgd:10:1:2:t3", "linf::pgd:0", "l2::pgd-t:10:1:t0", "union:linf+l5",
                                  "clean:1", "fog:3:1"])
def test_malformed_attack_tails_are_refused(text: str) -> None:
    with pytest.raises(SoupvizError):
        MetricSpec.parse(text)


def test_a_union_is_measured_as_its_attack_per_threat_at_each_default_budget() -> None:
    union = MetricSpec.parse("union:linf+l1:pgd:10")
    assert union.measured_specs() == [MetricSpec.parse("linf::pgd:10"), MetricSpec.parse("l1::pgd:10")]
    assert union.for_threat("l1") == MetricSpec.parse("l1:12:pgd:10")
    single = MetricSpec.parse("l2:0.25:pgd:5")
    assert single.measured_specs() == [single]
