"""The GPU job's time guard: a stage past its limit is stopped (its whole process group) and the job
goes on; a stage with no time left is skipped; both are recorded, so what comes back says so."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gpu_job():
    spec = importlib.util.spec_from_file_location("gpu_job", ROOT / "bench" / "gpu_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_stage_past_its_limit_is_stopped_and_one_without_time_is_skipped(tmp_path):
    job = gpu_job().Job(tmp_path / "out", tmp_path / "work", budget_s=60, device="cpu")
    start = time.monotonic()
    slow = job.run("slow", [sys.executable, "-c", "import subprocess, sys; "
                            "subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])"], budget=6)
    assert slow is None and time.monotonic() - start < 30  # the grandchild was stopped too
    assert job.run("quick", [sys.executable, "-c", "print('hello')"], budget=20) == 0
    job.deadline = time.monotonic()  # the budget is spent
    assert job.run("late", [sys.executable, "-c", "pass"], budget=20) is None
    stages = {s["stage"]: s for s in job.stages}
    assert stages["slow"]["timed_out"] and stages["quick"]["rc"] == 0 and stages["late"]["skipped"] == "no time left"
    assert "hello" in (tmp_path / "out" / "job.log").read_text()
