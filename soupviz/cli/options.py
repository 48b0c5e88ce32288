"""What the subcommands' arguments share: argparse types that refuse bad numbers in one line
(fractions such as '8/255' included), the --data/--device/--seed options, flags made from a
configuration dataclass's fields (`TrainConfig`'s), and the command line as records store it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import types
import typing
from collections.abc import Callable

from soupviz.errors import SoupvizError
from soupviz.threats import parse_number


def number(text: str) -> float:
    """An argparse type: a finite number, written as a decimal or a fraction such as '8/255'."""
    try:
        return parse_number(text)
    except SoupvizError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def whole(minimum: int) -> Callable[[str], int]:
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


def real(low: float, high: float = math.inf, *, above: bool = False, below: bool = False) -> Callable[[str], float]:
    """An argparse type: a number in [low, high]; `above`/`below` exclude the ends."""
    where = f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
    if math.isinf(high):
        where = f"{'above' if above else 'at least'} {low:g}"

    def parse(text: str) -> float:
        value = number(text)
        if value < low or value > high or (above and value == low) or (below and value == high):
            raise argparse.ArgumentTypeError(f"must be {where}, got {text}")
        return value

    return parse


def weight_row(text: str) -> list[float]:
    """An argparse type: one soup's comma-separated weights, e.g. '0.5,0.5,0,0'."""
    try:
        return [number(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} in the weights {text!r}; give one number per ingredient") from None


def names(text: str) -> list[str]:
    """An argparse type: comma-separated names, e.g. 'l2,l1' (blanks dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add --data (the CIFAR-10 source), --device and --seed."""
    parser.add_argument(
        "--data",
        default=None,
        help="CIFAR-10 source: an ImageFolder path with train/ and test/, or 'torchvision[:folder]' "
        "(default: $SOUPVIZ_DATA, then ../shared/data/cifar10)",
    )
    parser.add_argument("--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--seed", type=whole(0), default=0)


def config_flags(parser: argparse.ArgumentParser, config: type) -> None:
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
            options["type"] = names
        elif kind is int:
            options["type"] = whole(int(meta["low"]))
        elif kind is float:
            options["type"] = real(meta["low"], meta["high"], above=meta["above"], below=meta["below"])
        if meta["cli"] == "positional":
            parser.add_argument(item.name, **options)
            continue
        flag = meta.get("flag") or "--" + item.name.replace("_", "-")
        if meta["cli"] == "required":
            options["required"] = True
        else:
            options["default"] = item.default_factory() if item.default is dataclasses.MISSING else item.default
        parser.add_argument(flag, dest=item.name, **options)


def command_line() -> str:
    """The command being run, as cards and results files record it: 'soupviz eval ...'."""
    return "soupviz " + shlex.join(sys.argv[1:])
