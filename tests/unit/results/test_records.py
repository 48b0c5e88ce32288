"""Records: corruption means, (de)serialisation of the structured form and of the older forms the
shipped cards and results files hold, and clear errors for unreadable ones."""

from __future__ import annotations

import json

import pytest

from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import method_label
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record, corruption_mean, records_of


def result(spec: MetricSpec, accuracy: float, half: float = 0.1, **fields) -> Record:
    """A record of `spec` with the given accuracy and interval half-width (not measured)."""
    values = {"weights": [1.0], "ingredients": ["m"], "n": 100, "correct": round(100 * accuracy),
              "method": method_label(spec), "images": "100 images", "seed": 0, "batchnorm": "mixed", **fields}
    return Record(measure=spec, accuracy=accuracy, ci_low=accuracy - half, ci_high=accuracy + half, **values)


def test_corruption_mean_weighs_each_condition_once_and_averages_the_bounds() -> None:
    records = [result(MetricSpec.parse(text), accuracy)
               for text, accuracy in (("fog:1", 0.8), ("fog:5", 0.4), ("contrast:1", 0.3), ("clean", 0.99))]
    mean = corruption_mean(records)
    assert mean.accuracy == pytest.approx(0.5) and mean.ci_low == pytest.approx(0.4)
    assert mean.ci_high == pytest.approx(0.6) and mean.conditions == 3
    assert mean.method.startswith("mean over 2 corruptions × 2 severities")
    assert corruption_mean(records[3:]) is None


def test_corruptions_are_named_for_people_in_one_place():
    from soupviz.corruptions.cifar_c import corruption_label

    spec = MetricSpec("corruption", corruption="gaussian_noise", severity=3)
    assert spec.column == corruption_label("gaussian_noise", 3) == "Gaussian noise, severity 3"
    assert corruption_label("jpeg_compression") == "JPEG compression"
    assert method_label(spec) == "accuracy under Gaussian noise, severity 3"
    stored = [result(MetricSpec.parse(t), 0.5).to_dict() for t in ("fog:3", "snow:3")]
    stored.append({**corruption_mean(records_of(stored)).to_dict(), "accuracy": 0.1})  # a stale stored mean
    assert [r.measure.corruption for r in records_of(stored)] == ["fog", "snow"]
    assert corruption_mean(records_of(stored)).method.startswith("mean over 2 corruptions × severity 3")


SHIPPED_CARD_METRIC = {  # as the shipped cards store it (assets/families/*/linf.json)
    "weights": None, "ingredients": None, "metric": "L∞ 8/255", "spec": "linf:0.0313725:pgd:20:1", "kind": "attack",
    "n": 1000, "correct": 359, "accuracy": 0.359, "ci_low": 0.3299, "ci_high": 0.3892,
    "method": "PGD-20 L∞ 8/255 (upper bound on robust accuracy)", "upper_bound": True,
    "images": "1000 images of /work/shared/data/cifar10/test", "seed": 0,
    "batchnorm": "BatchNorm statistics mixed like the weights.", "family": "cifar10-preact_resnet_small",
}


def test_records_stored_before_specs_were_data_load_with_their_spec_recovered() -> None:
    record = Record.from_dict(SHIPPED_CARD_METRIC)
    assert record.measure == MetricSpec("attack", threat="linf", eps=8 / 255, attack="pgd", steps=20)
    assert record.measure.eps == 8 / 255 and record.metric == "L∞ 8/255" and record.upper_bound
    assert record.method == "PGD-20 L∞ 8/255"  # the upper-bound note is the report's to add
    union = {**SHIPPED_CARD_METRIC, "spec": "union:linf+l2:pgd:10:1:t3", "kind": "union"}
    assert Record.from_dict(union).measure == MetricSpec("union", threats=("linf", "l2"), attack="pgd", steps=10,
                                                         targets=3)
    for key in ("clean", "fog:2", "l2:0.5:apgd-ce+apgd-t:40:1:t9", "l1:12:autoattack-apgd:0:1"):
        assert MetricSpec.from_key(key).key == key


@pytest.mark.parametrize("text", ["clean", "linf:4/255:pgd+pgd-t:10:t3", "l1::autoattack-apgd", "fog:3",
                                  "union", "l2:0.25:apgd-ce:40"])
def test_records_round_trip_through_their_structured_form(text: str) -> None:
    record = result(MetricSpec.parse(text), 0.5, mask="ff", code_fingerprint="abc")
    stored = json.loads(json.dumps(record.to_dict()))
    assert Record.from_dict(stored) == record
    assert "measure" in stored and stored["measure"]["kind"] == record.kind
    if record.upper_bound:
        assert stored["measure"]["chain"] == list(record.measure.chain)


@pytest.mark.parametrize("stored", [{"spec": "linf:abc:pgd:20:1"}, {"spec": "sharpness:2"}, {"measure": {"kind": "x"}}])
def test_unreadable_stored_records_raise_one_clear_error(stored: dict) -> None:
    with pytest.raises(SoupvizError):
        Record.from_dict({**SHIPPED_CARD_METRIC, **stored})


def test_every_shipped_card_and_baseline_loads() -> None:
    from soupviz.serve.settings import FAMILIES_DIR

    cards = sorted(FAMILIES_DIR.glob("*/*.json")) + sorted(FAMILIES_DIR.glob("*/baselines/*.json"))
    cards += sorted((FAMILIES_DIR.parent / "lrat_check").glob("*.json"))
    loaded = [records_of(json.loads(path.read_text())["metrics"]) for path in cards]
    assert len(cards) >= 6 and all(loaded)
    assert all(r.measure.key == r.spec for records in loaded for r in records)
