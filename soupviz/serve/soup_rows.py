"""The soups a heatmap or table shows as rows: a family's ingredients, the presets, the current soup
and a grid, chosen by group and named once each (names from `soupviz.present.labels.soup_label`); and a
grid with the current soup added once.
"""

from __future__ import annotations

from collections.abc import Sequence

from soupviz.checkpoints.families import SoupFamily
from soupviz.present.labels import soup_label
from soupviz.soups.weights import grid_weights, presets, weights_key

ROW_GROUPS = ("ingredients", "presets", "current soup", "grid")


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


def with_soup(soups: Sequence[Sequence[float]], weights: Sequence[float]) -> list[Sequence[float]]:
    """`soups`, then `weights` unless one of them is that soup already (to 8 decimals,
    `soups.weights.weights_key`): e.g. a grid with the current soup, each measured once."""
    present = {weights_key(w) for w in soups}
    return [*soups, *([weights] if weights_key(weights) not in present else [])]
