"""`soupviz train`: train or fine-tune one ingredient; every `TrainConfig` field is a flag.
`soupviz recipe`: train a whole family (`train.recipe`) within a time budget."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from soupviz.cli.options import add_common, command_line, config_flags, real
from soupviz.errors import SoupvizError
from soupviz.progress import Progress, terminal_bar

if typing.TYPE_CHECKING:
    from soupviz.train.config import TrainConfig


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz train`."""
    from soupviz.train.config import TrainConfig

    parser = sub.add_parser("train", help="train or fine-tune one ingredient and write its checkpoint and card")
    config_flags(parser, TrainConfig)
    parser.add_argument("--resume", action="store_true", help="continue from the last saved epoch")
    add_common(parser)
    parser.set_defaults(run=run_train)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` that `soupviz train` options describe, with the command line recorded."""
    from soupviz.train.config import TrainConfig

    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli")}
    return TrainConfig(**settings, command=command_line())


def run_train(args: argparse.Namespace) -> None:
    """`soupviz train`: `train.loop.train` under a progress bar in images, with a summary line after
    each epoch, then the written checkpoint's path."""
    from soupviz.train.loop import train

    config = train_config(args)
    with terminal_bar(config.name, "img", echo=_epoch_summary) as report:
        path = train(config, resume=args.resume, progress=report)
    print(path)


def _epoch_summary(progress: Progress) -> str | None:
    """The summary of an epoch the training loop reports (with its stats), None for a batch."""
    return progress.message if progress.partial is not None else None


def add_recipe_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz recipe`."""
    from soupviz.train.config import PRECISIONS
    from soupviz.train.recipe import SCALES

    parser = sub.add_parser(
        "recipe", help="train a family within a time budget: an FGSM-RS L∞ base, nominal, L2 and L1 fine-tunes "
        "and a SAT baseline (in baselines/), with their cards")
    parser.add_argument("out", help="family folder to write (the plan goes to recipe.json in it)")
    parser.add_argument("--scale", default="gpu", choices=sorted(SCALES),
                        help="gpu: half-width PreActResNet-18 on all of CIFAR-10; tiny: a CPU rehearsal")
    parser.add_argument("--budget-s", type=real(0, above=True), default=300.0,
                        help="seconds of training the epochs are planned for (all steps together)")
    parser.add_argument("--image-s", type=real(0, above=True), default=None,
                        help="seconds per image of a standard training step (default: measured on the device)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="bf16 autocast or fp32 (auto: bf16 on a GPU that has it)")
    parser.add_argument("--resume", action="store_true",
                        help="follow the plan in recipe.json, keep finished checkpoints, resume the unfinished one")
    add_common(parser)
    parser.set_defaults(run=run_recipe)


def run_recipe(args: argparse.Namespace) -> None:
    """`soupviz recipe`: plan the epochs (or read the saved plan with --resume), print the plan,
    then train every step under a progress bar and print the checkpoints' paths."""
    from pathlib import Path

    from soupviz.device import pick_device
    from soupviz.train import recipe

    device = pick_device(args.device)
    if args.resume and (Path(args.out) / recipe.PLAN_FILE).exists():
        configs = recipe.read_plan(args.out)
        if configs[0].extra.get("family_recipe") != args.scale:
            raise SoupvizError(f"{args.out} holds a plan of scale {configs[0].extra.get('family_recipe')!r}, not "
                               f"{args.scale!r}: resume with that scale, or choose another folder.")
        image_s = configs[0].extra.get("planned_image_s", 0.0)
    else:
        scale = recipe.SCALES[args.scale]
        image_s = args.image_s or recipe.calibrate(scale, device, args.precision)
        configs = recipe.plan_family(args.out, scale, args.budget_s, image_s, data=args.data, device=args.device,
                                     seed=args.seed, precision=args.precision, command=command_line())
        recipe.write_plan(args.out, configs, {"scale": args.scale, "budget_s": args.budget_s, "image_s": image_s,
                                              "measured": args.image_s is None, "command": command_line()})
    print(recipe.describe_plan(configs, image_s, device), flush=True)
    with terminal_bar("recipe", "img", echo=_epoch_summary) as report:
        paths = recipe.train_family(configs, resume=args.resume, progress=report)
    print("\n".join(str(path) for path in paths))
