"""The soupability figure: one column per straight path, accuracy above and loss below, the chord
joining each path's ends drawn and exported with the rows, and a file name that names the paths."""

from __future__ import annotations

import pytest

from soupviz.errors import SoupvizError
from soupviz.evaluate.soupability import PairBarrier
from soupviz.present.figure_export import figure_csv, figure_info, filename_for
from soupviz.present.soupability_figures import chord, paths_figure

SMOOTH = PairBarrier("linf", "l2", [0.0, 0.5, 1.0], [1.0, 0.9, 0.8], [0.7, 0.75, 0.76], "linf")
COLLAPSE = PairBarrier("nominal", "unrelated", [0.0, 0.5, 1.0], [0.5, 2.3, 0.6], [0.84, 0.1, 0.8], None)


def test_chord_joins_the_ends() -> None:
    assert chord([1.0, 5.0, 3.0], [0.0, 0.5, 1.0]) == [1.0, 2.0, 3.0]


def test_paths_side_by_side_with_their_chords_and_verdicts() -> None:
    fig = paths_figure([SMOOTH, COLLAPSE], images=64, family="fam")
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("linf → l2 (shared base: linf)") and "soups well" in titles[0]
    assert titles[1].startswith("nominal → unrelated (no shared base)") and "acc −72.0 pts" in titles[1]
    collapse = [t for t in fig.data if t.name == "nominal → unrelated"]
    assert [list(t.y) for t in collapse] == [[84.0, 10.0, 80.0], [0.5, 2.3, 0.6]]
    chords = [t for t in fig.data if t.legendgroup == "chord"]
    assert len(chords) == 4 and list(chords[2].y) == pytest.approx([84.0, 82.0, 80.0])
    rows = figure_info(fig)["rows"]
    middle = next(r for r in rows if r["b"] == "unrelated" and r["alpha"] == 0.5)
    assert middle["chord_accuracy"] == pytest.approx(0.82) and middle["accuracy"] == 0.1 and middle["images"] == 64
    assert figure_csv(fig).count("\n") == 7
    assert filename_for(fig, "png") == "paths_fam_linf-to-l2-nominal-to-unrelated.png"


def test_no_paths_is_a_clear_error() -> None:
    with pytest.raises(SoupvizError, match="No straight paths"):
        paths_figure([], images=64)
