"""One prepared job for a lent GPU (issue 26): train the research-scale family, measure it, run the
CUDA tests and the GPU benches, each stage under a time guard, and pack what it has into at most
8 files of at most 16 MiB in $OUT. `tests/integration/test_gpu_job.py` rehearses it on the CPU.

Here, first (writes the ignored folder .gpu/, which no checkout carries, so every session makes it):
the CIFAR-10 pack (the JPEG files' bytes, 57 MB) in parts sized so that each run call, with the
~30 MB of tracked files that travel every time, stays under 64 MiB; this machine's Pillow wheel
(the JPEGs then decode to the same pixels there; data.json says whether they did) and
pyautoattack's sources (its wheel is 42 MB of example model). It prints the run calls and writes
them to .gpu/calls.md:

    python3 bench/gpu_job.py pack

Then the calls it printed, each right after the one before (the machine stays warm 30 s), on a
29.7 MB tree (2026-12-06):

    run(command="mkdir -p /tmp/soupviz-pack && cp .gpu/pack/part-00.npz /tmp/soupviz-pack/ && ls -l /tmp/soupviz-pack",
        carry=[".gpu/pack/part-00.npz"], timeout_s=120)
    run(command="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "
                "/tmp/site .gpu/whl/*.whl; export PYTHONPATH=/tmp/site:$PWD/.gpu/site; "
                "PYTHONUNBUFFERED=1 python3 bench/gpu_job.py run --out $OUT --budget-s 530",
        carry=[".gpu/pack/part-01.npz", ".gpu/pack/manifest.json", ".gpu/whl", ".gpu/site"], timeout_s=600)

If the machine went cold in between, the job stops at once saying which part is missing: send it
again. The job's stages, in order of value, each under its own time limit (SCALES) and all within
--budget-s, keeping 30 s to pack: the 14 CUDA tests; `soupviz recipe` (about 185 s of training);
the cards at AutoAttack grade on 1,000 test images (clean and L∞, then L2; L1 after the benches as
it costs most); the slider path (bench/gpu_job.py slider) on the new and the shipped family;
bench_sweep.py (folded against one at a time); the L1 default over the shipped 286-soup grid with
what time is left. What comes back (8 files, each under 16 MiB): job.log, family-<name>.tar
(checkpoint, card, training log; five), results.tar.xz (stages.json with each stage's seconds and
exit code, data.json, the CUDA tests' JUnit XML, the cards' records as JSON and their store,
slider-*.json, sweep.json/md, the cards) and l1_grid.sqlite.xz.

    python3 bench/gpu_job.py run --scale tiny --device cpu --out /tmp/out --work /tmp/work   # rehearsal
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soupviz.datapack import MANIFEST, unpack, verify_decoded, write_pack  # noqa: E402

SHIPPED = ROOT / "assets" / "families" / "cifar10-preact_resnet_small"
PACK = ROOT / ".gpu" / "pack"
FILE_LIMIT = 16 * 2**20
RESERVE_S = 30  # kept for packing the results at the end
CUDA_TESTS = ["tests/unit/corruptions/test_cifar_c.py", "-k", "test_results_do_not_depend_on_the_device"]

# Per scale: stage budgets in seconds, and the sizes each stage runs at.
SCALES = {
    "gpu": {"tests": 40, "train": 240, "train_budget": 185, "slider": 30, "sweep_bench": 50,
            "cards": {"clean,linf": 40, "l2": 40, "l1": 120},  # the baseline gets half an ingredient group's
            "images": 1000, "attack": ["--attack", "autoattack-apgd"], "slider_images": 200, "moves": 10,
            "sweep_args": ["--gpus", "1,8,64"],
            "l1": ["--metrics", "l1", "--attack", "default", "--step", "0.1", "--images", "500"]},
    # Generous limits: the rehearsal checks what the stages write, on a CPU shared with other work.
    "tiny": {"tests": 120, "train": 240, "train_budget": 5, "slider": 120, "sweep_bench": 120,
             "cards": {"clean,linf": 120, "l2": 120, "l1": 120},
             "images": 16, "attack": ["--attack", "pgd", "--steps", "1"], "slider_images": 8, "moves": 2,
             "sweep_args": ["--soups", "2", "--images", "4", "--cost-images", "1", "--repeats", "1",
                            "--metrics", "clean,linf"],
             "l1": ["--metrics", "l1:12:pgd:1", "--step", "0.5", "--images", "4"]},
}


class Job:
    """The stages' shared state: the clock, the log, and the record of every stage."""

    def __init__(self, out: Path, work: Path, budget_s: float, device: str) -> None:
        self.out, self.work, self.device = out, work, device
        self.deadline = time.monotonic() + budget_s
        self.results = work / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "job.log", "a", buffering=1)
        self.stages: list[dict] = []
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "SOUPVIZ_CACHE": str(work / "cache"),
                    "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))}

    def left(self) -> float:
        return self.deadline - time.monotonic() - RESERVE_S

    def say(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def run(self, stage: str, command: list[str], budget: float) -> int | None:
        """Run `command` for at most min(`budget`, the time left) seconds, output into the log;
        returns its exit code, None when it was stopped or never started for lack of time."""
        limit = min(budget, self.left())
        entry = {"stage": stage, "command": " ".join(command), "limit_s": round(limit, 1)}
        self.stages.append(entry)
        if limit < 5:
            entry["skipped"] = "no time left"
            self.say(f"{stage}: skipped, {limit:.0f} s left")
            return None
        self.say(f"{stage}: {entry['command']} (at most {limit:.0f} s)")
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            entry["rc"] = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
            entry["rc"], entry["timed_out"] = None, True
        entry["seconds"] = round(time.monotonic() - start, 1)
        self.say(f"{stage}: exit {entry['rc']}{' (stopped at its limit)' if entry.get('timed_out') else ''}, "
                 f"{entry['seconds']} s")
        return entry["rc"]

    def write_stages(self) -> None:
        (self.results / "stages.json").write_text(json.dumps(self.stages, indent=1))


def run_job(args: argparse.Namespace) -> None:
    """All stages in order of value, then the packing (also after a failure)."""
    scale = SCALES[args.scale]
    job = Job(Path(args.out), Path(args.work), args.budget_s, args.device)
    python = sys.executable
    family = job.work / "family"
    try:
        job.say(f"gpu job, scale {args.scale}, device {args.device}, budget {args.budget_s:.0f} s")
        data = job.work / "cifar10"
        if not (data / "test").is_dir():
            unpack(Path(args.pack) / MANIFEST, data, search=tuple(args.search))
        job.env["SOUPVIZ_DATA"] = os.environ["SOUPVIZ_DATA"] = str(data)
        os.environ["SOUPVIZ_CACHE"] = job.env["SOUPVIZ_CACHE"]
        checked = verify_decoded(data, Path(args.pack) / MANIFEST)
        import PIL

        checked["pillow"] = PIL.__version__
        (job.results / "data.json").write_text(json.dumps(checked, indent=1))
        job.say(f"data: {json.dumps(checked)}")
        job.run("cuda_tests", [python, "-m", "pytest", *CUDA_TESTS, "-q", "-rs", "-o", "addopts=",  # no xdist there
                               "-p", "no:cacheprovider", "--junitxml", str(job.results / "cuda_tests.xml")],
                scale["tests"])
        job.run("train", [python, "-m", "soupviz.cli", "recipe", str(family), "--scale", args.scale,
                          "--budget-s", str(scale["train_budget"]), "--device", args.device, "--resume"],
                scale["train"])
        pack_family(job, family)
        evaluate = [python, "-m", "soupviz.cli", "eval", "--images", str(scale["images"]), *scale["attack"],
                    "--device", args.device, "--store", str(job.results / "cards.sqlite"), "--write-cards"]

        def cards(metrics: str) -> None:  # the ingredients, then the SAT baseline, into their cards
            for folder, name in ((family, "family"), (family / "baselines", "baselines")):
                if any(folder.glob("*.safetensors")):
                    tag = f"{name}-{metrics.replace(',', '-')}"
                    job.run(f"cards {tag}", [*evaluate[:4], str(folder), *evaluate[4:], "--metrics", metrics,
                                             "--out", str(job.results / f"cards-{tag}.json")],
                            scale["cards"][metrics] * (0.8 if name == "family" else 0.4))
            pack_family(job, family)

        cards("clean,linf")
        cards("l2")
        for name, folder in (("new family", family), ("shipped family", SHIPPED)):
            if (folder / "linf.safetensors").exists():
                job.run(f"slider {name}", [python, __file__, "slider", str(folder), "--device", args.device,
                                           "--images", str(scale["slider_images"]), "--moves", str(scale["moves"]),
                                           "--out", str(job.results / f"slider-{folder.name}.json")],
                        scale["slider"] / 2)
        job.run("sweep_bench", [python, "bench/bench_sweep.py", "--device", args.device, "--workers", "0",
                                "--out", str(job.results), *scale["sweep_args"]], scale["sweep_bench"])
        cards("l1")
        job.run("l1_grid", [python, "-m", "soupviz.cli", "sweep", str(SHIPPED), *scale["l1"], "--device",
                            args.device, "--store", str(job.work / "l1_grid.sqlite")], job.left())
    except Exception as error:  # the packing below must still run: say what stopped the stages
        job.say(f"stopped: {type(error).__name__}: {error}")
        job.stages.append({"stage": "error", "error": f"{type(error).__name__}: {error}"})
    finally:
        job.write_stages()
        for card in sorted(family.rglob("*.json")) if family.is_dir() else []:  # the cards' numbers, for the reply
            metrics = json.loads(card.read_text()).get("metrics", []) if card.name != "recipe.json" else []
            if metrics:
                job.say(f"{card.stem}: " + ", ".join(f"{m['spec']} {m['accuracy']:.1%} (n={m['n']})" for m in metrics))
        pack_results(job, family)
        job.say(f"done; files in {job.out}: " + ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB"
                                                          for p in sorted(job.out.iterdir())))


def pack_family(job: Job, family: Path) -> None:
    """One tar per checkpoint (weights, card, training log; the plan with the base), each under 16 MiB."""
    for weights in sorted(family.rglob("*.safetensors")):
        members = [weights, weights.with_suffix(".json"), weights.with_name(weights.stem + ".log.jsonl")]
        if weights.stem == "linf":
            members.append(family / "recipe.json")
        path = job.out / f"family-{weights.stem}.tar"
        with tarfile.open(path, "w") as tar:
            for member in members:
                if member.exists():
                    tar.add(member, arcname=member.relative_to(family).as_posix())
        if path.stat().st_size > FILE_LIMIT:
            job.say(f"{path.name} is {path.stat().st_size / 2**20:.1f} MiB, over the 16 MiB a file may come back")


def _without_sqlite_sidecars(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """A store's -wal/-shm files stay out of the archive: the store is checkpointed into its file first."""
    return None if member.name.endswith(("-wal", "-shm")) else member


def pack_results(job: Job, family: Path) -> None:
    """results.tar.xz (the results folder and the cards) and the L1 grid's store, xz-compressed."""
    for store in (job.results / "cards.sqlite", job.work / "l1_grid.sqlite"):
        if store.exists():
            connection = sqlite3.connect(store)
            try:  # fold a killed writer's WAL into the file
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                connection.close()  # now, not at garbage collection: its -shm file would vanish mid-tar
    with tarfile.open(job.out / "results.tar.xz", "w:xz") as tar:
        tar.add(job.results, arcname="results", filter=_without_sqlite_sidecars)
        for card in sorted(family.rglob("*.json")) if family.is_dir() else []:
            tar.add(card, arcname="family/" + card.relative_to(family).as_posix())
    grid = job.work / "l1_grid.sqlite"
    if grid.exists():
        (job.out / "l1_grid.sqlite.xz").write_bytes(lzma.compress(grid.read_bytes(), preset=6))
    for path in job.out.iterdir():
        if path.stat().st_size > FILE_LIMIT:
            job.say(f"warning: {path.name} is over 16 MiB and will not come back")


def slider(args: argparse.Namespace) -> None:
    """The explorer's slider path without Streamlit (absent on the GPU image): the library calls under
    the page's caches, a soup's clean accuracy on the default subset for `moves` new soups, then the
    default L∞ attack on the last, each timed after one warm-up soup."""
    import statistics

    import torch

    from soupviz.checkpoints.families import load_family
    from soupviz.data import load_split
    from soupviz.device import describe_device, pick_device
    from soupviz.evaluate.factory import open_evaluator
    from soupviz.results.metric_specs import MetricSpec
    from soupviz.soups.weights import rebalance

    device = pick_device(args.device)
    family = load_family(args.family)
    evaluator = open_evaluator(family, test=load_split(None, "test").subset(args.images, 0), device=device,
                               cache=False)
    rng = random.Random(0)
    soups = [[rng.random() for _ in family.names] for _ in range(args.moves + 1)]
    soups = [[w / sum(row) for w in row] for row in soups]
    clean, linf = MetricSpec("clean"), MetricSpec("attack", threat="linf")

    def timed(fn) -> tuple[float, object]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3, value

    evaluator.evaluate([soups[0]], [clean])
    moves = [timed(lambda w=w: (rebalance(w, 1, 0.37), evaluator.evaluate([w], [clean]))) for w in soups[1:]]
    attack_ms, (record,) = timed(lambda: evaluator.evaluate([soups[-1]], [linf]))
    result = {"device": describe_device(device), "torch": torch.__version__, "family": family.name,
              "arch": family.arch, "images": args.images, "moves": args.moves,
              "clean_move_ms_median": statistics.median(ms for ms, _ in moves),
              "clean_move_ms_max": max(ms for ms, _ in moves),
              "clean_accuracy_last": moves[-1][1][1][0].accuracy,
              "linf_default_attack_ms": attack_ms, "linf_default_attack": record.spec,
              "linf_default_accuracy": record.accuracy,
              "notes": "A slider move: rebalance + Evaluator.evaluate(new soup, clean) on the default subset (no "
                       "Streamlit caches: a cold move); then the default L∞ attack on the last soup."}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def pack(args: argparse.Namespace) -> None:
    """Make .gpu/ here: the wheels and sources the GPU image lacks, then the data pack split so that
    every run call, with the working tree that travels each time, stays under 64 MiB; print the
    calls and write them to .gpu/calls.md."""
    import PIL

    shutil.rmtree(ROOT / ".gpu", ignore_errors=True)
    wheels, site = ROOT / ".gpu" / "whl", ROOT / ".gpu" / "site"
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                             "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    # This machine's Pillow, so the JPEGs decode to the same pixels there (data.json checks it).
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(wheels),
                    f"pillow=={PIL.__version__}"], check=True)
    import pyautoattack  # pure Python; its wheel is 42 MB only because of an example model, left out here

    shutil.copytree(Path(pyautoattack.__file__).parent, site / "pyautoattack",
                    ignore=shutil.ignore_patterns("examples", "__pycache__"))
    for info in Path(pyautoattack.__file__).parent.parent.glob("pyautoattack-*.dist-info"):  # its version, for
        shutil.copytree(info, site / info.name)  # the records' code fingerprint
    extras = _size(wheels) + _size(site) + 1_000_000  # and the manifest
    room = 64 * 2**20 - travelling_bytes() - 2_000_000  # a margin for files added before the run
    manifest = write_pack(args.data, PACK, part_bytes=room - 1_500_000)  # the npz's own index
    parts = [part["file"] for part in manifest["parts"]]
    last = PACK / parts[-1]
    if last.stat().st_size + extras > room:
        sys.exit(f"the last part and the wheels take {(last.stat().st_size + extras) / 1e6:.1f} MB, over the "
                 f"{room / 1e6:.1f} MB a call has left: make the tree smaller or split the wheels off")
    calls = [f'run(command="mkdir -p /tmp/soupviz-pack && cp .gpu/pack/{part} /tmp/soupviz-pack/ && '
             f'ls -l /tmp/soupviz-pack", carry=[".gpu/pack/{part}"], timeout_s=120)' for part in parts[:-1]]
    calls.append(f'run(command="{RUN_COMMAND}", carry=[".gpu/pack/{parts[-1]}", ".gpu/pack/{MANIFEST}", '
                 f'".gpu/whl", ".gpu/site"], timeout_s=600)')
    text = "\n".join(["# The GPU job's run calls, one right after the other (the machine stays warm 30 s)", "",
                      f"Made by `python3 bench/gpu_job.py pack`; tree that travels each call "
                      f"{travelling_bytes() / 1e6:.1f} MB, room left {room / 1e6:.1f} MB.", "",
                      *[f"- {part}: {(PACK / part).stat().st_size / 1e6:.1f} MB, "
                        f"{manifest['parts'][i]['files']} files" for i, part in enumerate(parts)],
                      f"- wheels and sources: {extras / 1e6:.1f} MB", "", *calls, ""])
    (ROOT / ".gpu" / "calls.md").write_text(text)
    print(text)


RUN_COMMAND = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "
               "/tmp/site .gpu/whl/*.whl; export PYTHONPATH=/tmp/site:$PWD/.gpu/site; "
               "PYTHONUNBUFFERED=1 python3 bench/gpu_job.py run --out $OUT --budget-s 530")


def travelling_bytes() -> int:
    """Bytes of the working tree that every run call carries: tracked and untracked, not ignored."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in listing if name and (ROOT / name).is_file())


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="make .gpu/pack and .gpu/whl here")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.set_defaults(run=pack)
    p = sub.add_parser("run", help="the job (on the GPU, or --scale tiny --device cpu as a rehearsal)")
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/soupviz-job")
    p.add_argument("--scale", default="gpu", choices=sorted(SCALES))
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=530)
    p.add_argument("--pack", default=str(PACK), help="folder of the manifest")
    p.add_argument("--search", action="append", default=["/tmp/soupviz-pack"], help="more folders of parts")
    p.set_defaults(run=run_job)
    p = sub.add_parser("slider", help="time the explorer's slider path on one family")
    p.add_argument("family")
    p.add_argument("--device", default="cuda")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--moves", type=int, default=10)
    p.add_argument("--out", required=True)
    p.set_defaults(run=slider)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
