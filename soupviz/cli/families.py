"""`soupviz import` and `soupviz check`: bring foreign checkpoints in as carded safetensors
(`soupviz.checkpoints.importing`), and measure whether a family's ingredients can be souped
(`soupviz.evaluate.soupability`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from soupviz.errors import DataError, SoupvizError

if TYPE_CHECKING:
    from soupviz.checkpoints.families import SoupFamily
    from soupviz.evaluate.soupability import Soupability


def add_import_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz import`."""
    from soupviz.checkpoints.foreign_formats import FORMATS
    from soupviz.checkpoints.importing import IMPORT_THREATS

    parser = sub.add_parser(
        "import", help="import RobustBench, robustness or plain PyTorch checkpoints as safetensors with cards"
    )
    add = parser.add_argument
    add("files", nargs="+", help=".pt/.pth/.ckpt files (read with weights_only: no code is unpickled)")
    add("--out", required=True, help="family folder to write NAME.safetensors and NAME.json into")
    add("--name", default=None, help="checkpoint name (default: the file's stem; one file only)")
    add("--zoo", default=None, metavar="ENTRY",
        help="the file's RobustBench 1.1.1 CIFAR-10 entry, e.g. Rice2020Overfitting: its architecture and "
        "normalisation (default: the entry the file is named after, if any)")
    add("--overwrite", action="store_true", help="replace an ingredient of the same name in --out")
    add("--arch", default=None, help="registered architecture (default: the one whose keys and shapes fit)")
    add("--format", dest="fmt", default="auto", choices=FORMATS, help="checkpoint format (default: detected)")
    add("--threat", default="unknown", choices=IMPORT_THREATS, help="what the model was trained against")
    add("--eps", default=None, help="its budget in pixel scale, e.g. 8/255 or 0.5 (default: the threat's usual)")
    add("--mean", default=None,
        help="input normalisation means 'm1,m2,m3' (default: the file's, else its zoo entry's; 0,0,0 with "
        "--std 1,1,1 for raw pixels)")
    add("--std", default=None, help="input normalisation stds 's1,s2,s3' (with --mean)")
    add("--check-images", type=int, default=64, help="test images to run the imported model on (0: random inputs)")
    add("--data", default=None, help="CIFAR-10 source for the check (as for eval)")
    parser.set_defaults(run=run_import)


def _triple(text: str, what: str) -> tuple[float, ...]:
    """Three comma-separated numbers of the option --`what`."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as error:
        raise SoupvizError(f"--{what} takes three comma-separated numbers, not {text!r}.") from error
    if len(values) != 3:
        raise SoupvizError(f"--{what} takes three comma-separated numbers, not {text!r}.")
    return values


def run_import(args: argparse.Namespace) -> None:
    """`soupviz import`: `checkpoints.importing.import_checkpoint` on each file, printing what was written."""
    from soupviz import import_checkpoint, load_split
    from soupviz.cli.options import command_line
    from soupviz.threats import THREATS, parse_budget

    if args.name and len(args.files) > 1:
        raise SoupvizError("--name names one checkpoint: import one file at a time to name it.")
    if (args.mean is None) != (args.std is None):
        raise SoupvizError("--mean and --std go together: give both or neither.")
    normalisation = (_triple(args.mean, "mean"), _triple(args.std, "std")) if args.mean else None
    eps = None
    if args.eps is not None:
        if args.threat not in THREATS:
            raise SoupvizError(f"--eps needs --threat {', '.join(THREATS)}.")
        eps = parse_budget(args.eps, args.threat)
    loaded = {}

    def images():  # loaded once, and only once a file has been read and checked
        if args.check_images > 0 and "images" not in loaded:
            try:
                loaded["images"] = load_split(args.data, "test").subset(args.check_images, 0)
            except DataError as error:
                print(f"No test images ({error}); checking on random inputs.")
                loaded["images"] = None
        return loaded.get("images")

    for file in args.files:
        result = import_checkpoint(
            file,
            args.out,
            name=args.name,
            arch=args.arch,
            fmt=args.fmt,
            threat=args.threat,
            eps=eps,
            normalisation=normalisation,
            zoo=args.zoo,
            overwrite=args.overwrite,
            command=command_line(),
            check_images=images,
        )
        print(result.summary())


def add_check_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz check`."""
    parser = sub.add_parser("check", help="can the family's ingredients be souped? lineage and loss barriers")
    add = parser.add_argument
    add("family", help="family folder of .safetensors checkpoints with JSON cards")
    add("--against", default=None, metavar="FILE",
        help="also measure each ingredient's path to this outside checkpoint (.safetensors with its card), "
        "e.g. assets/unrelated/unrelated.safetensors")
    add("--images", type=int, default=None,
        help="test images to measure the paths on, a fixed seeded subset (default: 1000, enough that the shipped "
        "family's verdicts are stable)")
    add("--points", type=int, default=7, help="points per straight path, ends included")
    add("--batchnorm", default="mix", choices=["mix", "reestimate"],
        help="mix the running statistics (means like the weights, variances in log space) or re-estimate them "
        "per soup on clean training images")
    add("--calibration-images", type=int, default=512, help="training images to re-estimate BatchNorm on")
    add("--data", default=None, help="CIFAR-10 source (as for eval)")
    add("--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda[:N]'")
    add("--seed", type=int, default=0, help="seeds the image subset and the bootstrap intervals")
    add("--output", default=None, metavar="FILE", help="also write the printed report to FILE")
    add("--keep", action="store_true",
        help="keep the report in the family's precomputed/ folder, so the Home page opens on it without measuring")
    parser.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> None:
    """`soupviz check`: each ingredient's own accuracy and loss, then lineage and barriers (with
    95% bootstrap intervals) of the family's pairs (or against --against)."""
    from soupviz.checkpoints.families import load_checkpoint, load_family
    from soupviz.cli.options import command_line
    from soupviz.data import load_split
    """`soupviz check`: lineage and loss barriers of the family's pairs (or against --against)."""
    from soupviz.device import pick_device
    from soupviz.evaluate.soupability import DEFAULT_CHECK_IMAGES, check_report, measure_against, measure_soupability
    from soupviz.soups.parameters import ParameterMatrix

    images = DEFAULT_CHECK_IMAGES if args.images is None else args.images
    if images < 1 or args.points < 3 or args.calibration_images < 1:
        raise SoupvizError("--images and --calibration-images must be at least 1 and --points at least 3.")
    family = load_family(args.family)
    test = load_split(args.data, "test").subset(images, args.seed)
    device = pick_device(args.device)
    calibration = None
    if args.batchnorm == "reestimate":
        calibration = load_split(args.data, "train").subset(args.calibration_images, args.seed).floats(device)
    if args.against:
        outsider = load_checkpoint(args.against)
        report = measure_against(family, outsider, test, args.points, device, calibration=calibration, seed=args.seed)
    else:
        params = ParameterMatrix.from_family(family, device)
        report = measure_soupability(family, test, args.points, params, calibration, seed=args.seed)
    text = check_report(report)
    print(text)
    if args.output:
        Path(args.output).write_text(f"$ {command_line()}\n\n{text}\n")
    if args.keep:
        keep_check(args, family, report, images)


def keep_check(args: argparse.Namespace, family: SoupFamily, report: Soupability, images: int) -> None:
    """Write `report` into the family's precomputed/ folder under the key the Home page looks up."""
    from soupviz.checkpoints.families import load_checkpoint
    from soupviz.cli.options import command_line
    from soupviz.evaluate.kept_soupability import keep_soupability, soupability_key

    outsider = load_checkpoint(args.against) if args.against else None
    key = soupability_key(family, outsider, images, args.seed, report.points, batchnorm=report.batchnorm)
    path = keep_soupability(family.folder or Path(args.family), key, report, command_line(),
                            f"{images} CIFAR-10 test images, seed {args.seed}")
    print(f"Kept in {path}")
