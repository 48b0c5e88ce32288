"""The merge lab's stored results as Markdown: the layer-swap matrix (where robustness lives) and
the presets' transfer − white-box gaps, read from a family's results store by the same library
functions the Merge lab page calls, written beside the family.

    python bench/merge_lab_summary.py assets/families/cifar10-preact_resnet_small \
        --store assets/families/cifar10-preact_resnet_small/results.sqlite

writes `<family>/merge_lab.md`, and the transfer summary's sentences into the family README between
its two `GENERATED` markers (where it has them), so no number there is typed by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soupviz.checkpoints.families import load_family
from soupviz.evaluate.layer_swaps import stored_swaps
from soupviz.evaluate.transfers import stored_transfers, transfer_gaps
from soupviz.present.labels import interval_text, method_text, metric_name
from soupviz.present.merge_figures import gap_rows, partial_columns, swap_columns, transfer_summary
from soupviz.results.grids import family_store
from soupviz.results.store import ResultStore, family_fingerprint

GENERATED = ("<!-- made by bench/merge_lab_summary.py from the store: do not edit -->",
             "<!-- end of what bench/merge_lab_summary.py made -->")


def markdown_table(rows: list[dict]) -> list[str]:
    """Rows of equal keys as a Markdown table."""
    if not rows:
        return ["(none stored)"]
    head = list(rows[0])
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(str(row[key]) for key in head) + " |" for row in rows
    ]


def swap_section(store: ResultStore, family) -> list[str]:
    swaps = stored_swaps(store, family)
    if swaps is None:
        return ["No layer swaps stored."]
    columns = swap_columns(swaps)
    rows = []
    for name, cells in [(f"{family.labels[swaps.base]} (base)", swaps.base_records)] + [
            (s.title(family.labels), swaps.swap_records.get((s.group, s.donor), {})) for s in swaps.swaps]:
        rows.append({"model": name, **{metric_name(c): interval_text(cells[c.spec]) if c.spec in cells else "—"
                                       for c in columns}})
    methods = [f"- {metric_name(c)}: {method_text(c)}" for c in columns if c.upper_bound]
    partial = [f"- partial: {line}" for line in partial_columns(swaps)]
    return [f"Layer swaps on {swaps.images} (accuracy % [95% Wilson interval]; — not measured):", "",
            *markdown_table(rows), "", *methods, *partial]


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


def write_between_markers(path: Path, lines: list[str]) -> bool:
    """Replace what lies between the `GENERATED` markers of `path` by `lines`; False without markers."""
    text = path.read_text()
    if GENERATED[0] not in text or GENERATED[1] not in text:
        return False
    head, rest = text.split(GENERATED[0], 1)
    _, tail = rest.split(GENERATED[1], 1)
    path.write_text("\n".join([head + GENERATED[0], *lines, GENERATED[1] + tail]))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--store", default=None, help="results store (default: the family's, as the pages read it)")
    args = parser.parse_args()
    family = load_family(args.family)
    store = ResultStore(args.store) if args.store else family_store(Path(args.family))
    transfers, summary = transfer_section(store, family)
    lines = ["# Merge lab: stored results", "", "Made by `python bench/merge_lab_summary.py` from the family's store.",
             "", "## Where does robustness live", "", *swap_section(store, family), "",
             "## Transfer attacks on the presets", "", *transfers, ""]
    out = Path(args.family) / "merge_lab.md"
    out.write_text("\n".join(lines))
    print(out)
    readme = Path(args.family) / "README.md"
    if readme.is_file() and write_between_markers(readme, summary):
        print(readme)


if __name__ == "__main__":
    main()
