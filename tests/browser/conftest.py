"""Fixtures for the browser test: `streamlit run app.py` on a free loopback port, pointed at the
test family and data, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 60

_spec = importlib.util.spec_from_file_location("soupviz_app_setup", ROOT / "tests" / "app" / "_setup.py")
_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_setup)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {timeout} s")


@dataclass(frozen=True)
class Dashboard:
    url: str
    env: dict[str, str]  # what the server was started with: family, data, budget


@contextmanager
def streamlit_server(env: dict[str, str], log_path: Path, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """`streamlit run app.py` on a free loopback port with `env`, its output in `log_path`; yields
    its address once healthy. Stopped on leaving: asked to end, killed if still there 10 s later
    (a server busy measuring in the background can take longer on a loaded machine)."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A headless dashboard on the test family, freshly started; stopped after the session."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium: install Debian's chromium "
                    "(apt-get install chromium) to run the browser test")
    pytest.importorskip("playwright.sync_api",
                        reason="the playwright Python package is missing: pip install -e '.[dev]'")
    root = tmp_path_factory.mktemp("browser")
    app_env = _setup.make_app_environment(root)
    with streamlit_server({**os.environ, **app_env}, root / "streamlit.log") as url:
        yield Dashboard(url, app_env)


@pytest.fixture(scope="session")
def chromium(dashboard: Dashboard) -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: object) -> object:
    """A page in a fresh browser context: a session of its own on the dashboard."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    return page


@pytest.fixture(scope="session")
def browser_page(chromium: object) -> Iterator[object]:
    """A Playwright page in Debian's Chromium, shared by the session's tests."""
    page = new_page(chromium)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def open_session(chromium: object) -> Iterator[Callable[[], object]]:
    """Opens pages with a session of their own each; all closed after the test."""
    pages = []

    def open_page() -> object:
        pages.append(new_page(chromium))
        return pages[-1]

    try:
        yield open_page
    finally:
        for page in pages:
            page.context.close()
