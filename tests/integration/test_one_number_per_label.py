"""On the shipped family, the uniform soup's L1 12 reads the same number under the same label on
Home, the Attack heatmaps and the explorer, with the attack that made it and n on the page's face:
the stored AutoAttack record speaks, not the PGD-10 preview stored beside it, nor the preview the
explorer measures live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.checkpoints.families import load_family
from soupviz.results.grids import family_records, family_store
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.speaking import speaking_record
from soupviz.serve.settings import FAMILIES_DIR
from tests.unit.present.test_heatmap_html import parsed

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = FAMILIES_DIR / "cifar10-preact_resnet_small"
DATA = ROOT.parent / "shared" / "data" / "cifar10"
UNIFORM = [0.25] * 4
L1 = MetricSpec("attack", threat="l1")
ATTACK = "AutoAttack (standard: APGD-CE, APGD-T)"


@pytest.fixture
def shipped_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not (DATA / "test").is_dir():
        pytest.skip(f"CIFAR-10 is not at {DATA}")
    for key, value in {"SOUPVIZ_FAMILY": str(SHIPPED), "SOUPVIZ_DATA": str(DATA), "SOUPVIZ_CACHE": str(tmp_path),
                       "SOUPVIZ_EVAL_IMAGES": "10", "SOUPVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)


def expected() -> str:
    family = load_family(SHIPPED)
    records = family_records(family_store(SHIPPED), family.hashes)
    mine = [r for r in records if r.weights == UNIFORM and r.kind == "attack" and r.metric == L1.column]
    assert {r.measure.attack for r in mine} >= {"pgd", "autoattack-apgd"}  # a preview and AutoAttack stored
    chosen = speaking_record(mine)
    assert chosen.measure.attack == "autoattack-apgd" and chosen.n == 500
    return f"{100 * chosen.accuracy:.1f}"


def heatmap_cell(at: AppTest) -> tuple[str, str]:
    """The uniform soup's L1 12 cell of the page's stored heatmap (a Plotly figure, or Home's table),
    and the figure's footnote (the whole table's text)."""
    for table in at.get("html"):
        if "soupviz-heatmap" in table.proto.body:
            rows = [[text for text, _, _ in row] for row in parsed(table.proto.body)]
            return next(row for row in rows if row[0] == "uniform soup")[rows[0].index("L1 12 ≤")], table.proto.body
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        if figure["layout"]["meta"]["soupviz"]["kind"] == "heatmap":
            heat = figure["data"][0]
            cell = heat["text"][heat["y"].index("uniform soup")][heat["x"].index("L1 12 ≤")]
            return cell, figure["layout"]["xaxis"]["title"]["text"]
    raise AssertionError("no heatmap on the page")


def open_app(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600)
    at.query_params.update(query or {})
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_uniform_soups_l1_reads_the_same_on_home_heatmaps_and_explorer(shipped_env: None) -> None:
    number = expected()
    for page in (None, "pages/heatmaps.py"):
        cell, footnote = heatmap_cell(open_app(page))
        assert cell == number
        assert f"L1 12: by {ATTACK}, n=500" in footnote
    at = open_app("pages/explorer.py", {"w": "0.25,0.25,0.25,0.25"})
    job = at.session_state[Keys.LANE].lane.job
    assert job.ended.wait(600) and job.finished
    at.run()  # the live PGD-10 preview on 10 images is in: the stronger stored record still speaks
    tile = next(m for m in at.metric if m.label == "L1 12 ≤")
    assert tile.value == f"{number}%"
    assert f"by {ATTACK} · n=500 · stored" in " ".join(c.value for c in at.caption)
