"""The `soupviz` command line: a thin layer over the library, sharing its functions with the dashboard.

Subcommands: `train` (one ingredient), `eval` (a soup or each ingredient), `sweep` (a simplex
grid to a results file the dashboard loads), `import` (foreign checkpoints) and `check` (can a
family be souped: `soupviz.cli_import`). User errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from soupviz.cli_import import add_check_parser, add_import_parser
from soupviz.errors import SoupvizError


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="CIFAR-10 source: an ImageFolder path with train/ and test/, or 'torchvision[:folder]' "
        "(default: $SOUPVIZ_DATA, then ../shared/data/cifar10)",
    )
    parser.add_argument("--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--seed", type=int, default=0)


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from soupviz.objectives import LRAT_WEIGHTINGS, VULNERABILITIES
    from soupviz.train import METHODS, SCHEDULES

    parser = sub.add_parser("train", help="train or fine-tune one ingredient and write its checkpoint and card")
    add = parser.add_argument
    add("name", help="checkpoint name (file stem)")
    add("--out", required=True, help="folder for the checkpoint, its card, log and resumable state")
    add("--threat", default="linf", choices=["none", "linf", "l2", "l1"])
    add(
        "--method",
        default="pgd",
        choices=METHODS,
        help="pgd (Madry), fgsm (one step from a random start: fast FGSM-RS), trades, lrat, "
        "sat (one threat sampled per batch) or standard (with --threat none)",
    )
    add("--eps", type=float, default=None, help="budget in pixel scale (default: 8/255, 0.5, 12)")
    add("--attack-steps", type=int, default=None, help="training attack steps (default 10, fgsm 1)")
    add("--attack-step-size", type=float, default=None, help="default 2.5·eps/steps (1.25·eps for one step)")
    add("--trades-beta", type=float, default=6.0, help="TRADES: weight of the KL term")
    add(
        "--lrat-threats",
        default="",
        help="LRAT: comma-separated extra threats whose PGD variants join each instance's pair "
        "(the training threat is always in it), e.g. l2,l1",
    )
    add("--lrat-c", type=float, default=1.0, help="LRAT: weight budget C of each pair")
    add("--lrat-floor", type=float, default=0.1, help="LRAT: lower bound of the natural weight")
    add(
        "--lrat-g",
        default="linear",
        choices=LRAT_WEIGHTINGS,
        help="LRAT: how the variants share the adversarial weight",
    )
    add("--lrat-temperature", type=float, default=0.25, help="LRAT: temperature of --lrat-g softmax")
    add(
        "--lrat-vulnerability",
        default="prob",
        choices=VULNERABILITIES,
        help="LRAT: prob (1 - p_true) or margin (sigmoid of the CW margin)",
    )
    add("--arch", default="preact_resnet_small")
    add("--from", dest="parent", default=None, help="checkpoint to fine-tune from")
    add("--epochs", type=int, default=10)
    add("--batch-size", type=int, default=128)
    add("--lr", type=float, default=0.1)
    add("--schedule", default="piecewise", choices=SCHEDULES)
    add("--warmup", type=float, default=0.0, help="fraction of iterations with a linear warm-up")
    add("--momentum", type=float, default=0.9)
    add("--weight-decay", type=float, default=5e-4)
    add("--train-images", type=int, default=None, help="train on this many images only")
    add("--val-images", type=int, default=500)
    add("--val-steps", type=int, default=10, help="PGD steps of the per-epoch validation")
    add(
        "--select",
        default="best",
        choices=["best", "last"],
        help="keep the epoch with the best validation score, or the last",
    )
    add("--resume", action="store_true", help="continue from the last saved epoch")
    _add_common(parser)
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from soupviz.train import TrainConfig, train

    config = TrainConfig(
        name=args.name,
        out=args.out,
        threat=args.threat,
        method=args.method,
        eps=args.eps,
        attack_steps=args.attack_steps,
        attack_step_size=args.attack_step_size,
        trades_beta=args.trades_beta,
        lrat_threats=[t.strip() for t in args.lrat_threats.split(",") if t.strip()],
        lrat_c=args.lrat_c,
        lrat_floor=args.lrat_floor,
        lrat_g=args.lrat_g,
        lrat_temperature=args.lrat_temperature,
        lrat_vulnerability=args.lrat_vulnerability,
        arch=args.arch,
        parent=args.parent,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        warmup=args.warmup,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        train_images=args.train_images,
        val_images=args.val_images,
        val_steps=args.val_steps,
        select=args.select,
        data=args.data,
        device=args.device,
        seed=args.seed,
        command="soupviz " + shlex.join(sys.argv[1:]),
    )
    print(train(config, resume=args.resume))


def _add_evaluation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("family", help="family folder of .safetensors checkpoints with JSON cards")
    parser.add_argument(
        "--metrics",
        default="clean,linf,l2,l1",
        help="comma-separated: clean, union, linf[:eps[:attack[:steps]]], l2..., l1..., <corruption>[:severity], "
        "corruptions[:severity] (every corruption, at every severity unless one is given)",
    )
    parser.add_argument(
        "--attack",
        default="apgd-ce",
        help="default attack for threat metrics (pgd, apgd-ce, apgd-dlr, apgd-t, autoattack)",
    )
    parser.add_argument("--steps", type=int, default=20, help="default attack iterations")
    parser.add_argument("--images", type=int, default=1000, help="number of test images (a fixed seeded subset)")
    parser.add_argument(
        "--batchnorm",
        default="mix",
        choices=["mix", "reestimate"],
        help="mix the running statistics or re-estimate them per soup on clean training images",
    )
    parser.add_argument("--out", default=None, help="write the records to this .json or .csv file")
    parser.add_argument("--no-cache", action="store_true", help="recompute instead of reading cached results")
    _add_common(parser)


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate a soup (or each ingredient) on clean, attack and corruption metrics")
    _add_evaluation(parser)
    parser.add_argument(
        "--weights",
        action="append",
        default=None,
        help="comma-separated soup weights, one per ingredient in family order; repeatable (default: each ingredient)",
    )
    parser.add_argument("--normalise", action="store_true", help="divide the weights by their sum")
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
    parser.set_defaults(run=_run_eval)


def _sweep_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sweep", help="evaluate a simplex grid of soups into a results file for the dashboard")
    _add_evaluation(parser)
    parser.add_argument("--step", type=float, default=0.2, help="grid step of the weights")
    parser.add_argument(
        "--subset", default=None, help="comma-separated ingredient names allowed a nonzero weight (default: all)"
    )
    parser.add_argument(
        "--margin", type=float, default=0.0, help="extrapolation margin: weights in [-margin, 1 + margin]"
    )
    parser.set_defaults(run=_run_sweep)


def _evaluate(args: argparse.Namespace, weights) -> list:
    from tqdm import tqdm

    from soupviz.checkpoints import load_family
    from soupviz.evaluate import open_evaluator
    from soupviz.metrics import parse_metrics
    from soupviz.results_io import write_records

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
    )
    weights = evaluator.ingredient_weights() if weights is None else weights(family)
    with tqdm(total=1, unit="step", desc="evaluating") as bar:

        def report(progress) -> None:
            bar.total = progress.total
            bar.n = progress.done
            bar.set_postfix_str(progress.message, refresh=True)

        records = evaluator.evaluate(weights, specs, report)
    print(format_table(records, family.names))
    if args.out:
        meta = {
            "family": family.name,
            "hashes": family.hashes,
            "ingredients": family.names,
            "labels": family.labels,
            "metrics": [spec.key for spec in specs],
            "command": "soupviz " + shlex.join(sys.argv[1:]),
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
    """The Markdown table of `comparison.paired_rows` for the ingredients named in `wanted`."""
    from soupviz.comparison import paired_rows

    present = list(records[0].ingredients)
    a, b = ([r for r in records if r.weights[present.index(name)] == 1.0] for name in wanted)
    rows = [row for row in paired_rows(a, b, *wanted) if row["kind"] != "corruption"]  # corruptions: their mean
    header = [key for key in rows[0] if key not in ("kind", "method")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines + ["", "≤: an upper bound on robust accuracy (the attack may miss adversarial examples)."])


def format_table(records: list, names: list[str]) -> str:
    """Records as a text table: one row per soup, one column per metric, accuracy and 95% interval;
    corruptions are summarised in one 'corruption mean' column (`metrics.with_corruption_mean`)."""
    from soupviz.figures import metric_name
    from soupviz.metrics import with_corruption_mean

    soups: dict[tuple, dict] = {}
    for record in records:  # robust columns name their attack: two attacks of one threat are two columns
        soups.setdefault(tuple(record.weights), {})[metric_name(record)] = record.row()
    soups = {weights: with_corruption_mean(by_metric) for weights, by_metric in soups.items()}
    columns = list(dict.fromkeys(metric for by_metric in soups.values() for metric in by_metric))
    header = ["soup (" + ", ".join(names) + ")"] + columns
    lines = [header]
    for weights, by_metric in soups.items():
        cells = [f"{m['accuracy']:6.1%} [{m['ci_low']:.1%}, {m['ci_high']:.1%}]" if (m := by_metric.get(c)) else "—"
                 for c in columns]
        lines.append([" ".join(f"{w:g}" for w in weights)] + cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) for row in lines)
    methods = sorted({f"{metric_name(r)}: {r.method}" for r in records if r.upper_bound})
    means = {m["method"] for by_metric in soups.values() if (m := by_metric.get("corruption mean"))}
    methods += [f"corruption mean: {method}" for method in sorted(means)]
    return (
        text
        + ("\n" + "\n".join(methods) if methods else "")
        + f"\n({records[0].images}; BatchNorm: {records[0].batchnorm})"
    )


def _run_eval(args: argparse.Namespace) -> None:
    from soupviz.checkpoints import load_family, record_metrics
    from soupviz.metrics import corruption_mean
    from soupviz.soup import check_weights

    weights = None
    if args.weights:
        if args.write_cards:
            raise SoupvizError("--write-cards stores ingredients' metrics: drop --weights to use it.")

        def weights(family):
            rows = [[float(v) for v in text.split(",")] for text in args.weights]
            return check_weights(rows, len(family.names), extrapolate=True, margin=10.0, normalise=args.normalise)

    if args.compare and args.weights:
        raise SoupvizError("--compare compares two ingredients: drop --weights to use it.")
    compared = _compared(args.compare, load_family(args.family).names) if args.compare else None
    records = _evaluate(args, weights)
    if compared:
        print(_comparison(records, compared))
    if args.write_cards:
        family = load_family(args.family)
        for index, ingredient in enumerate(family.ingredients):
            mine = [r.row() for r in records if r.weights[index] == 1.0]
            record_metrics(ingredient, [{**row, "weights": None, "ingredients": None} for row in mine])
            mean = corruption_mean(ingredient.card.metrics)  # over every corruption the card now holds
            if mean:
                record_metrics(ingredient, [mean])
        print(f"metrics written to the cards in {args.family}")


def _run_sweep(args: argparse.Namespace) -> None:
    from soupviz.grids import simplex_grid

    def weights(family):
        subset = None
        if args.subset:
            wanted = [name.strip() for name in args.subset.split(",")]
            unknown = [name for name in wanted if name not in family.names]
            if unknown:
                raise SoupvizError(
                    f"--subset names {unknown[0]!r}, which is not in the family ({', '.join(family.names)})."
                )
            subset = [family.names.index(name) for name in wanted]
        return simplex_grid(len(family.names), args.step, subset=subset, margin=args.margin)

    _evaluate(args, weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soupviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _sweep_parser(sub)
    add_import_parser(sub)
    add_check_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `soupviz` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except SoupvizError as error:
        print(f"soupviz: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
