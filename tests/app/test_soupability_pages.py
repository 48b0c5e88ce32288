"""AppTest specifications of soupability and foreign checkpoints in the dashboard: the Home page
shows the library's barrier matrix and, beside a pair of ingredients, the path to the shipped
unrelated network; .pt uploads and folders of foreign files open as families,
and the explorer warns before its sliders mix ingredients that share no base."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import load_checkpoint, load_family, save_checkpoint
from soupviz.data import load_split
from soupviz.evaluate.kept_soupability import renamed
from soupviz.evaluate.soupability import SHIPPED_OUTSIDER, measure_against, measure_soupability
from soupviz.models.registry import create_model
from soupviz.present.labels import ingredient_titles

APP = str(Path(__file__).resolve().parents[2] / "dashboard.py")


def open_home() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def foreign_folder(folder: Path) -> Path:
    """Two independently initialised models saved as a RobustBench zoo would (plain .pt state dicts)."""
    folder.mkdir(parents=True)
    for seed in (0, 1):
        torch.manual_seed(seed)
        state = {f"module.{k}": v for k, v in create_model("preact_resnet_small").state_dict().items()}
        stats = {"module.mu": torch.zeros(1, 3, 1, 1), "module.sigma": torch.ones(1, 3, 1, 1)}  # never guessed
        torch.save({**state, **stats}, folder / f"zoo{seed}.pt")
    return folder


def test_home_shows_the_librarys_barrier_matrix_and_verdict(app_env: dict) -> None:
    at = open_home()
    assert not at.exception and not at.error
    matrix = at.dataframe[1].value
    family = load_family(app_env["SOUPVIZ_FAMILY"])
    images = load_split(app_env["SOUPVIZ_DATA"], "test").subset(int(app_env["SOUPVIZ_EVAL_IMAGES"]), 0)
    titles = dict(zip(family.names, ingredient_titles(family), strict=True))  # what a person reads, not 'linf'
    expected = renamed(measure_soupability(family, images, points=7), titles).matrix()
    assert list(matrix["ingredient"]) == ingredient_titles(family)
    assert matrix.to_dict("records") == expected
    verdicts = [e.value for e in (*at.success, *at.warning)]
    assert any(text.startswith(("Every pair soups well", "Do not mix", "Cannot tell")) for text in verdicts)


def test_uploaded_pt_files_open_as_a_family(app_env: dict, tmp_path: Path) -> None:
    folder = foreign_folder(tmp_path / "zoo")
    at = open_home()
    at.radio(key=Keys.FAMILY_SOURCE).set_value("upload").run()
    files = [(p.name, p.read_bytes(), "application/octet-stream") for p in sorted(folder.iterdir())]
    at.file_uploader(key=Keys.UPLOADS).set_value(files).run()
    assert not at.exception and not at.error
    assert at.subheader[-1].value == "Ingredients of uploaded"
    assert len(at.dataframe[0].value) == 2
    assert any("no shared base for" in w.value and "zoo0" in w.value and "zoo1" in w.value for w in at.warning)


def test_explorer_warns_before_mixing_models_without_a_shared_base(app_env: dict, tmp_path: Path) -> None:
    folder = foreign_folder(tmp_path / "zoo")
    at = open_home()
    at.radio(key=Keys.FAMILY_SOURCE).set_value("folder").run()
    at.text_input(key=Keys.FAMILY_PATH).set_value(str(folder)).run()
    assert at.subheader[-1].value == "Ingredients of zoo"
    at.switch_page("pages/explorer.py").run()
    assert not at.exception and not at.error
    assert "no shared base for zoo0–zoo1" in at.warning[0].value


def test_the_test_familys_explorer_shows_no_lineage_warning(app_env: dict) -> None:
    at = open_home()
    at.switch_page("pages/explorer.py").run()
    assert not any("shared base" in w.value for w in at.warning)


@pytest.fixture
def shipped_arch_env(app_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """`app_env` with its family rebuilt on the shipped architecture, which a path to the shipped
    unrelated network needs (the test family's architecture is the test-only one)."""
    spec = importlib.util.spec_from_file_location("soupviz_app_setup", Path(__file__).with_name("_setup.py"))
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    arch = load_checkpoint(SHIPPED_OUTSIDER).card.arch
    folder = setup._root_conftest().make_family_folder(tmp_path / "family", arch=arch, spread=1.0)
    changed = {"SOUPVIZ_FAMILY": str(folder), "SOUPVIZ_EVAL_IMAGES": "16"}  # the shipped architecture: 15x the compute
    for key, value in changed.items():
        monkeypatch.setenv(key, value)
    return {**app_env, **changed}


def test_home_shows_an_ingredient_pair_beside_a_path_to_the_unrelated_network(shipped_arch_env: dict) -> None:
    app_env = shipped_arch_env
    at = open_home()
    assert not at.exception and not at.error
    family = load_family(app_env["SOUPVIZ_FAMILY"])
    images = load_split(app_env["SOUPVIZ_DATA"], "test").subset(int(app_env["SOUPVIZ_EVAL_IMAGES"]), 0)
    expected = measure_against(family, load_checkpoint(SHIPPED_OUTSIDER), images, points=7)
    titles = dict(zip(family.names, ingredient_titles(family), strict=True))
    nominal = titles[next(i.name for i in family.ingredients if i.card.threat == "none")]
    assert at.selectbox(key=Keys.PATHS_PARTNER).value == nominal
    pair = at.selectbox(key=Keys.PATHS_PAIR).value
    assert nominal in pair.split(" → ")
    shown = [e.value for e in (*at.warning, *at.info)]
    assert renamed(expected, titles).outsider_verdict() in shown

    first, second, last = (titles[family.names[i]] for i in (1, 2, -1))
    at.selectbox(key=Keys.PATHS_PARTNER).set_value(last).run()
    at.selectbox(key=Keys.PATHS_PAIR).set_value(f"{first} → {second}").run()
    assert not at.exception
    chart = next(c for c in at.get("plotly_chart") if Keys.PATHS_CHART in str(c.proto.id))
    rows = json.loads(chart.proto.spec)["layout"]["meta"]["soupviz"]["rows"]
    drawn = {(row["a"], row["b"]) for row in rows}
    assert drawn == {(first, second), (last, expected.outsider)}
    path = expected.pair(family.names[-1], expected.outsider)
    assert [row["accuracy"] for row in rows if row["b"] == expected.outsider] == pytest.approx(path.accuracies)
    assert all(row["images"] == len(images) for row in rows)


def test_home_explains_when_the_unrelated_network_cannot_be_compared(app_env: dict, tmp_path: Path) -> None:
    folder = tmp_path / "clash"
    for seed, name in enumerate(("unrelated", "other")):
        torch.manual_seed(seed)
        save_checkpoint(create_model("preact_resnet_small").state_dict(),
                        Card(name=name, arch="preact_resnet_small", threat="none"), folder)
    at = open_home()
    at.radio(key=Keys.FAMILY_SOURCE).set_value("folder").run()
    at.text_input(key=Keys.FAMILY_PATH).set_value(str(folder)).run()
    assert not at.exception and at.subheader[-1].value == "Ingredients of clash"
    assert any(c.value.startswith("No comparison with the shipped unrelated network") and "rename it" in c.value
               for c in at.caption)


def test_home_opens_on_the_report_kept_by_soupviz_check_without_measuring(
    shipped_arch_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import pages._soupability as panel
    from soupviz.cli import main

    app_env = shipped_arch_env
    folder = shutil.copytree(app_env["SOUPVIZ_FAMILY"], tmp_path / "kept")
    images = int(app_env["SOUPVIZ_EVAL_IMAGES"])  # the page measures on min(64, the sidebar's images)
    assert main(["check", str(folder), "--against", str(SHIPPED_OUTSIDER), "--images", str(images),
                 "--data", app_env["SOUPVIZ_DATA"], "--keep"]) == 0
    monkeypatch.setenv("SOUPVIZ_FAMILY", str(folder))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Home measured although a kept report matches")

    monkeypatch.setattr(panel, "measure_soupability", refuse)
    monkeypatch.setattr(panel, "measure_against", refuse)
    at = open_home()
    assert not at.exception and not at.error
    family = load_family(folder)
    subset = load_split(app_env["SOUPVIZ_DATA"], "test").subset(images, 0)
    expected = measure_against(family, load_checkpoint(SHIPPED_OUTSIDER), subset, points=7)
    titles = dict(zip(family.names, ingredient_titles(family), strict=True))
    assert at.dataframe[1].value.to_dict("records") == renamed(measure_soupability(family, subset, points=7),
                                                               titles).matrix()
    assert renamed(expected, titles).outsider_verdict() in [i.value for i in at.info]
    assert any(c.value.startswith(f"Precomputed on {images} CIFAR-10 test images, seed 0 by `soupviz ")
               for c in at.caption)
