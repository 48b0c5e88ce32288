"""Load test of a shared dashboard server: `streamlit run app.py` on the shipped family, driven by
real Chromium sessions (Playwright, Debian's Chromium) moving the explorer's sliders.

First, a fresh server's first visit of Home with an empty cache (no decoded images, no unpacked
store): the time until its first figure is drawn (a Plotly figure, or Home's heatmap table, which is
coloured on the server and needs no Plotly in the browser) and until the page is idle (`--home-only`
stops there; `--settle` waits for an idle machine before each visit). Then, side by side in one
run: one session alone, then `--sessions` sessions moving sliders at the same time. For each slider
move it measures the time until the page's address holds the new soup and the clean-accuracy tile
is drawn for it (the number a hand waits for), until a robust tile shows the number interpolated
from the stored soups for the new, unmeasured soup (a key press moves a weight by 0.01, off the
stored grid), and until the page is idle (the attacks and corruptions filled in by the background
lane). It counts exceptions shown on any page and samples the server's memory (resident set of the
server process). Prints the ratios and writes bench/results/load.json and load.md.

    python bench/bench_load.py --sessions 5 --moves 6
    python bench/bench_load.py --home-only
    python bench/bench_load.py --home-only --baseline /tmp/before --rounds 3 --settle 0.5  # before/after in turns
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soupviz.data import resolve_source  # noqa: E402
from soupviz.files import atomic_write_json  # noqa: E402
from soupviz.serve.settings import shipped_family_folder  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CHROMIUM = "/usr/bin/chromium"
SLIDERS = '[data-testid="stMain"] [data-testid="stSlider"] input[type="range"]'
IDLE = """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
             && !document.querySelector('[data-testid="stProgress"]')"""
EXCEPTION = '[data-testid="stException"]'
ANSWERED = """(before) => new URLSearchParams(location.search).get('w') !== before
                         && !!document.querySelector('[data-testid="stMetric"]')"""
IDLE_TIMEOUT_S = 300
POLL_S = 0.25  # between looks at the pages: faster looking costs the browsers CPU the server needs
ANSWER_TIMEOUT_S = 60
INTERPOLATED = """(before) => new URLSearchParams(location.search).get('w') !== before
    && [...document.querySelectorAll('[data-testid="stElementContainer"]:not([data-stale="true"])')]
        .some(e => e.textContent.includes('interpolated from'))"""  # the caption under an estimated tile
FIGURE = '[data-testid="stPlotlyChart"] .main-svg, figure.soupviz-heatmap'  # Plotly's, or a heatmap table


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str], log: Path, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not answer within 120 s; see {log}")


def resident_mib(pid: int) -> float:
    """The resident memory of process `pid` in MiB (its VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemorySampler(threading.Thread):
    """Samples the server's resident memory every `every` seconds; `peak` is the largest seen."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop = pid, every, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, resident_mib(self.pid))
            self.stop.wait(self.every)


def soup_in(url: str) -> str:
    return unquote(parse_qs(urlparse(url).query).get("w", [""])[0])


class Session:
    """One browser context on the explorer, moving its sliders and timing the answers."""

    def __init__(self, browser, url: str, index: int) -> None:
        self.page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        self.page.set_default_timeout(300_000)
        self.index, self.url = index, url
        self.answered: list[float] = []
        self.idle: list[float] = []
        self.errors = 0
        self.stuck = 0  # moves after which the page was not idle within IDLE_TIMEOUT_S
        self.lost = 0  # key presses that never changed the soup within ANSWER_TIMEOUT_S
        self.moves_done = 0
        self.interpolated: list[float] = []  # press to a robust tile showing the number interpolated for the new soup
        self.no_estimate = 0  # moves settled without an interpolated tile seen
        self.estimate_pending = False

    def open(self) -> float:
        start = time.perf_counter()
        self.page.goto(f"{self.url}/explorer?w=0.25,0.25,0.25,0.25")
        self.page.locator('[data-testid="stMetric"]').first.wait_for()
        self.page.wait_for_function(IDLE)
        return time.perf_counter() - start

    def press(self, move: int) -> tuple[float, str]:
        """Move one slider by a key press (which and which way follow `move` and the session)."""
        before = soup_in(self.page.url)
        slider = self.page.locator(SLIDERS).nth((move + self.index) % 4)
        slider.focus()
        pressed = time.perf_counter()  # before the press: on a busy machine the press itself returns late
        slider.press("ArrowRight" if (move // 4) % 2 == 0 else "ArrowLeft")
        self.estimate_pending = True
        return pressed, before

    def check(self, pressed: float, before: str) -> bool:
        """One look at the page after a press: records the answer (the address holds a new soup
        and the clean tile is drawn), then idleness (attacks and corruptions in), or a timeout.
        True once this move is settled. Looking costs a few milliseconds, so every session is
        watched at once and one session's slow work never delays another's measurement."""
        waited = time.perf_counter() - pressed
        if self.estimate_pending and self.page.evaluate(INTERPOLATED, before):
            self.interpolated.append(waited)
            self.estimate_pending = False
        if len(self.answered) + self.lost == self.moves_done:
            if self.page.evaluate(ANSWERED, before):
                self.answered.append(waited)
            elif waited > ANSWER_TIMEOUT_S:
                self.lost += 1
                return self.settle()
            return False
        if self.page.evaluate(IDLE):
            self.idle.append(waited)
        elif waited > IDLE_TIMEOUT_S:
            self.stuck += 1
            self.page.screenshot(path=str(RESULTS / f"load-stuck-{self.index}.png"), full_page=True)
        else:
            return False
        self.errors += self.page.locator(EXCEPTION).count()
        return self.settle()

    def settle(self) -> bool:
        """Close the current move, counting it among those without an interpolated tile if none was seen."""
        self.no_estimate += self.estimate_pending
        self.estimate_pending = False
        self.moves_done += 1
        return True

    def reset(self) -> None:
        """Forget the measurements so far (before a new phase)."""
        self.answered, self.idle, self.interpolated = [], [], []
        self.errors = self.stuck = self.lost = self.moves_done = self.no_estimate = 0




def home_first_visit(browser, url: str) -> dict[str, float]:
    """Open Home in a fresh session: seconds until the first figure is drawn, until the page is idle,
    and how many figures it then shows."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(IDLE_TIMEOUT_S * 1000)
    start = time.perf_counter()
    page.goto(url)
    page.locator(FIGURE).first.wait_for()
    figure = time.perf_counter() - start
    page.get_by_text("Data and device").wait_for()
    page.wait_for_function(IDLE)
    idle = time.perf_counter() - start
    figures = page.locator('[data-testid="stPlotlyChart"], figure.soupviz-heatmap').count()
    errors = page.locator(EXCEPTION).count()
    page.context.close()
    return {"first_figure_s": round(figure, 2), "idle_s": round(idle, 2), "figures": figures, "errors": errors}


def run_phase(sessions: list[Session], moves: int) -> None:
    """Every session presses a key, then all are watched together until each move has settled
    (answered and idle, or timed out); `moves` rounds."""
    for move in range(moves):
        pressed = {session: session.press(move) for session in sessions}
        while pressed:
            for session in list(pressed):
                if session.check(*pressed[session]):
                    del pressed[session]
            time.sleep(POLL_S)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median_s": float("nan"), "max_s": float("nan"), "n": 0}
    return {"median_s": round(statistics.median(values), 2), "max_s": round(max(values), 2), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--moves", type=int, default=6, help="slider moves per session in each phase")
    parser.add_argument("--images", type=int, default=200, help="the dashboard's evaluation subset")
    parser.add_argument("--family", default=None, help="default: the shipped family")
    parser.add_argument("--data", default=None, help="default: SOUPVIZ_DATA or a local CIFAR-10 copy")
    parser.add_argument("--home-only", action="store_true", help="only the fresh server's first visit of Home")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="with --home-only: a copy of the code before a change (e.g. `git archive REV`); "
                             "fresh servers of it and of this tree take turns, --rounds each")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: first visits per tree")
    parser.add_argument("--settle", type=float, default=None, metavar="LOAD",
                        help="with --home-only: before each visit, wait (up to 5 min) until the 1-minute load "
                        "average is below LOAD, so back-to-back visits each start on an idle machine")
    parser.add_argument("--visit-after", type=float, default=0.0,
                        help="seconds between the server's first answer and Home's first visit (default: at once, "
                        "as a browser opened by `streamlit run` does)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    cache = Path(tempfile.mkdtemp(prefix="soupviz-load-"))
    env = {**os.environ, "SOUPVIZ_FAMILY": str(args.family or shipped_family_folder()),
           "SOUPVIZ_DATA": str(resolve_source(args.data)), "SOUPVIZ_EVAL_IMAGES": str(args.images),
           "SOUPVIZ_CACHE": str(cache / "cache")}
    if args.home_only and args.baseline:
        return compare_home(env, args.baseline, args.rounds, cache, args.visit_after, args.settle)
    settle(args.settle)
    load_before = os.getloadavg()[0]
    process, url = start_server(env, cache / "streamlit.log")
    time.sleep(args.visit_after)
    sampler = MemorySampler(process.pid)
    sampler.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            home = {**home_first_visit(browser, url), "visit_after_s": args.visit_after}
            if args.home_only:
                browser.close()
                return finish_home_only(home, load_before)
            first = Session(browser, url, 0)
            first_visit = first.open()
            run_phase([first], args.moves)
            alone = {"answered": summary(first.answered), "idle": summary(first.idle), "errors": first.errors,
                     "stuck": first.stuck, "lost": first.lost, "interpolated": summary(first.interpolated),
                     "no_estimate": first.no_estimate}
            alone_median = statistics.median(first.answered) if first.answered else float("nan")
            memory_alone = resident_mib(process.pid)
            crowd = [first] + [Session(browser, url, i) for i in range(1, args.sessions)]
            first.reset()
            opened = [session.open() for session in crowd[1:]]
            run_phase(crowd, args.moves)
            browser.close()
    finally:
        sampler.stop.set()
        memory_end = resident_mib(process.pid) if process.poll() is None else 0.0
        process.terminate()
        process.wait(timeout=30)

    together = [t for s in crowd for t in s.answered]
    together_idle = [t for s in crowd for t in s.idle]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg()[0],
        "family": env["SOUPVIZ_FAMILY"], "images": args.images, "moves_per_session": args.moves,
        "home_first_visit": home, "load_average_before": round(load_before, 2),
        "first_visit_s": round(first_visit, 2), "later_visits_s": [round(t, 2) for t in opened],
        "alone": alone,
        "sessions": args.sessions,
        "together": {"answered": summary(together), "idle": summary(together_idle),
                     "errors": sum(s.errors for s in crowd), "stuck": sum(s.stuck for s in crowd),
                     "lost": sum(s.lost for s in crowd),
                     "interpolated": summary([t for s in crowd for t in s.interpolated]),
                     "no_estimate": sum(s.no_estimate for s in crowd),
                     "answered_per_session_max_s": [round(max(s.answered), 2) if s.answered else None for s in crowd]},
        # below one look at the page, the alone median is not resolved: no ratio rests on it
        "answered_ratio_together_vs_alone": round(statistics.median(together) / alone_median, 2)
        if together and alone_median >= POLL_S else None,
        "memory_mib": {"after_one_session": round(memory_alone), "peak": round(sampler.peak),
                       "end": round(memory_end)},
    }
    print(result, flush=True)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(result, RESULTS / "load.json")
    (RESULTS / "load.md").write_text(markdown(result))
    print(markdown(result))


def settle(below: float | None, limit_s: float = 300.0) -> None:
    """Wait until the 1-minute load average is below `below` (None: do not wait), at most `limit_s`."""
    deadline = time.monotonic() + limit_s
    while below is not None and os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(5)


def compare_home(env: dict[str, str], baseline: Path, rounds: int, cache: Path, visit_after: float = 0.0,
                 settle_below: float | None = None) -> None:
    """Home's first visit on fresh servers with empty caches, of `baseline` (its own shipped family)
    and of this tree in turns (the order swapped every round, so neither always runs on a busier
    machine), each with the load average before it; this tree's median goes to load.json/.md."""
    from playwright.sync_api import sync_playwright

    trees = {"baseline": baseline.resolve(), "this tree": ROOT}
    visits: dict[str, list[dict]] = {name: [] for name in trees}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for turn in range(rounds):
            for name in (list(trees) if turn % 2 == 0 else list(trees)[::-1]):
                root, folder = trees[name], cache / f"{name.replace(' ', '-')}-{turn}"
                family = root / Path(env["SOUPVIZ_FAMILY"]).relative_to(ROOT)
                settle(settle_below)
                load = os.getloadavg()[0]
                process, url = start_server({**env, "SOUPVIZ_FAMILY": str(family), "SOUPVIZ_CACHE": str(folder)},
                                            cache / f"streamlit-{name.replace(' ', '-')}-{turn}.log", root)
                try:
                    time.sleep(visit_after)
                    visits[name].append({**home_first_visit(browser, url), "load_average_before": round(load, 2),
                                         "visit_after_s": visit_after})
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                print(name, visits[name][-1], flush=True)
        browser.close()
    middle = {name: statistics.median(v["first_figure_s"] for v in found) for name, found in visits.items()}
    this = min(visits["this tree"], key=lambda v: abs(v["first_figure_s"] - middle["this tree"]))
    finish_home_only(this, this["load_average_before"],
                     {"rounds": visits, "median_first_figure_s": middle, "baseline": str(baseline)})


def home_lines(home: dict, load_before: float, compared: dict | None = None) -> str:
    after = home.get("visit_after_s", 0.0)
    visit = f"opened {after:g} s after the server first answered" if after else "opened as soon as the server answered"
    if compared:
        runs = {name: ", ".join(f"{v['first_figure_s']} s (load {v['load_average_before']:.1f})" for v in found)
                for name, found in compared["rounds"].items()}
        middle = compared["median_first_figure_s"]
        return (f"- Home, first visit of a fresh server with an empty cache ({visit}), side by side with the code "
                f"before this change in turns: first figure after {middle['this tree']} s (median; "
                f"{runs['this tree']}) against {middle['baseline']} s before ({runs['baseline']}); "
                f"this tree's median run idle after {home['idle_s']} s "
                f"({home['figures']} figures, {home['errors']} exceptions).\n")

    return (f"- Home, first visit of a fresh server with an empty cache ({visit}; load average {load_before:.1f} "
            "before): "
            f"first figure after {home['first_figure_s']} s, idle after {home['idle_s']} s "
            f"({home['figures']} figures, {home['errors']} exceptions).\n")


def finish_home_only(home: dict, load_before: float, compared: dict | None = None) -> None:
    """Print and merge the Home measurement (and a side-by-side comparison, where made) into
    load.json and load.md, keeping the other results."""
    path = RESULTS / "load.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if home.get("visit_after_s"):  # a server started ahead of the visit: kept beside the at-once visit
        result["home_after_start"] = {"home": home, "load_average_before": round(load_before, 2),
                                      "compared": compared}
    else:
        result.pop("home_compared", None)
        result.update({"home_first_visit": home, "load_average_before": round(load_before, 2),
                       **({"home_compared": compared} if compared else {})})
    result["machine"] = machine
    print(result, flush=True)
    atomic_write_json(result, path)
    if "alone" in result:
        (RESULTS / "load.md").write_text(markdown(result))
    else:
        title = "# Dashboard load test (`bench/bench_load.py`)"
        (RESULTS / "load.md").write_text(f"{title}\n\n{all_home_lines(result)}")


def all_home_lines(r: dict) -> str:
    """Home's first-visit lines of `r` (load.json): the visit at once, then one to a server started ahead."""
    lines = home_lines(r["home_first_visit"], r["load_average_before"], r.get("home_compared")) \
        if "home_first_visit" in r else ""
    ahead = r.get("home_after_start")
    return lines + (home_lines(ahead["home"], ahead["load_average_before"], ahead["compared"]) if ahead else "")


def markdown(r: dict) -> str:
    def row(name: str, sessions: int, part: dict) -> str:
        answered, idle = part["answered"], part["idle"]
        estimate = part.get("interpolated", {"median_s": "not measured", "max_s": "not measured"})
        return (f"| {name} | {sessions} | {answered['median_s']} s / {answered['max_s']} s "
                f"({part['lost']} presses lost: no new soup within {ANSWER_TIMEOUT_S} s) "
                f"| {estimate['median_s']} s / {estimate['max_s']} s ({part.get('no_estimate', 0)} moves without one) "
                f"| {idle['median_s']} s / {idle['max_s']} s ({part['stuck']} not idle within {IDLE_TIMEOUT_S} s) "
                f"| {part['errors']} |")

    together = r["together"]
    return f"""# Dashboard load test (`bench/bench_load.py`)

{r['machine']}, load average {r['load_average']:.1f} at the end; shipped family, {r['images']} test images,
{r['moves_per_session']} slider moves per session in each phase.

| | sessions | clean tile answered (median / max) | robust tiles interpolated (median / max) \
| page idle, attacks in (median / max) | exceptions |
|---|---|---|---|---|---|
{row("alone", 1, r["alone"])}
{row("together", r["sessions"], together)}

- Answer time together vs alone (medians): {f"{r['answered_ratio_together_vs_alone']}×"
  if r['answered_ratio_together_vs_alone'] else f"no ratio: the alone median is below one look ({POLL_S} s)"}.
- Worst answer per session together: {', '.join(f'{v} s' for v in together['answered_per_session_max_s'])}.
{all_home_lines(r)}\
- First visit of the explorer (after Home's): {r['first_visit_s']} s; later sessions' first visits: \
{', '.join(f'{v} s' for v in r['later_visits_s'])}.
- Server memory: {r['memory_mib']['after_one_session']} MiB with one session, peak {r['memory_mib']['peak']} MiB, \
{r['memory_mib']['end']} MiB at the end.
"""


if __name__ == "__main__":
    main()
