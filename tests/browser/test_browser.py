"""End to end in a real browser: a shared link opens the explorer on its soup, every page
renders, a slider moved with the keyboard and a click on the ternary map change the numbers and
the address, downloads carry the figure, and no Streamlit exception box ever appears.
Screenshots go to test-output/browser/ (git-ignored)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from soupviz.checkpoints.families import load_family
from soupviz.data import load_split
from soupviz.evaluate.evaluator import Evaluator
from soupviz.results.metric_specs import MetricSpec
from soupviz.soups.links import weights_to_query
from soupviz.soups.weights import grid_weights

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing: "
                             "pip install -e '.[dev]'").expect

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"  # git-ignored
EXCEPTION = '[data-testid="stException"]'
SLIDERS = '[data-testid="stMain"] [data-testid="stSlider"] input[type="range"]'


IDLE_MS = 1_000  # Streamlit's status widget shows its running icon only 500 ms after a run starts (StatusWidget)
_IDLE_WAITS = itertools.count()  # each wait_idle call times its own quiet spell


def wait_idle(page) -> None:
    """Wait until the script run is over: no 'Running…' status, no progress bar, no waiting tile,
    for `IDLE_MS` without a break. A run that has just started shows no running icon for its first
    500 ms, so a single look can call a page idle while the run that changed its address has yet to
    redraw the tiles below (the clean tile once read an earlier soup's number that way)."""
    page.wait_for_function(
        """(since) => {
            const busy = document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
                || document.querySelector('[data-testid="stProgress"]')
                || document.body.innerText.includes('waiting…');
            window.__idleSince = window.__idleSince || {};
            if (busy) { delete window.__idleSince[since.token]; return false; }
            window.__idleSince[since.token] ??= performance.now();
            return performance.now() - window.__idleSince[since.token] >= since.ms;
        }""",
        arg={"token": next(_IDLE_WAITS), "ms": IDLE_MS}, polling=100, timeout=120_000,
    )


def metric_tile(page, label: str):
    """The value of the metric tile labelled `label`."""
    tile = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True)).first
    return tile.locator('[data-testid="stMetricValue"]')


def clean_accuracy(env: dict[str, str], weights: list[float]) -> str:
    """What the library says the explorer must show for `weights`."""
    images = load_split(env["SOUPVIZ_DATA"], "test").subset(int(env["SOUPVIZ_EVAL_IMAGES"]), 0)
    evaluator = Evaluator(load_family(env["SOUPVIZ_FAMILY"]), images, device="cpu")
    record = evaluator.evaluate([weights], [MetricSpec("clean")])[0]
    return f"{100 * record.accuracy:.1f}%"


def no_exceptions(page) -> None:
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()


def screenshot(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so the viewport
    is grown to the content's height first."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMainBlockContainer]').scrollHeight + 120")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 8000))})
    page.wait_for_timeout(500)  # let charts and tables re-layout at the new size
    page.screenshot(path=str(OUTPUT / f"{name}.png"))
    page.set_viewport_size(size)


def go_to(page, link: str, heading: str) -> None:
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=heading).first.wait_for()
    wait_idle(page)
    no_exceptions(page)


def test_every_page_a_link_a_slider_and_a_click_in_chromium(browser_page, dashboard) -> None:
    page, env = browser_page, dashboard.env
    OUTPUT.mkdir(parents=True, exist_ok=True)

    # A shared link is the fresh server's first visit: it must still go through dashboard.py.
    page.goto(f"{dashboard.url}/explorer?w=0,0,1,0")
    page.get_by_role("heading", name="Soup explorer").wait_for()
    expect(page.get_by_text("Paper style")).to_be_visible()  # dashboard.py's sidebar, not the legacy page list
    expect(metric_tile(page, "clean")).to_have_text(clean_accuracy(env, [0, 0, 1, 0]), timeout=60_000)
    assert [s.get_attribute("value") for s in page.locator(SLIDERS).all()[:4]] == ["0", "0", "1", "0"]
    wait_idle(page)
    no_exceptions(page)

    go_to(page, "Home", "Ingredients of")
    page.get_by_role("button", name=re.compile("^Measure on 40 test images")).click()
    page.get_by_text("Brackets: 95% Wilson intervals", exact=False).wait_for()
    wait_idle(page)
    no_exceptions(page)
    screenshot(page, "home")

    go_to(page, "Soup explorer", "Soup explorer")
    thumb = page.locator(SLIDERS).first
    thumb.focus()
    thumb.press("End")  # the nominal ingredient's weight to 1: the others go to 0
    # the test images are labelled by the nominal ingredient: the one-hot soup scores 100%
    expect(metric_tile(page, "clean")).to_have_text("100.0%", timeout=60_000)
    expect(page).to_have_url(re.compile(r"[?&]w=1(%2C|,)0(%2C|,)0(%2C|,)0"))
    wait_idle(page)
    no_exceptions(page)
    screenshot(page, "explorer-after-slider")

    point = 3  # a grid soup away from the current one (which is starred on top of its point)
    expected = weights_to_query(grid_weights(4, 0.2, subset=[0, 1, 2])[point])
    marker = page.locator('[data-testid="stPlotlyChart"]').first.locator("g.trace path.point").nth(point)
    marker.scroll_into_view_if_needed()
    box = marker.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page).to_have_url(re.compile(r"w=" + re.escape(expected).replace(",", "(%2C|,)")), timeout=60_000)
    expect(metric_tile(page, "clean")).to_have_text(clean_accuracy(env, [float(w) for w in expected.split(",")]))
    wait_idle(page)
    no_exceptions(page)
    screenshot(page, "explorer-after-click")

    signatures = {"CSV": b"weights,", "PNG": b"\x89PNG", "SVG": b"<svg", "PDF": b"%PDF"}
    buttons = page.locator('[data-testid="stDownloadButton"] button').filter(visible=True)
    for label, signature in signatures.items():  # the ternary map's downloads
        with page.expect_download(timeout=60_000) as info:
            buttons.filter(has_text=label).first.click()
        download = info.value
        assert download.suggested_filename.startswith(f"ternary_family_w{expected.replace(',', '-')}_clean.")
        assert Path(download.path()).read_bytes()[:8].startswith(signature), label

    for name, slug in (("Attack heatmaps", "heatmaps"), ("Trade-off", "tradeoff")):
        go_to(page, name, name)
        page.get_by_role("button", name="Evaluate").click()
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        wait_idle(page)
        no_exceptions(page)
        screenshot(page, slug)
    for name, heading in (("Saliency", "Saliency"), ("Generation", "Generation"),
                          ("Few-shot adaptation", "Few-shot soup adaptation")):
        go_to(page, name, heading)
        screenshot(page, name.lower().replace(" ", "-"))
