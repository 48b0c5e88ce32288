"""Pages open on figures from the results store without pressing anything, saying how much of
the grid is done, and the explorer shows the whole simplex from it."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.checkpoints.families import load_baselines, load_family
from soupviz.data import load_split
from soupviz.evaluate.baselines import evaluate_baselines
from soupviz.evaluate.evaluator import Evaluator
from soupviz.present.labels import soup_label
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore
from soupviz.serve.soup_rows import row_soups
from soupviz.soups.weights import grid_weights, tidy
from tests.app.test_pages import APP, TIMEOUT, assert_clean


@pytest.fixture
def stored_env(app_env: dict, tmp_path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A fresh default store holding clean, L∞ and two corruptions of the step-0.5 grid minus one
    soup (the L1 corner: the test's SAT baseline holds the nominal weights, so its records are the
    nominal corner's), and the SAT baseline's clean and L∞ records on the same images."""
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path))
    family = load_family(app_env["SOUPVIZ_FAMILY"])
    images = load_split(app_env["SOUPVIZ_DATA"], "test").subset(20, 0)
    evaluator = Evaluator(family, images, device="cpu", store=ResultStore(tmp_path / "results.sqlite"))
    specs = [MetricSpec("clean"), MetricSpec.parse("linf::pgd:1")]
    evaluator.evaluate(grid_weights(4, 0.5)[1:], [*specs, MetricSpec.parse("fog:3"), MetricSpec.parse("snow:3")])
    evaluate_baselines(evaluator, load_baselines(family), specs)
    return app_env


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def notes(chart: dict) -> str:
    return " ".join(a.get("text", "") for a in chart["layout"].get("annotations", []))


def test_explorer_shows_the_filled_map_and_tetrahedron_from_the_store(stored_env: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/explorer.py").run()
    assert_clean(at)
    kinds = {c["layout"]["meta"]["soupviz"]["kind"]: c for c in charts(at)}
    assert {"ternary-map", "tetrahedron"} <= set(kinds)
    assert "from the precomputed store: 9 of 10 soups" in notes(kinds["tetrahedron"])


@pytest.mark.parametrize("page", [None, "pages/heatmaps.py", "pages/tradeoff.py"], ids=lambda p: p or "home")
def test_pages_open_on_a_stored_figure_without_pressing_anything(stored_env: dict, page: str) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page).run()
    assert_clean(at)
    kinds = [json.loads(chart.proto.spec)["layout"]["meta"]["soupviz"]["kind"] for chart in at.get("plotly_chart")]
    tables = [h for h in at.get("html") if "soupviz-heatmap" in h.proto.body]
    if page is None:  # Home's first figure is the heatmap as a table: a fresh tab shows it before Plotly starts
        assert (kinds.count("heatmap"), len(tables)) == (0, 1)
    else:
        assert (kinds.count("heatmap" if page != "pages/tradeoff.py" else "tradeoff"), len(tables)) == (1, 0)
    if page == "pages/tradeoff.py":
        assert any("from the precomputed store: 9 of 10 soups" in c.value for c in at.caption)
    else:  # the presets among the stored soups (the uniform soup is off the grid), by clean, L∞ and the mean
        family = load_family(stored_env["SOUPVIZ_FAMILY"])
        stored = {tuple(tidy(w)) for w in grid_weights(4, 0.5)[1:]}
        rows = [w for _, w in row_soups(["ingredients", "presets"], family, None) if tuple(tidy(w)) in stored]
        assert 4 < len(rows) < 8
        assert any(f"Precomputed: {len(rows)} soups × 3 metrics on 20 images." in c.value for c in at.caption)


def test_a_damaged_store_is_one_warning_and_the_page_still_opens(stored_env: dict, tmp_path) -> None:
    import sqlite3

    path = tmp_path / "results.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page, size = (connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'records'").fetchone()[0],
                      connection.execute("PRAGMA page_size").fetchone()[0])
    with path.open("r+b") as handle:
        handle.seek((page - 1) * size + 8)
        handle.write(bytes(range(256)) * 4)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/heatmaps.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"The results store {path} is damaged" in w.value for w in at.warning)


def test_picking_a_stored_soup_moves_the_sliders_there(stored_env: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/explorer.py").run()
    pick = next(box for box in at.selectbox if box.label == "Move the sliders to a stored soup")
    assert len(pick.options) == 9  # the stored soups of the grid, best first
    best = next(tuple(w) for w in map(tidy, grid_weights(4, 0.5)) if pick.format_func(tuple(w)) == pick.options[0])
    pick.select(best).run()
    assert_clean(at)
    weights = at.session_state[Keys.WEIGHTS]
    assert weights == pytest.approx(list(best))
    assert weights != pytest.approx([0.25] * 4)  # not the uniform soup it opened on
    assert [slider.value for slider in at.slider[:4]] == pytest.approx(weights)
    assert pick.options[0].endswith(soup_label(weights, load_family(stored_env["SOUPVIZ_FAMILY"]).labels))
    assert at.session_state[Keys.STORED_PICK] is None



def test_stored_soups_coloured_by_an_attack_are_marked_as_upper_bounds(stored_env: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/explorer.py").run()
    colour = at.selectbox(key=Keys.STORED_METRIC)
    at.selectbox(key=Keys.STORED_METRIC).set_value(next(o for o in colour.options if o != "clean")).run()
    assert_clean(at)
    pick = at.selectbox(key=Keys.STORED_PICK)
    assert pick.options and all("% ≤ · " in option for option in pick.options)
    assert "≤" in pick.placeholder


def test_the_stored_tradeoff_places_the_stored_baseline(stored_env: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/tradeoff.py").run()
    assert_clean(at)
    (chart,) = charts(at)
    assert "baseline: SAT" in [trace.get("name") for trace in chart["data"]]
    assert any("Baselines: SAT clean 100.0%" in c.value for c in at.caption)  # it holds the nominal weights
    at.toggle(key=Keys.TRADEOFF_BASELINES).set_value(False).run()
    assert "baseline: SAT" not in [trace.get("name") for trace in charts(at)[0]["data"]]


def test_stored_corruptions_are_summarised_by_their_mean(stored_env: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/explorer.py").run()
    colour = at.selectbox(key=Keys.STORED_METRIC)
    assert colour.options.index("corruption mean") < colour.options.index("Fog, severity 3")
    colour.set_value("corruption mean").run()
    assert_clean(at)
    kinds = {c["layout"]["meta"]["soupviz"]["kind"]: c for c in charts(at)}
    assert "corruption mean" in kinds["tetrahedron"]["layout"]["coloraxis"]["colorbar"]["title"]["text"]
    at.switch_page("pages/heatmaps.py").run()
    (heatmap,) = [c for c in charts(at) if c["layout"]["meta"]["soupviz"]["kind"] == "heatmap"]
    columns = heatmap["data"][0]["x"]
    assert "corruption mean" in columns and not any("Fog" in column for column in columns)
    assert heatmap["data"][0]["y"][-1] == "SAT (baseline)"
    # measured on clean and L∞ only, but it holds the nominal weights: the nominal corner's corruption
    # records are its own (a record names its ingredients by content), so its row is complete
    assert [cell for cell in heatmap["data"][0]["text"][-1] if cell] == ["100.0", mock.ANY, mock.ANY]


def test_the_stored_tradeoff_sets_robustness_against_another_axis(stored_env: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/tradeoff.py").run()
    at.selectbox(key=Keys.TRADEOFF_AGAINST).set_value("corruption-mean").run()
    assert_clean(at)
    (chart,) = charts(at)
    assert "corruption mean" in chart["layout"]["xaxis"]["title"]["text"]
    assert "L∞" in chart["layout"]["yaxis"]["title"]["text"]
    assert next(b for b in at.button if b.label == "Evaluate").disabled  # 70 conditions a soup: stored only
    at.selectbox(key=Keys.TRADEOFF_AGAINST).set_value("l2").run()
    assert not charts(at) and any("no grid of both metrics" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Evaluate").click().run()
    assert_clean(at)
    (chart,) = charts(at)
    assert "L2" in chart["layout"]["xaxis"]["title"]["text"]
