"""Strength and cost of candidate default attacks against AutoAttack, on the shipped ingredients.

For every ingredient × threat (L∞ 8/255, L2 0.5, L1 12) and every candidate attack, this keeps
the per-image robust mask and the seconds it took, in chunks of images, appended to
`bench/results/attack_strength/<ingredient>-<threat>.jsonl`. A killed run loses at most the chunk
in progress and a rerun skips every chunk already there, so the 1,000-image table is built over
several sessions. Images are the first N of the seed-0 test subset, the evaluator's own.

The reference is per image: a point counts as robust only if every candidate and AutoAttack's
standard gradient stages (APGD-CE-100 and APGD-T-100 as pyautoattack configures them: 9 targets
at L∞/L2; 5 restarts, 5 targets and large reps at L1) fail on it. AutoAttack runs on the points
the candidates left robust, so the reference is at least as strong as that chain alone. With
`--full-autoattack N` the standard version's last stages (FAB-T, Square) also run on the
survivors of the first N images, to show what the gradient stages miss.

    OMP_NUM_THREADS=1 python bench/bench_attack_strength.py --images 1000 --worker 0/2 &
    OMP_NUM_THREADS=1 python bench/bench_attack_strength.py --images 1000 --worker 1/2 &
    python bench/bench_attack_strength.py --summary        # table of what is done so far

The summary (`bench/results/attack_strength.json` and `.md`) gives each candidate's accuracy,
its gap to the reference on the images every stage has covered, and its cost in seconds per
1,000 images on one thread; it names, per threat, the cheapest candidate within 1 point of the
reference on every ingredient.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from soupviz.attacks import DEFAULT_BUDGETS, THREATS, AutoAttack, describe_attacks, make_attack, robust_mask
from soupviz.checkpoints.cards import card_path, write_card
from soupviz.checkpoints.families import load_family
from soupviz.data import load_split
from soupviz.evaluate.comparison import mcnemar_p, newcombe_interval
from soupviz.files import atomic_write_json
from soupviz.present.labels import interval
from soupviz.results.metric_specs import MetricSpec, wilson_interval
from soupviz.results.records import Record
from soupviz.results.store import packbits, unpackbits
from soupviz.soups.soup import BATCHNORM_LABELS, Soup
from soupviz.threats import threat_label

ROOT = Path(__file__).resolve().parent.parent
FAMILY = ROOT / "assets" / "families" / "cifar10-preact_resnet_small"
OUT = ROOT / "bench" / "results" / "attack_strength"
SUMMARY = ROOT / "bench" / "results" / "attack_strength.json"
TOLERANCE = 0.01  # a default must be within 1 point of the reference

# name -> chain of (registry name, steps, options); cheapest first.
CANDIDATES: dict[str, list[tuple[str, int, dict]]] = {
    "pgd-10": [("pgd", 10, {})],
    "pgd-20": [("pgd", 20, {})],
    "apgd-ce-20": [("apgd-ce", 20, {})],
    "pgd-10+pgd-t-10x3": [("pgd", 10, {}), ("pgd-t", 10, {"n_target_classes": 3})],
    "pgd-20+pgd-t-20x3": [("pgd", 20, {}), ("pgd-t", 20, {"n_target_classes": 3})],
    "apgd-ce-10+apgd-t-10x3": [("apgd-ce", 10, {}), ("apgd-t", 10, {"n_target_classes": 3})],
    "apgd-ce-20+apgd-t-20x3": [("apgd-ce", 20, {}), ("apgd-t", 20, {"n_target_classes": 3})],
}
# Stronger chains tried at L1 only, where every cheap candidate stays over 1 point on some ingredient.
L1_CANDIDATES: dict[str, list[tuple[str, int, dict]]] = {
    "apgd-ce-50+apgd-t-50x5": [("apgd-ce", 50, {}), ("apgd-t", 50, {"n_target_classes": 5})],
    "apgd-ce-100+apgd-t-100x5": [("apgd-ce", 100, {}), ("apgd-t", 100, {"n_target_classes": 5})],
}
REFERENCE = "autoattack-apgd"


def candidates_for(threat: str) -> dict[str, list[tuple[str, int, dict]]]:
    """The candidate chains measured at `threat`, cheapest first."""
    return {**CANDIDATES, **(L1_CANDIDATES if threat == "l1" else {})}


FULL = "autoattack-fab-square"


def chain(name: str, model, threat: str) -> list:
    """The attacks of candidate `name` on `model` at the threat's default budget, seed 0."""
    eps = DEFAULT_BUDGETS[threat]
    if name == REFERENCE:
        return [AutoAttack(model, threat, eps, stages=("apgd-ce", "apgd-t"))]
    if name == FULL:
        return [AutoAttack(model, threat, eps, stages=("fab-t", "square"))]
    return [
        make_attack(kind, model, threat, eps, steps=steps, seed=0, **options)
        for kind, steps, options in candidates_for(threat)[name]
    ]


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line cut by a kill: recomputed
            continue
    return lines


def run_block(
    soup: Soup,
    family,
    ingredient: str,
    threat: str,
    x,
    y,
    starts: list[int],
    chunk: int,
    full: int,
    device: torch.device,
    batch_size: int,
) -> None:
    """Fill in every missing stage of the chunks beginning at `starts` of one ingredient × threat,
    appending one line per chunk as each stage ends. The chunks missing a stage are attacked
    together (one batch on a GPU); each chunk's line keeps its own mask."""
    path = OUT / f"{ingredient}-{threat}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(line["stage"], line["start"]): line for line in read_lines(path)}
    index = family.names.index(ingredient)
    soup.set_weights(torch.eye(len(family.names), dtype=torch.float64)[index])
    sizes = {start: len(y[start : start + chunk]) for start in starts}
    alive = {start: torch.ones(sizes[start], dtype=torch.bool) for start in starts}
    for stage in [*candidates_for(threat), REFERENCE, FULL]:
        missing = [s for s in starts if (stage, s) not in done and (stage != FULL or s < full)]
        if missing:
            attacks = chain(stage, soup, threat)
            xb = torch.cat([x[s : s + chunk] for s in missing])
            yb = torch.cat([y[s : s + chunk] for s in missing])
            every = stage not in (REFERENCE, FULL)  # candidates attack every image, the reference only survivors
            wanted = torch.cat([alive[s] | every for s in missing])
            todo = wanted.nonzero()[:, 0]
            began = time.perf_counter()
            mask = torch.zeros(len(yb), dtype=torch.bool)
            if len(todo):
                mask[todo] = robust_mask(attacks, soup, xb[todo], yb[todo], batch_size, device).cpu()
            seconds = time.perf_counter() - began
            split = [sizes[s] for s in missing]
            for s, part, attacked in zip(missing, mask.split(split), wanted.split(split), strict=True):
                share = int(attacked.sum()) / max(len(todo), 1)
                line = {
                    "stage": stage, "start": s, "n": sizes[s], "attacked": int(attacked.sum()),
                    "seconds": round(seconds * share, 3), "threads": torch.get_num_threads(),
                    "device": device.type, "chunks_together": len(missing),
                    "label": describe_attacks(attacks), "mask": packbits(part),
                    "ingredient_hash": family.hashes[index], "torch": torch.__version__,
                }  # fmt: skip
                with path.open("a") as handle:
                    handle.write(json.dumps(line) + "\n")
                done[(stage, s)] = line
            print(
                f"{ingredient} {threat} {len(missing)} chunks from {missing[0]} {stage}: "
                f"{int(mask.sum())}/{len(yb)} robust, {seconds:.1f} s on {device.type}",
                flush=True,
            )
        for s in starts:
            if (stage, s) in done:
                alive[s] &= unpackbits(done[(stage, s)]["mask"], sizes[s])


def retime(soup: Soup, family, x, y, images: int) -> None:
    """Time every candidate on the first `images` images of each ingredient × threat, one after
    another in this process (one CPU thread), so their costs are compared side by side rather than
    across chunks run at different times and loads. Appends to `timing.jsonl`; a rerun skips what
    is there."""
    path = OUT / "timing.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(line["ingredient"], line["threat"], line["stage"]) for line in read_lines(path) if line["n"] == images}
    robust_mask(chain(REFERENCE, soup, "linf"), soup, x[:8], y[:8])  # warm-up: first calls pay one-off setup
    for threat in THREATS:
        for ingredient in family.names:
            soup.set_weights(torch.eye(len(family.names), dtype=torch.float64)[family.names.index(ingredient)])
            for stage in candidates_for(threat):
                if (ingredient, threat, stage) in done:
                    continue
                began = time.perf_counter()
                robust_mask(chain(stage, soup, threat), soup, x[:images], y[:images])
                line = {
                    "ingredient": ingredient, "threat": threat, "stage": stage, "n": images,
                    "seconds": round(time.perf_counter() - began, 3), "threads": torch.get_num_threads(),
                    "machine": platform.machine(), "torch": torch.__version__,
                }  # fmt: skip
                with path.open("a") as handle:
                    handle.write(json.dumps(line) + "\n")
                print(f"timed {ingredient} {threat} {stage}: {line['seconds']:.1f} s for {images} images", flush=True)


def side_by_side_costs() -> dict[tuple[str, str, str], tuple[float, int]]:
    """(ingredient, threat, stage) -> (seconds per 1,000 images, images) from `retime`'s largest run."""
    costs: dict[tuple[str, str, str], tuple[float, int]] = {}
    for line in read_lines(OUT / "timing.jsonl"):
        key = (line["ingredient"], line["threat"], line["stage"])
        if key not in costs or line["n"] >= costs[key][1]:
            costs[key] = (1000 * line["seconds"] / line["n"], line["n"])
    return costs


def summarise() -> dict:
    """The strength/cost table of everything recorded so far, and the defaults it supports."""
    rows, by_threat = [], {t: {} for t in THREATS}
    timed_side_by_side = side_by_side_costs()
    for path in sorted(OUT.glob("*-*.jsonl")):  # <ingredient>-<threat>.jsonl; timing.jsonl is read apart
        ingredient, threat = path.stem.rsplit("-", 1)
        lines = read_lines(path)
        starts = {line["start"] for line in lines if line["stage"] == REFERENCE}
        complete = sorted(
            s
            for s in starts
            if all(any(entry["stage"] == c and entry["start"] == s for entry in lines) for c in candidates_for(threat))
        )
        if not complete:
            continue
        masks: dict[str, list] = {}
        seconds: dict[str, float] = {}
        timed: dict[str, int] = {}  # images behind `seconds`: CPU runs only, GPU seconds are no cost a user sees
        full_starts = {entry["start"] for entry in lines if entry["stage"] == FULL}
        with_full = set(complete) <= full_starts
        stages = (*candidates_for(threat), REFERENCE, *([FULL] if with_full else []))
        n = 0
        for start in complete:
            size = next(entry["n"] for entry in lines if entry["start"] == start)
            n += size
            for line in lines:
                if line["start"] == start and line["stage"] in stages:
                    masks.setdefault(line["stage"], []).append(unpackbits(line["mask"], size))
                    if line.get("device", "cpu") == "cpu":
                        seconds[line["stage"]] = seconds.get(line["stage"], 0.0) + line["seconds"]
                        timed[line["stage"]] = timed.get(line["stage"], 0) + size
        robust = {stage: torch.cat(parts) for stage, parts in masks.items()}
        reference = torch.stack([robust[s] for s in robust]).all(0)
        labels = [REFERENCE, *([FULL] if with_full else [])]
        row = {
            "ingredient": ingredient,
            "threat": threat,
            "images": n,
            "reference": float(reference.float().mean()),
            "reference_label": " then ".join(
                next(entry["label"] for entry in lines if entry["stage"] == stage) for stage in labels
            ),
            "full_autoattack_in_reference": with_full,
            "starts": complete,
            "reference_mask": packbits(reference),
            "candidates": {},
        }
        for stage in candidates_for(threat):
            acc = float(robust[stage].float().mean())
            row["candidates"][stage] = {
                "accuracy": acc,
                "gap": acc - row["reference"],
                "seconds_per_1000": 1000 * seconds[stage] / timed[stage] if timed.get(stage) else None,
                "cost_images": timed.get(stage, 0),
                "cost_source": "chunks",
                "label": next(entry["label"] for entry in lines if entry["stage"] == stage),
            }
            if (ingredient, threat, stage) in timed_side_by_side:
                cost, images = timed_side_by_side[(ingredient, threat, stage)]
                row["candidates"][stage].update(seconds_per_1000=cost, cost_images=images, cost_source="side by side")
        full = [entry for entry in lines if entry["stage"] == FULL]
        if full:
            covered = sum(entry["n"] for entry in full)
            broke = sum(int(entry["attacked"]) - int(unpackbits(entry["mask"], entry["n"]).sum()) for entry in full)
            row["full_autoattack"] = {"images": covered, "extra_broken": broke}
        rows.append(row)
        by_threat[threat][ingredient] = row
    defaults = {}
    for threat, per_ingredient in by_threat.items():
        fits = [
            c
            for c in candidates_for(threat)
            if per_ingredient and all(r["candidates"][c]["gap"] <= TOLERANCE + 1e-6 for r in per_ingredient.values())
        ]
        cost = {c: max(r["candidates"][c]["seconds_per_1000"] or 0.0 for r in per_ingredient.values()) for c in fits}
        defaults[threat] = {
            "cheapest_within_1_point": min(fits, key=cost.get) if fits else None,
            "ingredients": sorted(per_ingredient),
            "images": min((r["images"] for r in per_ingredient.values()), default=0),
        }
    return {
        "rows": rows,
        "defaults": defaults,
        "reference_table": reference_table(rows),
        "tolerance": TOLERANCE,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads when summarised",
        "torch": torch.__version__,
    }


def write_cards(summary: dict, family_folder: Path) -> None:
    """Store each ingredient's reference robust accuracy in its card, in place of the PGD-20
    records the first wave measured (which overstated robustness): spec 'autoattack' where
    FAB-T and Square ran on every image (the reference is then at least as strong as
    AutoAttack's standard version), else 'autoattack-apgd' (its APGD-CE + APGD-T stages)."""
    family = load_family(family_folder)
    full = {t: all(r["full_autoattack_in_reference"] for r in summary["rows"] if r["threat"] == t) for t in THREATS}
    for ingredient in family.ingredients:
        clean = [m for m in ingredient.card.metrics if m.get("kind") == "clean" and m.get("n") == 1000]
        images = clean[0]["images"] if clean else "1000 images of the CIFAR-10 test split"  # the same seed-0 subset
        records = []
        for row in (r for r in summary["rows"] if r["ingredient"] == ingredient.card.name):
            threat = row["threat"]
            stages = "APGD-CE, APGD-T, FAB-T and Square" if full[threat] else "APGD-CE and APGD-T"
            n, correct = row["images"], round(row["reference"] * row["images"])
            records.append(Record(
                None, None, MetricSpec("attack", threat, attack="autoattack" if full[threat] else "autoattack-apgd"),
                n, correct, correct / n, *wilson_interval(correct, n),
                f"AutoAttack's standard {stages} with {len(candidates_for(threat))} further attacks, "
                f"{threat_label(threat, DEFAULT_BUDGETS[threat])} (robust only if all fail; strength bench)",
                images, 0, BATCHNORM_LABELS["mix"], family.name,
            ).to_dict())  # fmt: skip
        records.sort(key=lambda r: THREATS.index(r["measure"]["threat"]))
        fresh = {r["spec"] for r in records}
        kept = [
            m for m in ingredient.card.metrics
            if m.get("spec") not in fresh
            and not (m.get("kind") == "attack" and MetricSpec.from_key(m["spec"]).attack == "pgd")
        ]  # fmt: skip
        ingredient.card.metrics = records + kept  # robust columns first, as the Home table shows them
        write_card(ingredient.card, card_path(ingredient.path))


def reference_on(row: dict, starts: list[int]) -> torch.Tensor:
    """A summary row's per-image reference mask on the chunks beginning at `starts`."""
    by_chunk = unpackbits(row["reference_mask"], row["images"]).view(len(row["starts"]), -1)
    return torch.cat([by_chunk[row["starts"].index(s)] for s in starts])


def paired_against(rows: list[dict], others: list[dict], name: str) -> list[dict]:
    """Each row's reference robust accuracy minus that of every ingredient of `others` (another
    results folder's summary rows) at the same threat, paired image by image on the chunks both
    cover (Newcombe interval, McNemar's exact p): how a candidate model (called `name` and its
    ingredient) compares with the family."""
    pairs = []
    for row in rows:
        for other in (o for o in others if o["threat"] == row["threat"]):
            common = sorted(set(row["starts"]) & set(other["starts"]))
            a, b = reference_on(row, common), reference_on(other, common)
            both, only_a, only_b = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
            low, high = newcombe_interval(both, only_a, only_b, len(a) - both - only_a - only_b)
            pairs.append({
                "threat": row["threat"], "model": f"{name} {row['ingredient']}", "against": other["ingredient"],
                "images": len(a), "model_accuracy": float(a.float().mean()),
                "against_accuracy": float(b.float().mean()),
                "difference": (only_a - only_b) / len(a), "ci_low": low, "ci_high": high,
                "p_value": mcnemar_p(only_a, only_b),
            })  # fmt: skip
    return pairs


def reference_table(rows: list[dict]) -> dict:
    """Per threat, each ingredient's reference robust accuracy on the images every ingredient has
    covered (Wilson 95% interval), and the diagonal check: the threat's specialist against the
    best other ingredient, paired image by image (Newcombe interval, McNemar's exact p)."""
    table = {}
    for threat in THREATS:
        mine = [r for r in rows if r["threat"] == threat]
        if not mine:
            continue
        common = sorted(set.intersection(*(set(r["starts"]) for r in mine)))
        masks = {}
        for r in mine:
            masks[r["ingredient"]] = reference_on(r, common)
        n = sum(len(m) for m in masks.values()) // len(masks)
        entry = {"images": n, "accuracy": {}}
        for name, mask in masks.items():
            low, high = wilson_interval(int(mask.sum()), n)
            entry["accuracy"][name] = {"accuracy": float(mask.float().mean()), "ci_low": low, "ci_high": high}
        if threat in masks and len(masks) > 1:
            rivals = {name: m for name, m in masks.items() if name != threat}
            best = max(rivals, key=lambda name: int(rivals[name].sum()))
            a, b = masks[threat], rivals[best]
            both, only_a, only_b = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
            low, high = newcombe_interval(both, only_a, only_b, n - both - only_a - only_b)
            entry["diagonal"] = {
                "specialist": threat, "best_other": best, "difference": (only_a - only_b) / n,
                "ci_low": low, "ci_high": high, "p_value": mcnemar_p(only_a, only_b),
            }  # fmt: skip
        table[threat] = entry
    return table


def markdown(summary: dict) -> str:
    """The summary as Markdown, one table per threat: accuracy (gap to the reference, points) and
    seconds per 1,000 images."""
    lines = [
        "Cells: robust accuracy in % (its excess over the reference, in points) · seconds per 1,000 images "
        "on one CPU thread: timed side by side in one process (`--retime`) where that has run, else summed "
        "over the chunks run on a CPU. Reference, per image: robust only if every "
        "candidate and AutoAttack's APGD-CE + APGD-T fail; where marked *, also AutoAttack's FAB-T and "
        "Square (the standard version's remaining stages), run on every image.",
        "",
    ]
    for threat in THREATS:
        names = list(candidates_for(threat))
        lines += [
            f"### {threat}",
            "",
            "| ingredient | images | reference | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for row in (r for r in summary["rows"] if r["threat"] == threat):
            cells = [
                f"{100 * c['accuracy']:.1f} ({100 * c['gap']:+.1f}) · {cost(c['seconds_per_1000'])}"
                for c in row["candidates"].values()
            ]
            lines.append(
                f"| {row['ingredient']} | {row['images']} | {100 * row['reference']:.1f}"
                + ("*" if row["full_autoattack_in_reference"] else "")
                + " | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    lines.append("")
    lines += ["### Reference robust accuracy (paired on the images every ingredient covers)", ""]
    for threat, entry in summary["reference_table"].items():
        cells = ", ".join(
            f"{name} {interval(v['accuracy'], v['ci_low'], v['ci_high'], unit='')}"
            for name, v in entry["accuracy"].items()
        )
        lines.append(f"- {threat} ({entry['images']} images): {cells}")
        if "diagonal" in entry:
            d = entry["diagonal"]
            lines.append(
                f"  - {d['specialist']} − {d['best_other']}: "
                f"{interval(d['difference'], d['ci_low'], d['ci_high'], unit=' points', signed=True)}, "
                f"McNemar p = {d['p_value']:.3f}"
            )
    lines.append("")
    if "against" in summary:
        lines += [f"### Paired against {summary['against']['folder']}", ""]
        for d in summary["against"]["pairs"]:
            lines.append(
                f"- {d['threat']}: {d['model']} {100 * d['model_accuracy']:.1f} − {d['against']} "
                f"{100 * d['against_accuracy']:.1f} = "
                f"{interval(d['difference'], d['ci_low'], d['ci_high'], unit=' points', signed=True)}, "
                f"McNemar p = {d['p_value']:.3f} ({d['images']} images)"
            )
        lines.append("")
    for threat, choice in summary["defaults"].items():
        lines.append(
            f"- {threat}: cheapest within 1 point on every ingredient: {choice['cheapest_within_1_point']} "
            f"({choice['images']} images, ingredients {', '.join(choice['ingredients'])})"
        )
    return "\n".join(lines) + "\n"


def cost(seconds: float | None) -> str:
    return "no CPU timing" if seconds is None else f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--worker", default="0/1", help="i/n: this process runs every n-th ingredient × threat")
    parser.add_argument("--full-autoattack", type=int, default=0, help="run FAB-T and Square on the first N images")
    parser.add_argument("--data", default=None)
    parser.add_argument("--summary", action="store_true", help="only write the summary of what is recorded")
    parser.add_argument("--out", default=None, help="folder of the per-image results (default bench/results/)")
    parser.add_argument("--family", default=str(FAMILY), help="folder of the ingredients measured")
    parser.add_argument("--device", default="cpu", help="where to attack (costs are summarised from CPU runs only)")
    parser.add_argument("--block", type=int, default=1, help="chunks attacked together (GPU)")
    parser.add_argument("--against", default=None, help="results folder to pair this one's models against")
    parser.add_argument("--write-cards", action="store_true", help="store the reference in the family's cards")
    parser.add_argument("--retime", type=int, default=0, help="time every candidate side by side on N images")
    parser.add_argument("--batch", type=int, default=256, help="images per forward pass")
    args = parser.parse_args()
    global OUT, SUMMARY
    if args.out:
        OUT, SUMMARY = Path(args.out) / "attack_strength", Path(args.out) / "attack_strength.json"
    if not args.summary:
        device = torch.device(args.device)
        family = load_family(args.family)
        test = load_split(args.data, "test").subset(args.images, 0)
        x, y = test.floats(), test.labels
        soup = Soup.from_family(family, device)
        if args.retime:
            retime(soup, family, x, y, args.retime)
        i, n = (int(part) for part in args.worker.split("/"))
        combos = [(ing, t) for ing in family.names for t in THREATS][i::n]
        starts = list(range(0, args.images, args.chunk))
        for first in range(0, len(starts), args.block):  # block-major: a full table at every stop
            for ingredient, threat in combos:
                run_block(
                    soup, family, ingredient, threat, x, y, starts[first : first + args.block], args.chunk,
                    args.full_autoattack, device, args.batch,
                )  # fmt: skip
    summary = summarise()
    if args.against:
        others = json.loads((Path(args.against) / "attack_strength.json").read_text())["rows"]
        summary["against"] = {"folder": args.against, "pairs": paired_against(summary["rows"], others, OUT.parent.name)}
    if args.write_cards:
        write_cards(summary, Path(args.family))
    atomic_write_json(summary, SUMMARY)
    SUMMARY.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
