"""Output-space ensembles: one-hot weights give the ingredient, identical ingredients give
themselves, the ensemble can be attacked whole, its Records line up with the soups', and only
logit ensembles take extrapolated soups."""

from __future__ import annotations

import pytest
import torch

from soupviz.attacks import PGD
from soupviz.errors import SoupvizError, SoupWeightsError, WeightOutOfRangeError
from soupviz.evaluate.ensembles import (
    EnsembleEvaluator,
    OutputEnsemble,
    SoupMember,
    combine_outputs,
    ensemble_soups,
)
from soupviz.evaluate.evaluator import Evaluator
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore
from soupviz.soups.soup import Soup


def random_logits(k: int = 3, n: int = 5, c: int = 4) -> torch.Tensor:
    return torch.randn(k, n, c, generator=torch.Generator().manual_seed(0))


def test_one_hot_weights_give_the_ingredients_logits_or_probabilities():
    logits = random_logits()
    hot = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.equal(combine_outputs(logits, hot, "logits"), logits[1])
    probs = torch.softmax(combine_outputs(logits, hot, "probs"), -1)
    torch.testing.assert_close(probs, torch.softmax(logits[1], -1))


def test_mixing_identical_ingredients_gives_the_ingredient():
    logits = random_logits(1).expand(3, -1, -1)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    torch.testing.assert_close(combine_outputs(logits, weights, "logits"), logits[0])
    expected = torch.log_softmax(logits[0], -1)
    torch.testing.assert_close(combine_outputs(logits, weights, "probs"), expected)


def test_probability_ensemble_is_the_weighted_mean_of_probabilities_and_batches_match_rows():
    logits = random_logits()
    weights = torch.tensor([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]], dtype=torch.float64)
    mixed = torch.softmax(combine_outputs(logits, weights, "probs"), -1)
    expected = torch.einsum("sk,knc->snc", weights.float(), torch.softmax(logits, -1))
    torch.testing.assert_close(mixed, expected)
    for row, out in zip(weights, combine_outputs(logits, weights, "logits"), strict=True):
        torch.testing.assert_close(out, combine_outputs(logits, row, "logits"))


def test_probability_ensembles_refuse_extrapolation_and_unknown_modes(family):
    models = [ingredient.build_model() for ingredient in family.ingredients]
    with pytest.raises(WeightOutOfRangeError, match="mode 'logits'"):
        OutputEnsemble(models, [1.4, -0.4, 0, 0], mode="probs")
    with pytest.raises(SoupWeightsError, match="sum to") as raised:
        OutputEnsemble(models, [0.5, 0.2, 0, 0], mode="probs")
    assert "mode 'logits'" not in str(raised.value)
    OutputEnsemble(models, [1.4, -0.4, 0, 0], mode="logits")
    with pytest.raises(SoupvizError, match="ensemble mode"):
        OutputEnsemble(models, [1, 0, 0, 0], mode="votes")


def test_one_hot_ensemble_of_a_family_is_that_ingredient(family, synthetic_images):
    x = synthetic_images.floats()[:8]
    expected = family.ingredients[2].build_model()(x)
    with torch.no_grad():
        assert torch.equal(OutputEnsemble.from_family(family, [0, 0, 1, 0])(x), expected)
        probs = OutputEnsemble.from_family(family, [0, 0, 1, 0], mode="probs").probabilities(x)
        soup_member = SoupMember(Soup.from_family(family), 2)(x)
    torch.testing.assert_close(probs, torch.softmax(expected, -1))
    torch.testing.assert_close(soup_member, expected, rtol=1e-5, atol=1e-5)


def test_an_ensemble_can_be_attacked_as_a_whole(family, synthetic_images):
    ensemble = OutputEnsemble.from_family(family, [0.25, 0.25, 0.25, 0.25], mode="probs")
    x, y = synthetic_images.floats()[:4], synthetic_images.labels[:4]
    x_adv = PGD(ensemble, "linf", 8 / 255, steps=2)(x, y)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(x_adv, x)
    assert not ensemble.training


def test_ensemble_records_line_up_with_the_evaluators_soup_records(family, synthetic_images):
    evaluator = Evaluator(family, synthetic_images, device="cpu", batch_size=16, store=None)
    specs = [MetricSpec("clean"), MetricSpec("corruption", corruption="gaussian_noise", severity=3)]
    weights = torch.eye(4, dtype=torch.float64)
    soups = evaluator.evaluate(weights, specs)
    ensembles = EnsembleEvaluator(evaluator, mode="logits").evaluate(weights, specs)
    for soup, ensemble in zip(soups, ensembles, strict=True):
        assert (ensemble.correct, ensemble.n, ensemble.images, ensemble.seed, ensemble.metric) == (
            soup.correct, soup.n, soup.images, soup.seed, soup.metric)
        assert ensemble.mask == soup.mask
        assert ensemble.method == f"ensemble of logits: {soup.method}"
    mixed = EnsembleEvaluator(evaluator, mode="probs").evaluate([0.5, 0.5, 0, 0], specs[:1])[0]
    assert mixed.method == "ensemble of probabilities: clean accuracy"
    assert mixed.weights == [0.5, 0.5, 0, 0]


def test_ensemble_robust_accuracy_attacks_the_ensemble_and_is_cached_apart_from_soups(
    family, synthetic_images, tmp_path
):
    store = ResultStore(tmp_path / "results.sqlite")
    evaluator = Evaluator(family, synthetic_images, device="cpu", batch_size=20, store=store)
    spec = MetricSpec("attack", threat="linf", attack="pgd", steps=2)
    hot = [0.0, 1.0, 0.0, 0.0]
    soup = evaluator.evaluate(hot, [spec])[0]
    progress = []
    ensembles = EnsembleEvaluator(evaluator)
    first = ensembles.evaluate(hot, [spec], progress.append)[0]
    assert first.upper_bound and first.method.startswith("ensemble of logits: ")
    assert first.correct == soup.correct  # a one-hot ensemble is the ingredient, attacked alike
    assert progress[-1].done == progress[-1].total == 2
    cached = []
    again = EnsembleEvaluator(evaluator).evaluate(hot, [spec], cached.append)[0]
    assert again == first and cached[-1].message.endswith("(cached)")
    assert len(store) == 2  # the soup's and the ensemble's
    assert evaluator.evaluate(hot, [spec])[0].method == soup.method


def test_only_logit_ensembles_take_extrapolated_soups() -> None:
    soups = [[1.0, 0.0], [1.2, -0.2], [0.5, 0.5], [-1e-13, 1.0]]  # the last is inside, up to rounding
    assert ensemble_soups(soups, "logits") == soups
    assert ensemble_soups(soups, "probs") == [[1.0, 0.0], [0.5, 0.5], [-1e-13, 1.0]]
    with pytest.raises(SoupvizError, match="Unknown ensemble mode 'none'"):
        ensemble_soups(soups, "none")
