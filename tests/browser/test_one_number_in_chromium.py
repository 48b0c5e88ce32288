"""In a real Chromium on the shipped family: Home, the Attack heatmaps and the explorer show the
uniform soup's L1 12 as the same number under the same label, with the attack that made it and n
on the page's face (AutoAttack's stored record on 500 images, not the PGD-10 preview beside it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from soupviz.checkpoints.families import load_family
from soupviz.results.grids import family_records, family_store
from soupviz.results.speaking import speaking_record
from soupviz.serve.settings import FAMILIES_DIR
from tests.browser.conftest import CHROMIUM, ROOT, new_page, streamlit_server

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing: "
                             "pip install -e '.[dev]'").expect

SHIPPED = FAMILIES_DIR / "cifar10-preact_resnet_small"
DATA = ROOT.parent / "shared" / "data" / "cifar10"
ATTACK = "AutoAttack (standard: APGD-CE, APGD-T)"
SLOW = 240_000  # ms: the first open unpacks and reads the shipped store


@pytest.fixture(scope="module")
def shipped_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists() or not (DATA / "test").is_dir():
        pytest.skip("needs Debian's Chromium and CIFAR-10 beside the project")
    root = tmp_path_factory.mktemp("shipped")
    env = {**os.environ, "SOUPVIZ_FAMILY": str(SHIPPED), "SOUPVIZ_DATA": str(DATA), "SOUPVIZ_CACHE": str(root),
           "SOUPVIZ_EVAL_IMAGES": "10", "SOUPVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    with streamlit_server(env, root / "streamlit.log", 60) as url:
        yield url


def uniform_l1() -> str:
    family = load_family(SHIPPED)
    records = family_records(family_store(SHIPPED), family.hashes)
    chosen = speaking_record(r for r in records if r.weights == [0.25] * 4 and r.kind == "attack"
                             and r.metric == "L1 12")
    assert chosen.measure.attack == "autoattack-apgd" and chosen.n == 500
    return f"{100 * chosen.accuracy:.1f}"


def test_the_uniform_soups_l1_is_one_number_under_one_label_in_chromium(shipped_url: str, chromium: object) -> None:
    number = uniform_l1()
    page = new_page(chromium)
    page.set_default_timeout(SLOW)
    try:
        page.goto(shipped_url)  # Home: the heatmap as a table coloured on the server
        table = page.locator("figure.soupviz-heatmap").filter(has_text="per soup and metric")
        expect(table.get_by_text(f"L1 12: by {ATTACK}, n=500")).to_have_count(1, timeout=SLOW)
        column = table.locator("thead th").all_text_contents().index("L1 12 ≤")
        uniform = table.locator("tbody tr").filter(has=page.locator("th", has_text="uniform soup"))
        assert uniform.locator("th, td").nth(column).text_content() == number
        page.goto(shipped_url + "/heatmaps")
        chart = page.locator(".js-plotly-plot").filter(has_text="per soup and metric").first
        expect(chart.locator("text", has_text=f"L1 12: by {ATTACK}, n=500")).to_have_count(1, timeout=SLOW)
        expect(chart.locator("text", has_text="L1 12 ≤").first).to_be_visible()
        assert number in chart.locator("text").all_text_contents()
        page.goto(f"{shipped_url}/explorer?w=0.25,0.25,0.25,0.25")
        tile = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text("L1 12 ≤", exact=True))
        expect(tile.locator('[data-testid="stMetricValue"]')).to_have_text(f"{number}%", timeout=SLOW)
        expect(page.get_by_text(f"by {ATTACK} · n=500 · stored", exact=False).first).to_be_visible()
    finally:
        page.context.close()
