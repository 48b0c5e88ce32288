"""The `soupviz` command line: a thin layer over the library, sharing its functions with the dashboard.

One module per workflow: `train` (one ingredient: `cli.training`); `eval` (a soup or each
ingredient) and `sweep` (a simplex grid into the results store, in-process or on Ray, exported to a
file the dashboard loads: `cli.evaluation`); `adapt` (few-shot: `cli.adaptation`); `saliency` and
`generate` (the insight pages: `cli.insight`); `import` (foreign checkpoints) and `check` (can a
family be souped: `cli.families`). User errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from soupviz.cli import adaptation, evaluation, families, insight, training
from soupviz.errors import SoupvizError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are `SoupvizError`s, so a bad option prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SoupvizError(f"{message} (see '{self.prog} --help').")


def build_parser() -> argparse.ArgumentParser:
    """The `soupviz` parser: one subcommand per workflow, each naming its runner as `run`."""
    parser = _Parser(prog="soupviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    training.add_train_parser(sub)
    training.add_recipe_parser(sub)
    evaluation.add_eval_parser(sub)
    evaluation.add_sweep_parser(sub)
    adaptation.add_adapt_parser(sub)
    insight.add_saliency_parser(sub)
    insight.add_generate_parser(sub)
    families.add_import_parser(sub)
    families.add_check_parser(sub)
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
