"""Sweeps: many soups × metrics, split into tasks and run in-process or on a Ray cluster.

A task is a chunk of soups (folded into one batch) × one metric spec × one image shard. Its
per-image results stream into the results store as it finishes, so a killed sweep loses no
finished record and a rerun runs only what is missing. Both engines run the same tasks through
the same function, so they give identical records.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.evaluator import Evaluator, measured_specs
from soupviz.evaluate.factory import open_evaluator
from soupviz.evaluate.merges import Merge, merge_evaluator
from soupviz.progress import Progress, ProgressCallback
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import Record
from soupviz.results.store import ResultStore
from soupviz.soups.weights import coarse_to_fine

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class SweepSetup:
    """What any worker needs to rebuild the sweep's evaluator (see `open_evaluator`); the family
    folder and `data` must name the same files on every node of a cluster."""

    family: str
    data: str | None = None
    images: int = 1000
    seed: int = 0
    batchnorm: str = "mix"
    batch_size: int = 250
    fold: int | None = None
    device: str = "auto"
    calibration_images: int = 512
    merge: Merge | None = None

    def open(self, store: ResultStore | None = None) -> Evaluator:
        """The evaluator of this setup, storing records in `store` (None: none); of its `merge`
        (`soupviz.evaluate.merges`) at each soup's coordinates when it has one."""
        from soupviz.checkpoints.families import load_family

        evaluator = open_evaluator(
            load_family(self.family), data=self.data, images=self.images, seed=self.seed, device=self.device,
            batchnorm=self.batchnorm, calibration_images=self.calibration_images, batch_size=self.batch_size,
            cache=store is not None, store=store, fold=self.fold,
        )
        return evaluator if self.merge is None else merge_evaluator(evaluator, self.merge)


@dataclass(frozen=True)
class Task:
    """Soups `rows` (S weight tuples) on `spec`, over the image batches numbered in `batches`,
    which are shard `shard` of `shards`."""

    rows: tuple[tuple[float, ...], ...]
    spec: MetricSpec
    shard: int
    shards: int
    batches: range


Work = Callable[[SweepSetup, Task], tuple[str, torch.Tensor]]


@functools.cache
def _evaluator(setup: SweepSetup) -> Evaluator:
    return setup.open()


def run_task(setup: SweepSetup, task: Task) -> tuple[str, torch.Tensor]:
    """Per-image results (S, n) of one task and the fingerprint of the code that computed them.
    A worker process builds the setup's evaluator once and reuses it for every task."""
    return _masks(_evaluator(setup), task)


def _masks(evaluator: Evaluator, task: Task, progress: ProgressCallback | None = None) -> tuple[str, torch.Tensor]:
    rows = torch.tensor(task.rows, dtype=torch.float64)
    units = len(rows) * (len(task.batches) if task.spec.kind == "attack" else 1)
    state = {"done": 0, "total": units, "callback": progress}  # the evaluator's progress within the task
    return evaluator.code_fingerprint, evaluator.masks(rows, task.spec, task.batches, state)


def plan(evaluator: Evaluator, rows: torch.Tensor, specs: Sequence[MetricSpec], shards: int = 1) -> list[Task]:
    """The tasks still to run for the soups `rows` (S, K) on `specs`: unions become their threats'
    attacks (their records are the intersection, made afterwards from the store), stored records
    and stored shard results are skipped, and the rest go `evaluator.fold` soups to a task.

    Tasks run soup by soup, coarse grid first (`coarse_to_fine`), each soup's metrics together: a
    dashboard reading the store while the sweep runs sees the whole simplex early, refining, and
    every soup complete (the corruption mean needs all its conditions)."""
    store = evaluator.store
    singles = list(dict.fromkeys(part for spec in specs for part in measured_specs(spec)))
    count = evaluator.batch_count()
    shards = max(1, min(shards, count))
    ranges = [range(i * count // shards, (i + 1) * count // shards) for i in range(shards)]
    parts_done = store.done_parts() if store is not None and shards > 1 else set()
    order = coarse_to_fine(rows.tolist())
    rank = {index: position for position, index in enumerate(order)}
    tasks = []
    for number, spec in enumerate(singles):
        keys = [evaluator.key(row, spec) for row in rows]
        stored = set(store.get_many(keys)) if store is not None else set()
        for shard, batches in enumerate(ranges):
            todo = [i for i in order if keys[i] not in stored and (keys[i], shard, shards) not in parts_done]
            for start in range(0, len(todo), evaluator.fold):
                chunk = tuple(tuple(rows[i].tolist()) for i in todo[start : start + evaluator.fold])
                tasks.append(((rank[todo[start]], number, shard), Task(chunk, spec, shard, shards, batches)))
    return [task for _, task in sorted(tasks, key=lambda item: item[0])]


def sweep(
    setup: SweepSetup,
    weights: torch.Tensor | Sequence[Sequence[float]],
    specs: Sequence[MetricSpec],
    store: ResultStore,
    *,
    engine: str = "local",
    address: str | None = None,
    shards: int = 1,
    progress: ProgressCallback | None = None,
    work: Work = run_task,
) -> list[Record]:
    """Records of every soup (rows of `weights`) and spec, spec-major, as `Evaluator.evaluate`
    returns them, computed as tasks on `engine` ('local': in this process; 'ray': on a local Ray
    cluster, or the one at `address`) and stored in `store` as each task finishes.

    Args:
        shards: image shards per chunk of soups (more, smaller tasks for many workers).
        progress: called with tasks done and total after each task (and inside a task in-process;
            with 1 of 1 at once when every record is stored already).
        work: the function a task runs (`run_task`; tests pass one that fails on purpose).

    Raises:
        SoupvizError: unknown engine, Ray missing or unreachable, a worker lost for good, or
            workers running other code than this process.
    """
    if engine not in ENGINES:
        raise SoupvizError(f"Unknown sweep engine {engine!r}: use {' or '.join(ENGINES)}.")
    evaluator = setup.open(store)
    rows = evaluator.check_rows(weights)
    tasks = plan(evaluator, rows, specs, shards)
    if not tasks and progress is not None:  # a finished sweep rerun: its bar completes at once
        progress(Progress(1, 1, "nothing left to run: every record is stored"))
    if engine == "local":
        results = _local(evaluator, setup, tasks, work, progress)
    else:
        results = _ray(setup, tasks, address, work)
    for done, (task, (fingerprint, masks)) in enumerate(results, start=1):
        if fingerprint != evaluator.code_fingerprint:
            raise SoupvizError(f"A sweep worker runs other soupviz code ({fingerprint}, here "
                               f"{evaluator.code_fingerprint}); install the same version on every node.")
        _keep(evaluator, task, masks)
        if progress is not None:
            progress(Progress(done, len(tasks), _task_label(task)))
    return evaluator.evaluate(rows, specs)


def _keep(evaluator: Evaluator, task: Task, masks: torch.Tensor) -> None:
    """Store a finished task: whole records, or shard results until every shard of its split is in.
    A record is stored only when its results cover exactly the evaluated images, and the shard
    results it was made of are forgotten in the same transaction.

    Raises:
        SoupvizError: a record's parts do not add up to the image count (never stored).
    """
    store, rows = evaluator.store, torch.tensor(task.rows, dtype=torch.float64)
    layout = evaluator.layout(len(rows))
    items = []
    for row, mask in zip(rows, masks, strict=True):
        key = evaluator.key(row, task.spec)
        if task.shards > 1:
            parts = store.put_part(key, task.shard, task.shards, mask)
            if len(parts) < task.shards:
                continue
            mask = torch.cat([parts[shard] for shard in range(task.shards)])
        if len(mask) != len(evaluator.images):
            raise SoupvizError(
                f"The results of {task.spec.column} for the soup {[round(float(w), 4) for w in row]} cover "
                f"{len(mask)} images, not the {len(evaluator.images)} evaluated, so no record was stored; "
                f"move the store {store.path} away or rerun with the shard count it was started with."
            )
        items.append((key, evaluator.record(row, task.spec, mask), evaluator.family_id, layout))
    store.put_many(items, hashes=evaluator.family.hashes)


def _local(evaluator: Evaluator, setup: SweepSetup, tasks: list[Task], work: Work,
           progress: ProgressCallback | None) -> Iterator:
    """(task, result) pairs computed in this process, with the sweep's own evaluator, reporting
    progress inside each task too (a Ray task reports only when it ends)."""
    for number, task in enumerate(tasks):
        if work is not run_task:
            yield task, work(setup, task)
            continue
        within = None if progress is None else _task_share(progress, number, len(tasks), task)
        yield task, _masks(evaluator, task, within)


def _task_share(progress: ProgressCallback, number: int, tasks: int, task: Task) -> ProgressCallback:
    """A task's own progress reports as reports of the sweep (`number` tasks done of `tasks`),
    up to its end: the sweep reports the task done once its records are stored."""

    def report(now: Progress) -> None:
        if now.fraction < 1:
            progress(Progress(number + now.fraction, tasks, _task_label(task)))

    return report


def _task_label(task: Task) -> str:
    return f"{task.spec.column}: {len(task.rows)} soups, shard {task.shard + 1}"


def _ray(setup: SweepSetup, tasks: list[Task], address: str | None, work: Work, retries: int = 3) -> Iterator:
    """(task, result) pairs as Ray tasks finish, one CPU (or GPU, where the cluster has them) each;
    a task whose worker dies is retried `retries` times."""
    try:
        import ray
    except ImportError:
        raise SoupvizError("--engine ray needs Ray: pip install -e '.[ray]', or use --engine local.") from None
    if not ray.is_initialized():
        if address and address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"at {address}" if address else "on this machine"
            raise SoupvizError(f"Cannot reach a Ray cluster {where} ({error}); check --address.") from error
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=retries)(work)
    setup_ref = ray.put(setup)
    pending = {remote.remote(setup_ref, task): task for task in tasks}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        task = pending.pop(ref)
        try:
            yield task, ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as error:
            for other in pending:
                ray.cancel(other)
            raise SoupvizError(f"A Ray worker died {retries + 1} times on {task.spec.column} ({type(error).__name__}); "
                               "finished records are stored: rerun the same command to resume.") from error


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise `SoupvizError` unless something listens at `address` ('host:port' or 'ray://host:port'):
    Ray itself retries an unreachable address for minutes before it gives up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as error:
        raise SoupvizError(f"Cannot reach a Ray cluster at {address} ({error}); check --address "
                           "(host:port of the head node, e.g. 10.0.0.5:6379).") from error
