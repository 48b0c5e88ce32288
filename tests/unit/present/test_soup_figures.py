"""Figure builders arrange Records without computing anything: the plotted values, intervals,
skipped points, labels and stored rows must be exactly the records' numbers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from soupviz.errors import SoupvizError
from soupviz.evaluate.methods import attack_label, method_label
from soupviz.present.budget_figures import budget_curves
from soupviz.present.figure_export import apply_style, figure_info
from soupviz.present.heatmap_figures import accuracy_heatmap
from soupviz.present.label_placement import label_positions
from soupviz.present.labels import metric_name, metric_title, series_name, soup_label
from soupviz.present.soup_figures import interpolation_figure, select, ternary_data, ternary_figure
from soupviz.present.tradeoff_figures import paired, pareto_front, tradeoff_figure
from soupviz.results.metric_specs import MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.soups.weights import grid_weights

NAMES = ["nominal", "linf", "l2", "l1"]
LABELS = ["nominal", "L∞ 8/255", "L2 0.5", "L1 12"]
BOUND = " (upper bound on robust accuracy)"


def measured(text: str) -> tuple[str, MetricSpec, str]:
    """(key, spec, how a hover states the method) of a metric text."""
    spec = MetricSpec.parse(text)
    return spec.key, spec, method_label(spec) + (BOUND if spec.is_upper_bound else "")


LINF = measured("linf::apgd-ce:20")
L2 = measured("l2::apgd-ce:20")
LINF4 = measured("linf:4/255:apgd-ce:20")
CLEAN = measured("clean")


def record(weights, metric=CLEAN, correct=50, n=100, family="fam") -> Record:
    _, spec, method = metric
    low, high = wilson_interval(correct, n)
    return Record(
        weights=[float(w) for w in weights], ingredients=NAMES, measure=spec, n=n, correct=correct,
        accuracy=correct / n, ci_low=low, ci_high=high, method=method.removesuffix(BOUND),
        images="100 images of test", seed=0, batchnorm="mixed", family=family,
    )


def one_hot(k: int) -> list[float]:
    return [1.0 if i == k else 0.0 for i in range(4)]


def test_labels_say_robust_accuracy_is_an_upper_bound_and_name_the_attack():
    robust, clean = record(one_hot(1), LINF), record(one_hot(1))
    assert "upper bound" in metric_title(robust) and "APGD-CE-20" in metric_title(robust)
    assert "upper bound" in series_name(robust) and "APGD-CE-20" in series_name(robust)
    assert metric_title(clean) == "Clean accuracy (%)" and series_name(clean) == "clean, n=100"
    assert metric_title(clean, [clean]) == "Clean accuracy (%), n=100"
    assert soup_label([0.6, 0.4, 0, 0], LABELS) == "0.6·nominal + 0.4·L∞ 8/255"
    assert soup_label(one_hot(2), LABELS) == "L2 0.5"
    assert soup_label([1.4, -0.4, 0, 0], LABELS) == "1.4·nominal − 0.4·L∞ 8/255"


@pytest.mark.parametrize("text, name", [
    ("l2:0.25:apgd-ce+apgd-t:20:t9", "APGD-CE-20 + APGD-T-20 (9 targets)"),
    ("linf::autoattack", "AutoAttack (standard)"),
    ("linf:4/255:pgd:7", "PGD-7"),
    ("clean", ""),
])
def test_attack_labels_come_from_the_spec_without_threat_or_budget(text, name):
    assert attack_label(MetricSpec.parse(text)) == name


def test_a_union_is_named_by_its_first_threats_attack_and_an_ensemble_by_its_spec_not_its_method():
    assert attack_label(MetricSpec.parse("union", "pgd", 10)) == "PGD-10"
    ensemble = replace(record(one_hot(0), LINF), method="ensemble of logits: " + LINF[2])
    assert metric_name(ensemble) == "L∞ 8/255 APGD-CE-20"


def test_select_names_metrics_by_key_or_column_and_rejects_unknown_ones():
    records = [record(one_hot(0)), record(one_hot(0), LINF)]
    assert select(records, LINF[0]) == select(records, "L∞ 8/255") == [records[1]]
    with pytest.raises(SoupvizError, match="evaluate it first"):
        select(records, "L1 12")


def test_heatmap_cells_are_the_records_accuracies_in_percent_with_intervals_in_hover():
    soups = [("nominal", one_hot(0)), ("robust", one_hot(1)), ("half", [0.5, 0.5, 0, 0])]
    records = [record(w, m, correct=10 * i + 3 * j)
               for i, (_, w) in enumerate(soups) for j, m in enumerate((CLEAN, LINF))]
    records = records[:-1]  # the half soup has no L∞ result
    fig = accuracy_heatmap(records, soups=soups, metrics=["clean", LINF[0]], labels=LABELS)
    heat = fig.data[0]
    assert list(heat.y) == ["nominal", "robust", "half"]
    assert list(heat.x) == ["clean", "L∞ 8/255 ≤"]
    expected = [[100 * r.accuracy for r in records[2 * i : 2 * i + 2]] for i in range(2)]
    assert [list(row) for row in heat.z[:2]] == expected
    assert heat.z[2][0] == 100 * records[4].accuracy and math.isnan(heat.z[2][1])
    assert heat.text[1][1] == f"{100 * records[3].accuracy:.1f}"
    low, high = records[3].ci_low, records[3].ci_high
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in heat.hovertext[1][1]
    assert LINF[2] in heat.hovertext[1][1]
    assert "L∞ 8/255: by APGD-CE-20, n=100" in fig.layout.xaxis.title.text
    assert "clean: n=100" in fig.layout.xaxis.title.text and "upper bound" in fig.layout.xaxis.title.text
    assert len(figure_info(fig)["rows"]) == 5


def test_heatmap_defaults_to_every_soup_and_metric_in_the_records():
    records = [record(one_hot(0)), record(one_hot(0), LINF), record([0.5, 0.5, 0, 0], LINF)]
    fig = accuracy_heatmap(records, labels=LABELS)
    assert list(fig.data[0].y) == ["nominal", "0.5·nominal + 0.5·L∞ 8/255"]
    assert len(fig.data[0].x) == 2


def test_ternary_shows_only_convex_soups_of_its_corners_and_says_what_it_skipped():
    inside = [[0.2, 0.4, 0.4, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]]
    extrapolated = [[1.4, -0.4, 0.0, 0.0], [-0.2, 0.6, 0.6, 0.0]]
    elsewhere = [[0.4, 0.2, 0.2, 0.2]]
    weights = inside + extrapolated + elsewhere
    records = [record(w, LINF, correct=20 + i) for i, w in enumerate(weights)]
    fig = ternary_figure(records, LINF[0], (0, 1, 2), current=inside[0], labels=LABELS)
    soups, star = fig.data
    corners = [list(soups.a), list(soups.b), list(soups.c)]
    assert corners == [[0.2, 1, 0], [0.4, 0, 0.5], [0.4, 0, 0.5]]
    assert list(soups.marker.color) == [100 * r.accuracy for r in records[:3]]
    assert star.name == "current soup" and list(star.a) == [0.2]
    note = fig.layout.annotations[0].text
    assert "2 extrapolated soups" in note and "1 soups with weight on other ingredients" in note
    rows = figure_info(fig)["rows"]
    assert [row["on_ternary"] for row in rows] == [True] * 3 + [False] * 3
    reasons = [row["skipped_because"] for row in rows[3:]]
    assert reasons == ["extrapolation", "extrapolation", "other ingredients"]
    assert "upper bound" in fig.layout.title.text
    assert "95% CI" in soups.hovertext[0] and LINF[2] in soups.hovertext[0]


def test_ternary_data_keeps_every_record_in_its_rows_and_says_where_the_current_soup_is():
    weights = [[0.2, 0.4, 0.4, 0.0], [1.4, -0.4, 0.0, 0.0], [0.4, 0.2, 0.2, 0.2], [0.0, 0.5, 0.5, 0.0]]
    records = [record(w, LINF, correct=20 + i, n=300) for i, w in enumerate(weights)]
    data = ternary_data(records, LINF[1], (0, 1, 2), current=weights[3], labels=LABELS)
    assert data.shown == [records[0], records[3]]
    assert [(row["weights"], row["skipped_because"], row["n"]) for row in data.rows] == [
        (r.row()["weights"], reason, 300) for r, reason in zip(records, ["", "extrapolation", "other ingredients", ""],
                                                               strict=True)]
    assert data.star and data.current_record is records[3]
    assert data.notes == ["Not shown: 1 extrapolated soups (weights outside [0, 1]) and 1 soups with weight on "
                          "other ingredients:<br>a ternary plot holds only convex soups of its three corners.",
                          "★ current soup"]
    assert "APGD-CE-20" in data.title and "n=300" in data.title
    unevaluated = ternary_data(records, LINF[0], (0, 1, 2), current=[0.1, 0.1, 0.8, 0.0])
    assert unevaluated.star and unevaluated.current_record is None
    off = ternary_data(records[:1], LINF[0], (0, 1, 2), current=weights[2], labels=LABELS)
    assert not off.star and off.notes == [f"The current soup ({soup_label(weights[2], LABELS)}) is off this simplex."]
    assert ternary_data(records[:1], LINF[0], (0, 1, 2)).notes == []


def test_a_preview_ternary_says_so_in_its_title():
    preview = measured("linf::pgd:10")
    data = ternary_data([record([0.2, 0.4, 0.4, 0.0], preview)], preview[0], (0, 1, 2))
    assert "PGD-10 (preview, overstates robustness)" in data.title


def test_ternary_marks_no_star_for_a_current_soup_off_the_simplex():
    records = [record([0.2, 0.4, 0.4, 0.0], LINF)]
    fig = ternary_figure(records, LINF[0], (0, 1, 2), current=[1.4, -0.4, 0, 0], labels=LABELS)
    assert len(fig.data) == 1 and "off this simplex" in fig.layout.annotations[0].text
    with pytest.raises(SoupvizError, match="three different"):
        ternary_figure(records, LINF[0], (0, 1, 1))


def test_interpolation_plots_alpha_with_bands_and_marks_the_ingredients_and_extrapolation():
    alphas = [-0.2, 0.0, 0.5, 1.0, 1.2]
    records = [record([0, a, 1 - a, 0], m, correct=40 + int(10 * a))
               for m in (CLEAN, LINF) for a in alphas]
    records.append(record([0.5, 0.5, 0, 0]))  # not on this path
    fig = interpolation_figure(records, 1, 2, labels=LABELS)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["clean, n=100", "APGD-CE-20 L∞ 8/255 (upper bound), n=100"]
    assert list(lines[0].x) == alphas
    assert list(lines[1].y) == [100 * r.accuracy for r in records[5:10]]
    bands = [t for t in fig.data if t.fill == "tonexty"]
    assert list(bands[0].y) == [100 * r.ci_low for r in records[:5]]
    vlines = {s.x0 for s in fig.layout.shapes if s.type == "line"}
    shaded = [(s.x0, s.x1) for s in fig.layout.shapes if s.type == "rect"]
    assert vlines == {0.0, 1.0} and shaded == [(-0.2, 0.0), (1.0, 1.2)]
    assert {a.text for a in fig.layout.annotations} >= {"L2 0.5", "L∞ 8/255", "extrapolation"}
    assert [row["alpha"] for row in figure_info(fig)["rows"]] == alphas * 2


def test_budget_curves_start_at_clean_accuracy_and_read_linf_in_units_of_1_255():
    records = [record(one_hot(1), metric, correct)
               for metric, correct in ((CLEAN, 80), (LINF, 40), (LINF4, 60), (L2, 50))]
    fig = budget_curves(records, labels=LABELS)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [list(t.x) for t in lines] == [[0.0, 4.0, 8.0], [0.0, 0.5]]
    assert list(lines[0].y) == [80.0, 60.0, 40.0]
    assert [a.text for a in fig.layout.annotations] == ["L∞", "L2"]
    assert "upper bound" in fig.layout.yaxis.title.text
    with pytest.raises(SoupvizError):
        budget_curves([record(one_hot(0))])


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = [(0.9, 0.3), (0.8, 0.5), (0.7, 0.4), (0.9, 0.2), (0.6, 0.6), (0.6, 0.6), (0.5, 0.6)]
    assert pareto_front(points) == [4, 5, 1, 0]
    assert pareto_front([]) == []
    assert pareto_front([(0.1, 0.2)]) == [0]
    assert pareto_front([(0.5, 0.5), (0.5, 0.4), (0.4, 0.5)]) == [0]


def test_tradeoff_pairs_soups_draws_each_front_and_marks_ingredients_and_the_current_soup():
    grid = [one_hot(0), one_hot(1), [0.5, 0.5, 0, 0], [0.8, 0.2, 0, 0]]
    clean, robust = [90, 50, 75, 70], [0, 45, 30, 10]
    records = [record(w, CLEAN, c) for w, c in zip(grid, clean, strict=True)]
    records += [record(w, LINF, r) for w, r in zip(grid, robust, strict=True)]
    ensembles = [record(w, CLEAN, c - 2) for w, c in zip(grid[2:], clean[2:], strict=True)]
    ensembles += [record(w, LINF, r - 5) for w, r in zip(grid[2:], robust[2:], strict=True)]
    assert len(paired(records, "clean", LINF[0])) == 4
    fig = tradeoff_figure(records, LINF[0], current=grid[2], ensembles=ensembles, labels=LABELS)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["weight-space soups"].x) == [90.0, 50.0, 75.0, 70.0]
    assert list(by_name["weight-space soups"].error_y.array) == pytest.approx(
        [100 * (r.ci_high - r.accuracy) for r in records[4:]])
    assert list(by_name["Pareto front (soups)"].x) == [50.0, 75.0, 90.0]  # 75/30 beats 70/10
    assert list(by_name["Pareto front (ensembles)"].x) == [73.0]  # 73/25 dominates 68/5
    assert list(by_name["ingredients"].text) == ["nominal", "L∞ 8/255"]
    assert list(by_name["current soup"].x) == [75.0]
    assert "upper bound" in fig.layout.yaxis.title.text
    rows = figure_info(fig)["rows"]
    assert [r["pareto"] for r in rows if r["group"] == "soups"] == [True, True, True, False]


def test_a_tradeoff_of_many_soups_bars_only_its_front_and_says_so():
    grid = grid_weights(4, 0.1)
    records = [record(w, CLEAN, 40 + round(50 * w[0])) for w in grid]
    records += [record(w, LINF, 50 - round(40 * w[0]) - round(10 * w[3])) for w in grid]
    fig = tradeoff_figure(records, LINF[0], labels=LABELS)
    soups = next(t for t in fig.data if t.name == "weight-space soups")
    on_front = [r["pareto"] for r in figure_info(fig)["rows"]]
    barred = [high > 0 for high in soups.error_y.array]
    assert barred == on_front and 0 < sum(barred) < len(grid)
    assert "Pareto fronts only" in fig.layout.xaxis.title.text
    few = tradeoff_figure(records[:3] + records[len(grid):len(grid) + 3], LINF[0], labels=LABELS)
    assert all(high > 0 for high in few.data[0].error_y.array) and "only" not in few.layout.xaxis.title.text


def test_tradeoff_places_each_baseline_by_its_own_family_outside_every_front():
    grid = [one_hot(0), one_hot(1)]
    records = [record(w, CLEAN, c) for w, c in zip(grid, [90, 50], strict=True)]
    records += [record(w, LINF, r) for w, r in zip(grid, [0, 45], strict=True)]
    sat = [record([1.0], CLEAN, 60, family="fam/baselines/sat"), record([1.0], LINF, 40, family="fam/baselines/sat")]
    other = [replace(record([1.0], m, c, family="fam/baselines/x"), ingredients=["x"])
             for m, c in ((CLEAN, 55), (LINF, 20))]
    fig = tradeoff_figure(records, LINF[0], labels=LABELS, baselines=sat + other,
                          baseline_labels={"fam/baselines/sat": "SAT"})
    by_name = {t.name: t for t in fig.data}
    assert (list(by_name["baseline: SAT"].x), list(by_name["baseline: SAT"].y)) == ([60.0], [40.0])
    assert list(by_name["baseline: x"].x) == pytest.approx([55.0])  # no label given: the record's ingredient name
    assert list(by_name["Pareto front (soups)"].x) == [50.0, 90.0]  # 60/40 is not a soup
    rows = [r for r in figure_info(fig)["rows"] if r["group"] == "baselines"]
    assert [r["soup"] for r in rows] == ["SAT", "x"]
    assert [(r["x_accuracy"], r["y_accuracy"]) for r in rows] == [(0.6, 0.4), (0.55, 0.2)]
    assert tradeoff_figure(records, LINF[0], labels=LABELS, baselines=[sat[0]]).data == tradeoff_figure(
        records, LINF[0], labels=LABELS).data  # a baseline without the robust metric is left out


def test_tradeoff_draws_each_merge_curve_beside_the_linear_soups_with_its_own_front():
    grid = [one_hot(0), one_hot(1), [0.5, 0.5, 0, 0]]
    records = [record(w, m, v) for m, values in ((CLEAN, [90, 50, 75]), (LINF, [0, 45, 30]))
               for w, v in zip(grid, values, strict=True)]
    ties = [record(w, m, v, family="fam/merges/ties-k0.2-linf")
            for m, values in ((CLEAN, [90, 50, 80]), (LINF, [0, 45, 40])) for w, v in zip(grid, values, strict=True)]
    fig = tradeoff_figure(records, LINF[0], labels=LABELS, merges={"ties": ties, "dare": []})
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["TIES merges"].x) == [90.0, 50.0, 80.0] and list(by_name["TIES merges"].y) == [0.0, 45.0, 40.0]
    assert list(by_name["Pareto front (ties)"].x) == [50.0, 80.0, 90.0]
    assert list(by_name["Pareto front (soups)"].x) == [50.0, 75.0, 90.0]  # the soups' own front is untouched
    assert "DARE merges" not in by_name  # no records: no curve, never an empty one
    rows = figure_info(fig)["rows"]
    ties_rows = [(r["soup"], r["y_accuracy"]) for r in rows if r["group"] == "ties"]
    assert ties_rows[2] == ("0.5·nominal + 0.5·L∞ 8/255", 0.4)


def test_a_trade_off_label_keeps_off_lines_and_dots_drawn_near_its_point():
    points, frame = [(50.0, 50.0)], [(0.0, 0.0), (100.0, 100.0), (50.0, 50.0)]
    assert label_positions(points, ["L2 0.5"], frame) == ["top center"]
    up = [(50.0, 50.0), (50.0, 100.0)]  # the line leaves the point straight up, through the usual place
    assert label_positions(points, ["L2 0.5"], frame, lines=[up]) == ["bottom center"]
    up_and_down = [(50.0, 0.0), (50.0, 100.0)]
    assert label_positions(points, ["L2 0.5"], frame, lines=[up_and_down]) == ["middle right"]
    assert label_positions(points, ["L2 0.5"], frame, dots=[(50.0, 55.0)]) == ["bottom center"]  # a soup above


def test_paper_style_is_white_with_a_colour_blind_safe_scale():
    fig = accuracy_heatmap([record(one_hot(0))], labels=LABELS, paper=True)
    assert fig.layout.template.layout.paper_bgcolor == "white" and fig.layout.font.size == 16
    assert fig.layout.coloraxis.colorscale[0][1] == "#00224e"  # cividis starts dark blue
    apply_style(fig, paper=False)
    assert fig.layout.font.size == 13
    assert fig.layout.coloraxis.colorscale[0][1] == "#440154"  # viridis starts dark purple


def test_ternary_fills_a_fixed_height_and_keeps_tick_labels_off_the_corners():
    records = [record(w, CLEAN, 40 + i) for i, w in enumerate([one_hot(0), one_hot(1), [0.5, 0.5, 0, 0]])]
    fig = ternary_figure(records, "clean", (0, 1, 2), labels=LABELS)
    ternary = fig.layout.ternary
    assert fig.layout.height == 600 and ternary.domain.y[1] - ternary.domain.y[0] > 0.8
    for axis, corner in ((ternary.aaxis, 0), (ternary.baxis, 1), (ternary.caxis, 2)):
        assert 0 not in axis.tickvals and 1 not in axis.tickvals  # 0 and 1 would sit on the corner names
        assert LABELS[corner] in axis.title.text


def _boxes(points, texts, positions, all_points):
    """The label boxes `label_positions` reasons with, to check them independently of its search."""
    from soupviz.present.label_placement import CHAR_PX, GAP_PX, LINE_PX

    xs, ys = [p[0] for p in all_points], [p[1] for p in all_points]
    boxes = []
    for (x, y), text, position in zip(points, texts, positions, strict=True):
        px, py = (x - min(xs)) / (max(xs) - min(xs)) * 405, (max(ys) - y) / (max(ys) - min(ys)) * 270
        vertical, horizontal = position.split()
        top = {"top": py - GAP_PX - LINE_PX, "bottom": py + GAP_PX, "middle": py - LINE_PX / 2}[vertical]
        width = CHAR_PX * len(text)
        left = {"center": px - width / 2, "right": px + GAP_PX, "left": px - GAP_PX - width}[horizontal]
        boxes.append((left, top, left + width, top + LINE_PX))
    return boxes


def test_trade_off_labels_of_nearby_points_do_not_overlap():
    points = [(68.0, 32.0), (69.0, 31.0), (70.0, 30.5), (60.0, 40.0), (80.0, 2.0)]
    texts = ["L2 0.5", "L1 12", "SAT", "L∞ 8/255", "nominal"]
    positions = label_positions(points, texts, points)
    assert positions[3] == positions[4] == "top center"  # alone: the usual place
    boxes = _boxes(points, texts, positions, points)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)
    fig = tradeoff_figure([record(one_hot(i), m, c) for i, c in enumerate((90, 60, 59, 58))
                           for m in (CLEAN, LINF)], LINF[0], labels=LABELS)
    shown = next(t for t in fig.data if t.name == "ingredients")
    assert len(set(shown.textposition)) > 1  # three ingredients in one corner are labelled apart


def test_every_live_figure_states_its_image_count_in_its_own_text() -> None:
    """A printed figure has no hover: the number of test images behind it is in its own text
    (title, axis titles, notes or legend)."""
    soups = [[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 1.0, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 1.0, 0], [0, 0.5, 0.5, 0]]
    records = [record(w, metric, correct=40 + i, n=250) for i, w in enumerate(soups) for metric in (CLEAN, LINF)]
    records += [record(w, LINF4, correct=30, n=250) for w in soups]
    figures = {
        "trade-off": tradeoff_figure(records, LINF[1], CLEAN[1], labels=LABELS),
        "ternary": ternary_figure(records, CLEAN[1], (0, 1, 2), labels=LABELS),
        "line": interpolation_figure(records, 0, 1, labels=LABELS),
        "heatmap": accuracy_heatmap(records, labels=LABELS),
        "budgets": budget_curves(records, labels=LABELS),
    }
    for name, fig in figures.items():
        layout = fig.layout.to_plotly_json()
        axes = [axis.get("title", {}).get("text", "") for key, axis in layout.items()
                if key.startswith(("xaxis", "yaxis")) or key == "coloraxis"]
        own = " ".join([layout["title"]["text"], *axes, *(a.get("text", "") for a in layout.get("annotations", ())),
                        *(trace.name or "" for trace in fig.data)])
        assert "n=250" in own or "250 test images" in own, name
