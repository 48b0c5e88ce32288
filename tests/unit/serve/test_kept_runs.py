"""Specification of soupviz.serve.kept_runs: an adaptation run survives JSON exactly, is kept in
a family folder under a key of everything that decides it, and is read back only for that key."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.insight.few_shot import AdaptationRun, AdaptConfig, adapt_to_shift
from soupviz.insight.shifts import ShiftData
from soupviz.serve.kept_runs import (
    PRECOMPUTED,
    keep_run,
    kept_path,
    kept_run,
    portable_key,
    run_from_json,
    run_to_json,
)
from soupviz.soups.soup import Soup

CONFIG = AdaptConfig(k=1, step=0.5, gradient_steps=2, ks=(1, 2), draws=2)


@pytest.fixture
def images(synthetic_images) -> ImageSet:
    small = F.interpolate(synthetic_images.images.float(), size=16, mode="area").round()
    return ImageSet(small.to(torch.uint8), synthetic_images.labels, CIFAR10_CLASSES, "synthetic")


@pytest.fixture
def run(family, images) -> AdaptationRun:
    shift = ShiftData.from_images(images, heldout_per_class=2, seed=0)
    return adapt_to_shift(Soup.from_family(family), shift, CONFIG, family.labels)


def assert_same_run(a: AdaptationRun, b: AdaptationRun) -> None:
    for field in dataclasses.fields(AdaptationRun):
        if field.name != "selections":
            assert getattr(a, field.name) == getattr(b, field.name), field.name
    assert len(a.selections) == len(b.selections) == 2
    for x, y in zip(a.selections, b.selections, strict=True):
        for field in dataclasses.fields(x):
            left, right = getattr(x, field.name), getattr(y, field.name)
            if isinstance(left, torch.Tensor):
                assert left.dtype == right.dtype and torch.equal(left, right), field.name
            else:
                assert left == right, field.name


def test_a_run_survives_json_exactly(run):
    assert_same_run(run_from_json(json.loads(json.dumps(run_to_json(run)))), run)


def test_a_kept_run_is_read_back_only_under_its_own_key(run, family, images, tmp_path):
    key = portable_key(family, images.digest(), "mixed", ("corruption", "fog", 3), 2,
                       per_class=6, seed=0, config=CONFIG)
    path = keep_run(tmp_path, key, run, "soupviz adapt F --keep")
    assert path == kept_path(tmp_path, key) and path.parent.name == PRECOMPUTED
    kept = kept_run(tmp_path, key)
    assert kept is not None and kept.command == "soupviz adapt F --keep"
    assert_same_run(kept.run, run)
    other = portable_key(family, images.digest(), "mixed", ("corruption", "fog", 4), 2,
                         per_class=6, seed=0, config=CONFIG)
    assert kept_run(tmp_path, other) is None and kept_run(None, key) is None
    path.rename(kept_path(tmp_path, other))  # a file under the wrong name is not trusted
    assert kept_run(tmp_path, other) is None
    kept_path(tmp_path, key).write_text("{not json")
    assert kept_run(tmp_path, key) is None


def test_the_key_changes_with_each_input_and_not_with_the_spec_container(family, images):
    base = dict(split_id=images.digest(), batchnorm="mixed", spec=("corruption", "fog", 3), heldout=2,
                per_class=6, seed=0, config=CONFIG)
    key = portable_key(family, **base)
    other_images = ImageSet(images.images.flip(0), images.labels, images.classes, images.source)
    changes = [{"split_id": other_images.digest()}, {"batchnorm": "re-estimated"},
               {"spec": ("corruption", "fog", 2)}, {"heldout": 3}, {"per_class": 7}, {"seed": 1},
               {"config": dataclasses.replace(CONFIG, k=2)}]
    assert len({key, *(portable_key(family, **(base | change)) for change in changes)}) == 1 + len(changes)
    assert portable_key(family, **(base | {"spec": ["corruption", "fog", 3]})) == key
