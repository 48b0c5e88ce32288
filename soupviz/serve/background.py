"""Evaluations that run behind a page: each dashboard session has a `Lane`, a worker thread
that measures the slow metrics (attacks, corruptions) of the soup on screen while the page
answers the slider at once. A newer soup supersedes the lane's running job within one batch;
a lane's thread ends when it has been idle a while and when its lane is garbage-collected
(the session closed), and shared `Slots` bound how many lanes compute at once, taking turns
tile by tile, and pause them while a page computes the number a hand is waiting for.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from soupviz.errors import SoupvizError
from soupviz.progress import Progress
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.soups.weights import weights_key

IDLE_SECONDS = 60.0
FOREGROUND_WAIT_SECONDS = 10.0
logger = logging.getLogger(__name__)
EXIT_WAIT_SECONDS = 10.0


class Slots:
    """How many lanes may compute at once, shared by a server's lanes. Unlike a semaphore it
    serves waiters in the order they came, handing a freed slot straight to the first of them,
    so a lane that releases its slot between tiles cannot take it back ahead of another lane."""

    def __init__(self, count: int = 1) -> None:
        self._free = count
        self._waiting: deque[threading.Event] = deque()
        self._lock = threading.Lock()
        self._foreground = 0
        self._clear = threading.Condition(self._lock)

    def __enter__(self) -> Slots:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return self
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """Mark an evaluation a page waits on (a slider's clean accuracy): while one runs, lanes
        pause at their next batch, so on a few cores the number in front of the user comes first."""
        with self._lock:
            self._foreground += 1
        try:
            yield
        finally:
            with self._lock:
                self._foreground -= 1
                if not self._foreground:
                    self._clear.notify_all()

    def yield_to_foreground(self) -> None:
        """Wait while any `foreground` evaluation runs, at most `FOREGROUND_WAIT_SECONDS` (so a
        stream of slider moves delays the background without starving it)."""
        with self._lock:
            self._clear.wait_for(lambda: not self._foreground, timeout=FOREGROUND_WAIT_SECONDS)


class Superseded(Exception):
    """Raised inside a job's evaluation when a newer job has replaced it."""


@dataclass
class Tile:
    """What a page shows for one metric of a job: the record once measured, the progress while
    measuring, or the error that stopped it."""

    spec: MetricSpec
    record: Record | None = None
    progress: Progress | None = None
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.record is not None or bool(self.error)


@dataclass
class Job:
    """The slow metrics of one soup, measured one spec after another by a lane."""

    weights: tuple[float, ...]
    specs: tuple[MetricSpec, ...]
    tiles: list[Tile] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.tiles = self.tiles or [Tile(spec) for spec in self.specs]

    @property
    def finished(self) -> bool:
        """Every tile has its record or its error."""
        return all(tile.finished for tile in self.tiles)

    def same_work(self, weights: Sequence[float], specs: Sequence[MetricSpec]) -> bool:
        return self.weights == weights_key(weights) and self.specs == tuple(specs)

    def run(self, evaluate: Callable[..., list[Record]], slots: Slots | None = None) -> None:
        """Measure every spec with `evaluate(weights, specs, progress)` until done or superseded,
        holding one of the shared `slots` per spec, so lanes waiting for a slot take turns tile by
        tile rather than job by job."""
        try:
            for tile in self.tiles:
                if self.cancelled.is_set():
                    raise Superseded

                def report(progress: Progress, tile: Tile = tile) -> None:
                    if slots is not None:
                        slots.yield_to_foreground()
                    if self.cancelled.is_set():
                        raise Superseded
                    tile.progress = progress

                try:
                    with slots or contextlib.nullcontext():
                        if self.cancelled.is_set():  # superseded while waiting for a slot
                            raise Superseded
                        tile.record = evaluate([list(self.weights)], [tile.spec], report)[0]
                except SoupvizError as error:
                    tile.error = str(error)
                except Superseded:
                    raise
                except Exception as error:  # shown on the tile: a dead thread would leave it queued forever
                    logger.exception("background evaluation of %s failed", tile.spec.key)
                    tile.error = f"The evaluation failed ({type(error).__name__}: {error})."
        except Superseded:
            pass
        finally:
            self.ended.set()


class _Worker:
    """The thread behind a lane: runs the newest submitted job, exits after `idle` seconds
    without work or once closed. Holds no reference to its lane, so a lane can be collected."""

    def __init__(self, evaluate: Callable[..., list[Record]], slots: Slots, idle: float) -> None:
        self.evaluate, self.slots, self.idle = evaluate, slots, idle
        self.wake = threading.Condition()
        self.pending: Job | None = None
        self.running: Job | None = None
        self.closed = False
        self.thread: threading.Thread | None = None
        _WORKERS.add(self)

    def submit(self, job: Job) -> None:
        with self.wake:
            if self.pending is not None:
                self.pending.cancelled.set()
                self.pending.ended.set()
            self.pending = job
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="soupviz-lane", daemon=True)
                self.thread.start()
            self.wake.notify()

    def close(self) -> None:
        with self.wake:
            self.closed = True
            for job in (self.pending, self.running):
                if job is not None:
                    job.cancelled.set()
            self.wake.notify()

    def _loop(self) -> None:
        while True:
            with self.wake:
                if self.pending is None and not self.closed:
                    self.wake.wait(self.idle)
                if self.closed or self.pending is None:
                    if self.pending is not None:
                        self.pending.ended.set()
                    self.thread = None
                    return
                job, self.pending, self.running = self.pending, None, self.pending
            if not job.cancelled.is_set():
                job.run(self.evaluate, self.slots)
            job.ended.set()
            with self.wake:
                self.running = None


class Lane:
    """One session's background evaluations: `submit` a soup's slow metrics and read the job's
    tiles as they fill in; submitting another soup supersedes the running job.

    Args:
        evaluate: `Evaluator.evaluate` of an evaluator used by this lane alone (a soup cannot
            be measured by two threads at once).
        slots: shared by all lanes of a server, so at most that many compute at once.
        idle: seconds without work after which the thread ends (a later submit starts another).
    """

    def __init__(
        self, evaluate: Callable[..., list[Record]], slots: Slots | None = None,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self._worker = _Worker(evaluate, slots or Slots(1), idle)
        self.job: Job | None = None
        weakref.finalize(self, self._worker.close)

    def submit(self, weights: Sequence[float], specs: Sequence[MetricSpec]) -> Job:
        """The job measuring `specs` on the soup `weights`: the current one if it is that work
        (finished or not), else a new one that supersedes it."""
        if self.job is not None and self.job.same_work(weights, specs):
            return self.job
        if self.job is not None:
            self.job.cancelled.set()
        self.job = Job(weights_key(weights), tuple(specs))
        self._worker.submit(self.job)
        return self.job

    def close(self) -> None:
        """Cancel the running job and end the thread."""
        if self.job is not None:
            self.job.cancelled.set()
        self._worker.close()


_WORKERS: weakref.WeakSet[_Worker] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stop every lane's job before the interpreter exits (a thread killed inside a torch call
    aborts the process), waiting at most `EXIT_WAIT_SECONDS` for them to reach their next batch."""
    workers = list(_WORKERS)
    for worker in workers:
        worker.close()
    for worker in workers:
        thread = worker.thread
        if thread is not None:
            thread.join(EXIT_WAIT_SECONDS)
