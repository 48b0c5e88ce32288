"""What the Adaptation page and `soupviz adapt` make of few-shot runs (`insight.few_shot`), without
Streamlit: the shifts a page names, kept in a `runs.ResultStore`; the soups a run chose; its figures
and those of one soup for several shifts; and the captions that state the protocol's rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from soupviz.data import ImageSet
from soupviz.insight.adapt import Outcome, selection_names
from soupviz.insight.few_shot import OWN_SOUP, AdaptationRun, AdaptConfig
from soupviz.insight.shifts import ShiftData, ShiftSpec, shift_from_spec, shift_identity
from soupviz.insight.weight_search import Selection
from soupviz.present.insight_figures import composition_figure, k_curve_figure, outcomes_figure
from soupviz.progress import Progress, ProgressCallback, silent
from soupviz.serve.insight_runs import ResultStore, request_key


def chosen_soups(run: AdaptationRun) -> list[tuple[str, list[float]]]:
    """The soups an adaptation run chose, named by `adapt.selection_names`, with their weights."""
    names = selection_names(run.selections)
    return [(name, s.weights.tolist()) for name, s in zip(names, run.selections, strict=True)]


def adaptation_figures(run: AdaptationRun, labels: Sequence[str], family: str, paper: bool = False
                       ) -> dict[str, go.Figure]:
    """The figures of one adaptation run by name: 'outcomes' (held-out accuracies), 'composition'
    (the chosen soups' weights) and, when the run has a k-curve, 'k-curve'."""
    figures = {"outcomes": outcomes_figure(run.outcomes, labels, family, paper=paper),
               "composition": composition_figure(chosen_soups(run), labels, family, paper)}
    if run.curve:
        figures["k-curve"] = k_curve_figure(run.curve, run.summary, run.shift, family, paper)
    return figures


def several_figures(joint: Selection, outcomes: Sequence[Outcome], labels: Sequence[str], family: str,
                    paper: bool = False) -> dict[str, go.Figure]:
    """The figures of `few_shot.adapt_several`'s answer by name: 'outcomes' (held-out accuracies,
    grouped by shift) and 'composition' (the one soup for all shifts, then each shift's own)."""
    own = [(f"own soup: {o.shift}", o.weights) for o in outcomes if o.candidate == OWN_SOUP]
    soups = [("one soup for all", joint.weights.tolist()), *own]
    return {"outcomes": outcomes_figure(outcomes, labels, family, by_shift=True, paper=paper),
            "composition": composition_figure(soups, labels, family, paper)}


def kept_shifts(
    specs: Sequence[ShiftSpec], split: ImageSet | None, per_class: int, heldout_per_class: int, seed: int,
    *, store: ResultStore, context: str = "", upload: bytes | None = None, report: ProgressCallback = silent,
) -> list[ShiftData]:
    """`shifts.shift_from_spec` of each of `specs`, each kept in `store` under its inputs and
    `context` (what else decides it, e.g. the data the evaluator reads), reporting each shift's
    name before making it; `upload` is the archive an 'upload' spec names."""
    shifts = []
    for i, spec in enumerate(specs):
        report(Progress.at(i / len(specs), " ".join(map(str, spec[1:]))))
        key = request_key("shift", context, shift_identity(spec), heldout_per_class, per_class, seed)
        shift = store.get(key)
        if shift is None:
            shift = shift_from_spec(spec, split, per_class, heldout_per_class, seed, upload=upload)
            store.put(key, shift)
        shifts.append(shift)
    return shifts


def grid_caption(config: AdaptConfig, ingredients: int) -> str:
    """What the grid search of `config` considers over `ingredients` ingredients, and how it breaks ties.

    Raises:
        SoupvizError: a grid `config` cannot make (see `AdaptConfig.grid`).
    """
    margin = f", margin {config.margin:g}" if config.margin else ""
    return (f"Grid: {len(config.grid(ingredients))} soups of {ingredients} ingredients (step {config.step:g}{margin}); "
            "ties go to the lower cross-entropy.")


def k_curve_caption(run: AdaptationRun) -> str:
    """How the k-curve of `run` draws its images and what its line and band show."""
    return (f"Each k: {run.config.draws} independent draws of k images per class from the pool, seeded by "
            f"(seed {run.seed}, shift, draw); line: mean held-out accuracy, band: worst to best draw.")
