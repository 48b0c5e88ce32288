"""AppTest specifications of the dashboard: every page boots on a test family, sliders and
presets change the measured numbers, the soup lives in the query string, and bad uploads or
missing data are explained instead of failing."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.checkpoints.families import load_family
from soupviz.data import load_split
from soupviz.evaluate.evaluator import Evaluator
from soupviz.evaluate.methods import attack_label
from soupviz.present.labels import bounded
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore
from soupviz.serve.background import Lane
from soupviz.serve.page_specs import corruption_specs, robust_specs
from soupviz.serve.settings import default_settings

APP = str(Path(__file__).resolve().parents[2] / "dashboard.py")
# every page dashboard.py routes to (the home page is where the app starts)
ROUTES = Path(APP).with_name("pages") / "_routes.py"
PAGES = [None] + [p for p in re.findall(r'st\.Page\("(pages/\w+\.py)"', ROUTES.read_text()) if p != "pages/home.py"]
assert len(PAGES) == 8, "every page dashboard.py routes to (pages/_routes.py)"
TIMEOUT = 120


def open_page(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def library_clean(env: dict[str, str], weights: list[float]) -> str:
    family = load_family(env["SOUPVIZ_FAMILY"])
    images = load_split(env["SOUPVIZ_DATA"], "test").subset(int(env["SOUPVIZ_EVAL_IMAGES"]), 0)
    record = Evaluator(family, images, device="cpu").evaluate([weights], [MetricSpec("clean")])[0]
    return f"{100 * record.accuracy:.1f}%"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p or "home")
def test_every_page_renders_without_exceptions(app_env: dict, page: str | None) -> None:
    at = open_page(page)
    assert_clean(at)
    assert at.title


def test_a_data_folder_without_images_is_explained(app_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUPVIZ_DATA", str(Path(app_env["SOUPVIZ_DATA"]) / "nowhere"))
    at = open_page()
    assert not at.exception
    assert "has no 'test/' subfolder" in at.warning[0].value
    assert "torchvision" in " ".join(m.value for m in at.markdown)


def test_home_shows_the_ingredients_device_and_data(app_env: dict) -> None:
    at = open_page()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["checkpoint"]) == ["test-none", "test-linf", "test-l2", "test-l1"]
    captions = " ".join(c.value for c in at.caption)
    assert app_env["SOUPVIZ_DATA"] in captions and "CPU" in captions


def test_home_measures_ingredients_on_demand(app_env: dict) -> None:
    at = open_page()
    next(b for b in at.button if b.label.startswith("Measure on 40 test images")).click().run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["ingredient"]) == ["nominal", "L∞ 8/255", "L2 0.5", "L1 12"]
    assert table["clean"][0] == "100.0% [91.2, 100.0]"  # the test images are labelled by the nominal ingredient
    assert "L∞ 8/255 ≤" in table.columns


def test_moving_a_slider_changes_the_shown_metrics(app_env: dict) -> None:
    at = open_page("pages/explorer.py")
    before = shown(at, "clean")
    assert before == library_clean(app_env, [0.25, 0.25, 0.25, 0.25])
    at.slider(key=Keys.slider(0)).set_value(1.0).run()
    assert_clean(at)
    assert [at.slider(key=Keys.slider(i)).value for i in range(4)] == [1.0, 0.0, 0.0, 0.0]
    after = shown(at, "clean")
    assert after == library_clean(app_env, [1.0, 0.0, 0.0, 0.0]) == "100.0%"
    assert after != before
    assert {"L∞ 8/255 ≤", "L2 0.5 ≤", "L1 12 ≤"} <= {m.label for m in at.metric}
    assert at.query_params["w"] == ["1,0,0,0"] or at.query_params["w"] == "1,0,0,0"


def test_slow_tiles_fill_in_from_the_background_with_the_librarys_numbers(app_env: dict) -> None:
    at = open_page("pages/explorer.py")
    at.slider(key=Keys.slider(0)).set_value(1.0).run()
    job = at.session_state[Keys.LANE].lane.job
    assert job.weights == (1.0, 0.0, 0.0, 0.0)
    assert job.ended.wait(TIMEOUT) and job.finished
    at.run()
    assert_clean(at)
    settings = default_settings()
    family = load_family(app_env["SOUPVIZ_FAMILY"])
    images = load_split(app_env["SOUPVIZ_DATA"], "test").subset(settings.images, settings.seed)
    evaluator = Evaluator(family, images, device="cpu", batch_size=settings.batch_size, seed=settings.seed)
    for spec in robust_specs(settings) + corruption_specs(settings):
        record = evaluator.evaluate([[1.0, 0.0, 0.0, 0.0]], [spec])[0]
        assert shown(at, bounded(spec.column, record.upper_bound)) == f"{100 * record.accuracy:.1f}%"
    assert not at.get("progress")


def test_a_soup_in_the_store_shows_at_once_marked_as_stored(app_env: dict, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = default_settings()
    family = load_family(app_env["SOUPVIZ_FAMILY"])
    spec = robust_specs(settings)[0]
    images = load_split(app_env["SOUPVIZ_DATA"], "test").subset(40, 1)
    store = ResultStore(tmp_path / "results.sqlite")
    stored = Evaluator(family, images, device="cpu", seed=1, store=store).evaluate([[0, 1.0, 0, 0]], [spec])[0]
    monkeypatch.setattr("soupviz.results.grids.family_store", lambda folder: store)
    gate = threading.Event()
    monkeypatch.setattr("pages._components.Lane", lambda evaluate, slots: Lane(
        lambda *args: gate.wait(TIMEOUT) and evaluate(*args), slots))
    at = open_page("pages/explorer.py", {"w": "0,1,0,0"})
    gate.set()
    assert_clean(at)
    assert shown(at, bounded(spec.column, True)) == f"{100 * stored.accuracy:.1f}%"
    assert f"by {attack_label(spec)} · n=40 · stored" in " ".join(c.value for c in at.caption)
    assert at.get("progress")


def test_a_soup_inside_the_stored_grid_shows_its_interpolated_number_at_once(
    app_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soupviz.results.interpolation import SimplexInterpolator
    from soupviz.soups.weights import grid_weights

    spec = robust_specs(default_settings())[0]
    family = load_family(app_env["SOUPVIZ_FAMILY"])
    store = ResultStore(tmp_path / "results.sqlite")
    images = load_split(app_env["SOUPVIZ_DATA"], "test").subset(10, 1)
    grid = Evaluator(family, images, device="cpu", seed=1, store=store).evaluate(grid_weights(4, 0.5), [spec])
    monkeypatch.setattr("soupviz.results.grids.family_store", lambda folder: store)
    gate = threading.Event()
    monkeypatch.setattr("pages._components.Lane", lambda evaluate, slots: Lane(
        lambda *args: gate.wait(TIMEOUT) and evaluate(*args), slots))
    soup = [0.4, 0.3, 0.2, 0.1]  # no stored soup: the cell of the step-0.5 grid around it
    at = open_page("pages/explorer.py", {"w": ",".join(map(str, soup))})
    gate.set()
    assert_clean(at)
    expected = SimplexInterpolator(grid).at(soup)
    assert expected.soups > 1
    assert shown(at, bounded(spec.column, True)) == f"{100 * expected.accuracy:.1f}%"
    assert expected.caption() in [c.value for c in at.caption]
    assert at.get("progress")  # still measuring live


def test_a_slider_move_keeps_the_soup_on_the_simplex(app_env: dict) -> None:
    at = open_page("pages/explorer.py")
    at.slider(key=Keys.slider(1)).set_value(0.7).run()
    weights = [at.slider(key=Keys.slider(i)).value for i in range(4)]
    assert weights[1] == 0.7 and min(weights) >= 0 and sum(weights) == pytest.approx(1.0, abs=1e-9)


def test_presets_move_every_slider(app_env: dict) -> None:
    at = open_page("pages/explorer.py")
    at.selectbox(key=Keys.PRESET).set_value("½ L∞ 8/255 + ½ nominal").run()
    assert_clean(at)
    assert [at.slider(key=Keys.slider(i)).value for i in range(4)] == [0.5, 0.5, 0.0, 0.0]
    assert shown(at, "clean") == library_clean(app_env, [0.5, 0.5, 0.0, 0.0])


def test_the_query_string_sets_the_soup(app_env: dict) -> None:
    at = open_page("pages/explorer.py", {"w": "0,0,1,0"})
    assert [at.slider(key=Keys.slider(i)).value for i in range(4)] == [0.0, 0.0, 1.0, 0.0]
    assert shown(at, "clean") == library_clean(app_env, [0.0, 0.0, 1.0, 0.0])


def test_an_extrapolated_link_turns_extrapolation_on(app_env: dict) -> None:
    at = open_page("pages/explorer.py", {"w": "1.2,-0.2,0,0"})
    assert_clean(at)
    assert at.toggle(key=Keys.EXTRAPOLATE).value is True
    assert at.slider(key=Keys.slider(0)).value == 1.2 and at.slider(key=Keys.slider(0)).max >= 1.2


@pytest.mark.parametrize(("link", "words"), [
    ("0.5,0.5", "holds 2 weights"), ("a,b,c,d", "'a' for nominal is not a number"),
    ("nan,1,0,0", "'nan' for nominal is not a finite number"), ("5,-4,0,0", "outside [-1, 2]"),
])
def test_a_bad_link_keeps_its_message_and_the_address_until_the_user_acts(app_env: dict, link: str, words: str) -> None:
    at = open_page("pages/explorer.py", {"w": link})
    assert_clean(at)
    for _ in range(2):  # the background tiles' reruns must not remove it
        assert words in at.warning[0].value and "Showing the uniform soup" in at.warning[0].value
        assert at.query_params["w"] in (link, [link])
        at.run()
    at.slider(key=Keys.slider(0)).set_value(0.7).run()
    assert not [w for w in at.warning if words in w.value]
    assert at.query_params["w"] != link and at.query_params["w"] != [link]


def test_a_bad_links_message_can_be_dismissed(app_env: dict) -> None:
    at = open_page("pages/explorer.py", {"w": "nan,1,0,0"})
    at.button(key=Keys.LINK_DISMISS).click().run()
    assert_clean(at)
    assert not at.warning
    assert at.query_params["w"] in ("0.25,0.25,0.25,0.25", ["0.25,0.25,0.25,0.25"])


def test_a_link_whose_weights_do_not_sum_to_one_says_it_was_normalised(app_env: dict) -> None:
    at = open_page("pages/explorer.py", {"w": "2,2,0,0"})
    assert [at.slider(key=Keys.slider(i)).value for i in range(4)] == [0.5, 0.5, 0.0, 0.0]
    assert any("summed to 4" in i.value for i in at.info)


class _Payload:
    """Unpickling this would only print; the dashboard must never do it."""

    def __reduce__(self):
        return (print, ("payload ran",))


def test_bad_inputs_get_one_sentence_naming_the_users_file_and_leave_nothing_behind(
    app_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import pickle

    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    family = Path(app_env["SOUPVIZ_FAMILY"])
    card, weights = (family / "test-l2.json").read_bytes(), (family / "test-l2.safetensors").read_bytes()
    at = open_page()
    at.radio(key=Keys.FAMILY_SOURCE).set_value("upload").run()
    uploads = {
        "random bytes": (bytes(range(256)) * 16, "The file test-l2.safetensors is not a safetensors file"),
        "a pickle with code": (pickle.dumps({"w": _Payload()}), "The file test-l2.safetensors is not a safetensors"),
        "a truncated file": (weights[: len(weights) // 2], "The safetensors file test-l2.safetensors is truncated"),
    }
    for what, (data, expected) in uploads.items():
        at.file_uploader(key=Keys.UPLOADS).set_value([
            ("test-l2.safetensors", data, "application/octet-stream"), ("test-l2.json", card, "application/json"),
        ]).run()
        assert not at.exception, what
        assert [e.value for e in at.error] == [at.error[0].value] and at.error[0].value.startswith(expected), what
        assert str(tmp_path) not in at.error[0].value, what
        assert not list((tmp_path / "cache").rglob("*.safetensors")), what  # the rejected upload is gone
    assert "payload ran" not in capsys.readouterr().out

    at.radio(key=Keys.FAMILY_SOURCE).set_value("folder").run()
    at.text_input(key=Keys.FAMILY_PATH).input(str(family / "test-l2.safetensors")).run()
    assert at.error[0].value == (f"{family / 'test-l2.safetensors'} is a file, not a folder: give the family folder "
                                 f"that holds it, {family}.")
    monkeypatch.setenv("SOUPVIZ_ROOTS", str(family))
    at.text_input(key=Keys.FAMILY_PATH).input("/etc").run()
    assert at.error[0].value == f"This server opens family folders only under {family}, and /etc is not among them."
    at.text_input(key=Keys.FAMILY_PATH).input(str(family)).run()
    assert_clean(at)


def test_a_good_upload_becomes_the_family(app_env: dict) -> None:
    at = open_page()
    at.radio(key=Keys.FAMILY_SOURCE).set_value("upload").run()
    folder = Path(app_env["SOUPVIZ_FAMILY"])
    files = [(p.name, p.read_bytes(), "application/octet-stream") for p in sorted(folder.iterdir()) if p.is_file()]
    at.file_uploader(key=Keys.UPLOADS).set_value(files).run()
    assert_clean(at)
    assert at.subheader[-1].value == "Ingredients of uploaded"
    assert len(at.dataframe[0].value) == 4


def test_missing_data_is_explained_with_both_ways(app_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOUPVIZ_DATA")
    monkeypatch.setattr("soupviz.data.LOCAL_CANDIDATES", ())
    at = open_page()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "torchvision" in text and "ImageFolder" in text
    at.text_input(key=Keys.DATA_PATH).input(app_env["SOUPVIZ_DATA"]).run()
    assert not [w for w in at.warning if "data" in w.value.lower()]  # the soupability verdict may warn
    assert any(app_env["SOUPVIZ_DATA"] in c.value for c in at.caption)


def test_heatmap_page_attacks_the_chosen_soups(app_env: dict) -> None:
    at = open_page("pages/heatmaps.py")
    at.text_input(key=Keys.budgets("linf")).input("4/255, 8/255")
    at.text_input(key=Keys.budgets("l2")).input("0.5")
    at.text_input(key=Keys.budgets("l1")).input("12")
    next(b for b in at.button if b.label == "Evaluate").click().run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2
    labels = [d.label for d in at.get("download_button")]
    assert labels.count("CSV") == labels.count("PNG") == labels.count("SVG") == labels.count("PDF") == 2


def test_a_bad_budget_is_explained(app_env: dict) -> None:
    at = open_page("pages/heatmaps.py")
    at.text_input(key=Keys.budgets("l2")).input("half").run()
    assert not at.exception
    assert "'half' is not a number" in at.error[0].value


def test_tradeoff_page_compares_soups_with_ensembles_and_places_the_baseline(app_env: dict) -> None:
    import json

    at = open_page("pages/tradeoff.py")
    next(b for b in at.button if b.label == "Evaluate").click().run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    verdicts = {"soup better", "ensemble better", "within noise", "inconclusive: interval and test disagree"}
    assert set(table["verdict"]) <= verdicts
    assert any("not attack looseness" in c.value for c in at.caption)
    one_hot = table[table["soup"] == "nominal"]
    assert (one_hot["soup − ensemble (points)"] == 0).all()  # an ingredient is its own ensemble
    baseline = [c.value for c in at.caption if c.value.startswith("Baselines: ")]
    assert len(baseline) == 1 and "SAT clean 100.0%" in baseline[0]  # it holds the nominal weights
    traces = [trace.get("name") for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "baseline: SAT" in traces
    at.toggle(key=Keys.TRADEOFF_BASELINES).set_value(False).run()
    assert any("The choices changed" in c.value for c in at.caption)


def test_tradeoff_page_draws_ties_and_dare_beside_the_linear_soup_on_the_same_soups(app_env: dict) -> None:
    import json

    at = open_page("pages/tradeoff.py")
    at.radio(key=Keys.TRADEOFF_MODES).set_value("none").run()
    at.multiselect(key=Keys.TRADEOFF_MERGES).set_value(["ties", "dare"]).run()
    next(b for b in at.button if b.label == "Evaluate").click().run()
    assert_clean(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    points = {t["name"]: len(t["x"]) for t in spec["data"] if t.get("mode") == "markers"}
    assert points["TIES merges"] == points["DARE merges"] == points["weight-space soups"] > 0
    rows = spec["layout"]["meta"]["soupviz"]["rows"]
    assert {r["group"] for r in rows} >= {"soups", "ties", "dare"}
    assert {r["y_method"].split(": ")[-1] for r in rows if r["group"] == "ties"} == {
        r["y_method"] for r in rows if r["group"] == "soups"}  # the same attack
    assert any(c.value.startswith("Merges at the soups' coordinates: TIES merge (top 20%") for c in at.caption)


def test_paper_style_restyles_every_figure(app_env: dict) -> None:
    import json

    def layouts(at: AppTest) -> dict[str, dict]:  # by figure kind: the store's views join once records land
        return {(layout := json.loads(chart.proto.spec)["layout"])["meta"]["soupviz"]["kind"]: layout
                for chart in at.get("plotly_chart")}

    at = open_page("pages/explorer.py")
    screen = layouts(at)
    at.session_state[Keys.PAPER] = True  # the sidebar's toggle: AppTest drops the sidebar after switch_page
    at.run()
    assert_clean(at)
    paper = layouts(at)
    assert {"ternary", "interpolation"} <= set(screen) <= set(paper)
    assert {layout["font"]["size"] for layout in screen.values()} == {13}
    assert {layout["font"]["size"] for layout in paper.values()} == {16}
    assert paper["ternary"]["coloraxis"]["colorscale"] != screen["ternary"]["coloraxis"]["colorscale"]  # cividis
