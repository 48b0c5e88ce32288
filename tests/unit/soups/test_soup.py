"""Specification of soupviz.soups.soup and soupviz.soups.parameters: exact mixing, BatchNorm rules (variances
in log space, finite outside the simplex) and batched soups, on a tiny conv-BN-linear net (and
preact_resnet_small for families)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from soupviz.attacks.base import fixed_batch
from soupviz.attacks.pgd import PGD
from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import load_family, save_checkpoint
from soupviz.errors import CheckpointError, NonFiniteLogitsError, SoupvizError, SoupWeightsError
from soupviz.models.registry import create_model
from soupviz.soups import soup as soup_module
from soupviz.soups.parameters import ParameterMatrix, weighted_rows
from soupviz.soups.soup import Soup, check_finite_logits
from soupviz.soups.weights import simplex_grid


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def ingredient(seed: int) -> nn.Module:
    """A tiny net with distinct random weights and BatchNorm statistics."""
    torch.manual_seed(seed)
    net = tiny_net()
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    net[1].num_batches_tracked.fill_(10 + seed)
    return net.eval()


@pytest.fixture
def nets() -> list[nn.Module]:
    return [ingredient(seed) for seed in range(3)]


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(5, 3, 6, 6, generator=torch.Generator().manual_seed(0))


def make_soup(nets: list[nn.Module], **kw) -> Soup:
    params = ParameterMatrix.from_state_dicts([net.state_dict() for net in nets])
    return Soup(tiny_net(), params, **kw)


def test_one_hot_soup_reproduces_each_ingredient_exactly(nets, images):
    soup = make_soup(nets)
    for i, net in enumerate(nets):
        soup.set_weights(torch.eye(3)[i])
        assert torch.equal(soup(images), net(images))
        for key, tensor in net.state_dict().items():
            expected = tensor if tensor.is_floating_point() else nets[0].state_dict()[key]
            assert torch.equal(soup.tensors[key], expected)


def test_one_hot_family_soup_reproduces_preact_resnet_logits(tmp_path):
    torch.manual_seed(0)
    for name, threat in [("base", "linf"), ("to_l2", "l2")]:
        model = create_model("preact_resnet_small")
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
        save_checkpoint(model.state_dict(), Card(name, "preact_resnet_small", threat), tmp_path)
    family = load_family(tmp_path)
    soup = Soup.from_family(family)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for i, member in enumerate(family.ingredients):
            soup.set_weights(torch.eye(2)[i])
            assert torch.equal(soup(x), member.build_model()(x))


@pytest.mark.parametrize("weights", [[1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5], [1.4, -0.4, 0.0]])
def test_soup_of_identical_ingredients_is_that_ingredient(nets, images, weights):
    soup = make_soup([nets[0]] * 3)
    soup.set_weights(weights, extrapolate=True)
    assert torch.equal(soup(images), nets[0](images))
    assert all(torch.equal(soup.tensors[k], v) for k, v in nets[0].state_dict().items())


@pytest.mark.parametrize("linear", [False, True])
def test_mix_is_the_weighted_sum_of_every_floating_tensor_variances_in_log_space(nets, linear):
    soup = make_soup(nets)
    soup.mix_batchnorm(linear=linear)
    w = [0.5, -0.25, 0.75]
    soup.set_weights(w, extrapolate=True)
    for key, tensor in soup.tensors.items():
        states = [net.state_dict()[key].double() for net in nets]
        if key == "1.running_var" and not linear:  # geometric: exp(Σ w_k log v_k)
            expected = torch.exp(sum(wi * s.log() for wi, s in zip(w, states, strict=True)))
            torch.testing.assert_close(tensor.double(), expected, rtol=1e-6, atol=1e-6)
        elif tensor.is_floating_point():
            expected = sum(wi * s for wi, s in zip(w, states, strict=True))
            torch.testing.assert_close(tensor.double(), expected, rtol=1e-6, atol=1e-6)
        else:  # num_batches_tracked: the first ingredient's, never averaged
            assert torch.equal(tensor, nets[0].state_dict()[key])
    assert "1.running_mean" in soup.params.layout and "1.running_var" in soup.params.layout


def two_ingredients_with_variances(first: float, second: float) -> list[nn.Module]:
    """Two tiny nets, equal but for their BatchNorm running variances (all channels alike)."""
    nets = [ingredient(0), ingredient(0)]
    nets[0][1].running_var.fill_(first)
    nets[1][1].running_var.fill_(second)
    return nets


def test_extrapolated_variances_stay_positive_where_linear_mixing_gives_nan(images):
    nets = two_ingredients_with_variances(4.0, 1.0)
    w = [-0.4, 1.4]  # linearly: -0.4 * 4 + 1.4 * 1 = -0.2, a negative variance
    linear = tiny_net().eval()
    linear.load_state_dict({k: w[0] * v + w[1] * nets[1].state_dict()[k] for k, v in nets[0].state_dict().items()})
    with torch.no_grad():
        assert torch.isnan(linear(images)).all()

        soup = make_soup(nets)
        soup.set_weights(w, extrapolate=True)
        torch.testing.assert_close(soup.tensors["1.running_var"], torch.full((4,), 4.0**-0.4))  # 0.5743
        assert torch.isfinite(soup(images)).all()
        assert soup.bn_mode == "mix" and "log space" in soup.bn_label


def test_the_linear_rule_refuses_soups_with_a_variance_at_or_below_zero(images):
    soup = make_soup(two_ingredients_with_variances(4.0, 1.0))
    soup.set_weights([-0.4, 1.4], extrapolate=True)
    with pytest.raises(SoupWeightsError, match=r"\(-0.4, 1.4\) has a BatchNorm running variance <= 0"):
        soup.mix_batchnorm(linear=True)
    assert soup.bn_mode == "mix" and torch.isfinite(soup(images)).all()  # nothing changed

    soup.set_weights([0.5, 0.5])
    soup.mix_batchnorm(linear=True)
    assert soup.bn_mode == "mix-linear" and "linearly" in soup.bn_label
    torch.testing.assert_close(soup.tensors["1.running_var"], torch.full((4,), 2.5))
    with pytest.raises(SoupWeightsError, match="variance <= 0"):
        soup.set_weights([-0.4, 1.4], extrapolate=True)
    with pytest.raises(SoupWeightsError, match="variance <= 0"):
        soup.batched_logits([[0.5, 0.5], [-0.4, 1.4]], images, extrapolate=True)
    assert torch.equal(soup.weights, torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(soup.tensors["1.running_var"], torch.full((4,), 2.5))


def test_zero_variances_have_a_finite_log_and_one_hot_soups_keep_them_exactly(images):
    soup = make_soup(two_ingredients_with_variances(0.0, 1.0))
    assert torch.isfinite(soup.params.matrix).all()
    soup.set_weights([1.0, 0.0])
    assert torch.equal(soup.tensors["1.running_var"], torch.zeros(4))
    soup.set_weights([-0.4, 1.4], extrapolate=True)
    assert torch.isfinite(soup(images)).all()


def test_check_finite_logits_names_the_first_soup_with_nan_or_infinity():
    logits = torch.zeros(3, 2, 5)
    weights = torch.tensor([[1.0, 0.0], [1.4, -0.4], [-0.4, 1.4]], dtype=torch.float64)
    check_finite_logits(logits, weights)
    check_finite_logits(logits[0], weights[0])
    logits[1, 1, 3], logits[2, 0, 0] = float("inf"), float("nan")
    with pytest.raises(NonFiniteLogitsError, match=r"weights \(1.4, -0.4\) outputs NaN or infinite logits"):
        check_finite_logits(logits, weights)
    with pytest.raises(NonFiniteLogitsError, match=r"\(-0.4, 1.4\)"):
        check_finite_logits(logits[2], weights[2])


@pytest.mark.parametrize("elementwise", [False, True])
def test_weighted_rows_kernels_agree_and_keep_one_hot_rows_exact(elementwise):
    matrix = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    w = torch.tensor([0.2, -0.5, 1.3])
    single = weighted_rows(matrix, w, elementwise=elementwise)
    assert single.shape == (50,)
    torch.testing.assert_close(single, w @ matrix)
    batch = weighted_rows(matrix, torch.eye(3), elementwise=elementwise)
    assert batch.shape == (3, 50) and torch.equal(batch, matrix)
    out = torch.empty(50)
    assert weighted_rows(matrix, torch.eye(3)[2], out, elementwise=elementwise) is out
    assert torch.equal(out, matrix[2])


def test_tensors_are_views_of_one_reused_vector(nets):
    soup = make_soup(nets)
    start, end = soup._flat.data_ptr(), soup._flat.data_ptr() + 4 * soup.params.p
    soup.set_weights([0, 1, 0])
    for key in soup.params.layout:
        assert start <= soup.tensors[key].data_ptr() < end
    assert soup._flat.data_ptr() == start


def test_state_dict_loads_into_a_fresh_module_with_the_same_logits(nets, images):
    soup = make_soup(nets)
    soup.set_weights([0.1, 0.6, 0.3])
    net = tiny_net().eval()
    net.load_state_dict(soup.state_dict())
    assert torch.equal(net(images), soup(images))


def test_ingredients_of_different_shapes_are_refused(nets):
    odd = nn.Sequential(nn.Conv2d(3, 5, 3)).state_dict()
    with pytest.raises(CheckpointError, match="architecture"):
        ParameterMatrix.from_state_dicts([nets[0].state_dict(), odd])


def test_a_soup_takes_one_weight_vector_and_a_known_batch_method(nets):
    soup = make_soup(nets)
    with pytest.raises(SoupWeightsError, match="one weight vector"):
        soup.set_weights(torch.eye(3))
    with pytest.raises(SoupvizError, match="batch method"):
        make_soup(nets, batch_method="threads")


@pytest.mark.parametrize("method", ["vmap", "loop"])
def test_batched_logits_match_soups_run_one_by_one(nets, images, method):
    soup = make_soup(nets, batch_method=method)
    grid = simplex_grid(3, 0.5)
    with torch.no_grad():
        batched = soup.batched_logits(grid, images, max_bytes=4 * soup.params.p * 4)
        single = []
        for w in grid:
            soup.set_weights(w)
            single.append(soup(images))
    assert batched.shape == (6, 5, 3)
    torch.testing.assert_close(batched, torch.stack(single), rtol=1e-5, atol=1e-6)
    assert soup.batch_method == method


def test_vmap_failure_falls_back_to_a_loop(nets, images, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no batching rule")

    monkeypatch.setattr(soup_module, "vmap", broken)
    soup = make_soup(nets, batch_method="vmap")
    assert soup.batched_logits(torch.eye(3), images).shape == (3, 5, 3)
    assert soup.batch_method == "loop"


@pytest.mark.parametrize("method", ["vmap", "loop"])
def test_folded_soups_give_each_soup_its_own_rows_and_gradients(nets, images, method):
    soup = make_soup(nets, batch_method=method)
    weights = torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5]])
    folded = soup.folded(weights)
    x = torch.cat([images, images.flip(0)]).requires_grad_(True)
    folded(x).logsumexp(1).sum().backward()
    for s, rows in enumerate([slice(0, 5), slice(5, 10)]):
        soup.set_weights(weights[s])
        x_s = x.detach()[rows].clone().requires_grad_(True)
        logits = soup(x_s)
        logits.logsumexp(1).sum().backward()
        torch.testing.assert_close(folded(x.detach())[rows], logits.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(x.grad[rows], x_s.grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(SoupvizError, match="split evenly"):
        folded(images)


def test_an_attack_on_folded_soups_keeps_the_batch_whole(nets, images):
    folded = make_soup(nets).folded(torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5]]))
    assert fixed_batch(folded)
    x, y = torch.cat([images, images]), torch.tensor([0, 1, 2, 0, 1] * 2)
    x_adv = PGD(folded, "linf", 8 / 255, steps=3)(x, y)
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= 8 / 255 + 1e-6


def test_bn_statistics_are_mixed_by_default_and_labelled(nets):
    soup = make_soup(nets)
    assert soup.bn_mode == "mix" and "mixed" in soup.bn_label and "log space" in soup.bn_label


def test_reestimated_bn_statistics_match_update_bn_on_the_same_batches(nets, images):
    soup = make_soup(nets)
    soup.set_weights([0.2, 0.3, 0.5])
    mixed_mean = soup.tensors["1.running_mean"].clone()
    soup.reestimate_batchnorm(images, batch_size=2, batches=2)
    assert soup.bn_mode == "reestimate" and "4 clean training images" in soup.bn_label

    reference = tiny_net()
    reference.load_state_dict(soup.params.as_tensors(soup.params.mix(soup.weights)))
    update_bn([images[0:2], images[2:4]], reference)
    torch.testing.assert_close(soup.tensors["1.running_mean"], reference[1].running_mean)
    torch.testing.assert_close(soup.tensors["1.running_var"], reference[1].running_var)
    assert torch.equal(soup.tensors["0.weight"], reference[0].weight.detach())
    assert soup.template.training is False

    soup.set_weights([1.0, 0.0, 0.0])  # a new soup gets its own statistics
    assert not torch.equal(soup.tensors["1.running_mean"], reference[1].running_mean)
    soup.set_weights([0.2, 0.3, 0.5])  # and the earlier one comes back from the cache
    torch.testing.assert_close(soup.tensors["1.running_mean"], reference[1].running_mean)
    soup.mix_batchnorm()
    assert torch.equal(soup.tensors["1.running_mean"], mixed_mean) and soup.bn_mode == "mix"


def test_batched_soups_use_reestimated_statistics_too(nets, images):
    soup = make_soup(nets)
    soup.reestimate_batchnorm((images * 255).to(torch.uint8), batch_size=5, batches=1)
    grid = simplex_grid(3, 0.5)
    with torch.no_grad():
        batched = soup.batched_logits(grid, images)
        for w, logits in zip(grid, batched, strict=True):
            soup.set_weights(w)
            torch.testing.assert_close(logits, soup(images))
