"""AppTest specification of the Merge lab page: on a family whose store holds layer swaps and
transfer attacks it draws both heatmaps and the paired transfer table from the store; on one with
no store it says how to fill one."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.checkpoints.families import load_family
from soupviz.cli import main
from soupviz.evaluate.layer_swaps import MIX_CHOICE, SOUP_CHOICE, family_groups

APP = str(Path(__file__).resolve().parents[2] / "dashboard.py")
PAGE = "pages/merges.py"
_spec = importlib.util.spec_from_file_location("soupviz_root_conftest",
                                               Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)


def open_merge_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at.switch_page(PAGE).run()


@pytest.fixture
def stored_family(app_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = _root.make_family_folder(tmp_path / "family", spread=1.0)
    store = str(folder / "results.sqlite")
    common = ["--data", app_env["SOUPVIZ_DATA"], "--images", "8", "--store", store]
    assert main(["eval", str(folder), "--swaps", "--metrics", "clean", *common]) == 0
    white = "linf:8/255:pgd:1"
    assert main(["eval", str(folder), "--weights", "1,0,0,0", "--weights", "0.25,0.25,0.25,0.25",
                 "--metrics", f"{white},{white}@test-linf,{white}@test-l2", *common]) == 0
    monkeypatch.setenv("SOUPVIZ_FAMILY", str(folder))
    return folder


def test_the_merge_lab_draws_swaps_and_transfers_from_the_store(stored_family):
    at = open_merge_page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Merge lab"
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert "Where does robustness live?" in charts[0].proto.spec
    columns = json.loads(charts[1].proto.spec)["data"][0]["x"]  # sources by their labels, not checkpoint names
    assert "L∞ 8/255 transfer from L2 0.5 ≤" in columns and not any("test-" in c for c in columns)
    hovers = " ".join(h for row in json.loads(charts[1].proto.spec)["data"][0]["hovertext"] for h in row)
    assert "transferred from the L2 0.5 ingredient" in hovers and "test-" not in hovers  # the stored text says test-l2
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 4  # 2 soups x 2 sources
    assert any("Uniform soup, L∞ 8/255 transfer from L∞ 8/255:" in m.value for m in at.markdown)


def test_the_merge_lab_explains_an_empty_store(app_env):
    at = open_merge_page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.info and "soupviz" in at.info[0].value


def test_the_merge_lab_measures_a_merge_live(app_env):
    at = open_merge_page()
    at.button[[b.label for b in at.button].index("Evaluate merge")].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "layer-wise soup (layer2 (0, 0, 0, 1))" in at.code[0].value and "clean" in at.code[0].value
    at.radio(key="merge_kind").set_value("ties").run()
    at.button[[b.label for b in at.button].index("Evaluate merge")].click().run()
    assert "TIES merge (top 20% of each task vector" in at.code[0].value
    at.radio(key="merge_kind").set_value("soup").run()
    groups = family_groups(load_family(app_env["SOUPVIZ_FAMILY"]))
    assert sorted(s.label for s in at.selectbox if s.key in map(Keys.merge_group, groups)) == sorted(groups)


def test_the_merge_lab_sets_each_block_group_to_the_soup_an_ingredient_or_a_mix(app_env):
    at = open_merge_page()
    at.selectbox(key=Keys.merge_group("layer1")).set_value("test-l2").run()
    at.selectbox(key=Keys.merge_group("layer2")).set_value(SOUP_CHOICE).run()
    at.selectbox(key=Keys.merge_group("head")).set_value(MIX_CHOICE).run()
    at.text_input(key=Keys.merge_group("head", mix=True)).set_value("0.5:0.5:0:0").run()
    at.button[[b.label for b in at.button].index("Evaluate merge")].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "layer-wise soup (layer1 (0, 0, 1, 0); head (0.5, 0.5, 0, 0))" in at.code[0].value
    for group in ("layer1", "head"):
        at.selectbox(key=Keys.merge_group(group)).set_value(SOUP_CHOICE).run()
    assert "plain soup" in at.error[0].value  # nothing differs from the soup: refused, never measured as a merge
