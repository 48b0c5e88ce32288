"""The few-shot adaptation protocol: one entry point, `adapt_to_shift`, for the page, the CLI and
the tests. Grid search over the simplex on k labelled images per class of a shift, then (method
'gradient') projected Adam on the weights started from the grid's choice; held-out scores
against the references; a k-curve over independent draws; optional test-time BatchNorm.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from soupviz.errors import SoupvizError
from soupviz.insight.adapt import (
    F64,
    GridScores,
    Outcome,
    adaptation_report,
    grid_search_label,
    references,
    score_grid,
    select_by_grid,
    selection_names,
    summarise_curve,
)
from soupviz.insight.shifts import ShiftData, draw_seed
from soupviz.insight.weight_search import Selection, choose, select_by_gradient
from soupviz.progress import Progress, ProgressCallback, silent, within
from soupviz.soups.soup import Soup
from soupviz.soups.weights import simplex_grid, weights_text

METHODS = ("grid", "gradient")
K_CURVE = (1, 5, 10, 25)  # the page's k-curve; the default shift's pool (50 a class) lets draws of 25 differ
BN_IMAGES = 512  # unlabelled shifted images used to re-estimate BatchNorm statistics
ONE_FOR_ALL, OWN_SOUP = "one soup for all shifts", "soup chosen for this shift"  # adapt_several's candidates


@dataclass(frozen=True)
class AdaptConfig:
    """How a soup is chosen for a shift.

    Args:
        k: labelled images per class the choice is made on.
        step: grid step of the weights; `margin` > 0 lets them reach [−margin, 1 + margin]
            (the grid and the gradient's projection alike).
        method: 'grid' (grid search only) or 'gradient' (then `gradient_steps` projected Adam
            steps of rate `lr` from the grid's choice; the best iterate is kept).
        bn_on_shift: re-estimate BatchNorm statistics per soup on unlabelled images of the shift.
        ks, draws: the k-curve: for each k of `ks`, `draws` independent selection draws (none
            when `ks` is empty).
    """

    k: int = 10
    step: float = 0.2
    margin: float = 0.0
    method: str = "gradient"
    gradient_steps: int = 10
    lr: float = 0.05
    bn_on_shift: bool = False
    ks: tuple[int, ...] = ()
    draws: int = 5
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SoupvizError(f"Unknown selection method {self.method!r}: use grid or gradient.")
        if self.method == "gradient" and self.gradient_steps < 1:
            raise SoupvizError("The gradient method needs at least one step; use method grid for none.")
        if self.method == "gradient" and not self.lr > 0:
            raise SoupvizError(f"The gradient steps' learning rate must be positive, not {self.lr:g}; try 0.05.")
        if self.k < 1 or any(k < 1 for k in self.ks):
            raise SoupvizError("Selection needs at least one labelled image per class (k ≥ 1).")
        if self.ks and self.draws < 2:
            raise SoupvizError(f"A k-curve needs at least two draws per k to show a spread, got {self.draws}.")

    def grid(self, ingredients: int) -> torch.Tensor:
        """The soups (G, K) the grid search considers."""
        return simplex_grid(ingredients, self.step, margin=self.margin)


@dataclass(frozen=True)
class AdaptationRun:
    """One shift's adaptation: `selections` (grid, then gradient) made on draw 0 of k images per
    class, their held-out `outcomes` against the references, the k-curve's `curve` points and
    `summary`, the BatchNorm sentence and `notes` on anything a reader must know."""

    shift: str
    seed: int
    config: AdaptConfig
    batchnorm: str
    selections: list[Selection]
    outcomes: list[Outcome]
    curve: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def soup_for_shift(soup: Soup, shift: ShiftData, bn_on_shift: bool) -> tuple[Soup, str]:
    """The soup to adapt with, and a sentence saying where its BatchNorm statistics come from.

    With `bn_on_shift`, a new soup sharing `soup`'s parameters (which is left untouched)
    re-estimates the statistics per soup on up to 512 unlabelled pool images of the shift
    (test-time BatchNorm adaptation; held-out images are never used, labels never read).
    """
    if not bn_on_shift or not soup.bn_stats:
        return soup, soup.bn_label
    generator = torch.Generator().manual_seed(draw_seed(shift.seed, shift.name, "batchnorm"))
    chosen = shift.pool[torch.randperm(len(shift.pool), generator=generator)][:BN_IMAGES]
    adapted = Soup(copy.deepcopy(soup.template), soup.params, soup.batch_method)
    adapted.reestimate_batchnorm(shift.x[chosen], batch_size=128, batches=-(-len(chosen) // 128))
    return adapted, (
        f"BatchNorm statistics re-estimated per soup on {len(chosen)} unlabelled images of "
        f"{shift.name} (its selection pool; held-out images excluded)."
    )


def exhausted_ks(shift: ShiftData, ks: Sequence[int]) -> tuple[list[int], str]:
    """The ks at which every draw would take a class's whole pool, and a note saying so ('' if none)."""
    sizes = shift.pool_sizes()
    smallest = min(sizes, key=sizes.get)
    dropped = [k for k in ks if k >= sizes[smallest]]
    if not dropped:
        return [], ""
    return dropped, (
        f"k = {', '.join(map(str, dropped))} left out of the k-curve: the pool holds "
        f"{sizes[smallest]} images of {smallest!r}, so every draw would take all of them and "
        "the draws could not differ; add images per class or hold fewer out."
    )


def select(
    soup: Soup,
    shift: ShiftData,
    grid: torch.Tensor,
    config: AdaptConfig,
    picked: torch.Tensor,
    *, grid_choice: Selection | None = None,
    report: ProgressCallback = silent,
) -> list[Selection]:
    """The protocol's selections on the images `picked`: the grid's choice (given, or by
    grid search), then with method 'gradient' the gradient's choice started from it."""
    x, y = shift.x[picked], shift.y[picked]
    if grid_choice is None:
        grid_choice = select_by_grid(soup, grid, x, y, config.batch_size)
    else:
        grid_choice = dataclasses.replace(grid_choice, label=grid_search_label(len(grid), len(picked)))
    if config.method == "grid":
        return [grid_choice]

    def step(now: Progress) -> None:
        report(Progress.at(now.fraction, f"gradient on the weights: step {now.done} of {now.total}"))

    gradient = select_by_gradient(
        soup,
        x,
        y,
        config.gradient_steps,
        config.lr,
        init=grid_choice.weights,
        extrapolate=config.margin > 0,
        margin=config.margin,
        batch_size=config.batch_size,
        progress=step,
    )
    return [grid_choice, dataclasses.replace(gradient, label=gradient.label + ", from the grid's choice")]


def adapt_to_shift(
    soup: Soup,
    shift: ShiftData,
    config: AdaptConfig,
    labels: Sequence[str] | None = None,
    report: ProgressCallback = silent,
) -> AdaptationRun:
    """Choose a soup for `shift` on draw 0 of `config.k` images per class and report it (see the
    module docstring); ingredients are named by `labels` (default their checkpoint names).

    The grid is scored once on every image any draw uses, so each draw's grid choice is a
    choice of columns; the k-curve leaves out the ks that exhaust a class's pool (see `notes`).
    """
    report(Progress.at(0.0, "preparing the soup"))
    soup, batchnorm = soup_for_shift(soup, shift, config.bn_on_shift)
    kk, grid, notes = soup.params.k, config.grid(soup.params.k), []
    sizes = shift.pool_sizes()
    if config.k >= min(sizes.values()):
        short = [name for name, n in sizes.items() if n <= config.k]
        notes.append(
            f"k = {config.k} takes the whole pool of {', '.join(map(repr, short))}: the selection of "
            "those classes is every pool image, not a random draw."
        )
    dropped, note = exhausted_ks(shift, config.ks)
    notes += [note] if note else []
    draws = [(config.k, 0)] + [(k, d) for k in config.ks if k not in dropped for d in range(config.draws)]
    picks = {draw: shift.selection_indices(*draw) for draw in draws}
    columns = torch.cat([*picks.values(), shift.heldout]).unique()
    position = torch.full((len(shift.y),), -1, dtype=torch.long)
    position[columns] = torch.arange(len(columns))
    candidates = torch.cat([grid, references(kk)])

    def scored(step: Progress) -> None:
        report(
            Progress.at(
                0.05 + 0.35 * step.fraction, f"scoring {len(candidates)} soups, batch {step.done} of {step.total}"
            )
        )

    scores = score_grid(soup, candidates, shift.x[columns], shift.y[columns], config.batch_size, progress=scored)
    on_grid = scores.rows(torch.arange(len(grid)))
    main = picks[(config.k, 0)]
    selections = select(
        soup, shift, grid, config, main, grid_choice=on_grid.pick(position[main]), report=within(report, 0.4, 0.5)
    )
    report(Progress.at(0.5, f"held-out accuracy on {len(shift.heldout)} images"))
    outcomes = adaptation_report(
        soup, shift, selections, config.k, 0, batch_size=config.batch_size, labels=labels, batchnorm=batchnorm
    )
    curve = _curve(soup, shift, grid, config, scores, position, picks, draws[1:], report)
    report(Progress.at(1.0, "done"))
    return AdaptationRun(
        shift.name, shift.seed, config, batchnorm, selections, outcomes, curve, summarise_curve(curve), notes
    )


def _curve(
    soup: Soup,
    shift: ShiftData,
    grid: torch.Tensor,
    config: AdaptConfig,
    scores: GridScores,
    position: torch.Tensor,
    picks: dict,
    draws: list[tuple[int, int]],
    report: ProgressCallback,
) -> list[dict]:
    """k-curve points: per (k, draw), the protocol's selections, the best ingredient on the
    selection images and the uniform soup, each with its held-out accuracy."""
    g, kk = len(grid), soup.params.k
    heldout = scores.correct[:, position[shift.heldout]].to(F64).mean(1)
    rows, extra = [], []
    for i, (k, draw) in enumerate(draws):
        columns = position[picks[(k, draw)]]
        report(Progress.at(0.55 + 0.4 * i / max(len(draws), 1), f"k-curve: k = {k}, draw {draw + 1} of {config.draws}"))
        chosen = select(
            soup, shift, grid, config, picks[(k, draw)], grid_choice=scores.rows(torch.arange(g)).pick(columns)
        )
        best = g + scores.rows(torch.arange(g, g + kk)).pick(columns).index
        for name, selection in zip(selection_names(chosen), chosen, strict=True):
            on_grid = selection.method == "grid"  # its index is its row of the grid
            held = float(heldout[selection.index]) if on_grid else None
            rows.append((k, draw, name, selection.weights, selection.selection_accuracy, held))
            if not on_grid:
                extra.append((len(rows) - 1, selection.weights))
        for name, row in (("best ingredient", best), ("uniform soup", g + kk)):
            accuracy = float(scores.correct[row, columns].to(F64).mean())
            rows.append((k, draw, name, scores.grid[row], accuracy, float(heldout[row])))
    if extra:  # the gradient's choices are off the grid: score them on the held-out images together
        weights = torch.stack([w for _, w in extra])
        found = score_grid(soup, weights, shift.x[shift.heldout], shift.y[shift.heldout], config.batch_size)
        for (index, _), accuracy in zip(extra, found.correct.to(F64).mean(1), strict=True):
            rows[index] = (*rows[index][:5], float(accuracy))
    points = []
    for k, draw, name, weights, selection_accuracy, accuracy in rows:
        points.append(
            {
                "k": k,
                "draw": draw,
                "seed": draw_seed(shift.seed, shift.name, draw),
                "n_selection": len(picks[(k, draw)]),
                "candidate": name,
                "weights": weights_text(weights),
                "selection_accuracy": selection_accuracy,
                "heldout_accuracy": accuracy,
                "n_heldout": len(shift.heldout),
            }
        )
    return points


def adapt_several(
    soup: Soup,
    shifts: Sequence[ShiftData],
    config: AdaptConfig,
    labels: Sequence[str] | None = None,
    report: ProgressCallback = silent,
) -> tuple[Selection, list[Outcome]]:
    """One soup of the grid for all `shifts`: the best mean accuracy over their selection images
    (draw 0 of k per class of each; ties to the lower mean loss, then the first row; grid search
    only), and per shift its held-out accuracy against the soup the protocol chooses for that
    shift alone (`OWN_SOUP`, beside the joint soup's `ONE_FOR_ALL`) and the references."""
    if not shifts:
        raise SoupvizError("Choosing one soup for several shifts needs at least one shift.")
    prepared = [soup_for_shift(soup, shift, config.bn_on_shift) for shift in shifts]
    grid = config.grid(soup.params.k)
    accuracy, loss, n = torch.zeros(len(grid), dtype=F64), torch.zeros(len(grid), dtype=F64), 0
    for i, ((here, _), shift) in enumerate(zip(prepared, shifts, strict=True)):
        report(Progress.at(i / (2 * len(shifts)), f"{shift.name}: scoring the grid"))
        picked = shift.selection_indices(config.k, 0)
        scores = score_grid(here, grid, shift.x[picked], shift.y[picked], config.batch_size)
        accuracy += scores.correct.to(F64).mean(1) / len(shifts)
        loss += scores.loss.to(F64).mean(1) / len(shifts)
        n += len(picked)
    names = ", ".join(s.name for s in shifts)
    joint = choose(
        grid, accuracy, loss, n, "grid",
        label=f"one soup for {names}: grid search over {len(grid)} soups, best mean accuracy",
    )
    outcomes = []
    for i, ((here, batchnorm), shift) in enumerate(zip(prepared, shifts, strict=True)):
        report(Progress.at(0.5 + i / (2 * len(shifts)), f"{shift.name}: its own soup and the held-out accuracies"))
        own = select(here, shift, grid, config, shift.selection_indices(config.k, 0))[-1]
        rows = adaptation_report(
            here, shift, [joint, own], config.k, 0, batch_size=config.batch_size, labels=labels, batchnorm=batchnorm
        )
        renamed = [ONE_FOR_ALL, OWN_SOUP]
        outcomes += [dataclasses.replace(o, candidate=renamed[j]) if j < 2 else o for j, o in enumerate(rows)]
    report(Progress.at(1.0, "done"))
    return joint, outcomes
