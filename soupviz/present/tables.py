"""The tables the CLI, the dashboard and the figures share: soups x metrics, ingredients x metrics,
paired comparisons, soups against ensembles and few-shot runs, with '—' where nothing was
measured. Their cells are `soupviz.present.labels`' texts, made from the records' data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from soupviz.evaluate.comparison import (
    A_BETTER,
    B_BETTER,
    SAMPLING_NOTE,
    WITHIN_NOISE,
    paired_corruption_mean,
    paired_difference,
    verdict_label,
)
from soupviz.present.labels import (
    BOUND_LEGEND,
    bound_note,
    bounded,
    interval,
    interval_text,
    method_text,
    metric_name,
    soup_label,
)
from soupviz.results.records import CORRUPTION_MEAN, CorruptionMean, Record, corruption_mean, records_of
from soupviz.results.speaking import is_preview, quantity, speaking_record
from soupviz.soups.weights import weights_key, weights_text

if TYPE_CHECKING:
    from soupviz.checkpoints.families import SoupFamily
    from soupviz.insight.adapt import Outcome
    from soupviz.insight.few_shot import AdaptationRun

MISSING = "—"


def _cells(records: Iterable[Record]) -> dict[str, Record | CorruptionMean]:
    """One model's records by spec key, its corruption conditions replaced by their mean."""
    records = list(records)
    cells: dict[str, Record | CorruptionMean] = {r.spec: r for r in records if r.kind != "corruption"}
    mean = corruption_mean(records)
    if mean is not None:
        cells[CORRUPTION_MEAN] = mean
    return cells


def ingredient_caption(methods: Sequence[str], measured: bool, images: int, attacks: str) -> str:
    """The Home table's caption: where its numbers come from (`ingredient_table`'s methods), and,
    for numbers read from the cards, that they are not the sidebar's budget (`images` images,
    `attacks` as `present.labels.attacks_named` names them)."""
    if not methods:
        return ""
    text = ("Measured here " if measured else "From the checkpoint cards: measured ") + ". Measured ".join(methods)
    if not measured:
        text += (f". The sidebar's budget ({images} images, {attacks}) "
                 "applies only to what you measure here")
    return text + f". Brackets: 95% Wilson intervals; {bound_note('the attack named')}."


def ingredient_table(family: SoupFamily, records: Sequence[Record] = ()) -> tuple[list[dict], list[str]]:
    """Ingredients x metrics with 95% intervals, from `records` (one-hot soups, e.g. measured
    on demand) where given, else from the metrics the cards report.

    Returns:
        (rows, methods): one row per ingredient with its label, checkpoint name, parent (by label) and one
        cell per metric ('—' where missing; '≤' marks upper bounds; corruptions as one mean);
        methods say how the numbers were measured, e.g. 'on 1000 images of ... (seed 0): clean
        accuracy; APGD-CE-40 L∞ 8/255', one entry per image set.
    """
    if records:
        hot = torch.eye(len(family.names), dtype=torch.float64).tolist()
        found = [_cells(r for r in records if weights_key(r.weights) == weights_key(w)) for w in hot]
    else:
        found = [_cells(records_of(i.card.metrics)) for i in family.ingredients]
    examples = {key: cells[key] for cells in reversed(found) for key in cells}
    examples = {key: examples[key] for key in dict.fromkeys(key for cells in found for key in cells)}
    shared = Counter(m.metric for m in examples.values())
    rows, methods = [], {}
    for ingredient, cells in zip(family.ingredients, found, strict=True):
        card = ingredient.card
        row = {"ingredient": card.label, "checkpoint": card.name, "parent": _parent(family, card.parent)}
        for key, example in examples.items():
            name = example.method if shared[example.metric] > 1 else example.metric  # two attacks: by attack
            m = cells.get(key)
            row[bounded(name, example.upper_bound)] = interval_text(m) if m else MISSING
            if m and m.method:
                seed = f" (seed {m.seed})" if m.seed is not None else ""
                methods.setdefault((m.images or "unknown images") + seed, {})[m.method] = None
        rows.append(row)
    return rows, [f"on {images}: {'; '.join(used)}" for images, used in methods.items()]


def _parent(family: SoupFamily, parent: dict | None) -> str:
    """The checkpoint an ingredient was fine-tuned from: by its display label where it is in the
    family, else by its name ('—' for none)."""
    name = (parent or {}).get("name")
    if name is None:
        return MISSING
    return family.labels[family.names.index(name)] if name in family.names else name


def text_table(records: Sequence[Record], names: Sequence[str]) -> str:
    """Records as a text table: one row per soup, one column per metric named with its attack
    (and '(preview)' for the preview attack), accuracy and 95% interval; of several records of
    one soup and quantity, the one that speaks (`speaking.speaking_record`: the strongest attack,
    then the most images); corruptions summarised in one 'corruption mean' column; then how each
    robust column and the mean were measured, and on which images (per column where they differ)."""
    soups: dict[tuple, list[Record]] = {}
    for record in records:
        soups.setdefault(tuple(record.weights), []).append(record)
    spoken = {weights: _speaking(mine) for weights, mine in soups.items()}
    cells = {weights: {_column(m): m for m in _cells(mine).values()} for weights, mine in spoken.items()}
    columns = list(dict.fromkeys(column for by_column in cells.values() for column in by_column))
    lines = [["soup (" + ", ".join(names) + ")", *columns]]
    for weights, by_column in cells.items():
        row = [interval_text(m) if (m := by_column.get(c)) else MISSING for c in columns]
        lines.append([weights_text(weights), *row])
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in lines)
    shown = [r for mine in spoken.values() for r in mine]
    images = list(dict.fromkeys(r.images for r in shown))
    mixed = len(images) > 1
    methods = sorted({f"{_column(r)}: {method_text(r)}" + (f" on {r.images}" if mixed else "")
                      for r in shown if r.upper_bound or (mixed and r.kind != "corruption")})
    means = sorted({m.method for by_column in cells.values() if (m := by_column.get(CORRUPTION_MEAN))})
    methods += [f"{CORRUPTION_MEAN}: {method}" for method in means]
    spoken_ids = {id(r) for r in shown}
    unseen = list(dict.fromkeys(_column(r) for r in records if r.kind != "corruption" and id(r) not in spoken_ids))
    if unseen:
        methods.append(f"not shown, as a record by a stronger attack or on more images speaks: {', '.join(unseen)}")
    notes = "".join("\n" + line for line in methods)
    return f"{text}{notes}\n({'; '.join(images)}; BatchNorm: {records[0].batchnorm})"


def _speaking(records: Sequence[Record]) -> list[Record]:
    """Of one soup's `records`, the one that speaks for each quantity, in first-seen order."""
    by_quantity: dict[tuple, list[Record]] = {}
    for record in records:
        by_quantity.setdefault(quantity(record), []).append(record)
    return [speaking_record(group) for group in by_quantity.values()]


def _column(result: Record | CorruptionMean) -> str:
    if not isinstance(result, Record):
        return result.metric
    return metric_name(result) + (" (preview)" if is_preview(result) else "")


def paired_table(a: Sequence[Record], b: Sequence[Record], name_a: str = "a", name_b: str = "b") -> list[dict]:
    """One row per metric both lists hold (in `a`'s order, corruptions as one mean): each accuracy
    with its interval, the paired difference a − b in points with its interval, the discordant
    images, McNemar's p and the verdict (`comparison.verdict`)."""
    by_spec = {record.spec: record for record in b}
    rows = []
    for first in (r for r in a if r.kind != "corruption"):
        second = by_spec.get(first.spec)
        if second is None:
            continue
        paired = paired_difference(first, second)
        rows.append({
            "metric": bounded(metric_name(first), first.upper_bound), "kind": first.kind, "method": first.method,
            name_a: interval_text(first), name_b: interval_text(second),
            f"{name_a} − {name_b} (points)": interval(paired.difference, paired.ci_low, paired.ci_high, ""),
            "discordant": f"{paired.only_a} / {paired.only_b}", "McNemar p": f"{paired.p_value:.2g}",
            "verdict": verdict_label(paired.verdict, name_a, name_b),
        })
    corruptions = paired_corruption_mean(a, b)
    if corruptions:
        mean_a, mean_b = corruption_mean(a), corruption_mean(b)
        low, high = corruptions[1:]
        winner = A_BETTER if low > 0 else B_BETTER if high < 0 else WITHIN_NOISE
        rows.append({
            "metric": CORRUPTION_MEAN, "kind": "corruption-mean", "method": mean_a.method,
            name_a: interval_text(mean_a), name_b: interval_text(mean_b),
            f"{name_a} − {name_b} (points)": interval(*corruptions, unit=""),
            "discordant": MISSING, "McNemar p": MISSING, "verdict": verdict_label(winner, name_a, name_b),
        })
    return rows


def markdown_table(rows: Sequence[Mapping], notes: Sequence[str] = ()) -> str:
    """Rows (dicts with the same keys) as a Markdown table, with notes below it."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines + (["", *notes] if notes else []))


def comparison_markdown(a: Sequence[Record], b: Sequence[Record], name_a: str, name_b: str) -> str:
    """`paired_table` of two models as Markdown, with the '≤' legend and `SAMPLING_NOTE`."""
    rows = [{k: v for k, v in row.items() if k not in ("kind", "method")} for row in paired_table(a, b, name_a, name_b)]
    return markdown_table(rows, [BOUND_LEGEND, SAMPLING_NOTE])


def soup_vs_ensemble(soups: Sequence[Record], ensembles: Sequence[Record], labels: Sequence[str]) -> list[dict]:
    """Per soup and metric, the weight-space soup against the output-space ensemble with the
    same weights on the same images: both accuracies with intervals, the difference in points
    with its paired 95% interval and McNemar's p (`comparison.paired_difference`), and a winner
    only where the interval excludes 0 and p < 0.05. Show `comparison.SAMPLING_NOTE` beside it:
    the intervals say nothing of attack looseness."""
    index = {(weights_key(r.weights), r.spec): r for r in ensembles}
    rows = []
    for soup in soups:
        ensemble = index.get((weights_key(soup.weights), soup.spec))
        if ensemble is None:
            continue
        paired = paired_difference(soup, ensemble)
        rows.append({
            "soup": soup_label(soup.weights, labels), "metric": bounded(soup.metric, soup.upper_bound),
            "weight-space soup": interval_text(soup), "output-space ensemble": interval_text(ensemble),
            "soup − ensemble (points)": round(100 * paired.difference, 1),
            "paired 95% CI": f"[{100 * paired.ci_low:.1f}, {100 * paired.ci_high:.1f}]",
            "McNemar p": f"{paired.p_value:.2g}",
            "verdict": verdict_label(paired.verdict, "soup", "ensemble"),
        })
    return rows


def outcome_table(outcomes: Sequence[Outcome], labels: Sequence[str]) -> list[dict]:
    """Few-shot outcomes as table rows: the shift, the candidate and its soup, the held-out accuracy
    with its 95% interval and image count, the selection accuracy and count, and the BatchNorm sentence."""
    return [{"shift": o.shift, "candidate": o.candidate, "soup": soup_label(o.weights, labels),
             "held-out accuracy": interval_text(o), "n held out": o.n,
             "selection accuracy": f"{100 * o.selection_accuracy:.1f}%", "n selection": o.n_selection,
             "BatchNorm": o.batchnorm} for o in outcomes]


def adaptation_table(run: AdaptationRun) -> str:
    """A run as text: one row per candidate (weights, held-out accuracy with its 95% interval,
    selection accuracy), the k-curve summary, then the settings, the BatchNorm sentence and notes."""
    rows = [["candidate", "weights", "held-out [95% interval]", "n", "selection", "n sel."]]
    for o in run.outcomes:
        rows.append(
            [
                o.candidate,
                weights_text([round(w, 6) + 0.0 for w in o.weights]),  # no 1e-16 residues of the projection
                interval_text(o),
                str(o.n),
                f"{o.selection_accuracy:.1%}",
                str(o.n_selection),
            ]
        )
    if run.summary:
        rows += [[""] * 6, ["k-curve candidate", "k", "mean", "sd", "min-max", "draws"]]
        rows += [
            [
                s["candidate"],
                str(s["k"]),
                f"{s['mean']:.1%}",
                f"{s['std']:.1%}",
                f"{s['min']:.1%}-{s['max']:.1%}",
                str(s["repeats"]),
            ]
            for s in run.summary
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    c = run.config
    settings = (
        f"{run.shift}, seed {run.seed}: k = {c.k} per class, draw 0; method {c.method}, grid step {c.step:g}"
        f"{f', margin {c.margin:g}' if c.margin else ''}"
    )
    return "\n".join([*lines, settings, run.batchnorm, *run.notes])
