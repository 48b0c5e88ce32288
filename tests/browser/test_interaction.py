"""The explorer keeps up with the hand, in Debian's Chromium: a burst of key presses on a slider
loses none, the slow tiles fill in behind the clean one, and two sessions moving sliders at once
each see their own soup's numbers."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from test_browser import SLIDERS, clean_accuracy, metric_tile, no_exceptions, wait_idle

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing: "
                             "pip install -e '.[dev]'").expect


def open_explorer(page, url: str, weights: str) -> None:
    page.goto(f"{url}/explorer?w={weights}")
    page.get_by_role("heading", name="Soup explorer").wait_for()
    wait_idle(page)
    no_exceptions(page)


def slider_values(page) -> list[float]:
    """What the sliders show (to their 0.01 step)."""
    return [float(s.input_value()) for s in page.locator(SLIDERS).all()[:4]]


def settled(page) -> list[float]:
    """The soup once the page is idle, from its address (exact, where the sliders round to their
    step), checked to sum to 1 and to be what the sliders show."""
    wait_idle(page)
    no_exceptions(page)
    weights = [float(w) for w in unquote(parse_qs(urlparse(page.url).query)["w"][0]).split(",")]
    assert sum(weights) == pytest.approx(1.0, abs=1e-6), weights
    assert slider_values(page) == pytest.approx(weights, abs=0.005 + 1e-9)
    return weights


def test_a_burst_of_key_presses_moves_the_slider_by_all_of_them(open_session, dashboard) -> None:
    page, env = open_session(), dashboard.env
    open_explorer(page, dashboard.url, "0.25,0.25,0.25,0.25")
    thumb = page.locator(SLIDERS).first
    thumb.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight", delay=20)
    expect(page).to_have_url(re.compile(r"[?&]w=0\.35(%2C|,)"), timeout=60_000)
    weights = settled(page)
    assert weights[0] == pytest.approx(0.35) and slider_values(page)[0] == pytest.approx(0.35)
    expect(metric_tile(page, "clean")).to_have_text(clean_accuracy(env, weights))
    for label in ("L∞ 8/255 ≤", "L2 0.5 ≤", "L1 12 ≤"):  # filled in from the background
        expect(metric_tile(page, label)).to_have_text(re.compile(r"^\d+\.\d%$"))


def test_two_sessions_moving_sliders_at_once_keep_their_own_soups(open_session, dashboard) -> None:
    """Both sessions rerun at once; each settles on a soup its own sliders show, with that soup's
    numbers, and neither takes the other's."""
    env, first, second = dashboard.env, open_session(), open_session()
    open_explorer(first, dashboard.url, "0.25,0.25,0.25,0.25")
    open_explorer(second, dashboard.url, "0.25,0.25,0.25,0.25")
    for key in ("End", "ArrowLeft"):
        before = [first.url, second.url]
        for page, index in ((first, 0), (second, 2)):
            page.locator(SLIDERS).nth(index).focus()
            page.keyboard.press(key)
        for page, url in zip((first, second), before, strict=True):
            expect(page).not_to_have_url(url, timeout=60_000)
        soups = [settled(first), settled(second)]
        assert soups[0] != soups[1]
        if key == "End":
            assert soups == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
        for page, weights in zip((first, second), soups, strict=True):
            expect(metric_tile(page, "clean")).to_have_text(clean_accuracy(env, weights))
    assert settled(first)[0] == pytest.approx(0.99) and settled(second)[2] == pytest.approx(0.99)
