"""Few-shot adaptation of a soup to a distribution shift (Croce et al. 2023, natural shifts): the
pieces. Grid scoring on a shift's images and the held-out report; the shifts themselves are
`insight.shifts`, and the protocol that combines the pieces is `few_shot`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from soupviz.insight.shifts import ShiftData
from soupviz.insight.weight_search import Selection, choose
from soupviz.progress import Progress, ProgressCallback
from soupviz.results.metric_specs import wilson_interval
from soupviz.soups.soup import Soup, check_finite_logits
from soupviz.soups.weights import check_weights, weights_text

SELECTED_NAMES = {"grid": "grid-search soup", "gradient": "gradient-selected soup"}
F64 = torch.float64


@dataclass(frozen=True)
class GridScores:
    """Correctness (G, N) and cross-entropy (G, N) of the soups `grid` (G, K) on N images,
    computed once: choosing on any selection set is then a choice of columns."""

    grid: torch.Tensor
    correct: torch.Tensor
    loss: torch.Tensor

    def pick(self, columns: torch.Tensor | None = None, label: str = "grid search") -> Selection:
        """The row most accurate on `columns` (default all): ties to the lower mean
        cross-entropy, then to the first row."""
        columns = torch.arange(self.correct.shape[1]) if columns is None else columns
        accuracy = self.correct[:, columns].to(F64).mean(1)
        loss = self.loss[:, columns].to(F64).mean(1)
        return choose(self.grid, accuracy, loss, len(columns), "grid", label=label)

    def rows(self, index: torch.Tensor) -> GridScores:
        """The scores of some rows of the grid only."""
        return GridScores(self.grid[index], self.correct[index], self.loss[index])


def score_grid(
    soup: Soup, grid: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
    max_bytes: float = 2**28, progress: ProgressCallback | None = None,
) -> GridScores:
    """Score every soup in `grid` (G, K), weights summing to 1, on images x (N, 3, H, W).

    Soup vectors are mixed `max_bytes` at a time (outer loop) and run on image batches
    (inner loop), so each soup is mixed once; BatchNorm follows `soup.bn_mode`.

    Raises:
        NonFiniteLogitsError: a soup outputs NaN or infinity (it would otherwise score as
            predicting class 0).
    """
    grid = torch.as_tensor(grid, dtype=F64)
    grid = check_weights(grid, soup.params.k, extrapolate=True, margin=float(grid.abs().max()))
    grid = grid.reshape(-1, soup.params.k)
    chunk = max(1, int(max_bytes // (4 * soup.params.p)))
    total, done, device = -(-len(grid) // chunk) * -(-len(x) // batch_size), 0, soup.params.device
    correct, losses = [], []
    with torch.no_grad():
        for rows in grid.split(chunk):
            flats = soup.soup_vectors(rows)
            for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
                logits = soup.forward_many(flats, xb.to(device), shared=True).float()
                check_finite_logits(logits, rows)
                yb = yb.to(device).repeat(len(rows))
                flat_logits = logits.flatten(0, 1)
                loss = F.cross_entropy(flat_logits, yb, reduction="none")
                correct.append((flat_logits.argmax(1) == yb).view(len(rows), -1).cpu())
                losses.append(loss.view(len(rows), -1).cpu())
                done += 1
                if progress is not None:
                    progress(Progress(done, total, "scoring candidate soups"))
    batches = -(-len(x) // batch_size)

    def stitch(parts: list[torch.Tensor]) -> torch.Tensor:  # (soup chunk, image batch) blocks
        rows = [parts[i:i + batches] for i in range(0, len(parts), batches)]
        return torch.cat([torch.cat(row, 1) for row in rows])

    return GridScores(grid, stitch(correct), stitch(losses))


def select_by_grid(soup: Soup, grid: torch.Tensor, x_sel: torch.Tensor, y_sel: torch.Tensor,
                   batch_size: int = 256) -> Selection:
    """The soup of `grid` (G, K) most accurate on the selection images, as in the paper
    (ties: lower mean cross-entropy, then first row). With the grid's one-hot rows (any
    `simplex_grid` without a subset) it is never worse there than any ingredient."""
    return score_grid(soup, grid, x_sel, y_sel, batch_size).pick(label=grid_search_label(len(grid), len(y_sel)))


def grid_search_label(soups: int, images: int) -> str:
    """How a grid's choice was made, as selections name it."""
    return f"grid search over {soups} soups on {images} images"


@dataclass(frozen=True)
class Outcome:
    """One candidate's accuracy on the held-out images of a shift, with a Wilson 95% interval.
    `role` is 'selected', 'ingredient', 'uniform' or 'best ingredient'; `seed` and `draw` fix
    the selection images, `batchnorm` says where the BatchNorm statistics came from."""

    candidate: str
    role: str
    weights: list[float]
    shift: str
    k: int
    n_selection: int
    selection_accuracy: float
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    seed: int
    method: str
    draw: int = 0
    batchnorm: str = ""

    def row(self) -> dict:
        """The outcome as a flat dict for tables and CSV."""
        return asdict(self) | {"weights": weights_text(self.weights)}


def references(k: int) -> torch.Tensor:
    """One-hot rows for the k ingredients, then the uniform soup: (k + 1, k)."""
    return torch.cat([torch.eye(k, dtype=F64), torch.full((1, k), 1 / k, dtype=F64)])


def selection_names(selections: Sequence[Selection]) -> list[str]:
    """'grid-search soup', 'gradient-selected soup', ...; numbered only where a name repeats."""
    names = [SELECTED_NAMES.get(s.method, s.method) for s in selections]
    return [f"{name} {names[:i + 1].count(name)}" if names.count(name) > 1 else name for i, name in enumerate(names)]


def adaptation_report(soup: Soup, shift: ShiftData, selections: Sequence[Selection], k: int,
                      draw: int = 0, *, batch_size: int = 256, labels: Sequence[str] | None = None,
                      batchnorm: str = "") -> list[Outcome]:
    """Held-out accuracy of each selected soup, each ingredient (named by `labels`, default the
    checkpoint names), the uniform soup and the ingredient most accurate on the selection images
    `shift.selection_indices(k, draw)` (those the selections were made on)."""
    kk, first = soup.params.k, len(selections)
    names = list(labels) if labels is not None else list(soup.params.names)
    chosen = [s.weights.reshape(1, kk) for s in selections]
    candidates = torch.cat([*chosen, references(kk)])
    picked = shift.selection_indices(k, draw)
    columns = torch.cat([picked, shift.heldout])
    scores = score_grid(soup, candidates, shift.x[columns], shift.y[columns], batch_size)
    on_selection, on_heldout = torch.arange(len(picked)), torch.arange(len(picked), len(columns))
    best = scores.rows(torch.arange(first, first + kk)).pick(on_selection).index
    labelled = [(name, "selected", s.label) for name, s in zip(selection_names(selections), selections, strict=True)]
    labelled += [(name, "ingredient", "one-hot weights") for name in names]
    labelled += [("uniform soup", "uniform", "equal weights"),
                 (f"best ingredient ({names[best]})", "best ingredient",
                  "the ingredient most accurate on the selection images")]
    outcomes = []
    for row, (candidate, role, method) in zip([*range(len(candidates)), first + best], labelled,
                                              strict=True):
        correct, n = int(scores.correct[row, on_heldout].sum()), len(on_heldout)
        outcomes.append(Outcome(
            candidate, role, candidates[row].tolist(), shift.name, k, len(picked),
            float(scores.correct[row, on_selection].to(F64).mean()), n, correct,
            correct / max(n, 1), *wilson_interval(correct, n), shift.seed, method, draw, batchnorm,
        ))
    return outcomes


def summarise_curve(points: Sequence[dict]) -> list[dict]:
    """Mean, standard deviation, min and max held-out accuracy over draws, per (k, candidate)."""
    groups: dict[tuple[int, str], list[float]] = {}
    for point in points:
        groups.setdefault((point["k"], point["candidate"]), []).append(point["heldout_accuracy"])
    summary = []
    for (k, candidate), values in groups.items():
        t = torch.tensor(values, dtype=F64)
        std = float(t.std()) if len(t) > 1 else 0.0
        summary.append({"k": k, "candidate": candidate, "repeats": len(t), "mean": float(t.mean()),
                        "std": std, "min": float(t.min()), "max": float(t.max())})
    return summary
