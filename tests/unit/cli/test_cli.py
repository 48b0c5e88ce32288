"""The command line: eval, sweep and adapt on a tiny family and a tiny image folder."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from soupviz.checkpoints.families import load_family
from soupviz.cli import main
from soupviz.data import CIFAR10_CLASSES, load_split
from soupviz.insight.few_shot import AdaptConfig, adapt_to_shift
from soupviz.insight.shifts import corruption_shift, folder_shift
from soupviz.present.labels import interval_text
from soupviz.results.store import read_records, unpackbits
from soupviz.serve.kept_runs import kept_run, portable_key
from soupviz.soups.soup import Soup


def test_eval_prints_each_ingredient_and_writes_csv(family_folder, data_folder, tmp_path, capsys) -> None:
    out = tmp_path / "ingredients.csv"
    code = main(
        [
            "eval",
            str(family_folder),
            "--data",
            str(data_folder),
            "--images",
            "20",
            "--metrics",
            "clean,linf::pgd:2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test-linf" in printed and "L∞ 8/255" in printed and "upper bound" in printed
    lines = out.read_text().splitlines()
    assert lines[0].startswith("weights,") and len(lines) == 1 + 4 * 2
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    for row in rows:  # per-image results travel with the CSV, so paired claims can be re-checked
        assert int(unpackbits(row["mask"], int(row["n"])).sum()) == int(row["correct"])


def test_eval_of_a_soup_with_normalised_weights(family_folder, data_folder, tmp_path) -> None:
    out = tmp_path / "soup.json"
    assert (
        main(
            [
                "eval",
                str(family_folder),
                "--data",
                str(data_folder),
                "--images",
                "10",
                "--weights",
                "1,1,0,0",
                "--normalise",
                "--metrics",
                "clean",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    records, meta = read_records(out)
    assert records[0].weights == [0.5, 0.5, 0.0, 0.0] and meta["ingredients"][0] == "test-none"


def test_sweep_writes_a_grid_the_dashboard_can_load(family_folder, data_folder, tmp_path) -> None:
    out = tmp_path / "sweep.json"
    code = main(
        [
            "sweep",
            str(family_folder),
            "--data",
            str(data_folder),
            "--images",
            "10",
            "--step",
            "0.5",
            "--subset",
            "test-linf,test-l2,test-l1",
            "--metrics",
            "clean",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    records, meta = read_records(out)
    assert len(records) == 6 and all(r.weights[0] == 0 for r in records)
    assert json.loads(out.read_text())["format"] == "soupviz-results/2"


def test_a_sweep_into_a_store_resumes_and_a_missing_cluster_is_one_line(family_folder, data_folder, tmp_path,
                                                                         capsys) -> None:
    from soupviz.results.store import ResultStore

    store = tmp_path / "sweep.sqlite"
    command = ["sweep", str(family_folder), "--data", str(data_folder), "--images", "10", "--step", "0.5",
               "--metrics", "clean,fog:2", "--store", str(store)]
    assert main(command) == 0
    assert len(ResultStore(store)) == 2 * 10
    first = capsys.readouterr().out
    assert main(command + ["--fold", "3", "--shards", "2"]) == 0  # all stored: nothing runs, same table
    assert capsys.readouterr().out == first and len(ResultStore(store)) == 2 * 10
    pytest.importorskip("ray")
    assert main(command + ["--engine", "ray", "--address", "127.0.0.1:1", "--metrics", "clean,linf"]) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert error.startswith("soupviz: error: Cannot reach a Ray cluster at 127.0.0.1:1")


def test_user_errors_print_one_line_and_exit_2(family_folder, data_folder, capsys) -> None:
    assert main(["eval", str(family_folder), "--data", str(data_folder), "--weights", "0.5,0.6,0,0"]) == 2
    assert main(["sweep", str(family_folder), "--data", str(data_folder), "--subset", "nope"]) == 2
    assert main(["eval", "/nonexistent/family", "--data", str(data_folder)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if not line.startswith("soupviz: note: --images 1000 asks for more")]
    assert len(errors) == 3 and all(line.startswith("soupviz: error: ") for line in errors)


def test_eval_can_store_each_ingredients_metrics_in_its_card(family_folder, data_folder) -> None:
    from soupviz.checkpoints.families import load_family

    assert (
        main(
            [
                "eval",
                str(family_folder),
                "--data",
                str(data_folder),
                "--images",
                "10",
                "--metrics",
                "clean",
                "--write-cards",
            ]
        )
        == 0
    )
    family = load_family(family_folder)
    for ingredient in family.ingredients:
        (metric,) = ingredient.card.metrics
        assert metric["metric"] == "clean" and metric["n"] == 10 and metric["ci_low"] <= metric["accuracy"]


def test_corruptions_shorthand_is_averaged_in_the_table_and_the_cards(family_folder, data_folder, capsys) -> None:
    from soupviz.checkpoints.families import load_family
    from soupviz.corruptions.cifar_c import corruption_names

    common = ["eval", str(family_folder), "--data", str(data_folder), "--images", "10", "--write-cards"]
    assert main([*common, "--metrics", "clean,corruptions:2"]) == 0
    printed = capsys.readouterr().out
    assert "corruption mean" in printed and "fog 2" not in printed  # one column, not 14
    assert f"mean over {len(corruption_names())} corruptions × severity 2" in printed
    assert main([*common, "--metrics", "fog:5"]) == 0  # a later run adds to what the cards hold
    for ingredient in load_family(family_folder).ingredients:
        metrics = {m["metric"]: m for m in ingredient.card.metrics}
        parts = [m for m in metrics.values() if m["kind"] == "corruption"]
        assert len(parts) == len(corruption_names()) + 1
        mean = metrics["corruption mean"]
        assert mean["accuracy"] == pytest.approx(sum(m["accuracy"] for m in parts) / len(parts))
        assert mean["conditions"] == len(parts) and "2 severities" in mean["method"]


def test_compare_prints_a_paired_markdown_table_of_two_ingredients(family_folder, data_folder, capsys) -> None:
    metrics = "clean,l2::pgd:2,l2::pgd-dlr:2"  # two attacks on one threat: two rows here, one speaks in the table
    common = ["eval", str(family_folder), "--data", str(data_folder), "--images", "20", "--metrics", metrics]
    assert main([*common, "--compare", "test-l2,test-linf"]) == 0
    printed = capsys.readouterr().out
    assert "L2 0.5 PGD-2 " in printed.splitlines()[0] and "L2 0.5 PGD-DLR-2" not in printed.splitlines()[0]
    assert "speaks: L2 0.5 PGD-DLR-2" in printed  # equally strong and on as many images: the first speaks
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table[0].split(" | ")[1:4] == ["test-l2", "test-linf", "test-l2 − test-linf (points)"]
    assert [row.split(" | ")[0] for row in table[2:]] == ["| clean", "| L2 0.5 PGD-2 ≤", "| L2 0.5 PGD-DLR-2 ≤"]
    verdicts = ("test-l2 better", "test-linf better", "within noise", "inconclusive: interval and test disagree")
    assert all(row.split(" | ")[-1].strip(" |") in verdicts for row in table[2:])
    assert "sampling noise over the images, not attack looseness" in printed
    assert main([*common, "--compare", "test-l2,nope"]) == 2
    assert "--compare takes two ingredient names" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["eval", "--weights", "0.5,half,0,0"], "'half'"),
        (["eval", "--weights", "0.5,nan,0,0"], "'nan'"),
        (["eval", "--weights", "1,0"], "gives 2 weights but the family has 4 ingredients"),
        (["eval", "--weights", "1,0,0,0", "--weights", "0.5,0.5,0"], "--weights 0.5,0.5,0 gives 3 weights"),
        (["eval", "--images", "0"], "--images: must be at least 1, got 0"),
        (["eval", "--images", "-5"], "--images: must be at least 1"),
        (["eval", "--images", "ten"], "--images: expected a whole number, got 'ten'"),
        (["eval", "--steps", "0"], "--steps: must be at least 1"),
        (["eval", "--seed", "-1"], "--seed: must be at least 0"),
        (["eval", "--metrics", "linf::pgd:0"], "linf::pgd:0"),
        (["sweep", "--step", "0"], "--step: must be in (0, 1]"),
        (["sweep", "--step", "1.5"], "--step: must be in (0, 1]"),
        (["sweep", "--margin", "-0.2"], "--margin: must be at least 0"),
    ],
)
def test_bad_numbers_print_one_line_naming_the_option(options, named, family_folder, data_folder, capsys) -> None:
    command, *rest = options
    assert main([command, str(family_folder), "--data", str(data_folder), "--no-cache", *rest]) == 2
    captured = capsys.readouterr()
    (line,) = [line for line in captured.err.strip().splitlines() if not line.startswith("soupviz: note: --images")]
    assert line.startswith("soupviz: error: ") and named in line and "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--batch-size", "0"], "--batch-size: must be at least 1"),
        (["--epochs", "-1"], "--epochs: must be at least 1"),
        (["--lr", "0"], "--lr: must be above 0"),
        (["--eps", "eight"], "--eps: expected a number, got 'eight'"),
        (["--attack-steps", "0"], "--attack-steps: must be at least 1"),
        (["--val-images", "0"], "--val-images: must be at least 1"),
        (["--warmup", "1"], "--warmup: must be in [0, 1)"),
        (["--momentum", "-0.1"], "--momentum: must be in [0, 1)"),
    ],
)
def test_bad_training_numbers_are_refused_before_training(options, named, tmp_path, capsys) -> None:
    assert main(["train", "x", "--out", str(tmp_path / "run"), *options]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("soupviz: error: argument ") and named in line
    assert not (tmp_path / "run").exists()


def test_budgets_may_be_fractions(tmp_path) -> None:
    from soupviz.cli import build_parser

    args = build_parser().parse_args(["train", "x", "--out", str(tmp_path), "--eps", "8/255"])
    assert args.eps == pytest.approx(8 / 255)


def test_weights_off_the_simplex_are_evaluated_with_a_note(family_folder, data_folder, tmp_path, capsys) -> None:
    out = tmp_path / "soup.json"
    common = ["eval", str(family_folder), "--data", str(data_folder), "--images", "10", "--metrics", "clean"]
    assert main([*common, "--weights", "2,-1,0,0", "--out", str(out)]) == 0
    assert read_records(out)[0][0].weights == [2.0, -1.0, 0.0, 0.0]
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("soupviz: note: ")]
    assert len(notes) == 1 and "2 -1 0 0" in notes[0] and "extrapolates" in notes[0]
    assert main([*common, "--weights", "0.5,0.5,0,0"]) == 0
    assert "soupviz: note:" not in capsys.readouterr().err


@pytest.fixture
def shift_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A test split of 6 random images per class (enough to hold 2 out and draw from the rest)."""
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    for name in CIFAR10_CLASSES:
        (tmp_path / "shift" / "test" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / "shift" / "test" / name / f"{i}.png"
            )
    return tmp_path / "shift"


def test_adapt_makes_the_librarys_choice_and_writes_csv_and_figures(family_folder, shift_data, tmp_path, capsys):
    out, figures = tmp_path / "adapt.csv", tmp_path / "figures"
    options = ["--corruption", "contrast", "--severity", "2", "--per-class", "6", "--heldout", "2", "--k", "2",
               "--step", "0.5", "--gradient-steps", "2", "--ks", "1,2,4", "--draws", "2", "--seed", "3"]
    assert main(["adapt", str(family_folder), "--data", str(shift_data), *options, "--out", str(out),
                 "--figures", str(figures)]) == 0
    printed = capsys.readouterr().out
    assert "gradient-selected soup" in printed and "k = 4 left out of the k-curve" in printed
    family = load_family(family_folder)
    shift = corruption_shift(load_split(str(shift_data), "test"), "contrast", 2, 6, 2, seed=3)
    config = AdaptConfig(k=2, step=0.5, gradient_steps=2, ks=(1, 2, 4), draws=2)
    run = adapt_to_shift(Soup.from_family(family), shift, config, family.labels)
    rows = list(csv.DictReader(out.open()))
    assert [r["candidate"] for r in rows] == [o.candidate for o in run.outcomes]
    exact = [0, *range(2, len(rows))]  # all but the gradient's choice, whose last digits vary run to run on CPU
    assert [rows[i]["weights"] for i in exact] == [run.outcomes[i].row()["weights"] for i in exact]
    assert [float(rows[i]["accuracy"]) for i in exact] == [run.outcomes[i].accuracy for i in exact]
    gradient = [float(w) for w in rows[1]["weights"].split()]
    assert gradient == pytest.approx(run.outcomes[1].weights, abs=1e-4)
    curve = list(csv.DictReader((tmp_path / "adapt_k-curve.csv").open()))
    assert [(int(r["k"]), r["candidate"]) for r in curve] == [(p["k"], p["candidate"]) for p in run.curve]
    grid_choices = [(r["weights"], r["heldout_accuracy"]) for r in curve if r["candidate"] == "grid-search soup"]
    assert grid_choices == [(p["weights"], str(p["heldout_accuracy"])) for p in run.curve
                            if p["candidate"] == "grid-search soup"]
    assert sorted(p.name.split("_")[0] for p in figures.iterdir()) == ["adaptation", "composition", "k-curve"]


def test_adapt_keeps_its_run_in_the_family_folder_for_the_page(family_folder, shift_data, tmp_path):
    out = tmp_path / "adapt.csv"
    options = ["--corruption", "contrast", "--severity", "2", "--per-class", "6", "--heldout", "2", "--k", "2",
               "--step", "0.5", "--method", "grid", "--seed", "3"]
    assert main(["adapt", str(family_folder), "--data", str(shift_data), *options, "--out", str(out), "--keep"]) == 0
    family = load_family(family_folder)
    config = AdaptConfig(k=2, step=0.5, method="grid")
    split = load_split(str(shift_data), "test")
    key = portable_key(family, split.digest(), Soup.from_family(family).bn_label, ("corruption", "contrast", 2),
                       2, per_class=6, seed=3, config=config)
    kept = kept_run(family_folder, key)
    assert kept is not None and kept.command.startswith("soupviz ")
    rows = list(csv.DictReader(out.open()))
    outcomes = kept.run.outcomes
    assert [(r["candidate"], r["weights"]) for r in rows] == [(o.candidate, o.row()["weights"]) for o in outcomes]
    assert [float(r["accuracy"]) for r in rows] == [o.accuracy for o in kept.run.outcomes]
    assert [p.name for p in (family_folder / "precomputed").iterdir()] == [f"adapt-{key}.json"]


def test_adapt_on_a_folder_with_batchnorm_from_the_shift(family_folder, shift_data, capsys):
    options = ["--folder", str(shift_data / "test"), "--heldout", "2", "--k", "1", "--step", "1", "--method", "grid",
               "--batchnorm", "shift"]
    assert main(["adapt", str(family_folder), "--data", str(shift_data), *options]) == 0
    printed = capsys.readouterr().out
    assert "re-estimated per soup on 40 unlabelled images of test" in printed
    family = load_family(family_folder)
    shift = folder_shift(shift_data / "test", 2)
    config = AdaptConfig(k=1, step=1.0, method="grid", bn_on_shift=True)
    run = adapt_to_shift(Soup.from_family(family), shift, config, family.labels)
    chosen, cells = run.outcomes[0], re.split(r"\s{2,}", printed.splitlines()[1])
    assert cells[:3] == ["grid-search soup", " ".join(f"{w:g}" for w in chosen.weights), interval_text(chosen)]


def test_adapt_on_a_folder_rewritten_in_place_gives_fresh_results(family_folder, shift_data, capsys):
    options = ["--folder", str(shift_data / "test"), "--heldout", "2", "--k", "1", "--step", "1", "--method", "grid"]
    assert main(["adapt", str(family_folder), "--data", str(shift_data), *options]) == 0
    before = capsys.readouterr().out
    for path in (shift_data / "test").rglob("*.png"):  # every image black: one class is right, 10%
        Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path)
    assert main(["adapt", str(family_folder), "--data", str(shift_data), *options]) == 0
    after = capsys.readouterr().out
    assert after != before
    family = load_family(family_folder)
    run = adapt_to_shift(Soup.from_family(family), folder_shift(shift_data / "test", 2),
                         AdaptConfig(k=1, step=1.0, method="grid"), family.labels)
    assert interval_text(run.outcomes[0]) in after.splitlines()[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [([], "exactly one of --corruption NAME or --folder PATH"),
     (["--corruption", "fog", "--folder", "x"], "exactly one of"),
     (["--corruption", "fog", "--ks", "1,x"], "--ks takes whole numbers"),
     (["--corruption", "fog", "--ks", "1,5", "--draws", "1"], "at least two draws")],
)
def test_adapt_explains_unusable_options(family_folder, shift_data, capsys, options, message):
    assert main(["adapt", str(family_folder), "--data", str(shift_data), *options]) == 2
    assert message in capsys.readouterr().err


def test_train_flags_take_their_defaults_from_train_config(tmp_path) -> None:
    from dataclasses import asdict

    from soupviz.cli import build_parser
    from soupviz.cli.training import train_config
    from soupviz.train.config import TrainConfig

    parsed = train_config(build_parser().parse_args(["train", "x", "--out", str(tmp_path)]))
    expected = TrainConfig(name="x", out=str(tmp_path), command=parsed.command)
    assert asdict(parsed) == asdict(expected)


def test_every_train_setting_has_a_flag_that_reaches_the_config(tmp_path) -> None:
    from soupviz.cli import build_parser
    from soupviz.cli.training import train_config

    argv = ["train", "x", "--out", str(tmp_path), "--threat", "l2", "--method", "lrat", "--eps", "0.25",
            "--attack-steps", "3", "--attack-step-size", "0.1", "--trades-beta", "2", "--lrat-threats", "linf, l1",
            "--lrat-c", "2", "--lrat-floor", "0.2", "--lrat-g", "softmax", "--lrat-temperature", "0.5",
            "--lrat-vulnerability", "margin", "--arch", "cnn", "--from", "p.safetensors", "--epochs", "2",
            "--batch-size", "8", "--lr", "0.01", "--schedule", "cosine", "--warmup", "0.1", "--momentum", "0.5",
            "--weight-decay", "0", "--train-images", "64", "--val-images", "16", "--val-steps", "2",
            "--select", "last", "--data", "d", "--device", "cpu", "--seed", "7"]
    config = train_config(build_parser().parse_args(argv))
    assert (config.threat, config.method, config.eps, config.attack_steps, config.attack_step_size) == (
        "l2", "lrat", 0.25, 3, 0.1)
    assert (config.lrat_threats, config.lrat_c, config.lrat_floor, config.lrat_g, config.lrat_temperature,
            config.lrat_vulnerability) == (["linf", "l1"], 2.0, 0.2, "softmax", 0.5, "margin")
    assert (config.arch, config.parent, config.epochs, config.batch_size, config.lr, config.schedule) == (
        "cnn", "p.safetensors", 2, 8, 0.01, "cosine")
    assert (config.warmup, config.momentum, config.weight_decay, config.train_images, config.val_images,
            config.val_steps, config.select) == (0.1, 0.5, 0.0, 64, 16, 2, "last")
    assert (config.trades_beta, config.data, config.device, config.seed) == (2.0, "d", "cpu", 7)


def test_adapt_defaults_are_the_librarys() -> None:
    from soupviz.cli import build_parser
    from soupviz.insight import shifts

    args = build_parser().parse_args(["adapt", "family", "--corruption", "fog"])
    base = AdaptConfig()
    assert (args.k, args.step, args.margin, args.method, args.gradient_steps, args.lr, args.draws) == (
        base.k, base.step, base.margin, base.method, base.gradient_steps, base.lr, base.draws)
    assert args.heldout == shifts.HELDOUT_PER_CLASS
    # unset, so that a folder shift can refuse them; a corruption shift takes the library's defaults
    assert (args.severity, args.per_class) == (None, None)
    helps = build_parser()._subparsers._group_actions[0].choices["adapt"].format_help()
    assert f"(default {shifts.SEVERITY})" in helps and f"(default {shifts.PER_CLASS})" in helps


def test_eval_of_the_baselines_stores_them_for_the_stored_tradeoff(family_folder, data_folder, tmp_path,
                                                                    capsys) -> None:
    from dataclasses import replace

    from soupviz.checkpoints.families import load_baselines, load_checkpoint, save_checkpoint
    from soupviz.results.grids import StoredGrid, stored_baselines, stored_grids
    from soupviz.results.records import corruption_mean
    from soupviz.results.store import ResultStore, family_fingerprint
    from tests.unit.evaluate.test_baselines import add_sat_baseline

    sat = load_checkpoint(add_sat_baseline(family_folder))  # distinct from every ingredient, unlike add_sat_baseline's
    save_checkpoint({name: value * 1.01 for name, value in sat.state_dict.items()}, sat.card, sat.path.parent)
    store = tmp_path / "results.sqlite"
    common = [str(family_folder), "--data", str(data_folder), "--images", "20", "--metrics", "clean,linf::pgd:2",
              "--store", str(store)]
    assert main(["sweep", *common, "--step", "0.5"]) == 0
    assert main(["eval", *common, "--baselines", "--out", str(tmp_path / "sat.json")]) == 0
    printed = capsys.readouterr().out
    assert "soup (SAT)" in printed and "L∞ 8/255 PGD-2" in printed
    family = load_family(family_folder)
    grids = list(stored_grids(ResultStore(store).records(family=family_fingerprint(family.hashes)), 4).values())
    found = stored_baselines(ResultStore(store), family, load_baselines(family), grids)
    assert [(r.ingredients, r.spec, r.images) for r in found] == [
        (["sat"], g.records[0].spec, g.records[0].images) for g in grids]
    assert read_records(tmp_path / "sat.json")[0] == found
    elsewhere = [StoredGrid([replace(r, images="20 other images") for r in g.records], g.found, g.expected)
                 for g in grids]
    assert stored_baselines(ResultStore(store), family, load_baselines(family), elsewhere) == []  # not comparable
    assert main(["eval", *common, "--baselines", "--weights", "1,0,0,0"]) == 2

    corrupted = [*common[:-3], "fog:3,snow:3", "--store", str(store)]  # the corruption mean: once all conditions are in
    assert main(["sweep", *corrupted, "--step", "0.5"]) == 0
    mean = stored_grids(ResultStore(store).records(family=family_fingerprint(family.hashes)), 4)["corruption-mean:2"]
    assert stored_baselines(ResultStore(store), family, load_baselines(family), [mean]) == []
    assert len(stored_baselines(ResultStore(store), family, load_baselines(family), [mean, *grids], False)) == 2
    assert main(["eval", *corrupted, "--baselines"]) == 0
    (sat_mean,) = stored_baselines(ResultStore(store), family, load_baselines(family), [mean])
    sat_records = [r for r in ResultStore(store).records() if r.ingredients == ["sat"] and r.kind == "corruption"]
    assert sat_mean == corruption_mean(sat_records) and sat_mean.conditions == 2


@pytest.fixture
def one_ingredient(family_folder: Path, tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "one"
    folder.mkdir()
    for path in family_folder.glob("test-linf.*"):
        shutil.copy(path, folder)
    return folder


@pytest.mark.parametrize(
    ("command", "message"),
    [(["eval", "FAMILY", "--out", "x.txt"], "--out x.txt: name a .json or .csv file"),
     (["sweep", "FAMILY", "--out", "x.txt"], "--out x.txt: name a .json or .csv file"),
     (["sweep", "ONE"], "has one ingredient, so there is no grid of soups to sweep"),
     (["sweep", "FAMILY", "--step", "0.3"], "The grid step 0.3 does not divide the total weight (1)"),
     (["adapt", "FAMILY", "--corruption", "fog", "--heldout", "0"], "at least one held-out image to score the"),
     (["adapt", "FAMILY", "--corruption", "fog", "--heldout", "-5"], "at least one held-out image to score the"),
     (["adapt", "FAMILY", "--corruption", "fog", "--per-class", "0"], "at least one test image per class"),
     (["adapt", "FAMILY", "--corruption", "fog", "--method", "gradient", "--lr", "-1"],
      "learning rate must be positive, not -1"),
     (["adapt", "FAMILY", "--folder", "F", "--severity", "2"], "--severity and --per-class shape a corruption"),
     (["adapt", "FAMILY", "--folder", "F", "--per-class", "5"], "--severity and --per-class shape a corruption"),
     (["adapt", "FAMILY", "--corruption", "fog", "--out", "x.json"], "--out x.json: name a .csv file"),
     (["saliency", "FAMILY", "--out", "x.png"], "--out x.png: name a .csv file")],
    ids=lambda value: value if isinstance(value, str) else " ".join(value[:1] + value[2:]),
)
def test_bad_inputs_are_one_sentence_and_no_traceback(family_folder, one_ingredient, data_folder, tmp_path,
                                                      monkeypatch, capsys, command, message) -> None:
    monkeypatch.chdir(tmp_path)
    places = {"FAMILY": str(family_folder), "ONE": str(one_ingredient), "F": str(data_folder / "test")}
    argv = [places.get(part, part) for part in command] + ["--data", str(data_folder)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("soupviz: note: --images 1000 asks")]
    assert message in err and "Traceback" not in err and len(lines) == 1
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.parametrize("command", ["eval", "sweep"])
def test_more_images_than_the_data_holds_is_said_once_before_the_work(family_folder, data_folder, capsys,
                                                                      command) -> None:
    argv = [command, str(family_folder), "--data", str(data_folder), "--metrics", "clean", "--images", "100000000"]
    assert main(argv + (["--step", "1"] if command == "sweep" else [])) == 0
    captured = capsys.readouterr()
    assert captured.err.count("--images 100000000 asks for more than the 20 test images of") == 1
    assert "all 20 are used" in captured.err and "20 images of" in captured.out


def test_adapt_on_a_folder_needs_no_cifar10(family_folder, shift_data, tmp_path) -> None:
    options = ["--folder", str(shift_data / "test"), "--heldout", "2", "--k", "1", "--step", "1", "--method", "grid"]
    assert main(["adapt", str(family_folder), "--data", str(tmp_path / "no-cifar-here"), *options]) == 0


def test_a_cli_table_prints_the_stronger_stored_record_and_names_its_attack(family_folder, data_folder, tmp_path,
                                                                             capsys) -> None:
    from soupviz.present.labels import metric_name
    from soupviz.results.store import ResultStore

    store = tmp_path / "results.sqlite"
    common = [str(family_folder), "--data", str(data_folder), "--images", "20", "--store", str(store)]
    assert main(["eval", *common, "--weights", "1,0,0,0", "--metrics", "linf::autoattack-apgd:2"]) == 0
    (strong,) = ResultStore(store).records()
    capsys.readouterr()
    assert main(["eval", *common, "--metrics", "clean,linf::pgd:10"]) == 0  # the preview attack, each ingredient
    lines = capsys.readouterr().out.splitlines()
    header, first, second = lines[0], lines[1], lines[2]
    strong_column, preview_column = metric_name(strong), "L∞ 8/255 PGD-10 (preview)"
    assert strong_column in header and preview_column in header
    cells = re.split(r"\s{2,}", first.strip())  # the first ingredient: the stored APGD record speaks, no preview
    columns = re.split(r"\s{2,}", header.strip())
    assert cells[columns.index(strong_column)] == interval_text(strong)
    assert cells[columns.index(preview_column)] == "—"
    assert re.split(r"\s{2,}", second.strip())[columns.index(strong_column)] == "—"  # nothing stored for the others
    assert any(line.startswith(f"{strong_column}: {strong.method}") for line in lines)
    assert len([r for r in ResultStore(store).records() if r.weights == [1, 0, 0, 0]]) == 3  # the preview is kept too

    assert main(["eval", *common, "--metrics", "clean,linf::pgd:10", "--no-cache"]) == 0  # this run's records only
    printed = capsys.readouterr().out
    assert strong_column not in printed and preview_column in printed
