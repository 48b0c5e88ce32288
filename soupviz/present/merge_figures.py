"""Figures of merges: the layer-swap heatmap ("where does robustness live"), the base ingredient
with one block group from another ingredient (rows) under clean and attack metrics (columns), and
the table of transfer − white-box gaps shown beside the transfer heatmap.
Builders only arrange stored records; each figure keeps its rows in `layout.meta` for export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from soupviz.errors import SoupvizError
from soupviz.evaluate.comparison import (
    A_BETTER,
    B_BETTER,
    DISAGREE,
    WITHIN_NOISE,
    PairedDifference,
    paired_difference,
    verdict_label,
)
from soupviz.evaluate.layer_swaps import StoredSwaps
from soupviz.evaluate.methods import attack_label, attack_strength
from soupviz.evaluate.transfer_records import is_self_transfer
from soupviz.present.figure_export import apply_style, attach_rows
from soupviz.present.heatmap_figures import FOOTNOTE_CHARS, FOOTNOTE_PX, heatmap_height
from soupviz.present.labels import (
    BOUND,
    bounded,
    columns_footnote,
    interval,
    interval_text,
    metric_name,
    shown_metric,
    soup_label,
    wrapped,
)
from soupviz.present.soup_figures import hover_text, one_hot_index, percent
from soupviz.results.records import Record


def swap_columns(swaps: StoredSwaps) -> list[Record]:
    """One record per metric of the swaps, clean first, then in the order first stored."""
    seen: dict[str, Record] = {}
    for records in [swaps.base_records, *swaps.swap_records.values()]:
        for spec, record in records.items():
            seen.setdefault(spec, record)
    return sorted(seen.values(), key=lambda r: r.upper_bound)


def partial_columns(swaps: StoredSwaps) -> list[str]:
    """One line per metric stored for only some swaps (a run stopped for time), saying how many:
    'L1 12 AutoAttack (standard: APGD-CE, APGD-T): 3 of 18 swaps measured, the rest left blank'."""
    lines = []
    for column in swap_columns(swaps):
        count = sum(column.spec in records for records in swaps.swap_records.values())
        if count < len(swaps.swaps):
            lines.append(f"{metric_name(column)}: {count} of {len(swaps.swaps)} swaps measured, the rest left blank")
    return lines


def layer_swap_heatmap(swaps: StoredSwaps, labels: Sequence[str], paper: bool = False) -> go.Figure:
    """Accuracy (%) of the base, then of the base with each block group from each other ingredient
    (rows 'layer3 ← L2 0.5'), under each stored metric (columns); hovers give the 95% interval,
    the method and the change from the base in points. The attacks and the image count are
    under the axis, with the metrics measured for only some swaps (`partial_columns`); missing cells
    are blank, never filled in.

    Raises:
        SoupvizError: the store holds no swap records.
    """
    columns = swap_columns(swaps)
    if not columns:
        raise SoupvizError("No layer swaps are stored; run `soupviz eval FAMILY --swaps` first.")
    base_name = f"{labels[swaps.base]} (base, nothing swapped)"
    table = [(base_name, swaps.base_records)]
    table += [(s.title(labels), swaps.swap_records.get((s.group, s.donor), {})) for s in swaps.swaps]
    z, text, hover, rows = [], [], [], []
    for name, cells in table:
        chosen = [cells.get(c.spec) for c in columns]
        z.append([percent(r.accuracy) if r else math.nan for r in chosen])
        text.append([f"{percent(r.accuracy):.1f}" if r else "" for r in chosen])
        line = []
        for column, record in zip(columns, chosen, strict=True):
            base = swaps.base_records.get(column.spec)
            change = "" if record is None or base is None or cells is swaps.base_records else \
                f"<br>{percent(record.accuracy - base.accuracy):+.1f} points against the base"
            line.append(f"{name}<br>{hover_text(record)}{change}" if record else f"{name}: not stored")
        hover.append(line)
        rows += [{"model": name, **r.row()} for r in chosen if r]
    names = []
    for column in columns:
        twins = sum(other.metric == column.metric for other in columns)
        name = column.metric if twins == 1 else f"{column.metric} ({attack_label(column.measure)})"
        names.append(bounded(name, column.upper_bound))
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=[name for name, _ in table], text=text, texttemplate="%{text}", hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>", coloraxis="coloraxis", xgap=1, ygap=1,
    ))
    note = wrapped(swap_note(swaps, columns, names), FOOTNOTE_CHARS)
    fig.update_layout(
        yaxis={"autorange": "reversed", "type": "category", "dtick": 1}, xaxis={"type": "category"},
        coloraxis={"colorbar": {"title": {"text": "accuracy (%)"}}},
        title={"text": f"Where does robustness live? {labels[swaps.base]}, one block group swapped"},
        xaxis_title={"text": note, "font": {"size": FOOTNOTE_PX}},
        height=heatmap_height(len(table), names, note.count("<br>") + 1, paper),
    )
    family = next((r.family for r in swaps.base_records.values()), "")
    attach_rows(fig, "layer-swaps", rows, family, " ".join(metric_name(c) for c in columns))
    return apply_style(fig, paper)


def swap_note(swaps: StoredSwaps, columns: Sequence[Record], names: Sequence[str]) -> str:
    """The layer-swap figure's footnote: each column's attack and image count (`columns_footnote`),
    the measured excess of a preview attack, and the metrics measured for only some swaps."""
    cells = [swaps.base_records, *swaps.swap_records.values()]
    shown = [(name.removesuffix(BOUND), [r for records in cells if (r := records.get(column.spec))])
             for name, column in zip(names, columns, strict=True)]
    previews = dict.fromkeys(f"{c.metric} by {attack_label(c.measure)}: {strength.split(';')[0]}" for c in columns
                             if (strength := attack_strength(c.measure)).startswith("preview"))
    partial = [f"partial: {line}" for line in partial_columns(swaps)]
    return "<br>".join([columns_footnote(shown), *previews, *partial])


def swap_summary(swaps: StoredSwaps, labels: Sequence[str]) -> list[str]:
    """What the layer-swap matrix says, one sentence per donor and metric, made from its records:
    the range of accuracy over the donor's swaps (lowest and highest, with the group and the 95%
    Wilson interval), the base's, and how many swaps fall below or above the base by the paired
    verdict (Newcombe interval excluding 0 and McNemar's p < 0.05); a partial metric says how many
    swaps it rests on."""
    lines = []
    groups = list(dict.fromkeys(s.group for s in swaps.swaps))
    for donor in dict.fromkeys(s.donor for s in swaps.swaps):
        for column in swap_columns(swaps):
            base = swaps.base_records.get(column.spec)
            cells = [(s.group, r) for s in swaps.swaps if s.donor == donor
                     and (r := swaps.swap_records.get((s.group, s.donor), {}).get(column.spec)) is not None]
            if base is None or not cells:
                continue
            verdicts = [paired_difference(r, base).verdict for _, r in cells]
            low, high = min(cells, key=lambda c: c[1].accuracy), max(cells, key=lambda c: c[1].accuracy)
            span = f"{interval_text(low[1])} ({low[0]})" + (
                f" to {interval_text(high[1])} ({high[0]})" if len(cells) > 1 else "")
            lines.append(
                f"One group from {labels[donor]}, {metric_name(column)} ({len(cells)} of {len(groups)} groups): "
                f"{span}, the base "
                f"{interval_text(base)}; below the base in {verdicts.count(B_BETTER)}, above in "
                f"{verdicts.count(A_BETTER)}, within noise or inconclusive in "
                f"{len(verdicts) - verdicts.count(A_BETTER) - verdicts.count(B_BETTER)} (paired per image).")
    return lines


def gap_rows(gaps: Sequence[tuple[Record, Record, PairedDifference]], labels: Sequence[str]) -> list[dict]:
    """One table row per `transfer_gaps` entry: the soup, the transfer metric, both accuracies with
    their 95% intervals, the paired difference in points with its interval, McNemar's p and the
    verdict ('transfer better': the soup resists the transferred examples better)."""
    return [{"soup": soup_label(transfer.weights, labels), "metric": shown_metric(transfer, labels),
             "transfer": interval_text(transfer), "white-box": interval_text(twin),
             "transfer − white-box (points)": interval(gap.difference, gap.ci_low, gap.ci_high, "", signed=True),
             "McNemar p": f"{gap.p_value:.3g}", "verdict": verdict_label(gap.verdict, "transfer", "white-box"),
             "n": gap.n}
            for transfer, twin, gap in gaps]


def transfer_summary(gaps: Sequence[tuple[Record, Record, PairedDifference]], labels: Sequence[str]) -> list[str]:
    """What the stored transfer gaps (`soupviz.evaluate.transfer_records.transfer_gaps`) say, as sentences
    made from the records: for mixtures and for ingredients, over the (model, source) pairs whose
    source is another model, how many verdicts say the transferred examples break fewer images than
    the model's own white-box attack, how many more, how many are within noise or inconclusive, and
    the closest gap with its interval; then the uniform soup's every pair. Self-transfers (the
    check that matches white-box) are left out of the counts."""
    lines = []
    others = [(t, w, g) for t, w, g in gaps if not is_self_transfer(t)]
    for name, chosen in (("Mixtures", [x for x in others if one_hot_index(x[0].weights) is None]),
                         ("Ingredients", [x for x in others if one_hot_index(x[0].weights) is not None])):
        if not chosen:
            continue
        verdicts = [verdict_label(g.verdict, "transfer", "white-box") for _, _, g in chosen]
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in sorted(set(verdicts), key=lambda v: -verdicts.count(v)))
        transfer, twin, gap = min(chosen, key=lambda x: x[2].difference)
        n = "/".join(str(v) for v in sorted({g.n for _, _, g in chosen}))
        soups = len({tuple(t.weights) for t, _, _ in chosen})
        lines.append(f"{name} ({soups} models, {len(chosen)} pairs of model and another model as source, n={n} "
                     f"images): transfer − white-box verdicts {counts}; closest: "
                     f"{soup_label(transfer.weights, labels)}, {shown_metric(transfer, labels)} "
                     f"{interval_text(transfer)} against white-box {interval_text(twin)}, {_gap_text(gap)}.")
    uniform = [x for x in others if len(set(x[0].weights)) == 1]
    for transfer, twin, gap in uniform:
        verdict = verdict_label(gap.verdict, "transfer", "white-box")
        lines.append(f"Uniform soup, {shown_metric(transfer, labels)}: {interval_text(transfer)} against white-box "
                     f"{interval_text(twin)}, {_gap_text(gap)} ({verdict}).")
    if others:
        verdicts = {g.verdict for _, _, g in others} - {WITHIN_NOISE, DISAGREE}
        word = {frozenset({A_BETTER}): "less", frozenset({B_BETTER}): "more"}.get(frozenset(verdicts))
        lines.append(f"So on this family models are {word} vulnerable to transfer from another model than to their own "
                     "white-box attack wherever the difference is significant." if word else
                     "So on this family transfer is not uniformly weaker or stronger than the white-box attack.")
    return lines


def _gap_text(gap: PairedDifference) -> str:
    """'+7.5 [+3.8, +11.2] points, McNemar p = 6.1e-05'."""
    return f"{interval(gap.difference, gap.ci_low, gap.ci_high, '', signed=True)} points, McNemar p = {gap.p_value:.2g}"
