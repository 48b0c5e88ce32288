"""Output-space ensembles: a soup's weights applied to the ingredients' outputs, not parameters.

`OutputEnsemble` is a classifier (a module, so attacks can attack it whole) mixing the
ingredients' logits, or their probabilities, with weights (K,). `EnsembleEvaluator` measures
ensembles on an `Evaluator`'s images and seed and returns Records comparable with its soups';
clean and corruption accuracy reuse each ingredient's logits, computed once, for every weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from soupviz.checkpoints.families import SoupFamily
from soupviz.errors import SoupvizError, SoupWeightsError, WeightOutOfRangeError
from soupviz.evaluate.evaluator import Evaluator
from soupviz.results.metric_specs import (
    MetricSpec,
)
from soupviz.soups.soup import Soup
from soupviz.soups.weights import EXTRAPOLATION_LIMIT, check_weights, is_extrapolated

MODES = {"logits": "logits", "probs": "probabilities"}
Weights = Sequence[float] | torch.Tensor
Classifier = Callable[[torch.Tensor], torch.Tensor]


def check_ensemble_weights(weights: Weights | Sequence[Weights], k: int, mode: str) -> torch.Tensor:
    """Checked float64 weights (K,) or (S, K) summing to 1. Logit ensembles may extrapolate (as
    soups may); probability ensembles need weights in [0, 1], or the mixture is no distribution."""
    if mode not in MODES:
        raise SoupvizError(f"Unknown ensemble mode {mode!r}: use 'logits' or 'probs'.")
    try:
        return check_weights(weights, k, extrapolate=mode == "logits", margin=EXTRAPOLATION_LIMIT)
    except WeightOutOfRangeError as error:
        if mode == "probs":
            raise WeightOutOfRangeError(f"{error} An ensemble of probabilities needs weights in [0, 1]; "
                                        "use mode 'logits' to extrapolate.") from error
        raise


def ensemble_soups(soups: Sequence[Weights], mode: str) -> list[Weights]:
    """Those of `soups` (each (K,)) that an ensemble of `mode` can take, in order: every soup for
    'logits' (logit ensembles extrapolate, as soups do); for 'probs' only the soups with all weights
    in [0, 1], as a mixture of probabilities needs (see `check_ensemble_weights`)."""
    if mode not in MODES:
        raise SoupvizError(f"Unknown ensemble mode {mode!r}: use 'logits' or 'probs'.")
    return [w for w in soups if mode == "logits" or not is_extrapolated(w)]


def combine_outputs(logits: torch.Tensor, weights: torch.Tensor, mode: str) -> torch.Tensor:
    """Ensemble outputs from the ingredients' logits (K, N, C) and weights (K,) or (S, K).

    'logits': Σ_k w_k z_k. 'probs': log Σ_k w_k softmax(z_k), computed stably as a logsumexp;
    a log-probability is a valid logit (its softmax is the mixture), so attacks and argmax
    treat both modes alike. Returns (N, C), or (S, N, C) for weights (S, K).
    """
    w = weights.to(device=logits.device, dtype=logits.dtype)
    if mode == "logits":
        return torch.tensordot(w, logits, dims=([-1], [0]))
    if mode != "probs":
        raise SoupvizError(f"Unknown ensemble mode {mode!r}: use 'logits' or 'probs'.")
    log_w = torch.log(w)  # log 0 = -inf: an ingredient without weight adds nothing
    log_p = torch.log_softmax(logits, dim=-1)
    if log_w.dim() == 1:
        return torch.logsumexp(log_w[:, None, None] + log_p, dim=0)
    return torch.logsumexp(log_w[:, :, None, None] + log_p[None], dim=1)


class SoupMember:
    """Ingredient k as a soup computes it: the soup's template run on a one-hot soup vector.

    With mixed BatchNorm statistics this is the ingredient bit for bit (a view of its row of
    the parameter matrix, no copy); with re-estimated statistics, the one-hot soup's.
    """

    def __init__(self, soup: Soup, k: int) -> None:
        one_hot = torch.zeros(1, soup.params.k, dtype=torch.float64)
        one_hot[0, k] = 1
        self.soup = soup
        mixed = soup.bn_mode != "reestimate"
        self.flat = soup.params.matrix[k] if mixed else soup.soup_vectors(one_hot)[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.soup.template, self.soup.params.as_tensors(self.flat), (x,))


class OutputEnsemble(nn.Module):
    """A classifier whose output mixes the ingredients' outputs with weights (K,).

    Only ingredients with nonzero weight run, so a one-hot ensemble returns that ingredient's
    logits exactly ('logits') or their log-softmax ('probs'). Each ingredient keeps its own
    BatchNorm statistics. Costs K forward passes per call (a soup costs one). Constructed in
    eval mode, members included.

    Args:
        models: K classifiers mapping images (N, C, H, W) in [0, 1] to logits (N, classes).
        weights: (K,) summing to 1.
        mode: 'logits' or 'probs'.

    Example:
        >>> ensemble = OutputEnsemble.from_family(family, [0.5, 0.5, 0, 0], mode="probs")
        >>> x_adv = PGD(ensemble, "linf", 8 / 255)(x, y)
    """

    def __init__(self, models: Sequence[Classifier], weights: Weights, mode: str = "logits"):
        super().__init__()
        if not models:
            raise SoupvizError("An ensemble needs at least one model.")
        self.members = list(models)
        # registered so that eval(), to() and the attacks' eval_mode reach them
        self.networks = nn.ModuleList([m for m in self.members if isinstance(m, nn.Module)])
        self.mode = mode
        self.set_weights(weights)
        self.eval()  # an evaluation object, like a Soup: members in eval mode too

    @classmethod
    def from_family(cls, family: SoupFamily, weights: Weights, mode: str = "logits",
                    device: torch.device | str = "cpu") -> OutputEnsemble:
        """An ensemble of a `SoupFamily`'s ingredients, each built once on `device`."""
        models = [ingredient.build_model(device) for ingredient in family.ingredients]
        return cls(models, weights, mode)

    def set_weights(self, weights: Weights) -> None:
        """Check and set the weights (K,); the members are reused."""
        checked = check_ensemble_weights(weights, len(self.members), self.mode)
        if checked.dim() != 1:
            raise SoupWeightsError("An ensemble takes one weight vector (K,).")
        self.weights = checked

    @property
    def label(self) -> str:
        """'ensemble of logits' or 'ensemble of probabilities'."""
        return f"ensemble of {MODES[self.mode]}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Ensemble logits (N, C) for images `x` (N, C, H, W) in [0, 1]; see `combine_outputs`."""
        active = [k for k, w in enumerate(self.weights.tolist()) if w != 0]
        logits = torch.stack([self.members[k](x) for k in active])
        return combine_outputs(logits, self.weights[active], self.mode)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's class probabilities (N, C)."""
        return torch.softmax(self(x), dim=-1)


class EnsembleEvaluator(Evaluator):
    """Evaluates output-space ensembles on the images, seed, batches and cache of `evaluator`.

    Records match the `Evaluator`'s field for field (same images label, seed, masks), with
    `method` prefixed 'ensemble of logits: ' or 'ensemble of probabilities: ' and `batchnorm`
    saying that each ingredient keeps its own statistics. Robust accuracy attacks the whole
    ensemble (every member's gradient), one weight vector at a time; clean and corruption
    accuracy reuse each ingredient's logits across weight vectors.

    Args:
        evaluator: the soups' evaluator, whose family, images and settings are shared.
        mode: 'logits' or 'probs'.
        models: the K ingredient classifiers; default the evaluator's soup at one-hot weights
            (`SoupMember`), so ensembles use exactly the ingredients its soups are compared
            with (re-estimated BatchNorm included; members are fixed at construction).
    """

    folds = False  # an ensemble is not a soup: one weight vector at a time

    def __init__(self, evaluator: Evaluator, mode: str = "logits",
                 models: Sequence[Classifier] | None = None) -> None:
        super().__init__(evaluator.family, evaluator.images, device=evaluator.device, seed=evaluator.seed,
                         batch_size=evaluator.batch_size, store=evaluator.store, soup=evaluator.soup,
                         fold=evaluator.fold)
        k = len(evaluator.family.ingredients)
        models = models or [SoupMember(evaluator.soup, i) for i in range(k)]
        self.ensemble = OutputEnsemble(models, torch.eye(k, dtype=torch.float64)[0], mode)
        soup = evaluator.soup
        own = soup.bn_label if soup.bn_mode == "reestimate" else "Each ingredient keeps its own BatchNorm statistics"
        self._batchnorm = f"{own} ({self.ensemble.label})."
        self._outputs: dict[str, torch.Tensor] = {}

    def check_rows(self, weights: Weights | Sequence[Weights]) -> torch.Tensor:
        k = len(self.ensemble.members)
        return check_ensemble_weights(weights, k, self.ensemble.mode).reshape(-1, k)

    def classifier(self, row: torch.Tensor) -> Classifier:
        self.ensemble.set_weights(row)
        return self.ensemble

    @property
    def batchnorm(self) -> str:
        return self._batchnorm

    def method_prefix(self) -> str:
        return f"{self.ensemble.label}: "

    def cache_parts(self) -> dict:
        return {**super().cache_parts(), "ensemble": self.ensemble.mode}

    def ingredient_logits(self, spec: MetricSpec) -> torch.Tensor:
        """Each ingredient's logits (K, N, C) on the (clean or corrupted) images, computed once."""
        if spec.key not in self._outputs:
            with torch.no_grad():
                outputs = [torch.stack([m(x) for m in self.ensemble.members]).cpu() for x, _ in self.batches(spec)]
            self._outputs[spec.key] = torch.cat(outputs, dim=1)
        return self._outputs[spec.key]

    def _predicted(self, row: torch.Tensor, spec: MetricSpec) -> torch.Tensor:
        outputs = combine_outputs(self.ingredient_logits(spec), row, self.ensemble.mode)
        return outputs.argmax(-1) == self.y.cpu()
