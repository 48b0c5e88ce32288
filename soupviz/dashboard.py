"""Page-side logic of the dashboard that needs no Streamlit: a family folder's cache stamp, the
specs each page measures, soups for heatmap rows, and mapping a clicked
ternary point back to soup weights. Tables and interval texts live in `soupviz.report`.
"""

from __future__ import annotations

from collections.abc import Sequence

from soupviz.checkpoints import SoupFamily
from soupviz.report import soup_label, weights_key
from soupviz.weights import grid_weights, presets

ROW_GROUPS = ("ingredients", "presets", "current soup", "grid")


def ingredient_titles(family: SoupFamily) -> list[str]:
    """What each ingredient's weight slider is called: its label, with the checkpoint name after it
    only when that says more than the label or the threat ('L∞ 8/255 · linf_seed1', but 'nominal'
    for the checkpoint 'nominal' and 'L∞ 8/255' for 'linf')."""
    titles = []
    for card in (ingredient.card for ingredient in family.ingredients):
        redundant = card.name.casefold() in (card.label.casefold(), card.threat.casefold())
        titles.append(card.label if redundant else f"{card.label} · {card.name}")
    return titles


def row_soups(
    groups: Sequence[str], family: SoupFamily, current: Sequence[float] | None, grid_step: float = 0.5,
) -> list[tuple[str, list[float]]]:
    """Named soups for heatmap rows from groups among `ROW_GROUPS`, without repeats (the first
    name of a soup wins: an ingredient stays named after itself even inside a grid)."""
    k = len(family.names)
    threats = [ingredient.card.threat for ingredient in family.ingredients]
    chosen: list[tuple[str, list[float]]] = []
    named = presets(threats, family.labels)
    for group in groups:
        if group == "ingredients":
            chosen += named[:k]
        elif group == "presets":
            chosen += named[k:]
        elif group == "current soup" and current is not None:
            chosen.append((f"current: {soup_label(current, family.labels)}", list(current)))
        elif group == "grid":
            chosen += [(soup_label(w, family.labels), w) for w in grid_weights(k, grid_step)]
    seen, unique = set(), []
    for name, weights in chosen:
        if weights_key(weights) not in seen:
            seen.add(weights_key(weights))
            unique.append((name, weights))
    return unique
