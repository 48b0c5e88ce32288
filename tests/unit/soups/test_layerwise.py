"""Specification of soupviz.soups.layerwise: block groups from module structure, layer-wise soups that
equal the plain soup when every group has the same weights and swap exactly one group's tensors
when that group is one-hot, with the soup's checks, BatchNorm rules and NaN reporting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from soupviz.errors import NonFiniteLogitsError, SoupvizError, SoupWeightsError
from soupviz.models.registry import create_model
from soupviz.soups.layerwise import LayerwiseSoup, block_groups
from soupviz.soups.soup import Soup


def test_groups_of_a_resnet_are_stem_stages_and_head():
    groups = block_groups(create_model("preact_resnet_small"))
    assert list(groups) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert groups["stem"] == ("conv1.weight",)
    assert set(groups["head"]) == {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                                   "bn.num_batches_tracked", "linear.weight", "linear.bias"}
    assert all(key.startswith("layer3.") for key in groups["layer3"])


def test_groups_of_a_wide_resnet_follow_its_own_names():
    groups = block_groups(create_model("wide_resnet28_10"))
    assert list(groups) == ["stem", "block1", "block2", "block3", "head"]


def test_a_model_without_stages_has_one_group_per_child():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    assert list(block_groups(net)) == ["0", "1", "3"]


@pytest.fixture
def soup(family) -> Soup:
    return Soup.from_family(family)


def test_group_constant_layerwise_soup_is_the_plain_soup_bit_for_bit(soup):
    layered = LayerwiseSoup(soup)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for row in ([0.1, 0.2, 0.3, 0.4], [1.2, -0.4, 0.2, 0.0], [0.0, 1.0, 0.0, 0.0]):
        soup.set_weights(row, extrapolate=True)
        layered.set_weights([row] * len(layered.names), extrapolate=True)
        for key, tensor in soup.tensors.items():
            assert torch.equal(layered.tensors[key], tensor), key
        assert torch.equal(layered(x), soup(x))


def test_a_one_hot_group_swaps_exactly_that_groups_tensors(family, soup):
    layered = LayerwiseSoup(soup)
    layered.set_weights(layered.swap([0, 1, 0, 0], {"layer2": [0, 0, 1, 0]}))
    linf, l2 = family.ingredients[1].state_dict, family.ingredients[2].state_dict
    for key, tensor in layered.tensors.items():
        if not tensor.is_floating_point():
            continue
        expected = l2[key] if key.startswith("layer2.") else linf[key]
        assert torch.equal(tensor, expected), key
    card = family.ingredients[0].card
    swapped = create_model(card.arch, mean=card.mean, std=card.std)
    swapped.load_state_dict({key: (l2 if key.startswith("layer2.") else linf)[key] for key in linf})
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(layered(x), swapped.eval()(x))


def test_mixed_group_variances_follow_the_soups_rule(soup):
    layered = LayerwiseSoup(soup)
    row = [0.0, 0.5, 0.5, 0.0]
    layered.set_weights(layered.swap([0, 1, 0, 0], {"head": row}))
    soup.set_weights(row)
    assert torch.equal(layered.tensors["bn.running_var"], soup.tensors["bn.running_var"])


def test_group_weights_are_checked_with_the_group_named(soup):
    layered = LayerwiseSoup(soup)
    with pytest.raises(SoupWeightsError, match="'layer2'.*sum to"):
        layered.set_weights(layered.swap([1, 0, 0, 0], {"layer2": [0.5, 0.6, 0, 0]}))
    with pytest.raises(SoupWeightsError, match="block groups"):
        layered.set_weights([[1, 0, 0, 0]])
    with pytest.raises(SoupvizError, match="No block group 'layer9'"):
        layered.swap([1, 0, 0, 0], {"layer9": [0, 1, 0, 0]})


def test_linear_variances_refuse_a_group_whose_variance_turns_negative(family):
    soup = Soup.from_family(family)
    soup.mix_batchnorm(linear=True)
    states = [ingredient.state_dict["bn.running_var"] for ingredient in family.ingredients]
    assert all(bool((v > 0).all()) for v in states)
    layered = LayerwiseSoup(soup)
    assert "per block group" in layered.bn_label
    soup.params.matrix[1, soup.params.layout["bn.running_var"][0]] = 10.0  # one large variance: 1 - 2*10 < 0
    with pytest.raises(SoupWeightsError, match="variance <= 0"):
        layered.set_weights(layered.swap([1, 0, 0, 0], {"head": [3, -2, 0, 0]}), extrapolate=True, margin=3)


def test_nan_logits_are_reported_with_the_group_weights(nan_soup):
    layered = LayerwiseSoup(nan_soup)
    layered.set_weights(layered.swap([1, 0, 0, 0], {"head": [0, 1, 0, 0]}))
    with pytest.raises(NonFiniteLogitsError, match="head \\(0, 1, 0, 0\\)"):
        layered.check_logits(layered(torch.rand(2, 3, 32, 32)))


def test_reestimated_statistics_are_refused(soup):
    soup.reestimate_batchnorm(torch.rand(4, 3, 32, 32), batch_size=4, batches=1)
    with pytest.raises(SoupvizError, match="batchnorm mix"):
        LayerwiseSoup(soup)
