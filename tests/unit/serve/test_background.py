"""Background lanes: jobs fill their tiles, a newer soup supersedes the running job within one
batch, the same work is never submitted twice, threads end when idle or when the lane is gone,
and the shared slots bound how many lanes compute at once."""

from __future__ import annotations

import gc
import threading
import time

from soupviz.errors import NonFiniteLogitsError
from soupviz.progress import Progress
from soupviz.results.metric_specs import MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.serve import background
from soupviz.serve.background import Lane, Slots

SPECS = [MetricSpec("attack", "linf", 8 / 255, "pgd", 10), MetricSpec("attack", "l2", 0.5, "pgd", 10)]
WAIT = 20.0


class FakeEvaluator:
    """Measures in `batches` steps of `pause` seconds each, reporting progress after each; a
    record's accuracy is the soup's first weight (so tests can tell soups apart)."""

    def __init__(self, batches: int = 5, pause: float = 0.02, gate: threading.Event | None = None) -> None:
        self.batches, self.pause, self.gate = batches, pause, gate
        self.calls: list[tuple[tuple[float, ...], str]] = []
        self.batches_run = 0
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def evaluate(self, weights, specs, progress=None) -> list[Record]:
        row, spec = tuple(weights[0]), specs[0]
        with self.lock:
            self.calls.append((row, spec.key))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            for done in range(1, self.batches + 1):
                if self.gate is not None:
                    assert self.gate.wait(WAIT)
                time.sleep(self.pause)
                with self.lock:
                    self.batches_run += 1
                if progress is not None:
                    progress(Progress(done, self.batches, spec.column))
            if row[0] < 0:
                raise NonFiniteLogitsError("The soup outputs NaN or infinite logits.")
            return [record(row, spec)]
        finally:
            with self.lock:
                self.running -= 1


def record(row: tuple[float, ...], spec: MetricSpec) -> Record:
    correct = round(100 * row[0])
    return Record(list(row), None, spec, 100, correct, correct / 100, *wilson_interval(correct, 100), "fake",
                  "100 fake images", 0, "mix")


def wait_until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_job_fills_every_tile_with_its_record_and_last_progress() -> None:
    fake = FakeEvaluator()
    lane = Lane(fake.evaluate)
    job = lane.submit([0.5, 0.5, 0, 0], SPECS)
    assert job.ended.wait(WAIT) and job.finished
    assert [tile.record.accuracy for tile in job.tiles] == [0.5, 0.5]
    assert [tile.record.spec for tile in job.tiles] == [spec.key for spec in SPECS]
    assert all(tile.progress.done == tile.progress.total == 5 for tile in job.tiles)
    lane.close()


def test_the_same_soup_is_not_measured_twice() -> None:
    fake = FakeEvaluator()
    lane = Lane(fake.evaluate)
    first = lane.submit([0.25, 0.25, 0.25, 0.25], SPECS)
    assert first.ended.wait(WAIT)
    assert lane.submit([0.25, 0.25, 0.25, 0.250000001], SPECS) is first
    assert len(fake.calls) == len(SPECS)
    lane.close()


def test_a_newer_soup_supersedes_the_running_job_within_one_batch() -> None:
    gate = threading.Event()
    fake = FakeEvaluator(batches=50, pause=0.0, gate=gate)
    lane = Lane(fake.evaluate)
    old = lane.submit([1, 0, 0, 0], SPECS)
    wait_until(lambda: fake.calls)
    new = lane.submit([0, 1, 0, 0], SPECS)
    assert old.cancelled.is_set() and not new.cancelled.is_set()
    gate.set()
    assert old.ended.wait(WAIT) and new.ended.wait(WAIT)
    assert not old.finished and all(tile.record is None for tile in old.tiles)
    assert [tile.record.accuracy for tile in new.tiles] == [0.0, 0.0]
    assert [call[0] for call in fake.calls] == [(1, 0, 0, 0), (0, 1, 0, 0), (0, 1, 0, 0)]
    assert fake.batches_run <= 2 * 50 + 1  # the old job stopped at its first report
    lane.close()


def test_a_burst_of_soups_measures_the_last_one_and_skips_the_queue() -> None:
    gate = threading.Event()
    fake = FakeEvaluator(batches=3, pause=0.0, gate=gate)
    lane = Lane(fake.evaluate)
    jobs = [lane.submit([w, 1 - w, 0, 0], SPECS) for w in (0.1, 0.2, 0.3, 0.4, 0.5)]
    gate.set()
    assert jobs[-1].ended.wait(WAIT) and jobs[-1].finished
    assert all(job.ended.wait(WAIT) and not job.finished for job in jobs[:-1])
    measured = {call[0] for call in fake.calls}
    assert (0.5, 0.5, 0, 0) in measured and len(measured) <= 2  # at most the first, then the last
    lane.close()


def test_an_error_is_kept_on_its_tile_and_the_job_goes_on() -> None:
    lane = Lane(FakeEvaluator().evaluate)
    job = lane.submit([-0.2, 1.2, 0, 0], SPECS)
    assert job.ended.wait(WAIT) and job.finished
    assert all("NaN" in tile.error and tile.record is None for tile in job.tiles)
    lane.close()


def test_the_thread_ends_when_idle_and_a_later_soup_starts_another() -> None:
    fake = FakeEvaluator(batches=1)
    lane = Lane(fake.evaluate, idle=0.05)
    assert lane.submit([1, 0, 0, 0], SPECS).ended.wait(WAIT)
    wait_until(lambda: lane._worker.thread is None or not lane._worker.thread.is_alive())
    job = lane.submit([0, 0, 1, 0], SPECS)
    assert job.ended.wait(WAIT) and job.finished
    lane.close()


def test_a_collected_lane_ends_its_thread() -> None:
    gate = threading.Event()
    fake = FakeEvaluator(batches=1000, pause=0.0, gate=gate)
    lane = Lane(fake.evaluate)
    job = lane.submit([1, 0, 0, 0], SPECS)
    wait_until(lambda: fake.calls)  # the job is running, no longer pending
    thread = lane._worker.thread
    del lane
    gc.collect()
    gate.set()
    thread.join(WAIT)
    assert not thread.is_alive() and job.cancelled.is_set() and not job.finished


def test_shared_slots_bound_how_many_lanes_compute_at_once() -> None:
    fake = FakeEvaluator(batches=3, pause=0.01)
    slots = Slots(2)
    lanes = [Lane(fake.evaluate, slots) for _ in range(5)]
    jobs = [lane.submit([i / 10, 1 - i / 10, 0, 0], SPECS) for i, lane in enumerate(lanes)]
    assert all(job.ended.wait(WAIT) and job.finished for job in jobs)
    assert fake.most_running == 2
    for lane in lanes:
        lane.close()


def test_lanes_waiting_for_a_slot_take_turns_tile_by_tile() -> None:
    fake = FakeEvaluator(batches=2, pause=0.05)
    slots = Slots(1)
    first, second = Lane(fake.evaluate, slots), Lane(fake.evaluate, slots)
    jobs = [first.submit([1, 0, 0, 0], SPECS)]
    wait_until(lambda: fake.calls)
    jobs.append(second.submit([0, 1, 0, 0], SPECS))
    assert all(job.ended.wait(WAIT) and job.finished for job in jobs)
    assert [call[0][0] for call in fake.calls] == [1, 0, 1, 0]  # not [1, 1, 0, 0]
    assert fake.most_running == 1
    first.close()
    second.close()


def test_lanes_pause_at_their_next_batch_while_a_page_computes_in_the_foreground() -> None:
    fake = FakeEvaluator(batches=4, pause=0.01)
    slots = Slots(1)
    lane = Lane(fake.evaluate, slots)
    with slots.foreground():
        job = lane.submit([1, 0, 0, 0], SPECS)
        wait_until(lambda: fake.batches_run >= 1)
        time.sleep(0.2)  # time for several batches, were the lane not paused
        assert fake.batches_run == 1
    assert job.ended.wait(WAIT) and job.finished
    assert fake.batches_run == 8
    lane.close()


def test_a_foreground_that_never_ends_delays_a_lane_but_does_not_starve_it(monkeypatch) -> None:
    monkeypatch.setattr(background, "FOREGROUND_WAIT_SECONDS", 0.05)
    fake = FakeEvaluator(batches=2, pause=0.01)
    slots = Slots(1)
    lane = Lane(fake.evaluate, slots)
    with slots.foreground():
        job = lane.submit([1, 0, 0, 0], SPECS)
        assert job.ended.wait(WAIT) and job.finished
    lane.close()


def test_an_unexpected_failure_is_shown_on_its_tile_and_the_lane_lives_on() -> None:
    calls = []

    def broken(weights, specs, progress=None):
        calls.append(specs[0].key)
        raise RuntimeError("out of memory")

    lane = Lane(broken)
    job = lane.submit([1, 0, 0, 0], SPECS)
    assert job.ended.wait(WAIT) and job.finished
    assert all("RuntimeError: out of memory" in tile.error for tile in job.tiles)
    assert lane.submit([0, 1, 0, 0], SPECS).ended.wait(WAIT) and len(calls) == 2 * len(SPECS)
    lane.close()
