"""The `soupviz` command line: a thin layer over the library, sharing its functions with the dashboard.

Subcommands: `train` (one ingredient), `eval` (a soup or each ingredient), `sweep` (a simplex
grid into the results store, in-process or on Ray, exported to a file the dashboard loads),
`adapt` (few-shot), `saliency` and `generate` (the insight pages: `soupviz.cli_insight`),
`import` (foreign checkpoints) and `check` (can a family be souped: `soupviz.cli_import`).
User errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from soupviz.cli_import import add_check_parser, add_import_parser
from soupviz.cli_insight import add_generate_parser, add_saliency_parser, write_outputs
from soupviz.errors import SoupvizError
from soupviz.progress import terminal_bar
from soupviz.threats import parse_number

if typing.TYPE_CHECKING:
    from soupviz.train.config import TrainConfig


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are `SoupvizError`s, so a bad option prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SoupvizError(f"{message} (see '{self.prog} --help').")


def _number(text: str) -> float:
    """A finite number, written as a decimal or a fraction such as '8/255'."""
    try:
        return parse_number(text)
    except SoupvizError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _real(low: float, high: float = math.inf, *, above: bool = False, below: bool = False) -> Callable[[str], float]:
    """An argparse type: a number in [low, high]; `above`/`below` exclude the ends."""
    where = f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
    if math.isinf(high):
        where = f"{'above' if above else 'at least'} {low:g}"

    def parse(text: str) -> float:
        value = _number(text)
        if value < low or value > high or (above and value == low) or (below and value == high):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text}")
        return value

    return parse


def _weight_row(text: str) -> list[float]:
    """An argparse type: one soup's comma-separated weights, e.g. '0.5,0.5,0,0'."""
    try:
        return [_number(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} in the weights {text!r}; give one number per ingredient") from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="CIFAR-10 source: an ImageFolder path with train/ and test/, or 'torchvision[:folder]' "
        "(default: $SOUPVIZ_DATA, then ../shared/data/cifar10)",
    )
    parser.add_argument("--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--seed", type=_whole(0), default=0)


def _config_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """Add a flag per field of the dataclass `config` from its metadata (see `train.config.option`):
    name, type, default, choices, range and help all come from the field."""
    hints = typing.get_type_hints(config)
    for item in dataclasses.fields(config):
        meta = item.metadata
        if meta.get("cli") not in ("option", "required", "positional"):
            continue
        kind = hints[item.name]
        if isinstance(kind, types.UnionType):  # 'float | None' takes floats
            kind = next(t for t in typing.get_args(kind) if t is not type(None))
        options: dict = {"help": meta.get("help") or None}
        if meta.get("choices"):
            options["choices"] = list(meta["choices"])
        if typing.get_origin(kind) is list:
            options["type"] = _names
        elif kind is int:
            options["type"] = _whole(int(meta["low"]))
        elif kind is float:
            options["type"] = _real(meta["low"], meta["high"], above=meta["above"], below=meta["below"])
        if meta["cli"] == "positional":
            parser.add_argument(item.name, **options)
            continue
        flag = meta.get("flag") or "--" + item.name.replace("_", "-")
        if meta["cli"] == "required":
            options["required"] = True
        else:
            options["default"] = item.default_factory() if item.default is dataclasses.MISSING else item.default
        parser.add_argument(flag, dest=item.name, **options)


def _names(text: str) -> list[str]:
    """An argparse type: comma-separated names, e.g. 'l2,l1' (blanks dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from soupviz.train.config import TrainConfig

    parser = sub.add_parser("train", help="train or fine-tune one ingredient and write its checkpoint and card")
    _config_flags(parser, TrainConfig)
    parser.add_argument("--resume", action="store_true", help="continue from the last saved epoch")
    _add_common(parser)
    parser.set_defaults(run=_run_train)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` that `soupviz train` options describe, with the command line recorded."""
    from soupviz.train.config import TrainConfig

    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli")}
    return TrainConfig(**settings, command="soupviz " + shlex.join(sys.argv[1:]))


def _run_train(args: argparse.Namespace) -> None:
    from soupviz.train.loop import train

    print(train(train_config(args), resume=args.resume))


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
        default="default",
        help="attack for threat metrics: 'default' (per threat, the cheapest measured within 1 point of "
        "AutoAttack: see bench/results/attack_strength.md), or pgd, pgd-t, apgd-ce, apgd-dlr, apgd-t, "
        "chains such as apgd-ce+apgd-t, or autoattack",
    )
    parser.add_argument("--steps", type=_whole(1), default=20, help="iterations of an attack named with --attack")
    parser.add_argument("--images", type=_whole(1), default=1000, help="number of test images (a fixed seeded subset)")
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
    _add_common(parser)


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="evaluate a soup (or each ingredient) on clean, attack and corruption metrics")
    _add_evaluation(parser)
    parser.add_argument(
        "--weights",
        action="append",
        type=_weight_row,
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
    parser.add_argument("--step", type=_real(0, 1, above=True), default=0.2, help="grid step of the weights")
    parser.add_argument(
        "--subset", default=None, help="comma-separated ingredient names allowed a nonzero weight (default: all)"
    )
    parser.add_argument(
        "--margin", type=_real(0), default=0.0, help="extrapolation margin: weights in [-margin, 1 + margin]"
    )
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="run the sweep's tasks in this process or on Ray (pip install -e '.[ray]')")
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    parser.add_argument("--shards", type=_whole(1), default=1, help="image shards per task (more, smaller tasks)")
    parser.add_argument("--fold", type=_whole(1), default=None,
                        help="soups per task, folded into one batch (default: 8 on GPUs, 1 on CPUs)")
    parser.set_defaults(run=_run_sweep)


def _evaluate(args: argparse.Namespace, weights) -> list:
    from soupviz.checkpoints import load_family
    from soupviz.evaluate.factory import open_evaluator
    from soupviz.evaluate.metrics import parse_metrics
    from soupviz.store import ResultStore

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
    weights = evaluator.ingredient_weights() if weights is None else weights(family)
    with terminal_bar("evaluating", "step") as report:
        records = evaluator.evaluate(weights, specs, report)
    return _show(args, family, specs, records)


def _show(args: argparse.Namespace, family, specs: list, records: list) -> list:
    """Print the records' table and export them to --out if given."""
    from soupviz.report import text_table
    from soupviz.store import write_records

    print(text_table(records, family.names))
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
    """The paired Markdown table (`report.comparison_markdown`) of the ingredients named in `wanted`."""
    from soupviz.report import comparison_markdown

    present = list(records[0].ingredients)
    a, b = ([r for r in records if r.weights[present.index(name)] == 1.0] for name in wanted)
    return comparison_markdown(a, b, *wanted)


def _run_eval(args: argparse.Namespace) -> None:
    from soupviz.cards import card_path, record_metrics
    from soupviz.checkpoints import load_family
    from soupviz.errors import SoupWeightsError
    from soupviz.evaluate.records import corruption_mean, records_of
    from soupviz.weights import EXTRAPOLATION_LIMIT, check_weights, is_extrapolated

    weights = None
    if args.weights:
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

    if args.compare and args.weights:
        raise SoupvizError("--compare compares two ingredients: drop --weights to use it.")
    compared = _compared(args.compare, load_family(args.family).names) if args.compare else None
    records = _evaluate(args, weights)
    if compared:
        print(_comparison(records, compared))
    if args.write_cards:
        family = load_family(args.family)
        for index, ingredient in enumerate(family.ingredients):
            mine = [replace(r, weights=None, ingredients=None).to_dict() for r in records if r.weights[index] == 1.0]
            record_metrics(ingredient.card, card_path(ingredient.path), mine)
            mean = corruption_mean(records_of(ingredient.card.metrics))  # over every corruption the card now holds
            if mean:
                record_metrics(ingredient.card, card_path(ingredient.path), [mean.to_dict()])
        print(f"metrics written to the cards in {args.family}")


def _run_sweep(args: argparse.Namespace) -> None:
    from soupviz.weights import simplex_grid

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
        if args.margin > 0:
            print(
                f"soupviz: note: --margin {args.margin:g} adds soups with weights outside [0, 1]: they extrapolate "
                "beyond the ingredients rather than mixing them.",
                file=sys.stderr,
            )
        return simplex_grid(len(family.names), args.step, subset=subset, margin=args.margin)

    _sweep(args, weights)


def _sweep(args: argparse.Namespace, weights) -> list:
    """Run `soupviz.sweep.sweep` for the parsed arguments: into --store (a temporary store with
    --no-cache), on --engine, with a progress bar over tasks."""
    import tempfile

    from soupviz.checkpoints import load_family
    from soupviz.evaluate.metrics import parse_metrics
    from soupviz.store import ResultStore
    from soupviz.sweep import SweepSetup, sweep

    family = load_family(args.family)
    specs = parse_metrics(args.metrics, args.attack, args.steps)
    setup = SweepSetup(str(family.folder or args.family), data=args.data, images=args.images, seed=args.seed,
                       batchnorm=args.batchnorm, fold=args.fold, device=args.device)
    rows = weights(family)
    with tempfile.TemporaryDirectory() as scratch, terminal_bar("sweeping", "task") as report:
        store = ResultStore(Path(scratch) / "results.sqlite" if args.no_cache else args.store)
        records = sweep(setup, rows, specs, store, engine=args.engine, address=args.address,
                        shards=args.shards, progress=report)
    return _show(args, family, specs, records)


def _adapt_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("adapt", help="choose a soup for a shift on k labelled images per class (few-shot)")
    add = parser.add_argument
    add("family", help="family folder of .safetensors checkpoints with JSON cards")
    add("--corruption", default=None, help="shift: this corruption of the test images (see soupviz.corruptions)")
    add("--severity", type=int, default=3, help="corruption severity, 1 to 5")
    add("--per-class", type=int, default=100, help="test images per class the corrupted shift draws")
    add("--folder", default=None, help="shift: a folder of labelled images (cat/, dog/, ...) instead of a corruption")
    add("--heldout", type=int, default=50, help="images per class held out for scoring, never used for choosing")
    add("--k", type=int, default=10, help="labelled images per class the soup is chosen on")
    add("--step", type=float, default=0.2, help="grid step of the weights")
    add("--margin", type=float, default=0.0, help="extrapolation margin: weights in [-margin, 1 + margin]")
    add("--method", default="gradient", choices=["grid", "gradient"], help="grid search, or grid then gradient steps")
    add("--gradient-steps", type=int, default=10, help="projected Adam steps from the grid's choice")
    add("--lr", type=float, default=0.05, help="learning rate of the gradient steps")
    add(
        "--batchnorm",
        default="mix",
        choices=["mix", "reestimate", "shift"],
        help="mix the running statistics, re-estimate them per soup on clean training images, or on unlabelled "
        "images of the shift (test-time adaptation)",
    )
    add("--ks", default="", help="comma-separated ks of a k-curve, e.g. 1,5,10,50 (default: no curve)")
    add("--draws", type=int, default=5, help="independent selection draws per k of the k-curve")
    add("--out", default=None, help="write the held-out outcomes to this .csv (the k-curve beside it)")
    add("--figures", default=None, help="write the page's figures into this folder")
    add("--figure-format", default="html", choices=["html", "png", "svg", "pdf"])
    _add_common(parser)
    parser.set_defaults(run=_run_adapt)


def _run_adapt(args: argparse.Namespace) -> None:
    from pathlib import Path

    from soupviz.checkpoints import load_family
    from soupviz.data import load_split
    from soupviz.evaluate.factory import open_evaluator
    from soupviz.figures.export import figure_csv
    from soupviz.insight.few_shot import AdaptConfig, adapt_to_shift
    from soupviz.insight.runs import adaptation_figures
    from soupviz.insight.shifts import corruption_shift, folder_shift
    from soupviz.report import adaptation_table

    if (args.corruption is None) == (args.folder is None):
        raise SoupvizError("Name the shift with exactly one of --corruption NAME or --folder PATH.")
    try:
        ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError as error:
        raise SoupvizError(f"--ks takes whole numbers separated by commas, got {args.ks!r}.") from error
    config = AdaptConfig(args.k, args.step, args.margin, args.method, args.gradient_steps, args.lr,
                         args.batchnorm == "shift", ks, args.draws)
    family = load_family(args.family)
    batchnorm = "mix" if args.batchnorm == "shift" else args.batchnorm
    evaluator = open_evaluator(family, data=args.data, seed=args.seed, device=args.device, batchnorm=batchnorm,
                               cache=False)
    if args.folder is not None:
        shift = folder_shift(args.folder, args.heldout, args.seed)
    else:
        split = load_split(args.data, "test")
        shift = corruption_shift(split, args.corruption, args.severity, args.per_class, args.heldout, args.seed)
    with terminal_bar("adapting") as report:
        run = adapt_to_shift(evaluator.soup, shift, config, family.labels, report)
    print(adaptation_table(run))
    figures = adaptation_figures(run, family.labels, family.name)
    outcomes, curve = figures["outcomes"], figures.get("k-curve")
    if args.out:
        out = Path(args.out)
        out.write_text(figure_csv(outcomes))
        print(f"outcomes written to {out}")
        if curve is not None:
            beside = out.with_name(out.stem + "_k-curve.csv")
            beside.write_text(figure_csv(curve))
            print(f"k-curve written to {beside}")
    write_outputs(list(figures.values()), None, args.figures, args.figure_format)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="soupviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _sweep_parser(sub)
    _adapt_parser(sub)
    add_saliency_parser(sub, _add_common)
    add_generate_parser(sub, _add_common)
    add_import_parser(sub)
    add_check_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `soupviz` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except SoupvizError as error:
        print(f"soupviz: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
