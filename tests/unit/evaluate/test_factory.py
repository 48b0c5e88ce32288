"""open_evaluator: sessions share the parameter matrix but not the soup, and BatchNorm statistics
are mixed or re-estimated on the training images given."""

from __future__ import annotations

import pytest
import torch

from soupviz.errors import SoupvizError
from soupviz.evaluate.factory import open_evaluator
from soupviz.soups.parameters import ParameterMatrix


def test_sessions_share_the_parameter_matrix_but_not_the_soup(family, synthetic_images) -> None:
    params = ParameterMatrix.from_family(family)
    before = params.matrix.clone()
    first = open_evaluator(family, test=synthetic_images, params=params, cache=False)
    second = open_evaluator(family, test=synthetic_images, params=params, cache=False)
    first.soup.set_weights([1, 0, 0, 0])
    second.soup.set_weights([0, 0, 0, 1])
    assert first.soup.params is second.soup.params
    key = next(k for k, t in family.ingredients[0].state_dict.items() if t.is_floating_point())
    assert torch.equal(first.soup.tensors[key], family.ingredients[0].state_dict[key])
    assert torch.equal(second.soup.tensors[key], family.ingredients[3].state_dict[key])
    assert torch.equal(params.matrix, before)


def test_batchnorm_is_reestimated_on_the_given_training_images_and_other_modes_are_errors(
    family, synthetic_images
) -> None:
    params = ParameterMatrix.from_family(family)
    with pytest.raises(SoupvizError, match="BatchNorm mode"):
        open_evaluator(family, test=synthetic_images, params=params, batchnorm="average", cache=False)
    evaluator = open_evaluator(family, test=synthetic_images, train=synthetic_images, params=params,
                               batchnorm="reestimate", cache=False)
    assert evaluator.soup.bn_mode == "reestimate"
