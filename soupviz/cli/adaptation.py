"""`soupviz adapt`: choose a soup for a distribution shift on k labelled images per class
(`insight.few_shot.adapt_to_shift`, the Adaptation page's entry point), with its held-out outcomes,
k-curve and figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soupviz import AdaptConfig
from soupviz.cli.options import add_common, command_line
from soupviz.cli.outputs import FIGURE_FORMATS, check_out, write_outputs
from soupviz.errors import SoupvizError
from soupviz.insight.shifts import HELDOUT_PER_CLASS, PER_CLASS, SEVERITY
from soupviz.progress import terminal_bar

DEFAULTS = AdaptConfig()


def add_adapt_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz adapt`."""
    parser = sub.add_parser("adapt", help="choose a soup for a shift on k labelled images per class (few-shot)")
    add = parser.add_argument
    add("family", help="family folder of .safetensors checkpoints with JSON cards")
    add("--corruption", default=None,
        help="shift: this corruption of the test images (see soupviz.corruptions.cifar_c)")
    add("--severity", type=int, default=None, help=f"corruption severity, 1 to 5 (default {SEVERITY})")
    add("--per-class", type=int, default=None,
        help=f"test images per class the corrupted shift draws (default {PER_CLASS})")
    add("--folder", default=None, help="shift: a folder of labelled images (cat/, dog/, ...) instead of a corruption")
    add("--heldout", type=int, default=HELDOUT_PER_CLASS,
        help="images per class held out for scoring, never used for choosing")
    add("--k", type=int, default=DEFAULTS.k, help="labelled images per class the soup is chosen on")
    add("--step", type=float, default=DEFAULTS.step, help="grid step of the weights")
    add("--margin", type=float, default=DEFAULTS.margin, help="extrapolation margin: weights in [-margin, 1 + margin]")
    add("--method", default=DEFAULTS.method, choices=["grid", "gradient"],
        help="grid search, or grid then gradient steps")
    add("--gradient-steps", type=int, default=DEFAULTS.gradient_steps,
        help="projected Adam steps from the grid's choice")
    add("--lr", type=float, default=DEFAULTS.lr, help="learning rate of the gradient steps")
    add(
        "--batchnorm",
        default="mix",
        choices=["mix", "reestimate", "shift"],
        help="mix the running statistics, re-estimate them per soup on clean training images, or on unlabelled "
        "images of the shift (test-time adaptation)",
    )
    add("--ks", default="", help="comma-separated ks of a k-curve, e.g. 1,5,10,25 (default: no curve)")
    add("--draws", type=int, default=DEFAULTS.draws, help="independent selection draws per k of the k-curve")
    add("--out", default=None, help="write the held-out outcomes to this .csv (the k-curve beside it)")
    add("--figures", default=None, help="write the page's figures into this folder")
    add("--figure-format", default="html", choices=FIGURE_FORMATS)
    add("--keep", action="store_true",
        help="keep the run in the family's precomputed/ folder: the Few-shot adaptation page opens on it when its "
        "inputs are these")
    add_common(parser)
    parser.set_defaults(run=run_adapt)


def run_adapt(args: argparse.Namespace) -> None:
    """`soupviz adapt`: `insight.few_shot.adapt_to_shift` on the shift named, as the page runs it."""
    from soupviz import adapt_to_shift, load_family, load_split, open_evaluator
    from soupviz.device import pick_device
    from soupviz.insight.shifts import shift_from_spec
    from soupviz.present.figure_export import figure_csv
    from soupviz.present.tables import adaptation_table
    from soupviz.serve.adaptation_views import adaptation_figures
    from soupviz.serve.kept_runs import keep_run, portable_key
    from soupviz.soups.soup import Soup

    if (args.corruption is None) == (args.folder is None):
        raise SoupvizError("Name the shift with exactly one of --corruption NAME or --folder PATH.")
    if args.folder is not None and (args.severity is not None or args.per_class is not None):
        raise SoupvizError("--severity and --per-class shape a corruption of the test images: drop them with --folder.")
    check_out(args.out, (".csv",))
    severity = SEVERITY if args.severity is None else args.severity
    per_class = PER_CLASS if args.per_class is None else args.per_class
    try:
        ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError as error:
        raise SoupvizError(f"--ks takes whole numbers separated by commas, got {args.ks!r}.") from error
    config = AdaptConfig(args.k, args.step, args.margin, args.method, args.gradient_steps, args.lr,
                         args.batchnorm == "shift", ks, args.draws)
    family = load_family(args.family)
    batchnorm = "mix" if args.batchnorm == "shift" else args.batchnorm
    spec = ("folder", args.folder) if args.folder is not None else ("corruption", args.corruption, severity)
    split = load_split(args.data, "test") if args.folder is None or args.keep else None
    shift = shift_from_spec(spec, split, per_class, args.heldout, args.seed)
    if batchnorm == "reestimate":  # the statistics come from CIFAR-10's training images
        soup = open_evaluator(family, data=args.data, seed=args.seed, device=args.device, batchnorm=batchnorm,
                              cache=False).soup
    else:  # a folder shift needs no CIFAR-10
        soup = Soup.from_family(family, pick_device(args.device))
    with terminal_bar("adapting") as report:
        run = adapt_to_shift(soup, shift, config, family.labels, report)
    print(adaptation_table(run))
    if args.keep:
        key = portable_key(family, split.digest(), soup.bn_label, spec, args.heldout, per_class=per_class,
                           seed=args.seed, config=config)
        print(f"run kept in {keep_run(family.folder or Path(args.family), key, run, command_line())}")
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
