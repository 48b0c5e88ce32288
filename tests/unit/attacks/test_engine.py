"""The projected-gradient engine: steps, schedule, stop test and hook; the training attacks made
with it; and, to float tolerance, the numbers of the three loops it replaced: the evaluation
attacks (PGD, PGD-T), the training attacks and training steps of every method, and the
generation strip, for each threat, on a small net and a fixed batch.

`data/engine_reference.pt` holds the net, the batch and the outputs recorded from the code before
the engine (commit e13dd7e). Re-record (`python tests/unit/attacks/test_engine.py`) only for an intended
change of numbers, and say so in the commit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from soupviz.attacks.engine import Ascent, Iterate, ascend, steepest_ascent
from soupviz.attacks.pgd import PGD, TargetedPGD
from soupviz.attacks.training import default_budget, trades_attack, training_attack
from soupviz.insight.generate import GenerationSettings, towards_class
from soupviz.train.losses import batch_loss, method_budgets

REFERENCE = Path(__file__).parents[1] / "data" / "engine_reference.pt"
THREATS = ("linf", "l2", "l1")
SMALL = {"linf": 2 / 255, "l2": 0.12, "l1": 1.0}  # budgets that leave some points unbroken
METHODS = {"standard": (), "pgd": (), "fgsm": (), "trades": (), "lrat": ("l2", "l1"), "sat": ()}


def small_net() -> nn.Module:
    """An MLP with BatchNorm (3x8x8 images, 10 classes), so training and eval modes differ."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(192, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10),
    )  # fmt: skip


def fresh_inputs() -> dict[str, torch.Tensor | dict]:
    """The net's weights and a batch; recorded once so later runs do not depend on torch's init."""
    torch.manual_seed(0)
    net = small_net()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net(torch.rand(64, 3, 8, 8, generator=generator))  # running statistics that are not the init's
    x = torch.rand(8, 3, 8, 8, generator=generator)
    with torch.no_grad():
        y = net.eval()(x).argmax(1)
    target = (y + 1 + torch.arange(8) % 9) % 10
    return {"state": net.state_dict(), "x": x, "y": y, "target": target}


def net_from(inputs: dict) -> nn.Module:
    net = small_net()
    net.load_state_dict(inputs["state"])
    return net


class FixedBatch:
    """The net as a callable that needs every batch whole, as a folded soup does."""

    fixed_batch = True

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def evaluation_outputs(inputs: dict) -> dict[str, torch.Tensor]:
    net = net_from(inputs).eval()
    x, y, target = inputs["x"], inputs["y"], inputs["target"]
    out = {}
    for threat in THREATS:
        eps = SMALL[threat]
        out[f"pgd/{threat}"] = PGD(net, threat, eps, steps=6, restarts=2, seed=3)(x, y)
        out[f"pgd-last-dlr/{threat}"] = PGD(net, threat, eps, steps=5, loss="dlr", early_stop=False, seed=1)(x, y)
        out[f"pgd-targeted/{threat}"] = PGD(net, threat, 3 * eps, steps=6, seed=2)(x, y, target)
        out[f"pgd-t/{threat}"] = TargetedPGD(net, threat, eps, steps=4, n_target_classes=3)(x, y)
        out[f"pgd-fixed-batch/{threat}"] = PGD(FixedBatch(net), threat, eps, steps=6, restarts=2)(x, y)
        out[f"pgd-no-start/{threat}"] = PGD(net, threat, eps, steps=3, random_start=False, l1_sparsity=0.05)(x, y)
    return out


def training_outputs(inputs: dict) -> dict[str, torch.Tensor]:
    x, y = inputs["x"], inputs["y"]
    out = {}
    for threat in THREATS:
        net = net_from(inputs).train()
        budget = default_budget(threat, None, 3, None)
        out[f"training-attack/{threat}"] = training_attack(net, x, y, budget, torch.Generator().manual_seed(5))
        out[f"trades-attack/{threat}"] = trades_attack(net, x, budget, torch.Generator().manual_seed(6))
        assert net.training and all(module.training for module in net.modules())
    for method, extra in METHODS.items():
        net = net_from(inputs).train()
        steps = 1 if method == "fgsm" else 3
        budgets = method_budgets(method, "linf", None, steps, None, extra_threats=extra)
        result = batch_loss(method, net, x, y, budgets, generator=torch.Generator().manual_seed(7))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        result.loss.backward()
        optimizer.step()
        out[f"step-loss/{method}"] = result.loss.detach()
        out[f"step-logits/{method}"] = result.logits.detach()
        out[f"step-weights/{method}"] = torch.cat([p.detach().flatten() for p in net.parameters()])
    return out


def generation_outputs(inputs: dict) -> dict[str, torch.Tensor]:
    net = net_from(inputs).eval()
    x, target = inputs["x"][:4], inputs["target"][:4]
    calls = []
    settings = GenerationSettings(eps=3.0, step_size=0.5, steps=8, frame_every=3)
    run = towards_class(net, x, target, settings, lambda report: calls.append((report.done, report.total)))
    assert calls == [(step, 8) for step in range(1, 9)]
    return {
        "generation/frames": run.frames, "generation/frame-steps": torch.tensor(run.frame_steps),
        "generation/final": run.final, "generation/target-probability": run.target_probability,
        "generation/prediction": run.prediction,
    }  # fmt: skip


GROUPS: dict[str, Callable[[dict], dict[str, torch.Tensor]]] = {
    "evaluation": evaluation_outputs, "training": training_outputs, "generation": generation_outputs,
}  # fmt: skip


def reference() -> dict:
    return torch.load(REFERENCE, weights_only=True)


@pytest.fixture(scope="module")
def recorded() -> dict:
    return reference()


def names(group: str) -> list[str]:
    return [name for name, owner in reference()["groups"].items() if owner == group]


@pytest.mark.parametrize("group", list(GROUPS))
def test_engine_reproduces_the_recorded_outputs(recorded, group):
    outputs = GROUPS[group](recorded["inputs"])
    assert sorted(outputs) == sorted(names(group))
    for name, value in outputs.items():
        expected = recorded["outputs"][name]
        assert value.shape == expected.shape and value.dtype == expected.dtype, name
        assert torch.allclose(value, expected, rtol=1e-5, atol=tolerance(name)), name


def tolerance(name: str) -> float:
    """Absolute tolerance of a recorded output. TRADES attacks start from a near-zero KL gradient
    whose direction carries the CPU's float rounding: L2 images moved up to 1.6e-4 between
    machines, so images get a quarter of a 1/255 pixel step; at L∞ the sign of a near-zero
    component can flip a pixel's step, which moved the TRADES training step's logits by 0.014
    and its loss by 0.0015 between machines (2026-12-05), so the step's outputs get 0.03, still
    far below what a changed loss or optimiser step would move; everything else must agree to
    float precision."""
    if name.startswith(("training-attack/", "trades-attack/")):
        return 1e-3
    return 3e-2 if name.startswith("step-") and name.endswith("/trades") else 1e-6


def test_the_reference_has_cases_that_break_and_cases_that_survive(recorded):
    """The recorded attacks are informative: some points move, and not every point breaks."""
    net = net_from(recorded["inputs"]).eval()
    x, y = recorded["inputs"]["x"], recorded["inputs"]["y"]
    for threat in THREATS:
        broken = net(recorded["outputs"][f"pgd/{threat}"]).argmax(1) != y
        assert 0 < broken.sum() < len(y), threat
        assert not torch.equal(recorded["outputs"][f"training-attack/{threat}"], x)


def norm(threat: str, delta: torch.Tensor) -> torch.Tensor:
    flat = delta.reshape(delta.shape[0], -1)
    return {"linf": flat.abs().amax(1), "l2": flat.norm(dim=1), "l1": flat.abs().sum(1)}[threat]


def small_batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 8, 8, generator=generator), torch.arange(n) % 10


def cross_entropy_of(y: torch.Tensor):
    return lambda logits, rows: F.cross_entropy(logits, y[rows], reduction="none")


def test_l1_steepest_ascent_is_a_sparse_unit_step_on_movable_pixels():
    grad = torch.tensor([[5.0, -4.0, 3.0, -2.0, 1.0, 0.5, 0.0, 0.2]])
    x_now = torch.tensor([[1.0, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5]])  # pixels 0 and 3 are stuck
    step = steepest_ascent("l1", grad, x_now, l1_sparsity=0.25)  # k = 2 of 8 coordinates
    assert torch.allclose(step, torch.tensor([[0.0, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]]))
    assert step.abs().sum() == pytest.approx(1.0)


def test_step_lengths_are_constant_or_decay_on_a_cosine_to_zero():
    constant = Ascent("l2", 0.5, steps=4, step_size=0.2)
    assert [constant.step_length(k) for k in range(4)] == [0.2] * 4
    cosine = Ascent("l2", 0.5, steps=4, step_size=0.2, schedule="cosine")
    assert cosine.step_length(0) == pytest.approx(0.2) and cosine.step_length(2) == pytest.approx(0.1)
    assert cosine.step_length(4) == pytest.approx(0.0, abs=1e-12)
    # An L1 step moves ⌈2.5·eps⌉ of 192 coordinates unless told otherwise.
    grad = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    moved = Ascent("l1", 2.0, 1, 1.0).direction(grad, torch.full_like(grad, 0.5))
    assert (moved != 0).sum(dim=(1, 2, 3)).tolist() == [5, 5]


@pytest.mark.parametrize("threat", THREATS)
def test_the_hook_sees_every_iterate_inside_budget_and_box_and_the_last_is_returned(threat):
    torch.manual_seed(0)
    net = small_net().eval()
    x, y = small_batch()
    seen: list[Iterate] = []
    ascent = Ascent(threat, SMALL[threat], steps=4, step_size=SMALL[threat] / 2)
    result = ascend(net, x, ascent, cross_entropy_of(y), hook=seen.append)
    assert [now.step for now in seen] == [0, 1, 2, 3, 4]
    assert torch.equal(seen[0].images, x) and torch.equal(seen[-1].images, result.images)
    for now in seen:
        assert (norm(threat, now.images - x) <= SMALL[threat] * (1 + 1e-5) + 1e-6).all()
        assert now.images.min() >= 0 and now.images.max() <= 1 and not now.logits.requires_grad
    assert F.cross_entropy(net(result.images), y) > F.cross_entropy(net(x), y)
    assert not result.stopped.any()


@pytest.mark.parametrize("whole", [False, True])
def test_a_stop_test_keeps_each_examples_first_success_and_drops_it_unless_the_batch_is_fixed(whole):
    torch.manual_seed(0)
    net = small_net().eval()
    x, _ = small_batch()
    y = net(x).argmax(1).detach()
    model = FixedBatch(net) if whole else net
    seen: list[Iterate] = []

    def fooled(logits, rows):
        return logits.argmax(1) != y[rows]

    ascent = Ascent("linf", 8 / 255, steps=6, step_size=2 / 255)
    result = ascend(model, x, ascent, cross_entropy_of(y), stop=fooled, hook=seen.append)
    assert result.stopped.any() and not result.stopped.all()
    for i in range(len(y)):
        visits = [now for now in seen if i in now.rows.tolist()]
        images = [now.images[now.rows.tolist().index(i)] for now in visits]
        broke = [now.logits[now.rows.tolist().index(i)].argmax() != y[i] for now in visits]
        if result.stopped[i]:
            first = broke.index(True)
            assert torch.equal(result.images[i], images[first])
            assert len(visits) == (len(seen) if whole else first + 1)
        else:
            assert not any(broke) and torch.equal(result.images[i], images[-1])
    assert all(len(now.rows) == len(y) for now in seen) == whole


def test_ascent_restores_every_submodules_mode():
    torch.manual_seed(0)
    net = small_net().train()
    net[2].eval()  # a frozen BatchNorm inside a training model stays frozen
    x, y = small_batch()
    training_attack(net, x, y, default_budget("linf", None, 2, None), torch.Generator().manual_seed(0))
    trades_attack(net, x, default_budget("l2", None, 2, None), torch.Generator().manual_seed(0))
    assert [module.training for module in net.modules()] == [True, True, True, False, True, True]


@pytest.mark.parametrize("threat", THREATS)
def test_training_attacks_stay_inside_the_budget_and_raise_their_loss(threat):
    torch.manual_seed(0)
    net = small_net().eval()
    x, y = small_batch()
    eps = {"linf": 8 / 255, "l2": 0.5, "l1": 2.0}[threat]
    budget = default_budget(threat, eps, steps=5, step_size=None)
    x_adv = training_attack(net, x, y, budget, torch.Generator().manual_seed(0))
    assert (norm(threat, x_adv - x) <= eps * (1 + 1e-5) + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert F.cross_entropy(net(x_adv), y) > F.cross_entropy(net(x), y)
    x_trades = trades_attack(net, x, budget, torch.Generator().manual_seed(0))
    assert (norm(threat, x_trades - x) <= eps * (1 + 1e-5) + 1e-6).all()
    p = F.softmax(net(x), dim=1)
    kl = F.kl_div(F.log_softmax(net(x_trades), dim=1), p, reduction="batchmean")
    assert kl > 1e-4  # far from the 0.001·N(0,1) start, where the KL is ~1e-8


if __name__ == "__main__":
    inputs = fresh_inputs()
    outputs, groups = {}, {}
    for group, run in GROUPS.items():
        for name, value in run(inputs).items():
            outputs[name], groups[name] = value.contiguous(), group
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save({"inputs": inputs, "outputs": outputs, "groups": groups}, REFERENCE)
    print(f"recorded {len(outputs)} outputs to {REFERENCE}", file=sys.stderr)
