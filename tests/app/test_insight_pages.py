"""AppTest specifications of the insight pages: saliency, generation and few-shot adaptation boot
on a tiny family, show what the library computes for each ingredient and the current soup, and
explain bad input (indices, pictures, archives, too few images) with st.error, never a traceback.

The pages are reached through dashboard.py; until dashboard.py registers them, through a copy of it that
adds them (beside a link to pages/, so relative page paths resolve as in the real app).
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.checkpoints.families import load_family
from soupviz.cli import main
from soupviz.data import load_split
from soupviz.insight.few_shot import K_CURVE, AdaptationRun, AdaptConfig, adapt_to_shift
from soupviz.insight.generate import GenerationSettings, towards_class
from soupviz.insight.saliency import SaliencySettings, soup_panel
from soupviz.insight.shifts import corruption_shift
from soupviz.soups.soup import Soup

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"saliency": "pages/saliency.py", "generation": "pages/generation.py", "adaptation": "pages/adaptation.py"}
TIMEOUT = 180
UNIFORM = [0.25, 0.25, 0.25, 0.25]

_spec = importlib.util.spec_from_file_location("soupviz_app_setup", Path(__file__).with_name("_setup.py"))
_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_setup)


def balanced(x: torch.Tensor) -> torch.Tensor:
    """'Logits' putting image i in class i mod 10, so every class has images."""
    return torch.eye(10)[torch.arange(len(x)) % 10]


@pytest.fixture(scope="module")
def insight_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """The entry script and environment: four ingredients, 6 test and 4 training images a class."""
    root = tmp_path_factory.mktemp("insight")
    family = _setup._root_conftest().make_family_folder(root / "family", spread=1.0)
    data = _setup.make_image_folder(root / "data", {"train": 40, "test": 60}, labeller=balanced)
    env = {"SOUPVIZ_FAMILY": str(family), "SOUPVIZ_DATA": str(data), "SOUPVIZ_CACHE": str(root / "cache"),
           "SOUPVIZ_EVAL_IMAGES": "40", "SOUPVIZ_EVAL_STEPS": "2", "SOUPVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    routes = (ROOT / "pages" / "_routes.py").read_text()
    assert all(page in routes for page in PAGES.values()), "pages/_routes.py no longer routes to every insight page"
    return str(ROOT / "dashboard.py"), env


@pytest.fixture
def app(insight_app: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    for key, value in insight_app[1].items():
        monkeypatch.setenv(key, value)
    return insight_app


def open_page(app: tuple[str, dict], name: str, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(app[0], default_timeout=TIMEOUT)
    at.run()
    for key, value in (state or {}).items():
        at.session_state[key] = value
    return at.switch_page(PAGES[name]).run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def chart_rows(at: AppTest, index: int = 0) -> list[dict]:
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return spec["layout"]["meta"]["soupviz"]["rows"]


def png(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(PAGES))
def test_each_insight_page_boots_without_errors(app: tuple, name: str) -> None:
    at = open_page(app, name)
    assert_clean(at)
    assert at.title[0].value in {"Saliency", "Generation", "Few-shot soup adaptation"}


def test_saliency_shows_each_models_map_and_prediction_as_the_library_computes_them(app: tuple) -> None:
    at = open_page(app, "saliency")
    assert_clean(at)
    rows = chart_rows(at)
    family = load_family(app[1]["SOUPVIZ_FAMILY"])
    titles = [*family.labels, "current soup"]
    assert len(rows) == 4 * len(titles) and [r["model"] for r in rows[:5]] == titles
    assert [r["true_class"] for r in rows[::5]] == ["airplane", "cat", "dog", "horse"]
    split = load_split(app[1]["SOUPVIZ_DATA"], "test")
    first_cat = int((split.labels == 3).nonzero()[0, 0])
    panel = soup_panel(Soup.from_family(family), split.floats()[first_cat], 3, UNIFORM, SaliencySettings(),
                       names=family.names)
    for row, key in zip(rows[5:10], [*family.names, "soup"], strict=True):
        assert row["prediction"] == split.classes[panel[key].prediction]
        assert row["confidence"] == pytest.approx(panel[key].confidence, abs=1e-5)
    captions = " ".join(c.value for c in at.caption)
    assert "99th percentile" in captions and "loss gradient" in captions
    labels = [d.label for d in at.get("download_button")]
    assert labels.count("CSV") == labels.count("PNG") == labels.count("SVG") == labels.count("PDF") == 1


def test_saliency_follows_the_current_soup_and_the_method(app: tuple) -> None:
    at = open_page(app, "saliency", {Keys.WEIGHTS: [0.0, 1.0, 0.0, 0.0]})
    at.radio(key=Keys.SALIENCY_METHOD).set_value("smoothgrad").run()
    assert_clean(at)
    rows = chart_rows(at)
    assert all("Captum SmoothGrad" in r["method"] for r in rows)
    by_model = {(r["image"], r["model"]): r for r in rows}  # the soup is the second ingredient itself
    for image in {r["image"] for r in rows}:
        assert by_model[image, "current soup"]["confidence"] == pytest.approx(by_model[image, "L∞ 8/255"]["confidence"],
                                                                              abs=1e-5)
    at.radio(key=Keys.SALIENCY_METHOD).set_value("integrated_gradients").run()
    assert "Integrated Gradients" in chart_rows(at)[0]["method"]


def test_page_choices_survive_a_visit_to_another_page_and_figures_follow_the_paper_style(app: tuple) -> None:
    at = open_page(app, "saliency", {Keys.PAPER: True})
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["font"]["size"] == 16
    at.radio(key=Keys.SALIENCY_METHOD).set_value("saliency").run()
    at.switch_page("pages/explorer.py").run()
    at.switch_page(PAGES["saliency"]).run()
    assert_clean(at)
    assert at.radio(key=Keys.SALIENCY_METHOD).value == "saliency"
    assert "Captum Saliency" in chart_rows(at)[0]["method"]


def test_saliency_picks_images_by_index_and_explains_bad_indices(app: tuple) -> None:
    at = open_page(app, "saliency")
    at.radio(key=Keys.SALIENCY_IMAGES.source).set_value("index").run()
    at.text_input(key=Keys.SALIENCY_IMAGES.indices).input("5, 7").run()
    assert_clean(at)
    assert sorted({r["image"] for r in chart_rows(at)}) == ["test #5", "test #7"]
    at.text_input(key=Keys.SALIENCY_IMAGES.indices).input("5, x").run()
    assert not at.exception
    assert "'x' is not a whole number from 0 to 59" in at.error[0].value
    at.text_input(key=Keys.SALIENCY_IMAGES.indices).input("60").run()
    assert "'60' is not a whole number" in at.error[0].value


def test_saliency_reads_an_uploaded_picture_and_rejects_other_files(app: tuple) -> None:
    at = open_page(app, "saliency")
    picker = Keys.SALIENCY_IMAGES
    at.radio(key=picker.source).set_value("upload").run()
    at.file_uploader(key=picker.upload).set_value(("broken.png", b"this is not a picture", "image/png")).run()
    assert not at.exception
    assert "broken.png is not an image that can be read" in at.error[0].value
    at.selectbox(key=picker.label).set_value(5)
    at.file_uploader(key=picker.upload).set_value(("wide.png", png(50, 40), "image/png")).run()
    assert_clean(at)
    rows = chart_rows(at)
    assert {r["image"] for r in rows} == {"upload wide.png"} and {r["true_class"] for r in rows} == {"dog"}


def test_generation_opens_on_a_walk_and_asks_before_a_dear_one(app: tuple) -> None:
    at = open_page(app, "generation", {Keys.WEIGHTS: UNIFORM})
    assert_clean(at)
    rows = chart_rows(at)
    assert len({r["model"] for r in rows}) == 5 and max(r["step"] for r in rows) == 60  # the defaults, unasked
    at.number_input(key=Keys.GENERATION_STEPS).set_value(200).run()  # 5 models × 200 steps: too dear to run unasked
    assert not at.get("plotly_chart") and "Press the button" in at.info[0].value
    click(at, "Walk towards the target")
    assert_clean(at)
    assert max(r["step"] for r in chart_rows(at)) == 200


def test_generation_walk_matches_the_library_and_shows_every_kept_step(app: tuple) -> None:
    at = open_page(app, "generation", {Keys.WEIGHTS: UNIFORM})
    at.number_input(key=Keys.GENERATION_STEPS).set_value(4)
    at.slider(key=Keys.GENERATION_FRAMES).set_value(2).run()
    assert_clean(at)
    rows = chart_rows(at)
    assert [r["step"] for r in rows] == [0, 2, 4] * 5 and {r["target"] for r in rows} == {"cat"}
    family = load_family(app[1]["SOUPVIZ_FAMILY"])
    split = load_split(app[1]["SOUPVIZ_DATA"], "test")
    first_dog = int((split.labels == 5).nonzero()[0, 0])
    soup = Soup.from_family(family)
    run = towards_class(soup.folded(torch.tensor(UNIFORM, dtype=torch.float64)), split.floats()[first_dog][None], 3,
                        GenerationSettings(steps=4, frame_every=2))
    shown = [r["target_probability"] for r in rows if r["model"] == "current soup"]
    assert shown == pytest.approx(run.target_probability[[0, 2, 4], 0].tolist(), abs=1e-5)
    assert shown[-1] > shown[0]  # the walk raises the target's probability


def test_generation_from_class_seeds_draws_each_chosen_class(app: tuple) -> None:
    at = open_page(app, "generation")
    at.number_input(key=Keys.GENERATION_STEPS).set_value(2)
    at.multiselect(key=Keys.GENERATION_CLASSES).set_value([0, 8])
    at.number_input(key=Keys.GENERATION_FIT_IMAGES).set_value(4).run()
    click(at, "Fit the seeds and generate")
    assert_clean(at)
    rows = chart_rows(at, 1)  # after the walk the page opened on
    assert [(r["model"], r["target"]) for r in rows[:2]] == [("nominal", "airplane"), ("nominal", "ship")]
    assert len(rows) == 5 * 2 and all(0 <= r["target_probability"] <= 1 for r in rows)


SMALL = {Keys.ADAPT_PER_CLASS: 6, Keys.ADAPT_HELDOUT: 2, Keys.ADAPT_K: 1, Keys.ADAPT_STEP: 0.5,
         Keys.ADAPT_GRADIENT_STEPS: 2, Keys.ADAPT_REPEATS: 2}


def set_small(at: AppTest) -> AppTest:
    for key, value in SMALL.items():
        widget = at.select_slider(key=key) if key in (Keys.ADAPT_K, Keys.ADAPT_STEP) else at.number_input(key=key)
        widget.set_value(value)
    return at.run()


def test_adaptation_selects_on_k_images_and_reports_held_out_accuracy(app: tuple) -> None:
    at = set_small(open_page(app, "adaptation"))
    click(at, "Select and report")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 3  # held-out accuracies, composition, k curve
    table = at.table[0].value
    assert list(table["candidate"][:7]) == ["grid-search soup", "gradient-selected soup", "nominal", "L∞ 8/255",
                                           "L2 0.5", "L1 12", "uniform soup"]
    assert table["candidate"][7].startswith("best ingredient (")
    assert set(table["n held out"]) == {20} and set(table["n selection"]) == {10}
    selection = [float(v.rstrip("%")) for v in table["selection accuracy"]]
    assert selection[0] >= max(selection[2:6])  # the grid holds every ingredient
    assert {r["k"] for r in chart_rows(at, 2)} == {1}  # a pool of 4 per class: k = 5, 10, 25 would take it all
    assert "k = 5, 10, 25 left out of the k-curve" in at.warning[0].value
    grid_soup = [float(w) for w in chart_rows(at, 0)[0]["weights"].split()]
    click(at, "Make the grid-search soup current")
    assert at.session_state[Keys.WEIGHTS] == pytest.approx(grid_soup)


def library_run(app: tuple, seed: int, **settings: object) -> AdaptationRun:
    """What `few_shot.adapt_to_shift` chooses for the page's SMALL settings on fog 3."""
    family = load_family(app[1]["SOUPVIZ_FAMILY"])
    shift = corruption_shift(load_split(app[1]["SOUPVIZ_DATA"], "test"), "fog", 3, 6, 2, seed=seed)
    config = AdaptConfig(k=1, step=0.5, gradient_steps=2, ks=K_CURVE, draws=2, **settings)
    return adapt_to_shift(Soup.from_family(family), shift, config, family.labels)


def test_the_page_shows_the_librarys_selection(app: tuple) -> None:
    at = set_small(open_page(app, "adaptation"))
    click(at, "Select and report")
    assert_clean(at)
    run = library_run(app, int(at.session_state[Keys.ADAPT_SEED]))
    shown = chart_rows(at, 0)
    assert [r["candidate"] for r in shown] == [o.candidate for o in run.outcomes]
    exact = [0, *range(2, len(shown))]  # the gradient's last digits vary from run to run on CPU
    assert [shown[i]["weights"] for i in exact] == [run.outcomes[i].row()["weights"] for i in exact]
    assert [shown[i]["accuracy"] for i in exact] == [run.outcomes[i].accuracy for i in exact]
    gradient = [float(w) for w in shown[1]["weights"].split()]
    assert gradient == pytest.approx(run.outcomes[1].weights, abs=1e-4)
    curve = [(r["k"], r["draw"], r["weights"]) for r in chart_rows(at, 2) if r["candidate"] == "grid-search soup"]
    assert curve == [(p["k"], p["draw"], p["weights"]) for p in run.curve if p["candidate"] == "grid-search soup"]


def test_adaptation_opens_on_the_run_kept_with_the_family(app: tuple, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    family = tmp_path / "family"
    shutil.copytree(app[1]["SOUPVIZ_FAMILY"], family)
    monkeypatch.setenv("SOUPVIZ_FAMILY", str(family))
    small = ["--per-class", "6", "--heldout", "2", "--k", "1", "--step", "0.5", "--gradient-steps", "2",
             "--ks", ",".join(map(str, K_CURVE)), "--draws", "2", "--seed", "0"]
    assert main(["adapt", str(family), "--data", app[1]["SOUPVIZ_DATA"], "--corruption", "fog", *small, "--keep"]) == 0
    (kept_file,) = (family / "precomputed").iterdir()
    kept = json.loads(kept_file.read_text())["run"]["outcomes"]
    at = set_small(open_page(app, "adaptation"))
    assert_clean(at)
    assert int(at.session_state[Keys.ADAPT_SEED]) == 0
    shown = chart_rows(at, 0)
    assert [(r["candidate"], r["accuracy"]) for r in shown] == [(o["candidate"], o["accuracy"]) for o in kept]
    assert any(c.value.startswith("Precomputed with the family") for c in at.caption)
    at.number_input(key=Keys.ADAPT_SEED).set_value(1).run()
    assert not at.get("plotly_chart") and at.info[0].value.startswith("Choose the shift")


def test_grid_search_alone_and_batchnorm_from_the_shift(app: tuple) -> None:
    at = set_small(open_page(app, "adaptation"))
    at.radio(key=Keys.ADAPT_METHOD).set_value("grid")
    at.toggle(key=Keys.ADAPT_BN_SHIFT).set_value(True).run()
    click(at, "Select and report")
    assert_clean(at)
    table = at.table[0].value
    assert list(table["candidate"][:2]) == ["grid-search soup", "nominal"]
    assert set(table["BatchNorm"]) == {"BatchNorm statistics re-estimated per soup on 40 unlabelled images of fog 3 "
                                       "(its selection pool; held-out images excluded)."}
    run = library_run(app, int(at.session_state[Keys.ADAPT_SEED]), method="grid", bn_on_shift=True)
    assert [r["weights"] for r in chart_rows(at, 0)] == [o.row()["weights"] for o in run.outcomes]
    assert [r["accuracy"] for r in chart_rows(at, 0)] == [o.accuracy for o in run.outcomes]


def test_adaptation_explains_a_shift_with_too_few_images(app: tuple) -> None:
    at = open_page(app, "adaptation")
    click(at, "Select and report")
    assert not at.exception
    assert "holding out 50 per class leaves none to select with" in at.error[0].value


def test_adaptation_reads_an_uploaded_archive_of_class_folders(app: tuple) -> None:
    at = set_small(open_page(app, "adaptation"))
    at.radio(key=Keys.ADAPT_SOURCE).set_value("upload").run()
    at.file_uploader(key=Keys.ADAPT_UPLOAD).set_value(("photos.zip", b"not an archive", "application/zip")).run()
    click(at, "Select and report")
    assert not at.exception
    assert "photos.zip is not a .zip archive" in at.error[0].value
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("cat", "dog"):
            for i in range(4):
                z.writestr(f"photos/{name}/{i}.png", png(32 + i, 32))
    at.file_uploader(key=Keys.ADAPT_UPLOAD).set_value(("photos.zip", archive.getvalue(), "application/zip")).run()
    click(at, "Select and report")
    assert_clean(at)
    table = at.table[0].value
    assert set(table["shift"]) == {"photos.zip"} and set(table["n held out"]) == {4}


def test_one_soup_is_chosen_for_several_shifts(app: tuple) -> None:
    at = set_small(open_page(app, "adaptation"))
    at.multiselect(key=Keys.ADAPT_SEVERAL).set_value(["gaussian_noise", "contrast"]).run()
    click(at, "Choose one soup for these shifts")
    assert_clean(at)
    table = at.table[-1].value  # the last section's table
    assert set(table["shift"]) == {"gaussian_noise 3", "contrast 3"}
    joint = table[table["candidate"] == "one soup for all shifts"]
    assert len(joint) == 2 and joint["soup"].nunique() == 1
    assert len(table[table["candidate"] == "soup chosen for this shift"]) == 2
