"""`soupviz saliency` and `soupviz generate` give what the Saliency and Generation pages' library
calls give for the same inputs, on a tiny family and a tiny image folder."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from soupviz.checkpoints.families import load_family
from soupviz.cli import main
from soupviz.data import load_split
from soupviz.insight.saliency import SaliencySettings
from soupviz.present.figure_export import figure_csv
from soupviz.present.insight_figures import class_figure, strip_figure
from soupviz.serve.insight_runs import (
    compared_models,
    fit_gaussians,
    generate_per_model,
    generation_settings,
    images_at,
    saliency_panels,
    saliency_view,
    walk_towards,
)
from soupviz.soups.soup import Soup

WEIGHTS = [0.5, 0.5, 0.0, 0.0]


def same_rows(written: Path, expected: str) -> bool:
    """Whether a CSV file holds the rows of `expected` (CSV text), numbers equal to float32 rounding
    (two soups mixed from the same weights may differ in the last bit of a BLAS sum)."""
    ours, theirs = list(csv.DictReader(written.open())), list(csv.DictReader(io.StringIO(expected)))
    return len(ours) == len(theirs) > 0 and all(
        a.keys() == b.keys() and all(a[k] == b[k] or _close(a[k], b[k]) for k in a)
        for a, b in zip(ours, theirs, strict=True))


def _close(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-5)
    except ValueError:
        return False


def run(family_folder: Path, data_folder: Path, command: str, *options: str) -> int:
    return main([command, str(family_folder), "--data", str(data_folder), "--device", "cpu",
                 "--weights", ",".join(map(str, WEIGHTS)), *options])


@pytest.mark.parametrize(("method", "mode", "clip"), [("loss", "abs", "percentile"), ("smoothgrad", "signed", "std")])
def test_saliency_writes_what_the_page_computes(family_folder, data_folder, tmp_path, method, mode, clip,
                                                capsys) -> None:
    out, figures = tmp_path / "saliency.csv", tmp_path / "figures"
    options = ["--method", method, "--mode", mode, "--clip", clip, "--samples", "2"]
    assert run(family_folder, data_folder, "saliency", "--indices", "0,7", *options, "--seed", "3",
               "--out", str(out), "--figures", str(figures)) == 0
    family, split = load_family(family_folder), load_split(str(data_folder), "test")
    images, labels, names = images_at(split, [0, 7])
    settings = SaliencySettings(method, mode, clip, nt_samples=2, seed=3)
    panels = saliency_panels(Soup.from_family(family), images, labels, WEIGHTS, settings, names=family.names)
    expected = saliency_view(family, images, labels, names, panels, settings=settings, classes=split.classes,
                             weights=WEIGHTS)
    assert same_rows(out, figure_csv(expected))
    assert len(list(csv.DictReader(out.open()))) == 2 * (len(family.names) + 1)
    assert [p.suffix for p in figures.iterdir()] == [".html"]
    assert settings.method_label in capsys.readouterr().out


def test_saliency_picks_the_pages_default_classes(family_folder, data_folder, tmp_path) -> None:
    out = tmp_path / "saliency.csv"
    assert run(family_folder, data_folder, "saliency", "--offset", "1", "--out", str(out)) == 0
    shown = list(dict.fromkeys(row["true_class"] for row in csv.DictReader(out.open())))
    assert shown == ["airplane", "cat", "dog", "horse"]


def test_a_walk_writes_what_the_page_computes(family_folder, data_folder, tmp_path) -> None:
    out = tmp_path / "runs" / "walk.csv"  # a folder that does not exist yet
    assert run(family_folder, data_folder, "generate", "--target", "cat", "--indices", "11", "--steps", "2",
               "--frames", "2", "--eps", "5", "--out", str(out)) == 0
    family, split = load_family(family_folder), load_split(str(data_folder), "test")
    rows, titles = compared_models(family, WEIGHTS)
    settings = generation_settings(5.0, 0.5, 2, 2, 0)
    runs = walk_towards(Soup.from_family(family), rows, images_at(split, [11])[0][0], 3, settings)
    assert same_rows(out, figure_csv(strip_figure(runs, titles, split.classes, family.name, WEIGHTS)))


def test_class_seeds_write_what_the_page_computes(family_folder, data_folder, tmp_path) -> None:
    out = tmp_path / "classes.csv"
    assert run(family_folder, data_folder, "generate", "--to", "dog", "--fit-images", "2", "--steps", "1",
               "--seed", "4", "--out", str(out)) == 0
    family, train = load_family(family_folder), load_split(str(data_folder), "train")
    rows, titles = compared_models(family, WEIGHTS)
    settings = generation_settings(30.0, 0.5, 1, 6, 4)
    gaussians = fit_gaussians(train, [5], 2, 4)
    runs = generate_per_model(Soup.from_family(family), rows, gaussians, [5], 1, settings=settings)
    assert same_rows(out, figure_csv(class_figure(runs, titles, train.classes, family.name, WEIGHTS)))


@pytest.mark.parametrize(("options", "message"), [
    (["--target", "cat", "--to", "dog"], "exactly one of --target"),
    (["--target", "zebra"], "'zebra' is not a class"),
    (["--target", "cat", "--indices", "1", "--image-class", "dog"], "one way"),
    (["--target", "cat", "--image", "x.png"], "needs --label"),
])
def test_generate_explains_bad_choices_in_one_line(family_folder, data_folder, options, message, capsys) -> None:
    assert run(family_folder, data_folder, "generate", *options) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("soupviz: error: ") and message in line
