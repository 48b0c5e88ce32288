"""Baselines sit in the family's baselines/ folder, outside the soup, and are measured on the
soups' own images and seed: the same model gives the same records as it does as an ingredient."""

from __future__ import annotations

import shutil
from pathlib import Path

from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import (
    BASELINES,
    baseline_labels,
    load_baselines,
    load_checkpoint,
    load_family,
    save_checkpoint,
)
from soupviz.evaluate.baselines import evaluate_baselines
from soupviz.evaluate.evaluator import Evaluator
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore

SPECS = [MetricSpec("clean"), MetricSpec("attack", "linf", 8 / 255, "pgd", 3)]


def add_sat_baseline(family_folder: Path) -> Path:
    """A 'SAT' baseline whose weights are the L∞ ingredient's, so its numbers are known."""
    linf = load_checkpoint(family_folder / "test-linf.safetensors")
    card = Card(name="sat", arch=linf.card.arch, threat="sat", data_source="synthetic")
    return save_checkpoint(linf.state_dict, card, family_folder / BASELINES)


def test_baselines_stay_out_of_the_soup_and_load_from_their_folder(family_folder: Path) -> None:
    assert load_baselines(load_family(family_folder)) == []
    add_sat_baseline(family_folder)
    family = load_family(family_folder)
    assert len(family.ingredients) == 4
    (sat,) = load_baselines(family)
    assert (sat.name, sat.card.label) == ("sat", "SAT")
    shutil.rmtree(family_folder / BASELINES)
    assert load_baselines(family) == []


def test_a_baseline_is_measured_like_the_soups_on_the_same_images(family_folder: Path, synthetic_images,
                                                                   tmp_path: Path) -> None:
    add_sat_baseline(family_folder)
    family = load_family(family_folder)
    evaluator = Evaluator(family, synthetic_images, device="cpu", seed=3, batch_size=16,
                          store=ResultStore(tmp_path / "results.sqlite"))
    messages = []
    records = evaluate_baselines(evaluator, load_baselines(family), SPECS, lambda p: messages.append(p.message))
    as_ingredient = evaluator.evaluate([0, 1, 0, 0], SPECS)  # test-linf holds the same weights
    assert [r.family for r in records] == [f"{family.name}/{BASELINES}/sat"] * 2
    assert [r.family for r in as_ingredient] == [family.name] * 2  # a cache hit keeps its own family
    assert baseline_labels(family, load_baselines(family)) == {records[0].family: "SAT"}
    assert [(r.ingredients, r.weights) for r in records] == [(["sat"], [1.0])] * 2
    assert [(r.correct, r.n, r.seed, r.images, r.mask) for r in records] == [
        (r.correct, r.n, r.seed, r.images, r.mask) for r in as_ingredient]
    assert messages and all(m.startswith("SAT: ") for m in messages)
