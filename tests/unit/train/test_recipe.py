"""The family recipe: epochs planned from a time budget, lineage, the `soupviz train` command each
step is, the research-scale architecture's size against the GPU's return limits, and precision."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import save_checkpoint
from soupviz.cli import build_parser
from soupviz.cli.training import train_config
from soupviz.errors import SoupvizError
from soupviz.models.registry import create_model
from soupviz.train.config import autocast_dtype
from soupviz.train.recipe import SCALES, STEPS, epoch_cost, plan_family, read_plan, train_family, write_plan


def test_the_plan_shares_the_budget_by_cost_within_each_steps_cap(tmp_path):
    scale = SCALES["gpu"]
    image_s = 2e-6  # 0.1 s per standard epoch of 49,000 images
    short = plan_family(tmp_path, scale, 60, image_s)
    long = plan_family(tmp_path, scale, 6000, image_s)
    for step, few, many in zip(STEPS, short, long, strict=True):
        seconds_per_epoch = image_s * 49_000 * epoch_cost(step.method, step.attack_steps)
        assert few.epochs == max(1, min(step.max_epochs, int(step.share * 60 // seconds_per_epoch)))
        assert many.epochs == step.max_epochs
    assert sum(step.share for step in STEPS) == pytest.approx(1.0)
    assert [c.epochs for c in plan_family(tmp_path, scale, 1, 1.0)] == [1] * len(STEPS)


def test_the_base_is_fast_adversarial_training_and_every_other_step_fine_tunes_it(tmp_path):
    configs = plan_family(tmp_path, SCALES["gpu"], 300, 1e-5)
    base, *rest = configs
    assert (base.name, base.method, base.threat, base.schedule, base.parent) == ("linf", "fgsm", "linf", "cyclic", None)
    assert all(c.parent == str(tmp_path / "linf.safetensors") for c in rest)
    assert [c.threat for c in rest] == ["none", "l2", "l1", "linf"]
    assert configs[-1].method == "sat" and configs[-1].out == str(tmp_path / "baselines")
    assert {c.arch for c in configs} == {"preact_resnet18_half"}
    for config in configs:
        config.validate()


def test_the_plan_file_holds_each_step_and_the_soupviz_train_command_that_runs_it(tmp_path):
    configs = plan_family(tmp_path, SCALES["gpu"], 300, 1e-5, data="/d", seed=3, precision="bf16")
    path = write_plan(tmp_path, configs, {"scale": "gpu"})
    assert read_plan(tmp_path) == configs
    for config, command in zip(configs, json.loads(path.read_text())["commands"], strict=True):
        parsed = train_config(build_parser().parse_args(command.split()[1:]))
        for field in dataclasses.fields(config):
            if field.name not in ("command", "extra"):
                assert getattr(parsed, field.name) == getattr(config, field.name), field.name


def test_a_resumed_recipe_keeps_a_finished_step_and_trains_nothing_again(tmp_path):
    (config,) = plan_family(tmp_path, SCALES["tiny"], 1, 1.0)[:1]
    model = create_model(config.arch)
    path = save_checkpoint(model.state_dict(), Card(name="linf", arch=config.arch, threat="linf",
                                                    recipe=dataclasses.asdict(config)), tmp_path)
    assert train_family([config], resume=True, data=object()) == [path]  # data would fail any training


def test_a_resumed_recipe_refuses_a_checkpoint_from_other_settings(tmp_path):
    (config,) = plan_family(tmp_path, SCALES["tiny"], 1, 1.0)[:1]
    model = create_model(config.arch)
    save_checkpoint(model.state_dict(), Card(name="linf", arch=config.arch, threat="linf",
                                             recipe={"epochs": 99}), tmp_path)
    for resume in (False, True):
        with pytest.raises(SoupvizError, match="already exists from other settings"):
            train_family([config], resume=resume, data=object())


def test_the_research_architecture_comes_back_in_five_files_of_at_most_16_mib(tmp_path):
    model = create_model("preact_resnet18_half")
    path = save_checkpoint(model.state_dict(), Card(name="m", arch="preact_resnet18_half", threat="linf"), tmp_path)
    assert 2.7e6 < sum(p.numel() for p in model.parameters()) < 2.9e6
    assert path.stat().st_size < 11.5 * 2**20  # with its card and log, one per 16 MiB file


def test_precision_is_bf16_only_where_asked_or_on_a_gpu():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16


def test_resuming_with_another_scale_than_the_plans_is_refused(tmp_path, capsys):
    from soupviz.cli import main

    write_plan(tmp_path, plan_family(tmp_path, SCALES["tiny"], 1, 1.0), {"scale": "tiny"})
    assert main(["recipe", str(tmp_path), "--scale", "gpu", "--resume", "--device", "cpu"]) == 2
    assert "plan of scale 'tiny', not 'gpu'" in capsys.readouterr().err
