"""`soupviz saliency` and `soupviz generate`: the Saliency and Generation pages' work from the
command line, through the same library calls (`soupviz.serve.insight_runs`), written as figures and a
CSV of the numbers behind them (`cli.outputs`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from soupviz import GenerationSettings
from soupviz.cli.options import add_common
from soupviz.cli.outputs import FIGURE_FORMATS, check_out, write_outputs
from soupviz.errors import SoupvizError
from soupviz.insight.saliency import CLIPS, METHODS, MODES, SaliencySettings
from soupviz.progress import terminal_bar

if TYPE_CHECKING:
    import torch

    from soupviz import ImageSet, Soup, SoupFamily

GENERATION = GenerationSettings()
SALIENCY = SaliencySettings()


def _add_soup(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("family", help="family folder of .safetensors checkpoints with JSON cards")
    add("--weights", default=None, help="the soup compared with each ingredient: comma-separated weights in family "
        "order, as in the dashboard's link (normalised; default: the uniform soup)")
    add("--batchnorm", default="mix", choices=["mix", "reestimate"],
        help="mix the running statistics, or re-estimate them per soup on clean training images")


def _add_images(parser: argparse.ArgumentParser, single: bool) -> None:
    add = parser.add_argument
    what = "a test image" if single else "test images"
    add("--indices", default=None, help=f"{what} by test-split index, e.g. {'7' if single else '0,7,42'}")
    add("--classes" if not single else "--image-class", dest="image_classes", default=None,
        help=f"{what} by class (names or numbers), the --offset-th of each (default: "
        f"{'dog' if single else 'airplane, cat, dog and horse'})")
    add("--offset", type=int, default=0, help="image number within its class, in the data's order")
    add("--image", default=None, help="a picture file instead (centre-cropped and resized), with --label")
    add("--label", default=None, help="the picture's class (name or number)")


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--out", default=None, help="write the numbers behind the figure to this .csv")
    add("--figures", default=None, help="write the page's figures into this folder")
    add("--figure-format", default="html", choices=FIGURE_FORMATS)
    add("--paper", action="store_true", help="paper style (white theme, larger type), as the dashboard's toggle")


def add_saliency_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz saliency`."""
    parser = sub.add_parser("saliency", help="input-gradient maps of each ingredient and a soup on test images")
    _add_soup(parser)
    _add_images(parser, single=False)
    add = parser.add_argument
    add("--method", default=SALIENCY.method, choices=METHODS, help="loss: ∂CE/∂x on the true label (Tsipras et "
        "al.); the others are Captum's, on the true class's logit")
    add("--mode", default=SALIENCY.mode, choices=MODES, help="absolute (max over channels) or signed RGB maps")
    add("--clip", default=SALIENCY.clip, choices=CLIPS, help="how each map is scaled for display")
    add("--percentile", type=float, default=SALIENCY.percentile, help="clip percentile of |map| (--clip percentile)")
    add("--samples", type=int, default=SALIENCY.nt_samples, help="SmoothGrad's noisy copies")
    add("--noise", type=float, default=SALIENCY.noise, help="SmoothGrad's noise σ (pixels)")
    add("--ig-steps", type=int, default=SALIENCY.ig_steps, help="Integrated Gradients' steps from a black image")
    _add_outputs(parser)
    add_common(parser)
    parser.set_defaults(run=run_saliency)


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    """Register `soupviz generate` (its --seed is the class seeds' seed)."""
    parser = sub.add_parser("generate", help="draw with each ingredient and a soup by large targeted L2 attacks: "
                            "walk a test image towards a class (--target) or generate classes from seeds (--to)")
    _add_soup(parser)
    add = parser.add_argument
    add("--target", default=None, help="walk one image towards this class (name or number) and show the strip")
    add("--to", default=None, help="generate these classes (comma-separated) from class-conditional Gaussian seeds")
    _add_images(parser, single=True)
    add("--eps", type=float, default=GENERATION.eps, help="L2 budget (pixels in [0, 1]; Santurkar et al.: 30)")
    add("--step-size", type=float, default=GENERATION.step_size, help="step along the normalised gradient")
    add("--steps", type=int, default=GENERATION.steps, help="attack steps")
    add("--frames", type=int, default=6, help="images in the strip of a walk")
    add("--per-class", type=int, default=1, help="images generated per class (--to)")
    add("--fit-images", type=int, default=5000, help="training images per class for each class's Gaussian (--to)")
    _add_outputs(parser)
    add_common(parser)
    parser.set_defaults(run=run_generate)


def run_saliency(args: argparse.Namespace) -> None:
    """`soupviz saliency`: `serve.insight_runs.saliency_panels` and `saliency_view`, as the page runs them."""
    from soupviz.serve.insight_runs import saliency_panels, saliency_view

    check_out(args.out, (".csv",))
    family, soup, split, weights = _open(args)
    images, labels, names = _pick(args, split, single=False)
    settings = SaliencySettings(args.method, args.mode, args.clip, args.percentile, nt_samples=args.samples,
                                noise=args.noise, ig_steps=args.ig_steps, seed=args.seed)
    with terminal_bar("saliency maps") as report:
        panels = saliency_panels(soup, images, labels, weights, settings, names=family.names, report=report)
    fig = saliency_view(family, images, labels, names, panels, settings=settings, classes=split.classes,
                        weights=weights, paper=args.paper)
    print(f"{settings.method_label}; {settings.normalisation_label}")
    write_outputs([fig], args.out, args.figures, args.figure_format)


def run_generate(args: argparse.Namespace) -> None:
    """`soupviz generate`: `serve.insight_runs.walk_towards` or `fit_gaussians` and `generate_per_model`,
    as the page runs them."""
    check_out(args.out, (".csv",))
    from soupviz import load_split
    from soupviz.present.insight_figures import class_figure, strip_figure
    from soupviz.serve.insight_runs import (
        class_index,
        compared_models,
        fit_gaussians,
        generate_per_model,
        generation_settings,
        walk_towards,
    )

    if (args.target is None) == (args.to is None):
        raise SoupvizError("Say what to generate with exactly one of --target CLASS (walk an image) or "
                           "--to CLASSES (from class seeds).")
    family, soup, split, weights = _open(args)
    rows, titles = compared_models(family, weights)
    settings = generation_settings(args.eps, args.step_size, args.steps, args.frames, args.seed)
    classes = list(split.classes)
    if args.target is not None:
        images, _, names = _pick(args, split, single=True)
        target = class_index(args.target, classes)
        with terminal_bar("generating") as report:
            runs = walk_towards(soup, rows, images[0], target, settings, report=report)
        fig = strip_figure(runs, titles, classes, family.name, weights, args.paper)
        print(f"{names[0]} towards {classes[target]!r}: {settings.label}")
    else:
        chosen = [class_index(name, classes) for name in args.to.split(",") if name.strip()]
        train = load_split(args.data, "train")
        with terminal_bar("fitting class seeds") as report:
            gaussians = fit_gaussians(train, chosen, args.fit_images, settings.seed, report=report)
        with terminal_bar("generating") as report:
            runs = generate_per_model(soup, rows, gaussians, chosen, args.per_class, settings=settings, report=report)
        fig = class_figure(runs, titles, classes, family.name, weights, args.paper)
        print(f"{', '.join(classes[c] for c in chosen)} from Gaussian seeds (seed {settings.seed}): {settings.label}")
    write_outputs([fig], args.out, args.figures, args.figure_format)


def _open(args: argparse.Namespace) -> tuple[SoupFamily, Soup, ImageSet, list[float]]:
    """The family, its soup (as the dashboard's evaluator builds it), the test split and the soup's weights."""
    from soupviz import load_family, load_split, open_evaluator
    from soupviz.soups.links import weights_from_query
    from soupviz.soups.weights import EXTRAPOLATION_LIMIT, uniform

    family = load_family(args.family)
    k = len(family.names)
    weights = uniform(k) if args.weights is None else weights_from_query(args.weights, k, EXTRAPOLATION_LIMIT)
    evaluator = open_evaluator(family, data=args.data, seed=args.seed, device=args.device, batchnorm=args.batchnorm,
                               cache=False)
    return family, evaluator.soup, load_split(args.data, "test"), weights


def _pick(args: argparse.Namespace, split: ImageSet, single: bool) -> tuple[torch.Tensor, list[int], list[str]]:
    """Images (N, 3, H, W) in [0, 1], labels and names chosen by index, by class or from a picture file."""
    from soupviz.insight.saliency import load_uploaded_image
    from soupviz.serve.insight_runs import (
        MAX_PICKED,
        class_index,
        class_positions,
        default_classes,
        images_at,
        parse_indices,
    )

    classes = list(split.classes)
    if sum(x is not None for x in (args.indices, args.image_classes, args.image)) > 1:
        raise SoupvizError("Choose the images one way: --indices, a class option or --image.")
    if args.image is not None:
        if args.label is None:
            raise SoupvizError("--image needs --label CLASS, the picture's true class.")
        size = split.images.shape[-1]
        return load_uploaded_image(args.image, size=size)[None], [class_index(args.label, classes)], [
            f"picture {Path(args.image).name}"]
    if args.indices is not None:
        indices = parse_indices(args.indices, len(split), 1 if single else MAX_PICKED)
    else:
        chosen = (default_classes(split.labels, single) if args.image_classes is None
                  else [class_index(name, classes) for name in args.image_classes.split(",") if name.strip()])
        if len(chosen) > (1 if single else MAX_PICKED):
            raise SoupvizError(f"{len(chosen)} classes were asked for; give at most {1 if single else MAX_PICKED}.")
        indices = class_positions(split.labels, chosen, args.offset, 1, classes)
    return images_at(split, indices)
