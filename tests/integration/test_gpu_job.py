"""The GPU job rehearsed end to end on the CPU at tiny scale, as the lent GPU will run it: the data
arrives as a pack in two parts (one sent by an earlier call), the packages the GPU image lacks
(Streamlit, Plotly, Captum, Kaleido, Ray) cannot be imported, and everything that comes back is
checked: at most 8 files of at most 16 MiB, a loadable family with its lineage and measured cards,
and results files that parse."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from soupviz.checkpoints.families import load_family
from soupviz.data import CIFAR10_CLASSES
from soupviz.datapack import write_pack
from soupviz.results.store import ResultStore, read_records

ROOT = Path(__file__).resolve().parents[2]
ABSENT_ON_GPU = ("streamlit", "plotly", "captum", "kaleido", "ray")
BLOCKER = f"""import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ABSENT_ON_GPU!r}:
            raise ImportError(f"{{name}} is not installed on the GPU image")
sys.meta_path.insert(0, _Absent())
"""


def jpeg_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 4)):
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:04d}.jpg", quality=90)
    return root


@pytest.mark.slow
def test_the_gpu_job_rehearsed_on_the_cpu_returns_a_family_and_results_within_the_limits(tmp_path, monkeypatch):
    data = jpeg_folder(tmp_path / "cifar10")
    env = {**os.environ, "SOUPVIZ_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    monkeypatch.setenv("SOUPVIZ_CACHE", env["SOUPVIZ_CACHE"])
    manifest = write_pack(data, tmp_path / "pack", part_bytes=60_000)
    assert len(manifest["parts"]) >= 2
    (tmp_path / "sent").mkdir()
    shutil.move(tmp_path / "pack" / "part-00.npz", tmp_path / "sent" / "part-00.npz")  # the first call's part
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(ROOT)])
    out, work = tmp_path / "out", tmp_path / "work"
    job = subprocess.run(
        [sys.executable, "bench/gpu_job.py", "run", "--scale", "tiny", "--device", "cpu", "--out", str(out),
         "--work", str(work), "--pack", str(tmp_path / "pack"), "--search", str(tmp_path / "sent"),
         "--budget-s", "1500"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = (out / "job.log").read_text()
    assert job.returncode == 0, log[-3000:]

    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(f.is_file() and f.stat().st_size <= 16 * 2**20 for f in files)
    names = {f.name for f in files}
    assert names == {"job.log", "results.tar.xz", "l1_grid.sqlite.xz",
                     *(f"family-{n}.tar" for n in ("linf", "nominal", "l2", "l1", "sat"))}, names

    back = tmp_path / "back"
    for tar in out.glob("*.tar*"):
        with tarfile.open(tar) as archive:
            archive.extractall(back, filter="data")
    family = load_family(back)
    assert family.names == ["nominal", "linf", "l2", "l1"]
    base = family.ingredients[1].card
    for ingredient in family.ingredients:
        card = ingredient.card
        assert card.parent == (None if card.name == "linf" else {"name": "linf", "content_hash": base.content_hash})
        measured = {m["spec"].split(":")[0] for m in card.metrics}
        assert measured == {"clean", "linf", "l2", "l1"}, card.name
        assert card.recipe["extra"]["family_recipe"] == "tiny"
    (sat,) = load_family(back / "baselines").ingredients
    assert sat.card.threat == "sat" and {m["spec"].split(":")[0] for m in sat.card.metrics} == {
        "clean", "linf", "l2", "l1"}
    assert json.loads((back / "recipe.json").read_text())["scale"] == "tiny"

    results = back / "results"
    stages = json.loads((results / "stages.json").read_text())
    assert [s["stage"] for s in stages] == [
        "cuda_tests", "train", "cards family-clean-linf", "cards baselines-clean-linf", "cards family-l2",
        "cards baselines-l2", "slider new family", "slider shipped family", "sweep_bench", "cards family-l1",
        "cards baselines-l1", "l1_grid"]
    assert all(s.get("rc") == 0 for s in stages), stages
    assert json.loads((results / "data.json").read_text())["train"] == {
        "images": 100, "identical": True, "differing_images": 0}
    suite = ET.parse(results / "cuda_tests.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("skipped")) == ("14", "14")  # no CUDA here: all 14 skip
    for name in ("slider-family.json", "slider-cifar10-preact_resnet_small.json"):
        slider = json.loads((results / name).read_text())
        assert slider["moves"] == 2 and 0 <= slider["clean_accuracy_last"] <= 1
    assert json.loads((results / "sweep.json").read_text())["folding"]
    records, _ = read_records(results / "cards-family-clean-linf.json")
    assert sorted((list(r.weights).index(1.0), r.spec.split(":")[0]) for r in records) == sorted(
        (i, metric) for i in range(4) for metric in ("clean", "linf"))

    grid = tmp_path / "l1_grid.sqlite"
    grid.write_bytes(lzma.decompress((out / "l1_grid.sqlite.xz").read_bytes()))
    assert len(ResultStore(grid).records()) == 10  # the 10 soups of the step-0.5 grid over 4 ingredients
