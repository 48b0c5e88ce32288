"""Results files: records written with their specs as data, and files of the older form still read."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import method_label
from soupviz.results.metric_specs import MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.results.store import read_records, records_to_csv, write_records


def result(text: str, weights: list[float]) -> Record:
    spec = MetricSpec.parse(text)
    low, high = wilson_interval(7, 10)
    return Record(weights=weights, ingredients=["a", "b"], measure=spec, n=10, correct=7, accuracy=0.7, ci_low=low,
                  ci_high=high, method=method_label(spec), images="10 images of test", seed=3, batchnorm="mixed",
                  family="fam", mask="fe80", code_fingerprint="abc")


RECORDS = [result("clean", [1.0, 0.0]), result("linf:4/255:pgd+pgd-t:10:t3", [0.5, 0.5]), result("fog:2", [0.0, 1.0])]


def test_records_written_and_read_back_are_equal(tmp_path: Path) -> None:
    path = write_records(RECORDS, tmp_path / "sweep.json", {"family": "fam"})
    records, meta = read_records(path)
    assert records == RECORDS and meta == {"family": "fam"}
    stored = json.loads(path.read_text())["records"][1]["measure"]
    assert stored["chain"] == ["pgd", "pgd-t"] and stored["eps"] == 4 / 255 and stored["targets"] == 3


def test_results_files_of_the_older_form_still_load(tmp_path: Path) -> None:
    old = {**{k: v for k, v in RECORDS[1].to_dict().items() if k != "measure"},
           "spec": "linf:0.0156863:pgd+pgd-t:10:1:t3",
           "method": RECORDS[1].method + " (upper bound on robust accuracy)"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "soupviz-results/1", "meta": {}, "records": [old]}))
    (record,), _ = read_records(path)
    assert record == RECORDS[1]


def test_a_file_with_unknown_metrics_says_it_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "soupviz-results/1", "records": [{"spec": "l9:1:pgd:1:1"}]}))
    with pytest.raises(SoupvizError, match="malformed records"):
        read_records(path)


def test_csv_rows_share_one_header_whatever_the_metric_kind() -> None:
    rows = list(csv.DictReader(io.StringIO(records_to_csv(RECORDS))))
    assert [row["kind"] for row in rows] == ["clean", "attack", "corruption"]
    assert rows[1]["chain"] == "pgd pgd-t" and rows[2]["corruption"] == "fog" and rows[0]["threat"] == ""
    assert rows[1]["mask"] == "fe80" and rows[1]["metric"] == "L∞ 4/255"
