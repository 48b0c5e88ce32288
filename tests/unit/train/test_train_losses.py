"""Training losses: LRAT's local weights on hand-computed cases, vulnerability measures, method
budgets. (The training attacks are specified with the engine, in test_engine.py.)"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from soupviz.threats import DEFAULT_BUDGETS
from soupviz.train.losses import (
    LratWeighting,
    batch_loss,
    lrat_loss,
    lrat_weights,
    method_budgets,
    vulnerability,
)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10))


def tiny_batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 4, 4, generator=generator), torch.arange(n) % 10


def test_lrat_linear_weights_match_hand_computed_case():
    v = torch.tensor([[0.2, 0.6], [1.0, 1.0], [0.0, 0.0]])
    natural, adversarial = lrat_weights(v, c=1.0, floor=0.1, g="linear")
    # ω = C·v/J; natural = max(C − Σω, floor)
    assert torch.allclose(adversarial, torch.tensor([[0.1, 0.3], [0.5, 0.5], [0.0, 0.0]]))
    assert torch.allclose(natural, torch.tensor([0.6, 0.1, 1.0]))


def test_lrat_softmax_weights_match_hand_computed_case():
    v = torch.tensor([[0.2, 0.6], [1.0, 1.0]])
    natural, adversarial = lrat_weights(v, c=2.0, floor=0.3, g="softmax", temperature=0.25)
    low, high = math.exp(0.2 / 0.25), math.exp(0.6 / 0.25)
    mass = 2.0 * 0.4  # C · mean_j v_ij
    expected = torch.tensor([[mass * low / (low + high), mass * high / (low + high)], [1.0, 1.0]])
    assert torch.allclose(adversarial, expected)
    assert torch.allclose(natural, torch.tensor([2.0 - 0.8, 0.3]))  # the second is floored


def test_lrat_with_one_attack_gives_c_times_vulnerability_for_every_g():
    v = torch.tensor([[0.0], [0.35], [0.95]])
    for g in ("linear", "softmax"):
        natural, adversarial = lrat_weights(v, c=1.0, floor=0.1, g=g)
        assert torch.allclose(adversarial[:, 0], v[:, 0])
        assert torch.allclose(natural, torch.tensor([1.0, 0.65, 0.1]))


def test_lrat_weights_carry_no_gradient_and_never_reweight_across_instances():
    v = torch.tensor([[0.3, 0.9]], requires_grad=True)
    natural, adversarial = lrat_weights(v)
    assert not natural.requires_grad and not adversarial.requires_grad
    # Adding another instance leaves the first instance's weights unchanged.
    natural2, adversarial2 = lrat_weights(torch.tensor([[0.3, 0.9], [0.0, 0.1]]))
    assert torch.equal(natural2[:1], natural) and torch.equal(adversarial2[:1], adversarial)


def test_vulnerability_measures_on_hand_logits():
    logits = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    y = torch.tensor([0, 1])
    prob = vulnerability(logits, y, "prob")
    assert torch.allclose(prob, torch.tensor([2 / (math.e**2 + 2), 1 - 1 / (math.e**2 + 2)]))
    margin = vulnerability(logits, y, "margin")
    assert torch.allclose(margin, torch.sigmoid(torch.tensor([-2.0, 2.0])))


def test_lrat_loss_is_the_weighted_sum_with_constant_weights():
    model = tiny_model()
    x, y = tiny_batch()
    generator = torch.Generator().manual_seed(1)
    x_advs = [x.clamp(0, 1), (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(0, 1)]
    weighting = LratWeighting(1.0, 0.1, g="softmax", temperature=0.5, vulnerability="margin")
    result = lrat_loss(model, x, x_advs, y, weighting)
    logits = [model(x_adv) for x_adv in x_advs]
    v = torch.stack([vulnerability(z, y, "margin") for z in logits], dim=1)
    natural, adversarial = lrat_weights(v, 1.0, 0.1, "softmax", 0.5)
    ce = torch.stack([F.cross_entropy(z, y, reduction="none") for z in logits], dim=1)
    ce_nat = F.cross_entropy(model(x), y, reduction="none")
    expected = (natural * ce_nat + (adversarial * ce).sum(1)).mean()
    assert torch.allclose(result.loss, expected)
    grads = torch.autograd.grad(result.loss, list(model.parameters()))
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, expected_grads, strict=True))
    assert result.stats["lrat_natural_weight"] == pytest.approx(natural.mean().item())


def test_method_budgets():
    assert method_budgets("standard", "none", None, 10, None) == {}
    fgsm = method_budgets("fgsm", "linf", None, 1, None)["linf"]
    assert fgsm.steps == 1 and fgsm.step_size == pytest.approx(1.25 * 8 / 255)
    lrat = method_budgets("lrat", "linf", 4 / 255, 5, None, extra_threats=("l2", "linf"))
    assert list(lrat) == ["linf", "l2"]
    assert lrat["linf"].eps == 4 / 255 and lrat["l2"].eps == DEFAULT_BUDGETS["l2"]
    assert lrat["l2"].step_size == pytest.approx(2.5 * 0.5 / 5)
    assert list(method_budgets("pgd", "l1", None, 10, None, extra_threats=("l2",))) == ["l1"]
    assert list(method_budgets("sat", "linf", None, 3, None)) == ["linf", "l2", "l1"]


@pytest.mark.parametrize("method", ["pgd", "fgsm", "trades", "lrat", "sat"])
def test_batch_loss_is_deterministic_given_the_generator(method):
    model = tiny_model()
    x, y = tiny_batch()
    steps = 1 if method == "fgsm" else 2
    budgets = method_budgets(method, "linf", None, steps, None, extra_threats=("l2",))
    first = batch_loss(method, model, x, y, budgets, generator=torch.Generator().manual_seed(3))
    again = batch_loss(method, model, x, y, budgets, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first.loss, again.loss) and first.logits.shape == (len(y), 10)
    assert first.loss.requires_grad
