"""Reading a shared link's soup: the weights a link carries (`?w=0.5,0.5,0,0`), or one sentence
saying why they cannot be honoured. A link is never quietly replaced by another soup: the caller
gets either the link's own soup or the reason, and shows the reason until the user acts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from soupviz.errors import SoupWeightsError
from soupviz.soups.weights import DEFAULT_MARGIN, SUM_TOLERANCE, tidy


@dataclass(frozen=True)
class SoupLink:
    """What a link's weights say.

    Attributes:
        given: the link's text as given (what the page address keeps until the user acts).
        weights: the soup to open, summing to 1; None when the link cannot be honoured.
        problem: one sentence naming what is wrong and what to do ('' when honoured).
        note: one sentence on how the link was read when it was not taken literally (its
            weights divided by their sum), '' otherwise.
    """

    given: str
    weights: list[float] | None
    problem: str = ""
    note: str = ""


def read_soup_link(text: str, names: Sequence[str], margin: float) -> SoupLink:
    """Read the soup in a link for the ingredients `names`, extrapolating at most `margin`.

    Weights must be finite numbers, one per ingredient, with a nonzero sum; they are divided by
    their sum (said in `note` when that changes them) and must then lie in [-margin, 1 + margin].

    Example:
        >>> read_soup_link("1,1", ["nominal", "L∞"], margin=0.4).weights
        [0.5, 0.5]
        >>> read_soup_link("nan,1", ["nominal", "L∞"], margin=0.4).problem
        "The link's weight 'nan' for nominal is not a finite number; give numbers such as w=0.5,0.5."
    """
    k = len(names)
    example = "w=" + ",".join(f"{1 / k:.2g}" for _ in range(k))

    def refused(reason: str) -> SoupLink:
        return SoupLink(text, None, problem=reason)

    parts = [part.strip() for part in text.split(",")]
    if len(parts) != k:
        return refused(f"The link holds {len(parts)} weights ({text!r}) but this family has {k} ingredients "
                       f"({', '.join(names)}); give one weight per ingredient, such as {example}.")
    values: list[float] = []
    for part, name in zip(parts, names, strict=True):
        try:
            value = float(part)
        except ValueError:
            return refused(f"The link's weight {part!r} for {name} is not a number; give numbers such as {example}.")
        if not math.isfinite(value):
            return refused(f"The link's weight {part!r} for {name} is not a finite number; "
                           f"give numbers such as {example}.")
        values.append(value)
    total = math.fsum(values)
    if abs(total) < SUM_TOLERANCE:
        return refused(f"The link's weights ({text!r}) sum to 0, so they define no soup; give weights summing to 1.")
    weights = [v / total for v in values]
    for value, name in zip(weights, names, strict=True):
        if not -margin - 1e-12 <= value <= 1 + margin + 1e-12:
            return refused(f"The link's weight {value:.6g} for {name} is outside [{-margin:g}, {1 + margin:g}], "
                           "the widest extrapolation allowed here; give weights within it.")
    note = "" if abs(total - 1) <= SUM_TOLERANCE else (
        f"The link's weights ({text!r}) summed to {total:.6g}; they were divided by their sum.")
    return SoupLink(text, tidy(weights), note=note)


def weights_to_query(weights: Sequence[float]) -> str:
    """The query-string value of a soup, e.g. '0.5,0.5,0,0'."""
    return ",".join(f"{float(w):.6g}" for w in weights)


def weights_from_query(text: str, k: int, margin: float = DEFAULT_MARGIN) -> list[float]:
    """Read a soup written by `weights_to_query` for a family of `k` ingredients
    (`read_soup_link`, its problem raised).

    Weights may lie outside [0, 1] (extrapolation) within `margin`.

    Raises:
        SoupWeightsError: one sentence saying what is wrong with the link's weights.
    """
    link = read_soup_link(text, [f"ingredient {i}" for i in range(k)], margin)
    if link.weights is None:
        raise SoupWeightsError(link.problem)
    return link.weights
