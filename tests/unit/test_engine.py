"""The projected-gradient engine reproduces, to float tolerance, what the three loops it replaced
computed: the evaluation attacks (PGD, PGD-T), the training attacks and training steps of every
method, and the generation strip, for each threat, on a small net and a fixed batch.

`data/engine_reference.pt` holds the net, the batch and the outputs recorded from the code before
the engine (commit e13dd7e). Re-record (`python tests/unit/test_engine.py`) only for an intended
change of numbers, and say so in the commit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from soupviz.attacks.pgd import PGD, TargetedPGD
from soupviz.generate import GenerationSettings, towards_class
from soupviz.objectives import batch_loss, default_budget, method_budgets, trades_attack, training_attack

REFERENCE = Path(__file__).parent / "data" / "engine_reference.pt"
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
        budgets = method_budgets(method, "linf", None, steps, None, extra)
        result = batch_loss(method, net, x, y, budgets, torch.Generator().manual_seed(7))
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
    run = towards_class(net, x, target, settings, lambda done, total: calls.append((done, total)))
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
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-6), name


def test_the_reference_has_cases_that_break_and_cases_that_survive(recorded):
    """The recorded attacks are informative: some points move, and not every point breaks."""
    net = net_from(recorded["inputs"]).eval()
    x, y = recorded["inputs"]["x"], recorded["inputs"]["y"]
    for threat in THREATS:
        broken = net(recorded["outputs"][f"pgd/{threat}"]).argmax(1) != y
        assert 0 < broken.sum() < len(y), threat
        assert not torch.equal(recorded["outputs"][f"training-attack/{threat}"], x)


if __name__ == "__main__":
    inputs = fresh_inputs()
    outputs, groups = {}, {}
    for group, run in GROUPS.items():
        for name, value in run(inputs).items():
            outputs[name], groups[name] = value.contiguous(), group
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save({"inputs": inputs, "outputs": outputs, "groups": groups}, REFERENCE)
    print(f"recorded {len(outputs)} outputs to {REFERENCE}", file=sys.stderr)
