"""The merge lab's stored results as Markdown: the layer-swap matrix (where robustness lives) and
the presets' transfer − white-box gaps, read from a family's results store by the same library
functions the Merge lab page calls, written beside the family.

    python bench/merge_lab_summary.py assets/families/cifar10-preact_resnet_small \
        --store assets/families/cifar10-preact_resnet_small/results.sqlite

writes `<family>/merge_lab.md`, and the swap and transfer summaries' sentences into the family
README between their `markers` (where it has them), so no number there is typed by hand. The
records' absolute data folders are written as folder and split ('cifar10/test'): the file ships.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soupviz.checkpoints.families import load_family
from soupviz.evaluate.layer_swaps import stored_swaps
from soupviz.evaluate.transfer_records import stored_transfers, transfer_gaps
from soupviz.present.labels import interval_text, method_text, metric_name
from soupviz.present.merge_figures import gap_rows, partial_columns, swap_columns, swap_summary, transfer_summary
from soupviz.present.places import portable
from soupviz.results.grids import family_store
from soupviz.results.store import ResultStore, family_fingerprint


def markers(name: str) -> tuple[str, str]:
    """The two README lines between which this script writes `name` ('transfer summary')."""
    return (f"<!-- bench/merge_lab_summary.py writes the {name} here from the store: do not edit -->",
            f"<!-- end of the {name} -->")


def markdown_table(rows: list[dict]) -> list[str]:
    """Rows of equal keys as a Markdown table."""
    if not rows:
        return ["(none stored)"]
    head = list(rows[0])
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(str(row[key]) for key in head) + " |" for row in rows
    ]


def swap_section(store: ResultStore, family) -> tuple[list[str], list[str]]:
    """The section's lines, and the summary's lines on their own (for the README)."""
    swaps = stored_swaps(store, family)
    if swaps is None:
        return ["No layer swaps stored."], []
    columns = swap_columns(swaps)
    rows = []
    for name, cells in [(f"{family.labels[swaps.base]} (base)", swaps.base_records)] + [
            (s.title(family.labels), swaps.swap_records.get((s.group, s.donor), {})) for s in swaps.swaps]:
        rows.append({"model": name, **{metric_name(c): interval_text(cells[c.spec]) if c.spec in cells else "—"
                                       for c in columns}})
    methods = [f"- {metric_name(c)}: {method_text(c)}" for c in columns if c.upper_bound]
    partial = [f"- partial: {line}" for line in partial_columns(swaps)]
    summary = [f"Layer swaps into the base {family.labels[swaps.base]} on {swaps.images}:", "",
               *[f"- {line}" for line in swap_summary(swaps, family.labels)]]
    return [*summary, "", "Accuracy % [95% Wilson interval]; — not measured:", "", *markdown_table(rows), "",
            *methods, *partial], summary


def transfer_section(store: ResultStore, family) -> tuple[list[str], list[str]]:
    """The section's lines, and the summary's lines on their own (for the README)."""
    transfers = stored_transfers(store.records(family=family_fingerprint(family.hashes)))
    if transfers is None:
        return ["No transfer attacks stored."], []
    gaps = transfer_gaps(transfers.records)
    summary = [f"Transfer − white-box, paired per image on {transfers.images} (points [95% Newcombe interval], "
               "McNemar's exact test; 'transfer better': the examples crafted on the source break fewer images "
               "than the model's own white-box attack):", "",
               *[f"- {line}" for line in transfer_summary(gaps, family.labels)]]
    return [*summary, "", *markdown_table(gap_rows(gaps, family.labels))], summary


def write_between_markers(path: Path, name: str, lines: list[str]) -> bool:
    """Replace what lies between the `markers` of `name` in `path` by `lines`; False without them."""
    begin, end = markers(name)
    text = path.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text("\n".join([head + begin, *lines, end + tail]))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--store", default=None, help="results store (default: the family's, as the pages read it)")
    args = parser.parse_args()
    family = load_family(args.family)
    store = ResultStore(args.store) if args.store else family_store(Path(args.family))
    swap_lines, swap_lines_short = swap_section(store, family)
    transfers, summary = transfer_section(store, family)
    swap_lines, swap_lines_short, transfers, summary = (
        [portable(line, "") for line in part] for part in (swap_lines, swap_lines_short, transfers, summary))
    lines = ["# Merge lab: stored results", "", "Made by `python bench/merge_lab_summary.py` from the family's store.",
             "", "## Where does robustness live", "", *swap_lines, "",
             "## Transfer attacks on the presets", "", *transfers, ""]
    out = Path(args.family) / "merge_lab.md"
    out.write_text("\n".join(lines))
    print(out)
    readme = Path(args.family) / "README.md"
    written = [readme.is_file() and write_between_markers(readme, name, lines)
               for name, lines in (("swap summary", swap_lines_short), ("transfer summary", summary))]
    if any(written):
        print(readme)


if __name__ == "__main__":
    main()
