"""Specification of soupviz.evaluate.transfer_records: transfer records and their white-box twins chosen for
a heatmap (per threat, white-box first), and transfer − white-box paired per image."""

from __future__ import annotations

import torch

from soupviz.evaluate.transfer_records import stored_transfers, transfer_gaps, white_box_key
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import unpackbits

WHITE = "linf:8/255:pgd:2"


def test_transfer_columns_and_paired_gaps(evaluator):
    rows = torch.tensor([[0, 1, 0, 0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    specs = [MetricSpec.parse(text) for text in (f"{WHITE}@test-l2", "clean", WHITE, f"{WHITE}@test-none")]
    records = evaluator.evaluate(rows, specs)
    assert white_box_key(records[0]) == MetricSpec.parse(WHITE).key

    table = stored_transfers(records)
    white = MetricSpec.parse(WHITE).key
    assert table.columns == [white, f"{white}@test-l2", f"{white}@test-none"]
    assert len(table.records) == 6 and all(r.kind == "attack" for r in table.records)

    gaps = transfer_gaps(records)
    assert len(gaps) == 4
    for transfer, twin, gap in gaps:
        assert twin.spec == white and twin.weights == transfer.weights
        mine, theirs = unpackbits(transfer.mask, transfer.n), unpackbits(twin.mask, twin.n)
        assert gap.difference == (int(mine.sum()) - int(theirs.sum())) / transfer.n


def test_no_transfer_records_read_as_none(evaluator):
    assert stored_transfers(evaluator.evaluate([1, 0, 0, 0], [MetricSpec("clean")])) is None


def test_stored_figures_keep_transfer_columns_apart_from_white_box(evaluator):
    from soupviz.results.grids import stored_grids, strongest_grids, tradeoff_grids

    rows = torch.eye(4, dtype=torch.float64)
    specs = [MetricSpec.parse(t) for t in ("clean", f"{WHITE}@test-l2", WHITE)]
    grids = stored_grids(evaluator.evaluate(rows, specs), 4, rows.tolist())
    white = MetricSpec.parse(WHITE).key
    assert list(strongest_grids(grids)) == ["clean", white, f"{white}@test-l2"]
    x, y = tradeoff_grids(grids, "linf")
    assert y.records[0].spec == white


def test_self_transfers_are_told_apart_and_the_summary_is_made_from_the_gaps(evaluator):
    from dataclasses import replace

    from soupviz.evaluate.comparison import PairedDifference
    from soupviz.evaluate.transfer_records import is_self_transfer
    from soupviz.present.labels import interval_text
    from soupviz.present.merge_figures import transfer_summary

    rows = torch.tensor([[0, 1, 0, 0], [0, 0.5, 0.5, 0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    sources = ("test-linf", "test-l2", "uniform")
    records = evaluator.evaluate(rows, [MetricSpec.parse(WHITE), *(MetricSpec.parse(f"{WHITE}@{s}") for s in sources)])
    selfish = {(tuple(r.weights), r.measure.source) for r in records if r.measure.source and is_self_transfer(r)}
    assert selfish == {((0.0, 1.0, 0.0, 0.0), "test-linf"), ((0.25,) * 4, "uniform")}

    gaps = transfer_gaps(records)
    lines = transfer_summary(gaps, evaluator.family.labels)
    assert lines[0].startswith("Mixtures (2 models, 5 pairs of model and another model as source, n=40 images)")
    assert lines[1].startswith("Ingredients (1 models, 2 pairs")
    uniform = [(t, w) for t, w, _ in gaps if t.weights == [0.25] * 4 and not is_self_transfer(t)]
    assert len(uniform) == 2  # its self-transfer is the check, not a finding
    for (transfer, twin), line in zip(uniform, [x for x in lines if x.startswith("Uniform soup")], strict=True):
        assert f"{interval_text(transfer)} against white-box {interval_text(twin)}" in line

    better = PairedDifference(0.2, 0.1, 0.3, 40, 0, 200, 1e-9)
    kept = [(t, w, better) for t, w, _ in gaps]
    assert transfer_summary(kept, evaluator.family.labels)[-1].startswith(
        "So on this family models are less vulnerable to transfer")
    worse = replace(better, difference=-0.2, ci_low=-0.3, ci_high=-0.1, only_a=0, only_b=40)
    assert "more vulnerable" in transfer_summary([(t, w, worse) for t, w, _ in gaps], evaluator.family.labels)[-1]
    mixed = [(t, w, better if t.weights == [0.25] * 4 else worse) for t, w, _ in gaps]
    assert "not uniformly" in transfer_summary(mixed, evaluator.family.labels)[-1]
