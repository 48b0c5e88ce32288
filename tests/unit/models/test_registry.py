"""Specification of soupviz.models: every registered name builds its family's class, one file per
family, at the parameter count its docstring states (built on the meta device: no memory, no time)."""

from __future__ import annotations

import pytest
import torch

from soupviz.errors import CheckpointError
from soupviz.models.registry import available_models, create_model

# name -> (the family file of its class, parameters as its docstring states them, that rounding)
ARCHITECTURES = {
    "test_preact_resnet": ("preact_resnet", 5.2e3, 1e2),  # registered in tiny.py
    "preact_resnet_small": ("preact_resnet", 0.69e6, 1e4),
    "preact_resnet18": ("preact_resnet", 11.2e6, 1e5),
    "preact_resnet18_half": ("preact_resnet", 2.8e6, 1e5),
    "preact_resnet18_linf": ("preact_resnet", 11.2e6, 1e5),
    "wide_resnet28_10": ("wide_resnet", 36.5e6, 1e5),
    "wide_resnet34_10": ("wide_resnet", 46.2e6, 1e5),
    "dm_wide_resnet28_10": ("dm_wide_resnet", 36.5e6, 1e5),
    "wide_resnet70_16": ("dm_wide_resnet", 267e6, 1e6),
    "resnet18": ("resnet", 11.2e6, 1e5),
    "resnet50": ("resnet", 23.5e6, 1e5),
}


def test_every_architecture_is_registered() -> None:
    assert available_models() == sorted(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_name_builds_its_familys_class_at_its_stated_size(name: str) -> None:
    family, parameters, rounding = ARCHITECTURES[name]
    with torch.device("meta"):
        model = create_model(name)
    assert type(model).__module__ == f"soupviz.models.{family}"
    assert round(sum(p.numel() for p in model.parameters()) / rounding) == round(parameters / rounding)
    assert model.input_mean.shape == (1, 3, 1, 1) and "input_mean" not in model.state_dict()


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(CheckpointError, match="choose one of dm_wide_resnet28_10, preact_resnet18"):
        create_model("resnet152")
