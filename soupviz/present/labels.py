"""What people read about records: accuracies with intervals, metric names, the upper-bound note,
the names of soups and ingredients and the notes of stored grids, shared by the CLI, the dashboard
and the figures.

Every text here is made from a record's data (its `MetricSpec`, numbers and method), never read
back from another text. Accuracies are shown in percent with their 95% interval,
'70.3% [67.4, 73.1]'; '≤' marks robust accuracies, which attacks only bound from above.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from soupviz.evaluate.layer_swaps import MIX_CHOICE, SOUP_CHOICE
from soupviz.evaluate.methods import attack_label, attack_strength, method_label
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import CorruptionMean, Record
from soupviz.results.speaking import is_preview
from soupviz.threats import THREAT_LABELS

if TYPE_CHECKING:
    from soupviz.checkpoints.families import SoupFamily
    from soupviz.results.grids import StoredGrid

UPPER_BOUND_NOTE = "upper bound on robust accuracy"
BOUND = " ≤"
BOUND_LEGEND = f"≤: an {UPPER_BOUND_NOTE} (the attack may miss adversarial examples)."
TOLERANCE = 1e-9


class Interval(Protocol):
    accuracy: float
    ci_low: float
    ci_high: float


def interval(value: float, low: float, high: float, unit: str = "%", signed: bool = False) -> str:
    """'70.3% [67.4, 73.1]': a fraction and its interval in percent (`unit=''` for points;
    `signed` for differences, '+1.2 [-0.4, +2.8]')."""
    f = "+.1f" if signed else ".1f"
    return f"{100 * value:{f}}{unit} [{100 * low:{f}}, {100 * high:{f}}]"


def bound_note(attacks: str) -> str:
    """The '≤' note naming what bounds robust accuracies, e.g. '≤: an upper bound on robust
    accuracy by PGD-10 L∞ 8/255'."""
    return f"≤: an {UPPER_BOUND_NOTE} by {attacks}"


def tile_caption(record: Record | CorruptionMean, stored: bool = False) -> str:
    """A tile's caption under its accuracy: what it rests on and its interval, 'by AutoAttack
    (standard: APGD-CE, APGD-T) · n=500 · stored · 95% CI [21.3, 29.1]' (`measured_by`)."""
    return f"{measured_by(record, stored)} · 95% CI [{100 * record.ci_low:.1f}, {100 * record.ci_high:.1f}]"


def interval_text(result: Interval) -> str:
    """A result's accuracy with its 95% interval, e.g. '53.2% [48.1, 58.2]'."""
    return interval(result.accuracy, result.ci_low, result.ci_high)


def measured_by(record: Record | CorruptionMean, stored: bool = False) -> str:
    """What a number rests on, for the face of a tile or a cell: the attack of a robust accuracy
    ('by AutoAttack (standard: APGD-CE, APGD-T)'; a preview says it is one), the image count and,
    with `stored`, that it was read from the store: 'by PGD-10 (preview) · n=500 · stored'."""
    attack = attack_text(record)
    return " · ".join(([attack] if attack else []) + [f"n={record.n}"] + (["stored"] if stored else []))


def attack_text(record: Record | CorruptionMean, source_in_column: bool = False) -> str:
    """'by PGD-10 (preview)', 'by AutoAttack (standard: APGD-CE, APGD-T)': the attack bounding a robust
    accuracy, saying so when it is the preview; '' for other metrics. With `source_in_column`, a
    transfer's source is left to the column's name, which gives its label ('crafted on the column's
    source')."""
    if not (isinstance(record, Record) and record.upper_bound):
        return ""
    if source_in_column and record.measure.source:
        attack = f"{attack_label(replace(record.measure, source=None))} crafted on the column's source"
    else:
        attack = attack_label(record.measure)
    return f"by {attack}" + (" (preview)" if is_preview(record) else "")


def columns_footnote(columns: Sequence[tuple[str, Sequence[Record | CorruptionMean]]]) -> str:
    """A figure's footnote naming what each column rests on, columns of one attack and image count
    together, one line each ('<br>' between), e.g. 'L∞ 8/255, L2 0.5: by PGD-10 + PGD-T-10 (3 targets),
    n=500<br>L1 12: by AutoAttack (standard: APGD-CE, APGD-T), n=500<br>clean: n=500', then the '≤' note.

    Args:
        columns: (column name, the records shown in it) in display order.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for name, shown in columns:
        if not shown:
            continue
        images = image_counts(shown)
        attacks = sorted({attack_text(r, source_in_column=True) for r in shown if r.upper_bound})
        groups.setdefault((" or ".join(attacks), images), []).append(name)
    lines = [f"{', '.join(names)}: {attack + ', ' if attack else ''}{images}"
             for (attack, images), names in groups.items()]
    if any(r.upper_bound for _, shown in columns for r in shown):
        lines.append(f"≤: an {UPPER_BOUND_NOTE} by the attack named")
    return "<br>".join(lines)


def wrapped(markup: str, width: int) -> str:
    """Plotly text markup with every '<br>'-separated line longer than `width` characters broken
    after a comma (else at a space) into lines that fit, for notes Plotly would otherwise run off
    the figure's edges; a word longer than `width` ends its own line at the next break."""
    lines = []
    for line in markup.split("<br>"):
        while len(line) > width and (cut := _break_at(line, width)) > 0:
            split = cut + 1 if line[cut] == "," else cut
            lines.append(line[:split])
            line = line[split:].lstrip()
        lines.append(line)
    return "<br>".join(lines)


def _break_at(line: str, width: int) -> int:
    """Where `wrapped` breaks `line`: its last comma, else space, within `width`; else the first
    one after it; -1 where there is none."""
    for found in (line.rfind(", ", 0, width + 1), line.rfind(" ", 0, width + 1)):
        if found > 0:
            return found
    return min((i for i in (line.find(", ", width), line.find(" ", width)) if i > 0), default=-1)


def method_text(record: Record, labels: Sequence[str] | None = None) -> str:
    """How a record was measured, saying so when its accuracy is an upper bound; a transfer's
    source by its display label where `labels` name it (the stored text has its checkpoint name)."""
    name = source_name(record, labels)
    method = record.method if name is None else method_label(record.measure, name)
    return f"{method} ({UPPER_BOUND_NOTE})" if record.upper_bound else method


def source_name(record: Record | CorruptionMean, labels: Sequence[str] | None) -> str | None:
    """The display label of a transfer's source ingredient where `labels` (the family's, in the
    order of its ingredients) name it; None for other records."""
    source = record.measure.source if isinstance(record, Record) else None
    if not source or not labels or not record.ingredients or source not in record.ingredients:
        return None
    return labels[record.ingredients.index(source)]


def shown_metric(record: Record | CorruptionMean, labels: Sequence[str] | None = None) -> str:
    """`record.metric` as a person reads it: a transfer's source ingredient by its display label
    ('L∞ 8/255 transfer from L2 0.5', not '… from l2') where `labels` name it (`source_name`)."""
    name = source_name(record, labels)
    return record.metric if name is None else record.measure.column_named(name)


def metric_name(record: Record) -> str:
    """A metric named with its attack, e.g. 'L∞ 8/255 APGD-CE-20' (for file names and columns
    where two attacks of one threat must differ); 'clean' for metrics without attack."""
    return f"{record.metric} {attack_label(record.measure)}" if record.upper_bound else record.metric


def attacks_named(specs: Sequence[MetricSpec]) -> str:
    """The attacks the robust `specs` run, from their fields (`methods.attack_label`): 'PGD-10' when
    one names them all, else grouped by threat, 'PGD-10 + PGD-T-10 (3 targets) at L∞, L2; AutoAttack
    (standard: APGD-CE, APGD-T) at L1' (the sidebar's 'Default' runs such chains); '' without any."""
    by_attack: dict[str, list[str]] = {}
    for spec in specs:
        if spec.kind == "attack":
            threats = by_attack.setdefault(attack_label(spec), [])
            threats += [THREAT_LABELS[spec.threat]] if THREAT_LABELS[spec.threat] not in threats else []
    if len(by_attack) == 1:
        return next(iter(by_attack))
    return "; ".join(f"{attack} at {', '.join(threats)}" for attack, threats in by_attack.items())


def bounded(name: str, upper_bound: bool) -> str:
    """A column name, with '≤' after it for an upper bound."""
    return name + BOUND if upper_bound else name


def series_name(record: Record) -> str:
    """A legend entry for a metric; robust ones name the attack and say 'upper bound'."""
    if record.upper_bound:
        return f"{record.method} (upper bound), n={record.n}"
    return f"{'clean' if record.kind == 'clean' else record.metric}, n={record.n}"


def image_counts(results: Sequence[Record | CorruptionMean]) -> str:
    """'n=500', or 'n=200 to 500' where the results were measured on different numbers of images."""
    counts = sorted({r.n for r in results})
    return f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]} to {counts[-1]}"


def metric_title(record: Record, shown: Sequence[Record | CorruptionMean] = ()) -> str:
    """An axis title for a record's metric in percent, naming the attack of an upper bound (and the
    preview as such) and, where `shown` gives the results drawn, their image count."""
    n = f", {image_counts(shown)}" if shown else ""
    if record.upper_bound:
        preview = " (preview, overstates robustness)" if is_preview(record) else ""
        return f"Robust accuracy {record.metric} (%)<br>upper bound by {attack_label(record.measure)}{preview}{n}"
    return ("Clean accuracy (%)" if record.kind == "clean" else f"Accuracy under {record.metric} (%)") + n


def soup_label(weights: Sequence[float], labels: Sequence[str]) -> str:
    """'L∞ 8/255' for a one-hot soup, else '0.6·L∞ 8/255 + 0.4·L2 0.5' (zero weights left out)."""
    terms = [(w, name) for w, name in zip(weights, labels, strict=True) if abs(w) > TOLERANCE]
    if len(terms) == 1 and abs(terms[0][0] - 1) < TOLERANCE:
        return terms[0][1]
    return " + ".join(f"{w:.3g}·{name}" for w, name in terms).replace("+ -", "− ")


def ingredient_titles(family: SoupFamily) -> list[str]:
    """What each ingredient's weight slider is called: its label, with the checkpoint name after it
    only when that says more than the label or the threat ('L∞ 8/255 · linf_seed1', but 'nominal'
    for the checkpoint 'nominal' and 'L∞ 8/255' for 'linf')."""
    titles = []
    for card in (ingredient.card for ingredient in family.ingredients):
        redundant = card.name.casefold() in (card.label.casefold(), card.threat.casefold())
        titles.append(card.label if redundant else f"{card.label} · {card.name}")
    return titles


def group_choice_labels(family: SoupFamily) -> dict[str, str]:
    """What a block group of a layer-wise soup can take, as offered to a person (choice -> text): the
    soup's weights, each ingredient by its label, or a mix given as weights."""
    return {SOUP_CHOICE: "the soup's weights", **dict(zip(family.names, family.labels, strict=True)),
            MIX_CHOICE: "a mix (weights)"}


def record_choices(records: Sequence[Record]) -> dict[str, str]:
    """Display name -> spec key of the metrics in `records`, e.g. 'L∞ 8/255 (APGD-CE-40)', 'L1 12
    (PGD-10, preview)'."""
    return {f"{r.metric} ({attack_label(r.measure)}{', preview' if is_preview(r) else ''})"
            if r.upper_bound else r.metric: r.spec for r in records}


def stored_grid_notes(grid: StoredGrid) -> list[str]:
    """A stored grid's notes, one line each: the share done and how its metric was measured, then
    what the strength table says of the attack there, e.g. ['from the precomputed store: 9 of 10
    soups, PGD-10 on 200 images', 'preview, overstates robustness: up to 12.2 points above ...']."""
    first = grid.records[0]
    how = f"{attack_label(first.measure)} on {first.n} images" if first.upper_bound else f"{first.n} images"
    note = attack_strength(first.measure) if isinstance(first, Record) else ""
    return [f"{grid.caption()}, {how}"] + ([note] if note else [])


def stored_grid_caption(grid: StoredGrid) -> str:
    """`stored_grid_notes` as one sentence for a caption under a figure."""
    return "; ".join(stored_grid_notes(grid))


def ranked_soup(record: Record | CorruptionMean, labels: Sequence[str]) -> str:
    """An entry of a list of stored soups, best first: '25.0% ≤ · uniform soup', with '(preview)'
    after the accuracy where the preview attack measured it (it overstates robustness)."""
    mark = (BOUND if record.upper_bound else "") + (" (preview)" if is_preview(record) else "")
    return f"{100 * record.accuracy:.1f}%{mark} · {soup_label(record.weights, labels)}"


def ranked_prompt(grid: StoredGrid) -> str:
    """What a list of `grid`'s stored soups says before a pick: '56 soups, best L1 12 ≤ by PGD-10
    (preview) first…'."""
    first = grid.records[0]
    attack = attack_text(first)
    best = bounded(first.metric, first.upper_bound) + (f" {attack}" if attack else "")
    return f"{len(grid.ranked())} soups, best {best} first…"


def stored_heatmap_caption(grids: Sequence[StoredGrid], soups: int) -> str:
    """A stored heatmap's note: 'Precomputed: 8 soups × 12 metrics on 500 images; blank cells are not
    in the store yet.' (the image counts where columns differ; each cell's hover has its own), then
    what the strength table says of any preview attack among the columns."""
    counts = sorted({grid.records[0].n for grid in grids})
    images = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    blank = any(grid.found < soups for grid in grids)
    text = (f"Precomputed: {soups} soups × {len(grids)} metrics on {images} images"
            + ("; blank cells are not in the store yet." if blank else "."))
    previews = dict.fromkeys(
        f" {first.metric} by {attack_label(first.measure)}, {note}."
        for first in (grid.records[0] for grid in grids)
        if first.kind == "attack" and (note := attack_strength(first.measure)).startswith("preview")
    )
    return text + "".join(previews)


def precomputed_caption(command: str, created: float) -> str:
    """Where a result shipped with a family comes from: the command and the day it ran."""
    day = time.strftime("%Y-%m-%d", time.gmtime(created))
    return f"Precomputed with the family on {day} by `{command}`; press the button to compute it here."
