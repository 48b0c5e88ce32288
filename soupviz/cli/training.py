"""`soupviz train`: train or fine-tune one ingredient; every `TrainConfig` field is a flag."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from soupviz.cli.options import add_common, command_line, config_flags
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
