"""The threat vocabulary: threat names, their default budgets and labels, and budgets as text.

The bottom of the stack: attacks, metrics, checkpoints, training and the pages all name threats
and write budgets through this module. Budgets are in pixel scale (pixels in [0, 1]); L∞ budgets
that are multiples of 1/255 are written as researchers write them ('8/255').
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from soupviz.errors import SoupvizError

THREATS = ("linf", "l2", "l1")
NOMINAL = "none"  # no threat: nominal (standard) training
DEFAULT_BUDGETS = {"linf": 8 / 255, "l2": 0.5, "l1": 12.0}
THREAT_LABELS = {"linf": "L∞", "l2": "L2", "l1": "L1"}
_FRACTION_TOLERANCE = 1e-6
_STORED_DIGITS_TOLERANCE = 1e-4  # budgets written with 6 significant digits, as old spec keys hold them


def check_threat(threat: str) -> str:
    """Return `threat` if it is one of `THREATS`, else raise a `SoupvizError` naming the choices."""
    if threat not in THREATS:
        raise SoupvizError(f"Unknown threat model {threat!r}: use one of {', '.join(THREATS)}.")
    return threat


def parse_number(text: str) -> float:
    """A finite number written as a decimal ('0.5', '12') or a fraction ('8/255').

    Raises:
        SoupvizError: the text is not such a number.
    """
    numerator, slash, denominator = str(text).strip().partition("/")
    try:
        value = float(numerator) / float(denominator) if slash else float(numerator)
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not math.isfinite(value):
        raise SoupvizError(f"{text!r} is not a number such as 8/255, 0.5 or 12.")
    return value


def parse_budget(text: str, threat: str) -> float:
    """One budget in pixel scale from text such as '8/255', '0.5' or '12'.

    Raises:
        SoupvizError: the text is not a positive number or fraction.
    """
    label = THREAT_LABELS.get(threat, threat)
    try:
        value = parse_number(text)
    except SoupvizError:
        raise SoupvizError(f"The {label} budget {text!r} is not a number such as 8/255 or 0.5.") from None
    if not value > 0:
        raise SoupvizError(f"The {label} budget {text!r} must be positive.")
    return value


def parse_budgets(text: str, threat: str) -> list[float]:
    """Budgets from text such as '2/255, 4/255, 8/255' or '0.25 0.5', sorted, without repeats."""
    return sorted({parse_budget(part, threat) for part in text.replace(",", " ").split()})


def format_budget(threat: str, eps: float) -> str:
    """A budget as researchers write it: '8/255' for L∞ multiples of 1/255, else '0.5', '12'."""
    if threat == "linf" and abs(eps * 255 - round(eps * 255)) < _FRACTION_TOLERANCE:
        return f"{round(eps * 255)}/255"
    return f"{eps:g}"


def format_budgets(threat: str, budgets: Sequence[float]) -> str:
    """The inverse of `parse_budgets`: '2/255, 4/255' for L∞ multiples of 1/255."""
    return ", ".join(format_budget(threat, eps) for eps in budgets)


def default_budgets() -> dict[str, list[float]]:
    """The heatmap's default columns (pixel scale): a few budgets around the paper's (`DEFAULT_BUDGETS`) per threat."""
    return {"linf": [2 / 255, 4 / 255, DEFAULT_BUDGETS["linf"], 16 / 255], "l2": [0.25, DEFAULT_BUDGETS["l2"], 1.0],
            "l1": [6.0, DEFAULT_BUDGETS["l1"], 24.0]}


def threat_label(threat: str, eps: float | None = None) -> str:
    """'L∞', or with a budget 'L∞ 8/255'; an unknown threat name is returned as is."""
    label = THREAT_LABELS.get(threat, threat)
    return label if eps is None else f"{label} {format_budget(threat, eps)}"


def exact_budget(threat: str, eps: float) -> float:
    """`eps` read back from 6 significant digits: an L∞ budget that close to a multiple of 1/255
    is that multiple (0.0313725 is 8/255), so budgets stored by older files keep their fraction."""
    if threat == "linf" and abs(eps * 255 - round(eps * 255)) < _STORED_DIGITS_TOLERANCE * max(1.0, eps * 255):
        return round(eps * 255) / 255
    return eps
