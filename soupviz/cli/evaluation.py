"""`soupviz eval` (a soup or each ingredient on clean, attack and corruption metrics, optionally
compared image by image or written into the cards) and `soupviz sweep` (a simplex grid of soups
into the results store, in-process or on Ray), both printed as a table and exported with --out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from soupviz.cli.options import add_common, command_line, real, weight_row, whole
from soupviz.cli.outputs import check_out
from soupviz.errors import SoupvizError
from soupviz.progress import terminal_bar

if TYPE_CHECKING:
    import torch

    from soupviz.checkpoints.families import SoupFamily


def _add_evaluation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("family", help="family folder of .safetensors checkpoints with JSON cards")
    parser.add_argument(
        "--metrics",
        default="clean,linf,l2,l1",
        help="comma-separated: clean, union, linf[:eps[:attack[:steps[:restarts][:tTARGETS]]]], l2..., l1..., "
        "<corruption>[:severity], "
        "corruptions[:severity] (every corruption, at every severity unless one is given)",
    )
    parser.add_argument(
        "--attack",
        default="default",
        help="attack for threat metrics: 'default' (per threat, the cheapest measured within 1 point of "
        "AutoAttack: see bench/results/attack_strength.md), or pgd, pgd-t, apgd-ce, apgd-dlr, apgd-t, "
        "chains such as apgd-ce+apgd-t, or autoattack",
    )
    parser.add_argument("--steps", type=whole(1), default=20, help="iterations of an attack named with --attack")
    parser.add_argument("--images", type=whole(1), default=1000, help="number of test images (a fixed seeded subset)")
    parser.add_argument(
        "--batchnorm",
        default="mix",
        choices=["mix", "reestimate"],
        help="mix the running statistics (means like the weights, variances in log space) or re-estimate them "
        "per soup on clean training images",
    )
    parser.add_argument("--out", default=None, help="export the records to this .json or .csv file")
    parser.add_argument("--store", default=None, help="results store (SQLite) to read and add records to "
                        "(default: results.sqlite in the soupviz cache folder, $SOUPVIZ_CACHE)")
    parser.add_argument("--no-cache", action="store_true", help="recompute instead of reading stored results")
    _add_merge(parser)
    add_common(parser)


def _add_merge(parser: argparse.ArgumentParser) -> None:
    """Options of merges beyond the plain soup (`soupviz.evaluate.merges`)."""
    from soupviz.soups.task_vectors import DARE_DROP, TIES_TOP_K

    group = parser.add_argument_group("merges", "layer-wise soups and task-vector merges, measured like soups")
    group.add_argument("--merge", default=None, choices=["sum", "ties", "dare"],
                       help="merge task vectors relative to the base instead of souping: task arithmetic (sum), "
                       "TIES or DARE; each soup's weights are its coordinates (λ_i = w_i, base 1 - Σλ)")
    group.add_argument("--base", default=None,
                       help="base ingredient of the task vectors (default: the parent the family's cards name)")
    group.add_argument("--top-k", type=real(0, 1, above=True), default=TIES_TOP_K,
                       help="TIES: share of each task vector's largest magnitudes kept (Yadav et al.: 0.2)")
    group.add_argument("--drop", type=real(0, 1, below=True), default=DARE_DROP,
                       help="DARE: probability of dropping each task-vector entry (Yu et al.: 0.9)")
    group.add_argument("--drop-seed", type=whole(0), default=0, help="DARE: seed of the drop masks")
    group.add_argument("--swaps", action="store_true",
                       help="the layer-swap matrix (where robustness lives): the base, and the base with each block "
                       "group taken from each other ingredient")
    group.add_argument("--groups", default=None, metavar="GROUP=INGREDIENT,...",
                       help="layer-wise soup: these block groups (e.g. stem, layer1..layer4, head) take an "
                       "ingredient or weights W:W:... instead of the soup's, e.g. 'layer3=l2,head=0.5:0.5:0:0'")


def _merge(args: argparse.Namespace, family):
    """The `Merge` the options name, or None for plain soups."""
    from soupviz.evaluate.merges import Merge, parse_groups

    if not args.merge and not args.groups:
        return None
    groups = parse_groups(args.groups, family.names) if args.groups else ()
    return Merge(args.merge or "soup", base=args.base, top_k=args.top_k, drop=args.drop, seed=args.drop_seed,
                 groups=groups)


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz eval`."""
    parser = sub.add_parser("eval", help="evaluate a soup (or each ingredient) on clean, attack and corruption metrics")
    _add_evaluation(parser)
    parser.add_argument(
        "--weights",
        action="append",
        type=weight_row,
        default=None,
        help="comma-separated soup weights, one per ingredient in family order; repeatable (default: each ingredient)",
    )
    parser.add_argument("--normalise", action="store_true", help="divide the weights by their sum")
    parser.add_argument(
        "--lambdas",
        action="append",
        type=weight_row,
        default=None,
        help="with --merge: comma-separated task-vector coefficients, one per ingredient but the base, in family "
        "order; repeatable (default: λ = 1 each, TIES' default)",
    )
    parser.add_argument(
        "--compare",
        default=None,
        metavar="A,B",
        help="compare ingredients A and B image by image (paired 95%% intervals, McNemar) in a Markdown table",
    )
    parser.add_argument(
        "--write-cards",
        action="store_true",
        help="store each ingredient's measured metrics in its card (ingredients only, no --weights)",
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="evaluate the family's baselines (its baselines/ folder, e.g. SAT) instead of its soups, on the "
        "same images: with --store, the Trade-off page draws them beside the stored soups",
    )
    parser.set_defaults(run=run_eval)


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz sweep`."""
    parser = sub.add_parser("sweep", help="evaluate a simplex grid of soups into a results file for the dashboard")
    _add_evaluation(parser)
    parser.add_argument("--step", type=real(0, 1, above=True), default=0.2, help="grid step of the weights")
    parser.add_argument(
        "--subset", default=None, help="comma-separated ingredient names allowed a nonzero weight (default: all)"
    )
    parser.add_argument(
        "--margin", type=real(0), default=0.0, help="extrapolation margin: weights in [-margin, 1 + margin]"
    )
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="run the sweep's tasks in this process or on Ray (pip install -e '.[ray]')")
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    parser.add_argument("--shards", type=whole(1), default=1, help="image shards per task (more, smaller tasks)")
    parser.add_argument("--fold", type=whole(1), default=None,
                        help="soups per task, folded into one batch (default: 8 on GPUs, 1 on CPUs)")
    parser.set_defaults(run=run_sweep)


def _evaluate(args: argparse.Namespace, weights) -> list:
    from soupviz import ResultStore, load_family, open_evaluator
    from soupviz.results.metric_specs import parse_metrics

    family = load_family(args.family)
    specs = parse_metrics(args.metrics, args.attack, args.steps)
    evaluator = open_evaluator(
        family,
        data=args.data,
        images=args.images,
        seed=args.seed,
        device=args.device,
        batchnorm=args.batchnorm,
        cache=not args.no_cache,
        store=ResultStore(args.store) if args.store else None,
    )
    _note_cut(args.images, evaluator.images)
    merge = _merge(args, family)
    if getattr(args, "swaps", False):
        return _evaluate_swaps(args, evaluator, specs)
    if args.baselines:
        if merge is not None:
            raise SoupvizError("--baselines evaluates the family's baselines: drop --merge and --groups.")
        return _evaluate_baselines(args, evaluator, specs)
    if merge is not None:
        from soupviz.evaluate.merges import merge_evaluator

        evaluator = merge_evaluator(evaluator, merge)
    if merge is not None and merge.method != "soup" and weights is None:
        weights = _lambda_rows(args)
    weights = evaluator.ingredient_weights() if weights is None else weights(family)
    with terminal_bar("evaluating", "step") as report:
        records = evaluator.evaluate(weights, specs, report)
    return _show(args, family, specs, records)


def _note_cut(requested: int, images) -> None:
    """Say so when --images asks for more test images than the data holds (all of them are used)."""
    if len(images) < requested:
        print(f"soupviz: note: --images {requested} asks for more than the {len(images)} test images of "
              f"{images.source}: all {len(images)} are used.", file=sys.stderr)
def _evaluate_swaps(args: argparse.Namespace, evaluator, specs: list) -> list:
    """The layer-swap matrix (`evaluate_swaps`): one table per model (the base, then each swap),
    all exported to --out."""
    from soupviz.evaluate.layer_swaps import evaluate_swaps
    from soupviz.present.tables import text_table
    from soupviz.results.store import write_records

    with terminal_bar("swapping block groups", "step") as report:
        records = evaluate_swaps(evaluator, specs, args.base, report)
    family = evaluator.family
    for name in dict.fromkeys(r.family for r in records):
        print(name)
        print(text_table([r for r in records if r.family == name], family.names))
    if args.out:
        meta = {"family": family.name, "metrics": [spec.key for spec in specs], "command": command_line()}
        print(write_records(records, args.out, meta))
    return records


def _lambda_rows(args: argparse.Namespace):
    """The soup coordinates of the --lambdas rows around --base (default: λ = 1 for every task
    vector, TIES' default), as a function of the family."""
    from soupviz.evaluate.merges import default_lambdas, lambdas_to_weights, lineage_base

    def weights(family):
        import torch

        base = lineage_base(family, args.base)
        rows = args.lambdas or [default_lambdas(len(family.names))]
        return torch.tensor([lambdas_to_weights(row, len(family.names), base) for row in rows], dtype=torch.float64)

    return weights


def _evaluate_baselines(args: argparse.Namespace, evaluator, specs: list) -> list:
    """The family's baselines on `specs`, measured like its soups (`evaluate_baselines`): one table
    per baseline, all exported to --out."""
    from soupviz.checkpoints.families import baseline_family_name, load_baselines
    from soupviz.evaluate.baselines import evaluate_baselines
    from soupviz.present.tables import text_table
    from soupviz.results.store import write_records

    family = evaluator.family
    baselines = load_baselines(family)
    if not baselines:
        raise SoupvizError(f"{args.family} has no baselines: put their checkpoints in its baselines/ folder.")
    with terminal_bar("evaluating baselines", "step") as report:
        records = evaluate_baselines(evaluator, baselines, specs, report)
    for baseline in baselines:
        name = baseline_family_name(family, baseline)
        print(text_table([r for r in records if r.family == name], [baseline.card.label]))
    if args.out:
        meta = {"family": family.name, "baselines": [b.name for b in baselines],
                "metrics": [spec.key for spec in specs], "command": command_line()}
        print(write_records(records, args.out, meta))
    return records


def _show(args: argparse.Namespace, family, specs: list, records: list) -> list:
    """Print the records' table, each cell the record that speaks for its soup and metric among this
    run's and the store's (`results.grids.speaking_records`: a stronger stored attack wins, as on the
    pages; none consulted with --no-cache), and export this run's records to --out if given."""
    from soupviz import ResultStore
    from soupviz.present.tables import text_table
    from soupviz.results.grids import speaking_records
    from soupviz.results.store import write_records

    store = None if args.no_cache else ResultStore(args.store)
    print(text_table(speaking_records(store, family.hashes, records), family.names))
    if args.out:
        meta = {
            "family": family.name,
            "hashes": family.hashes,
            "ingredients": family.names,
            "labels": family.labels,
            "metrics": [spec.key for spec in specs],
            "command": command_line(),
        }
        print(write_records(records, args.out, meta))
    return records


def _compared(text: str, present: list[str]) -> list[str]:
    """The two ingredient names of --compare 'A,B', checked against the family's."""
    wanted = [name.strip() for name in text.split(",")]
    if len(wanted) != 2 or not set(wanted) <= set(present):
        raise SoupvizError(f"--compare takes two ingredient names among {', '.join(present)}, got {text!r}.")
    return wanted


def _comparison(records: list, wanted: list[str]) -> str:
    """The paired Markdown table (`present.tables.comparison_markdown`) of the ingredients named in `wanted`."""
    from soupviz.present.tables import comparison_markdown

    present = list(records[0].ingredients)
    a, b = ([r for r in records if r.weights[present.index(name)] == 1.0] for name in wanted)
    return comparison_markdown(a, b, *wanted)


def run_eval(args: argparse.Namespace) -> None:
    """`soupviz eval`: the soups of --weights (or each ingredient) on --metrics, as a table."""
    from soupviz import load_family
    from soupviz.results.store import EXPORT_SUFFIXES

    check_out(args.out, EXPORT_SUFFIXES)
    weights = _weights_of(args)
    _check_eval_flags(args)
    compared = _compared(args.compare, load_family(args.family).names) if args.compare else None
    records = _evaluate(args, weights)
    if compared:
        print(_comparison(records, compared))
    if args.write_cards:
        _write_cards(args.family, records)
        print(f"metrics written to the cards in {args.family}")


def _weights_of(args: argparse.Namespace) -> Callable[[SoupFamily], torch.Tensor] | None:
    """None without --weights (each ingredient is evaluated); else a function checking the rows of
    --weights against a family (one per ingredient, within `EXTRAPOLATION_LIMIT`, --normalise) and
    giving them as `check_weights` does, with a note for each soup that extrapolates."""
    from soupviz.errors import SoupWeightsError
    from soupviz.soups.weights import EXTRAPOLATION_LIMIT, check_weights, is_extrapolated

    if not args.weights:
        return None
    if args.write_cards:
        raise SoupvizError("--write-cards stores ingredients' metrics: drop --weights to use it.")

    def weights(family):
        for row in args.weights:
            if len(row) != len(family.names):
                raise SoupWeightsError(
                    f"--weights {','.join(f'{w:g}' for w in row)} gives {len(row)} weights "
                    f"but the family has {len(family.names)} ingredients "
                    f"({', '.join(family.names)}): give one per ingredient."
                )
        rows = check_weights(
            args.weights, len(family.names), extrapolate=True, margin=EXTRAPOLATION_LIMIT, normalise=args.normalise
        )
        for row in rows.tolist():
            if is_extrapolated(row):
                print(
                    f"soupviz: note: the soup {' '.join(f'{w:g}' for w in row)} has weights outside [0, 1]: "
                    "it extrapolates beyond the ingredients rather than mixing them.",
                    file=sys.stderr,
                )
        return rows

    return weights


def _check_eval_flags(args: argparse.Namespace) -> None:
    """Refuse `soupviz eval` flags that do not go together, naming what to drop."""
    if args.baselines and (args.weights or args.compare or args.write_cards):
        raise SoupvizError("--baselines evaluates the family's baselines: drop --weights, --compare and --write-cards.")
    if args.compare and args.weights:
        raise SoupvizError("--compare compares two ingredients: drop --weights to use it.")
    if args.lambdas and (args.weights or not args.merge):
        raise SoupvizError("--lambdas gives the task-vector coefficients of --merge: use it with --merge, "
                           "without --weights.")
    if args.swaps and (args.merge or args.groups or args.weights or args.lambdas or args.baselines):
        raise SoupvizError("--swaps measures the base and its layer swaps: drop --merge, --groups, --weights, "
                           "--lambdas and --baselines.")
    if (args.merge or args.groups or args.swaps) and (args.compare or args.write_cards):
        raise SoupvizError("--compare and --write-cards measure ingredients: drop --merge and --groups to use them.")


def _write_cards(folder: str, records: list) -> None:
    """Store each ingredient's own records (weight 1 on it) in its card, then the mean over every
    corruption its card now holds."""
    from soupviz import load_family
    from soupviz.checkpoints.cards import card_path, record_metrics
    from soupviz.results.records import corruption_mean, records_of

    family = load_family(folder)
    for index, ingredient in enumerate(family.ingredients):
        mine = [replace(r, weights=None, ingredients=None).to_dict() for r in records if r.weights[index] == 1.0]
        record_metrics(ingredient.card, card_path(ingredient.path), mine)
        mean = corruption_mean(records_of(ingredient.card.metrics))  # over every corruption the card now holds
        if mean:
            record_metrics(ingredient.card, card_path(ingredient.path), [mean.to_dict()])


def run_sweep(args: argparse.Namespace) -> None:
    """`soupviz sweep`: the simplex grid of --step (within --subset, --margin) on --metrics."""
    if args.swaps:
        raise SoupvizError("--swaps is a matrix of its own, not a grid: run it with soupviz eval.")
    from soupviz.results.store import EXPORT_SUFFIXES
    from soupviz.soups.weights import simplex_grid

    check_out(args.out, EXPORT_SUFFIXES)

    def weights(family):
        if len(family.names) < 2:
            raise SoupvizError(f"The family {family.name} has one ingredient, so there is no grid of soups to "
                               "sweep; measure it with soupviz eval.")
        subset = None
        if args.subset:
            wanted = [name.strip() for name in args.subset.split(",")]
            unknown = [name for name in wanted if name not in family.names]
            if unknown:
                raise SoupvizError(
                    f"--subset names {unknown[0]!r}, which is not in the family ({', '.join(family.names)})."
                )
            subset = [family.names.index(name) for name in wanted]
        if args.margin > 0:
            print(
                f"soupviz: note: --margin {args.margin:g} adds soups with weights outside [0, 1]: they extrapolate "
                "beyond the ingredients rather than mixing them.",
                file=sys.stderr,
            )
        return simplex_grid(len(family.names), args.step, subset=subset, margin=args.margin)

    _sweep(args, weights)


def _sweep(args: argparse.Namespace, weights) -> list:
    """Run `soupviz.evaluate.sweeps.sweep` for the parsed arguments: into --store (a temporary store with
    --no-cache), on --engine, with a progress bar over tasks."""
    import tempfile

    from soupviz import ResultStore, load_family
    from soupviz.data import load_split
    from soupviz.evaluate.sweeps import SweepSetup, sweep
    from soupviz.results.metric_specs import parse_metrics

    family = load_family(args.family)
    _note_cut(args.images, load_split(args.data, "test"))
    specs = parse_metrics(args.metrics, args.attack, args.steps)
    setup = SweepSetup(str(family.folder or args.family), data=args.data, images=args.images, seed=args.seed,
                       batchnorm=args.batchnorm, fold=args.fold, device=args.device, merge=_merge(args, family))
    rows = weights(family)
    with tempfile.TemporaryDirectory() as scratch, terminal_bar("sweeping", "task") as report:
        store = ResultStore(Path(scratch) / "results.sqlite" if args.no_cache else args.store)
        records = sweep(setup, rows, specs, store, engine=args.engine, address=args.address,
                        shards=args.shards, progress=report)
    return _show(args, family, specs, records)
