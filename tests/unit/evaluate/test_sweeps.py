"""Sweeps: tasks streamed into the store, resumed after a kill, identical in-process and on Ray."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.sweeps import SweepSetup, plan, run_task, sweep
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore
from soupviz.soups.weights import coarse_to_fine, simplex_grid

SPECS = [
    MetricSpec("clean"),
    MetricSpec("attack", threat="linf", attack="pgd", steps=2),
    MetricSpec("corruption", corruption="fog", severity=2),
]
GRID = simplex_grid(4, 0.5)  # 10 soups


@pytest.fixture
def setup(family_folder: Path, data_folder: Path) -> SweepSetup:
    return SweepSetup(str(family_folder), data=str(data_folder), images=20, batch_size=8, fold=4, device="cpu")


def test_a_sweep_stores_every_record_once_and_equals_evaluating_soup_by_soup(setup, tmp_path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    records = sweep(setup, GRID, SPECS, store)
    assert len(records) == len(store) == len(GRID) * len(SPECS)
    alone = setup.open(store=None)
    alone.fold = 1
    expected = alone.evaluate(GRID, SPECS)
    for record, single in zip(records, expected, strict=True):
        assert (record.weights, record.spec) == (single.weights, single.spec)
        if record.kind != "attack":  # attacks draw random starts per batch, folded or not
            assert record.mask == single.mask
        else:
            assert record.correct <= next(r.correct for r in records if r.weights == record.weights
                                          and r.kind == "clean")


def test_an_in_process_sweep_reports_progress_inside_each_task(setup, tmp_path) -> None:
    events = []
    spec = MetricSpec("attack", threat="l2", eps=0.05, attack="apgd-ce", steps=3, restarts=2)
    alone = dataclasses.replace(setup, fold=1)  # APGD drops broken points, so soups are not folded
    sweep(alone, GRID[:2], [spec], ResultStore(tmp_path / "results.sqlite"), progress=events.append)
    done = [event.done for event in events]
    assert done == sorted(done) and done[-1] == events[-1].total == 2  # a task per soup
    assert any(not float(d).is_integer() for d in done)


def test_a_rerun_runs_nothing_and_returns_the_same_records(setup, tmp_path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    first = sweep(setup, GRID, SPECS[:2], store)

    def fail(*args):
        raise AssertionError("a stored record was recomputed")

    assert plan(setup.open(store), torch.as_tensor(GRID), SPECS[:2]) == []
    events = []
    assert sweep(setup, GRID, SPECS[:2], store, work=fail, progress=events.append) == first
    assert [(e.done, e.total) for e in events] == [(1, 1)] and events[0].fraction == 1  # the bar completes


def killed_on_task(number: int):
    """A task function that runs tasks until the `number`-th, where the sweep is interrupted."""
    calls = []

    def work(setup_, task):
        calls.append(task)
        if len(calls) == number:
            raise KeyboardInterrupt
        return run_task(setup_, task)

    return work


def test_a_sweep_killed_midway_keeps_finished_tasks_and_a_rerun_completes_it(setup, tmp_path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    with pytest.raises(KeyboardInterrupt):
        sweep(setup, GRID, SPECS, store, work=killed_on_task(3))
    assert len(store) == 2 * 4  # two finished tasks of four soups each
    resumed = sweep(setup, GRID, SPECS, store)
    fresh = sweep(setup, GRID, SPECS, ResultStore(tmp_path / "fresh.sqlite"))
    assert resumed == fresh and len(store) == len(GRID) * len(SPECS)


def test_image_shards_give_the_records_of_whole_tasks(setup, tmp_path) -> None:
    whole = sweep(setup, GRID[:5], SPECS, ResultStore(tmp_path / "whole.sqlite"))
    store = ResultStore(tmp_path / "sharded.sqlite")
    events = []
    sharded = sweep(setup, GRID[:5], SPECS, store, shards=3, progress=events.append)
    assert sharded == whole
    assert events[-1].done == events[-1].total == 2 * 3 * len(SPECS)  # 2 chunks × 3 shards × specs
    assert store.done_parts() == set()  # shard results are dropped once their record is whole


def test_a_sharded_sweep_killed_and_resumed_with_another_shard_count_stores_the_whole_subset(setup, tmp_path) -> None:
    whole = sweep(setup, GRID[:2], SPECS[:1], ResultStore(tmp_path / "whole.sqlite"))
    store = ResultStore(tmp_path / "results.sqlite")
    with pytest.raises(KeyboardInterrupt):
        sweep(setup, GRID[:2], SPECS[:1], store, shards=2, work=killed_on_task(2))
    assert len(store) == 0 and {(shard, shards) for _, shard, shards in store.done_parts()} == {(0, 2)}
    for shards in (3, 2):  # shard 0 of 2 is not shard 0 of 3: every shard of 3 is run
        resumed = sweep(setup, GRID[:2], SPECS[:1], store, shards=shards)
        assert resumed == whole and all(r.n == 20 for r in resumed)
    assert store.done_parts() == set()  # the other split's rows went with the record


def test_shard_results_that_do_not_cover_the_images_are_an_error_never_a_record(setup, tmp_path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    evaluator = setup.open(store)
    key = evaluator.key(torch.as_tensor(GRID[0], dtype=torch.float64), SPECS[0])
    store.put_part(key, 0, 2, torch.ones(5, dtype=torch.bool))  # a row of 5 images where shard 0 holds 8
    with pytest.raises(SoupvizError, match="cover 17 images, not the 20 evaluated, so no record was stored"):
        sweep(setup, GRID[:1], SPECS[:1], store, shards=2)
    assert len(store) == 0


def test_two_families_swept_into_one_store_each_read_every_record_of_their_soups(setup, tmp_path) -> None:
    import shutil

    from soupviz.checkpoints.families import load_family
    from soupviz.results.grids import family_records, stored_records

    three = tmp_path / "three"
    three.mkdir()
    for name in ("linf", "l2", "l1"):
        for suffix in (".json", ".safetensors"):
            shutil.copy(Path(setup.family) / f"test-{name}{suffix}", three)
    store = ResultStore(tmp_path / "results.sqlite")
    small = dataclasses.replace(setup, family=str(three))
    mine = sweep(small, simplex_grid(3, 0.5), SPECS[:1], store)  # 6 soups of linf, l2, l1
    theirs = sweep(setup, GRID, SPECS[:1], store)  # 10 soups of none, linf, l2, l1: 6 already stored
    assert len(store) == 10
    four, small_family = load_family(setup.family), load_family(three)
    seen = family_records(store, four.hashes, names=four.names)
    assert sorted(map(tuple, (r.weights for r in seen))) == sorted(map(tuple, GRID.tolist()))
    assert {r.accuracy for r in seen} == {r.accuracy for r in theirs}
    assert all(r.ingredients == four.names for r in seen)
    assert sorted(r.weights for r in family_records(store, small_family.hashes)) == sorted(r.weights for r in mine)
    corner = [0.0, 0.5, 0.5, 0.0]  # computed by the three-ingredient family, read in the four's order
    assert stored_records(store, four.hashes, corner, SPECS[:1])["clean"].weights == corner


def test_a_union_is_swept_through_its_threats(setup, tmp_path) -> None:
    union = MetricSpec("union", attack="pgd", steps=2)
    store = ResultStore(tmp_path / "results.sqlite")
    tasks = plan(setup.open(store), torch.as_tensor(GRID[:2]), [union])
    assert {task.spec.threat for task in tasks} == set(union.threats)
    records = sweep(setup, GRID[:2], [union], store)
    assert [r.kind for r in records] == ["union", "union"] and len(store) == 2 * (1 + len(union.threats))


def test_the_store_stays_readable_from_another_connection_during_a_sweep(setup, tmp_path) -> None:
    path = tmp_path / "results.sqlite"
    seen = []
    sweep(setup, GRID, SPECS[:1], ResultStore(path), progress=lambda p: seen.append(len(ResultStore(path))))
    assert seen == [4, 8, 10]


def test_an_unknown_engine_or_a_missing_ray_is_one_clear_error(setup, tmp_path, monkeypatch) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    with pytest.raises(SoupvizError, match="Unknown sweep engine"):
        sweep(setup, GRID, SPECS[:1], store, engine="dask")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SoupvizError, match=r"pip install -e '\.\[ray\]'"):
        sweep(setup, GRID, SPECS[:1], store, engine="ray")
    assert len(store) == 0


def test_an_unreachable_cluster_is_one_clear_error(setup, tmp_path) -> None:
    pytest.importorskip("ray")
    with pytest.raises(SoupvizError, match="Cannot reach a Ray cluster at 127.0.0.1:1 "):
        sweep(setup, GRID, SPECS[:1], ResultStore(tmp_path / "results.sqlite"), engine="ray", address="127.0.0.1:1")


def dies_the_first_time(setup: SweepSetup, task) -> tuple:
    """A task that kills its own worker process the first time any task runs (a file records it)."""
    flag = Path(os.environ["SOUPVIZ_TEST_MARKER"])
    try:
        flag.touch(exist_ok=False)
    except FileExistsError:
        return run_task(setup, task)
    os._exit(1)


@pytest.fixture
def local_ray(tmp_path):
    ray = pytest.importorskip("ray")
    os.environ["SOUPVIZ_TEST_MARKER"] = str(tmp_path / "killed-once")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()
    os.environ.pop("SOUPVIZ_TEST_MARKER")


@pytest.mark.slow
def test_ray_gives_the_in_process_records_and_loses_nothing_when_a_worker_dies(setup, tmp_path, local_ray) -> None:
    local = sweep(setup, GRID, SPECS, ResultStore(tmp_path / "local.sqlite"))
    store = ResultStore(tmp_path / "ray.sqlite")
    on_ray = sweep(setup, GRID, SPECS, store, engine="ray", work=dies_the_first_time)
    assert (tmp_path / "killed-once").exists()  # a worker did die, and its task was retried
    assert on_ray == local and len(store) == len(GRID) * len(SPECS)
    assert sweep(setup, GRID, SPECS, store, engine="ray") == local  # a rerun finds everything stored


def always_dies(setup: SweepSetup, task) -> tuple:
    os._exit(1)


@pytest.mark.slow
def test_a_worker_that_keeps_dying_is_one_clear_error(setup, tmp_path, local_ray) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    with pytest.raises(SoupvizError, match="A Ray worker died 4 times .* rerun the same command to resume"):
        sweep(setup, GRID[:4], SPECS[:1], store, engine="ray", work=always_dies)  # one task: 4 worker starts
    assert len(store) == 0


def test_tasks_run_soup_by_soup_from_the_coarsest_grid(setup, tmp_path) -> None:
    evaluator = setup.open(ResultStore(tmp_path / "results.sqlite"))
    evaluator.fold = 1
    fine = simplex_grid(4, 0.25)  # 35 soups, of which the 10 on the step-0.5 grid come first
    tasks = plan(evaluator, torch.as_tensor(fine), SPECS[:2])
    soups = list(dict.fromkeys(task.rows[0] for task in tasks))
    assert {tuple(w) for w in soups[:10]} == {tuple(w) for w in GRID.tolist()}
    assert [task.spec for task in tasks[:4]] == [SPECS[0], SPECS[1]] * 2  # a soup's metrics together
    assert len(tasks) == 2 * len(fine) and len(soups) == len(fine)


def test_coarse_to_fine_orders_by_the_coarsest_grid_holding_each_soup() -> None:
    rows = [[0.1, 0.9], [0.25, 0.75], [0.5, 0.5], [1.0, 0.0], [0.123456789, 0.876543211], [0.2, 0.8]]
    assert coarse_to_fine(rows) == [3, 2, 1, 5, 0, 4]
    line = [[i / 10, 1 - i / 10] for i in range(11)]
    assert coarse_to_fine(line)[:5] == [0, 10, 5, 2, 8]  # ends, middle, then the fifths farthest apart


def test_coarse_to_fine_spreads_each_level_over_the_simplex() -> None:
    grid = simplex_grid(4, 0.1).tolist()
    order = coarse_to_fine(grid)
    assert sorted(order) == list(range(len(grid)))
    assert {tuple(grid[i]) for i in order[:56 + 10 - 4]} == {tuple(w) for w in simplex_grid(4, 0.2).tolist()} | \
        {tuple(w) for w in simplex_grid(4, 0.5).tolist()}  # halves, fifths, then tenths (4 soups lie on both)
    tenths = torch.tensor([grid[i] for i in order[62:82]])
    gaps = torch.cdist(tenths, tenths) + torch.eye(20)
    assert gaps.min() > 0.2  # neighbours on the grid are 0.14 apart: the first tenths are not
