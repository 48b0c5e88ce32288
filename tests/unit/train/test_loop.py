"""Training loop: a step lowers the adversarial loss, --resume continues exactly, a fine-tune
keeps its parent's keys and records it, cards record the method, and `soupviz train` runs end
to end. Tiny synthetic 8×8 images and the real small architecture keep each test to seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from soupviz.attacks.training import default_budget, trades_attack, training_attack
from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import load_checkpoint, save_checkpoint
from soupviz.cli import main
from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.models.registry import create_model
from soupviz.train.config import TrainConfig, learning_rate
from soupviz.train.loop import train
from soupviz.train.losses import LratWeighting, lrat_loss, trades_loss

ARCH = "preact_resnet_small"


@pytest.fixture
def images() -> ImageSet:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(48) % 10
    # Class-dependent colour plus noise, so there is something to learn.
    base = (labels.float() / 9).view(-1, 1, 1, 1).expand(48, 3, 8, 8)
    pixels = (base * 200 + torch.randint(0, 56, (48, 3, 8, 8), generator=generator)).to(torch.uint8)
    return ImageSet(pixels, labels, CIFAR10_CLASSES, "synthetic")


def tiny_config(tmp_path: Path, name: str = "run", **overrides) -> TrainConfig:
    settings = dict(
        name=name, out=str(tmp_path / "out"), arch=ARCH, epochs=2, batch_size=16, lr=0.05,
        attack_steps=2, train_images=32, val_images=8, val_steps=1, device="cpu", select="last",
    )
    settings.update(overrides)
    if settings.get("method") == "fgsm":
        settings["attack_steps"] = 1
    return TrainConfig(**settings)


def adversarial_objective(method: str, model, x, y, generator):
    """The method's loss as a function of the model, with its adversarial examples fixed."""
    budget = default_budget("linf", None, 1 if method == "fgsm" else 3, None)
    if method == "trades":
        x_adv = trades_attack(model, x, budget, generator)
        return lambda: trades_loss(model, x, x_adv, y, beta=6.0)[0]
    x_adv = training_attack(model, x, y, budget, generator)
    if method == "lrat":
        x_l2 = training_attack(model, x, y, default_budget("l2", None, 3, None), generator)
        return lambda: lrat_loss(model, x, [x_adv, x_l2], y, LratWeighting()).loss
    return lambda: F.cross_entropy(model(x_adv), y)


@pytest.mark.parametrize("method", ["pgd", "fgsm", "trades", "lrat"])
def test_one_training_step_lowers_the_adversarial_loss(images, method):
    torch.manual_seed(0)
    model = create_model(ARCH).train()
    x, y = images.floats()[:16], images.labels[:16]
    loss = adversarial_objective(method, model, x, y, torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after < before - 1e-4


def test_resume_continues_from_the_saved_epoch_with_the_same_optimizer_state(tmp_path, images):
    straight = train(tiny_config(tmp_path / "a", method="lrat", lrat_threats=["l2"]), data=images)

    class Interrupted(Exception):
        pass

    def kill_in_second_epoch(progress):
        if progress.done > 32:  # 32 training images an epoch
            raise Interrupted

    config = tiny_config(tmp_path / "b", method="lrat", lrat_threats=["l2"])
    with pytest.raises(Interrupted):
        train(config, progress=kill_in_second_epoch, data=images)
    state = torch.load(tmp_path / "b/out/run.state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["optimizer"]["state"]  # momentum buffers were saved
    reports = []
    resumed = train(
        tiny_config(tmp_path / "b", method="lrat", lrat_threats=["l2"]), resume=True, progress=reports.append,
        data=images,
    )
    # only the lost epoch was trained again: from its start, two batches of 16 images, then its end
    assert [(p.done, p.total) for p in reports] == [(32, 64), (48, 64), (64, 64), (64, 64)]
    assert reports[-1].partial["epoch"] == 2 and reports[-1].message.startswith("run epoch 2/2: train loss")
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a.card.content_hash == b.card.content_hash
    final_a = torch.load(tmp_path / "a/out/run.state.pt", weights_only=True)["optimizer"]
    final_b = torch.load(tmp_path / "b/out/run.state.pt", weights_only=True)["optimizer"]
    for key, buffers in final_a["state"].items():
        assert torch.equal(buffers["momentum_buffer"], final_b["state"][key]["momentum_buffer"])
    log = [json.loads(line) for line in (tmp_path / "b/out/run.log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2]
    assert [entry["epoch"] for entry in b.card.recipe["history"]] == [1, 2]


def test_resume_refuses_a_state_from_a_different_run(tmp_path, images):
    train(tiny_config(tmp_path, epochs=1, method="fgsm"), data=images)
    with pytest.raises(SoupvizError, match="method='fgsm'"):
        train(tiny_config(tmp_path, epochs=2, method="pgd"), resume=True, data=images)


def test_fine_tune_keeps_the_parents_keys_and_records_the_parent(tmp_path, images):
    torch.manual_seed(1)
    parent_card = Card(name="base", arch=ARCH, threat="linf", eps=8 / 255, data_source="synthetic")
    parent_path = save_checkpoint(create_model(ARCH).state_dict(), parent_card, tmp_path / "family")
    config = tiny_config(
        tmp_path, name="base-to-l2", threat="l2", method="trades", epochs=1,
        parent=str(parent_path), arch="preact_resnet18",  # the parent's architecture wins
    )
    child = load_checkpoint(train(config, data=images))
    parent = load_checkpoint(parent_path)
    assert sorted(child.state_dict) == sorted(parent.state_dict)
    assert child.card.arch == ARCH
    assert child.card.parent == {"name": "base", "content_hash": parent.card.content_hash}
    assert child.card.threat == "l2" and child.card.eps == 0.5
    assert child.card.recipe["trades_beta"] == 6.0
    assert child.card.recipe["parent"] == str(parent_path)
    trained = [key for key, value in parent.state_dict.items()
               if not torch.equal(value, child.state_dict[key])]
    assert trained


def test_lrat_card_records_its_parameters_and_weights(tmp_path, images):
    config = tiny_config(tmp_path, method="lrat", epochs=1, lrat_threats=["l1"], lrat_floor=0.2)
    card = load_checkpoint(train(config, data=images)).card
    assert card.recipe["method"] == "lrat" and card.recipe["lrat_threats"] == ["l1"]
    assert card.recipe["lrat_c"] == 1.0 and card.recipe["lrat_floor"] == 0.2
    epoch = card.recipe["history"][0]
    assert 0.2 <= epoch["lrat_natural_weight"] <= 1.0
    assert 0.0 <= epoch["lrat_adversarial_weight"] <= 1.0
    assert epoch["images_per_s"] > 0 and card.threat == "linf"


def test_config_rejects_settings_that_cannot_work():
    with pytest.raises(SoupvizError, match="fgsm"):
        TrainConfig(name="x", out="o", method="fgsm", attack_steps=5).validate()
    with pytest.raises(SoupvizError, match="LRAT threat"):
        TrainConfig(name="x", out="o", method="lrat", lrat_threats=["l3"]).validate()
    with pytest.raises(SoupvizError, match="Nominal"):
        TrainConfig(name="x", out="o", method="trades", threat="none").validate()
    assert TrainConfig(name="x", out="o", method="fgsm").attack_steps == 1
    assert TrainConfig(name="x", out="o").attack_steps == 10


def test_learning_rate_schedules():
    piecewise = TrainConfig(name="x", out="o", lr=0.1)
    rates = [learning_rate(piecewise, p) for p in (0.0, 0.5, 0.75)]
    assert rates == pytest.approx([0.1, 0.01, 0.001])
    cosine = TrainConfig(name="x", out="o", lr=0.1, schedule="cosine", warmup=0.1)
    assert learning_rate(cosine, 0.05) == pytest.approx(0.05)
    assert learning_rate(cosine, 0.1) == pytest.approx(0.1) and learning_rate(cosine, 1.0) < 1e-12


def write_image_folder(root: Path, per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, name in enumerate(CIFAR10_CLASSES):
            (root / split / name).mkdir(parents=True)
            for index in range(per_class):
                pixels = (rng.integers(0, 40, (32, 32, 3)) + 20 * label).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{index}.png")


def test_cli_train_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    write_image_folder(tmp_path / "cifar")
    args = ["train", "tiny", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "cifar"),
            "--method", "fgsm", "--epochs", "1", "--batch-size", "10", "--val-images", "10",
            "--val-steps", "1", "--device", "cpu", "--schedule", "cosine"]
    assert main(args) == 0
    card = load_checkpoint(tmp_path / "out/tiny.safetensors").card
    assert card.recipe["method"] == "fgsm" and card.recipe["attack_steps"] == 1
    assert card.recipe["selected_epoch"] == 1 and card.data_source.endswith("train")
    out = capsys.readouterr().out
    assert str(tmp_path / "out/tiny.safetensors") in out and "tiny epoch 1/1: train loss" in out
    assert main(args + ["--attack-steps", "3"]) == 2
    assert "fgsm" in capsys.readouterr().err


def test_fine_tune_from_an_imported_base_keeps_its_normalisation_and_lineage(tmp_path, images):
    from soupviz.checkpoints.families import load_family
    from soupviz.checkpoints.importing import import_checkpoint
    from soupviz.evaluate.soupability import shared_base

    torch.manual_seed(2)
    zoo = create_model(ARCH, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in zoo.items()}}, tmp_path / "zoo.pt")
    with pytest.raises(SoupvizError, match="soupviz import"):
        train(tiny_config(tmp_path, parent=str(tmp_path / "zoo.pt")), data=images)
    base = import_checkpoint(tmp_path / "zoo.pt", tmp_path / "out", name="zoo-base", threat="linf",
                             normalisation=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))  # the file has none: say it
    child = load_checkpoint(train(tiny_config(tmp_path, name="zoo-l2", threat="l2", epochs=1,
                                              parent=str(base.path)), data=images))
    assert child.card.mean == (0.0, 0.0, 0.0) and child.card.std == (1.0, 1.0, 1.0)
    assert child.card.parent == {"name": "zoo-base", "content_hash": base.card.content_hash}
    assert shared_base(load_family(tmp_path / "out"), "zoo-base", "zoo-l2") == "zoo-base"


def test_bf16_training_runs_under_autocast_and_the_card_records_it(tmp_path, images):
    """bf16 is what a GPU run gets by default ('auto'); on the CPU it is asked for, and the weights
    stay float32 (autocast casts inside the step only)."""
    path = train(tiny_config(tmp_path, precision="bf16"), data=images)
    loaded = load_checkpoint(path)
    assert loaded.card.recipe["precision"] == "bf16"
    assert all(t.dtype in (torch.float32, torch.int64) for t in loaded.state_dict.values())
    assert all(torch.isfinite(t).all() for t in loaded.state_dict.values() if t.is_floating_point())


def test_fp32_training_is_what_auto_gives_on_the_cpu(tmp_path, images):
    auto = load_checkpoint(train(tiny_config(tmp_path / "a"), data=images))
    fp32 = load_checkpoint(train(tiny_config(tmp_path / "b", precision="fp32"), data=images))
    assert auto.card.content_hash == fp32.card.content_hash
