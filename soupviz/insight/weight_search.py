"""Search of soup weights on labelled images: the `Selection` result type and its choice rule,
exact gradients of the loss in the weights (BatchNorm statistics included) and projected-Adam
selection (projecting with `soups.weights.project_weights`). Grid search and reports live in `adapt`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from soupviz.progress import Progress, ProgressCallback
from soupviz.soups.soup import Soup, check_finite_logits
from soupviz.soups.weights import DEFAULT_MARGIN, EXTRAPOLATION_LIMIT, bounds, check_weights, project_weights

F64 = torch.float64


@dataclass(frozen=True)
class Selection:
    """Chosen `weights` (K,) with their accuracy and mean cross-entropy on the n selection
    images; `candidates` (G, K) are the soups considered (grid rows or gradient iterates),
    `scores` (G,) their selection accuracies and `index` the chosen row."""

    weights: torch.Tensor
    selection_accuracy: float
    selection_loss: float
    n: int
    method: str
    label: str
    candidates: torch.Tensor
    scores: torch.Tensor
    index: int


def choose(candidates: torch.Tensor, accuracy: torch.Tensor, loss: torch.Tensor, n: int,
           method: str, *, label: str) -> Selection:
    """The most accurate candidate; ties to the lower loss, then to the first row."""
    best = int(torch.where(accuracy == accuracy.max(), loss, torch.inf).argmin())
    return Selection(candidates[best].clone(), float(accuracy[best]), float(loss[best]), n,
                     method, label, candidates, accuracy, best)


class EvalBatchNorm(nn.Module):
    """Eval-mode BatchNorm in plain ops, so gradients reach the running statistics (torch's
    fused kernel refuses them); same parameter and buffer names as the layer it replaces."""

    def __init__(self, norm: _BatchNorm) -> None:
        super().__init__()
        self.eps, self.weight, self.bias = norm.eps, norm.weight, norm.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, getattr(norm, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = torch.rsqrt(self.running_var.view(shape) + self.eps)
        out = (x - self.running_mean.view(shape)) * scale
        return out if self.weight is None else out * self.weight.view(shape) + self.bias.view(shape)


def differentiable_template(template: nn.Module) -> nn.Module:
    """A copy of `template` in eval mode whose BatchNorm layers are `EvalBatchNorm`s."""
    clone = copy.deepcopy(template).eval()
    for module in list(clone.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, _BatchNorm) and child.track_running_stats:
                setattr(module, child_name, EvalBatchNorm(child))
    return clone


def weight_gradient(
    soup: Soup, weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
    *, template: nn.Module | None = None,
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy and accuracy on (x, y), and the loss's gradient (K,) in the weights.

    The soup is θ(w) = Σ_k w_k θ_k (parameters, BatchNorm means) with running variances
    v(w) = exp(Σ_k w_k log v_k), as `Soup` evaluates it, so ∂L/∂w_k = ⟨θ_k, ∂L/∂θ⟩ +
    ⟨v log v_k, ∂L/∂v⟩ (θ: all but the variances): the loss is differentiated with respect to the mixed vector (batches
    accumulated, through `differentiable_template`) and mapped back through the matrix by
    `Soup.weight_gradient`. Exact with mixed BatchNorm statistics (either rule); re-estimated
    ones are taken at w and differentiated as if they were mixed (an approximation).

    Raises:
        NonFiniteLogitsError: the soup at `weights` outputs NaN or infinity.
    """
    template = template or differentiable_template(soup.template)
    checked = check_weights(weights, soup.params.k, extrapolate=True, margin=EXTRAPOLATION_LIMIT)
    flat = soup.soup_vectors(checked[None])[0].detach().requires_grad_(True)
    total_loss, correct, device = 0.0, 0, soup.params.device
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        xb, yb = xb.to(device), yb.to(device)
        logits = functional_call(template, soup.params.as_tensors(flat), (xb,))
        check_finite_logits(logits.detach(), checked)
        loss = F.cross_entropy(logits, yb, reduction="sum") / len(y)
        loss.backward()
        total_loss += float(loss.detach())
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss, correct / len(y), soup.weight_gradient(flat.detach(), flat.grad).to(F64).cpu()


def select_by_gradient(
    soup: Soup, x_sel: torch.Tensor, y_sel: torch.Tensor, steps: int = 20, lr: float = 0.05,
    *, init: Sequence[float] | torch.Tensor | None = None, extrapolate: bool = False,
    margin: float = DEFAULT_MARGIN, batch_size: int = 256, progress: ProgressCallback | None = None,
) -> Selection:
    """Optimise the weights on the selection images by projected Adam on the cross-entropy.

    Starts at `init` (default uniform). Adam sees the gradient's component within Σw = 1
    (its per-coordinate scaling would otherwise move every weight alike, and the projection
    undo it); after each step the weights are projected onto {Σw = 1, w in [0, 1]}, or
    [−margin, 1 + margin] with `extrapolate`. Returns the iterate (init included) most
    accurate on the selection images, ties to the lower loss.
    """
    k = soup.params.k
    init = torch.full((k,), 1 / k, dtype=F64) if init is None else torch.as_tensor(init, dtype=F64)
    low, high = bounds(extrapolate, margin)
    w = project_weights(check_weights(init, k, extrapolate=extrapolate, margin=margin), low, high)
    w.requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    template = differentiable_template(soup.template)
    iterates, accuracies, losses = [], [], []
    for step in range(steps + 1):
        loss, accuracy, gradient = weight_gradient(soup, w.detach(), x_sel, y_sel, batch_size,
                                                   template=template)
        iterates.append(w.detach().clone())
        accuracies.append(accuracy)
        losses.append(loss)
        if progress is not None:
            progress(Progress(step + 1, steps + 1, "weight gradient steps"))
        if step < steps:
            w.grad = gradient - gradient.mean()
            optimizer.step()
            with torch.no_grad():
                w.copy_(project_weights(w, low, high))
    kind = f"extrapolating within [−{margin:g}, {1 + margin:g}]" if extrapolate else "convex"
    label = f"gradient: {steps} projected Adam steps (lr {lr:g}, {kind}) on {len(y_sel)} images"
    return choose(torch.stack(iterates), torch.tensor(accuracies, dtype=F64),
                   torch.tensor(losses, dtype=F64), len(y_sel), "gradient", label=label)
