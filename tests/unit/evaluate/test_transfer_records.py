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
