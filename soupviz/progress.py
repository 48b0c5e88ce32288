"""The shapes of progress report: every long-running library function takes a `Progress` (work
units done of a total, a message, and a running estimate where there is one) passed to a
`ProgressCallback`; an attack, inside one unit of that work, tells a bare share done to a
`ShareCallback`. The CLI prints them; the pages draw them as progress bars. A part of a task
reports through `within` (or `share_within`), which scales its reports into the whole's."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import monotonic
from typing import Any


@dataclass(frozen=True)
class Progress:
    """A progress report: `done` of `total` work units (a fraction of a unit while a long one
    runs, e.g. an attack on one batch), what is being done, and the running estimate if any
    (a `records.Record` while an evaluation's batches finish, a training epoch's stats once it
    is saved)."""

    done: float
    total: int
    message: str = ""
    partial: Any = None

    @property
    def fraction(self) -> float:
        """How much is done, in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0

    @classmethod
    def at(cls, fraction: float, message: str = "") -> Progress:
        """A report of work measured only as a share done (steps of unequal cost), in permille."""
        return cls(round(PERMILLE * min(1.0, max(0.0, fraction))), PERMILLE, message)


PERMILLE = 1000
REDRAW_S = 0.1  # a terminal bar's fastest redraw
LOG_REDRAW_S = 60.0  # ... when stderr is a log file, which keeps every redraw
ProgressCallback = Callable[[Progress], None]
ShareCallback = Callable[[float], None]  # told the share of a piece of work done, in [0, 1]


def silent(progress: Progress) -> None:
    """A `ProgressCallback` that ignores progress."""


def within(report: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """The callback of one part of a larger task, which takes the share [start, end] of it: the
    part's reports become reports of the whole, with the part's messages."""

    def part(progress: Progress) -> None:
        report(Progress.at(start + (end - start) * progress.fraction, progress.message))

    return part


def share_within(report: ShareCallback, start: float, size: float) -> ShareCallback:
    """The `ShareCallback` of one part of a piece of work that takes the share [start, start + size]
    of it: the part's shares (clipped to [0, 1]) become shares of the whole."""
    return lambda share: report(start + size * min(1.0, max(0.0, share)))


@contextlib.contextmanager
def terminal_bar(
    description: str, unit: str = "step", echo: Callable[[Progress], str | None] | None = None
) -> Iterator[ProgressCallback]:
    """A terminal progress bar (tqdm, with its ETA) and the callback that moves it: how the CLI
    shows every long command's progress.

    The bar is redrawn at most every `REDRAW_S` seconds (every `LOG_REDRAW_S` when stderr is a
    log file, not a terminal), and when the work is done. `echo` picks the reports whose text is
    written as a line above the bar (e.g. a summary after each training epoch; None: none).
    """
    from tqdm import tqdm

    interval = REDRAW_S if sys.stderr.isatty() else LOG_REDRAW_S
    drawn = -math.inf
    with tqdm(total=1, unit=unit, desc=description, mininterval=interval, dynamic_ncols=True) as bar:

        def report(progress: Progress) -> None:
            nonlocal drawn
            bar.total, bar.n = progress.total, round(progress.done, 2)
            bar.set_postfix_str(progress.message, refresh=False)
            line = echo(progress) if echo is not None else None
            if line:
                bar.write(line)
            if monotonic() - drawn >= interval or progress.done >= progress.total:
                bar.refresh()
                drawn = monotonic()

        yield report
