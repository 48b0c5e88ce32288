"""Paired comparisons: is one model better than another on the same images?

Two records measured on the same images are paired: most images are right (or wrong) for
both, and only the discordant ones carry information. Comparing their separate intervals
ignores that and is needlessly conservative; these functions use the per-image masks instead:
Newcombe's score interval for a difference of paired proportions, and McNemar's exact test.
A verdict names a winner only when both agree; the intervals cover sampling noise over the
images, not how loose an attack is (`SAMPLING_NOTE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from soupviz.errors import SoupvizError
from soupviz.results.metric_specs import wilson_interval
from soupviz.results.records import Record
from soupviz.results.store import unpackbits

A_BETTER, B_BETTER, WITHIN_NOISE = "a better", "b better", "within noise"
DISAGREE = "inconclusive: interval and test disagree"
SAMPLING_NOTE = (
    "Intervals and McNemar's test cover sampling noise over the images, not attack looseness: robust "
    "accuracies (≤) are upper bounds from attacks, so a verdict on them compares what the attacks found."
)


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of `a` minus accuracy of `b` on the same n images, as fractions.

    `only_a` images are right for a and wrong for b, `only_b` the reverse; `ci_low`/`ci_high`
    bound the difference at 95%; `p_value` is McNemar's exact two-sided test of no difference.
    """

    difference: float
    ci_low: float
    ci_high: float
    only_a: int
    only_b: int
    n: int
    p_value: float

    @property
    def verdict(self) -> str:
        """`A_BETTER` or `B_BETTER` only when the interval excludes 0 and McNemar's p < 0.05;
        `DISAGREE` when just one of them says so; else `WITHIN_NOISE`."""
        significant = self.p_value < 0.05
        if (self.ci_low > 0 or self.ci_high < 0) != significant:
            return DISAGREE
        if not significant:
            return WITHIN_NOISE
        return A_BETTER if self.difference > 0 else B_BETTER


def verdict_label(verdict: str, name_a: str, name_b: str) -> str:
    """A verdict with the two sides named, e.g. 'soup better'; the others unchanged."""
    return {A_BETTER: f"{name_a} better", B_BETTER: f"{name_b} better"}.get(verdict, verdict)


def paired_difference(a: Record, b: Record) -> PairedDifference:
    """Compare two records of the same images (same subset, same order) image by image.

    Raises:
        SoupvizError: when a record has no per-image mask or the two measured different images.
    """
    check_pairable(a, b)
    right_a, right_b = unpackbits(a.mask, a.n), unpackbits(b.mask, b.n)
    both = int((right_a & right_b).sum())
    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    low, high = newcombe_interval(both, only_a, only_b, a.n - both - only_a - only_b)
    return PairedDifference((only_a - only_b) / a.n, low, high, only_a, only_b, a.n, mcnemar_p(only_a, only_b))


def check_pairable(a: Record, b: Record) -> None:
    """Raise a `SoupvizError` unless both records carry per-image masks of the same images."""
    if not a.mask or not b.mask:
        raise SoupvizError("A paired comparison needs per-image masks; these records have none (read from a CSV?).")
    if (a.n, a.images, a.seed) != (b.n, b.images, b.seed):
        raise SoupvizError(f"These records were measured on different images ({a.images!r}, seed {a.seed}; "
                           f"{b.images!r}, seed {b.seed}): they cannot be paired.")


def newcombe_interval(both: int, only_a: int, only_b: int, neither: int) -> tuple[float, float]:
    """95% interval for p_a − p_b from a paired 2 × 2 table (Newcombe 1998, method 10): Wilson
    intervals of both margins, combined with their correlation φ."""
    n = both + only_a + only_b + neither
    if n == 0:
        return -1.0, 1.0
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n)
    low_b, high_b = wilson_interval(both + only_b, n)
    spread = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(spread) if spread else 0.0
    below = math.sqrt(max(0.0, (p_a - low_a) ** 2 - 2 * phi * (p_a - low_a) * (high_b - p_b) + (high_b - p_b) ** 2))
    above = math.sqrt(max(0.0, (high_a - p_a) ** 2 - 2 * phi * (high_a - p_a) * (p_b - low_b) + (p_b - low_b) ** 2))
    difference = p_a - p_b
    return max(-1.0, difference - below), min(1.0, difference + above)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value: the discordant images split as a fair coin would?"""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def paired_corruption_mean(a: list[Record], b: list[Record]) -> tuple[float, float, float] | None:
    """The difference a − b of mean accuracy over the corruption conditions both measured, with a
    95% interval: each image's score is its accuracy over the conditions, images are independent,
    so the interval is the normal one of the mean per-image difference. None without shared
    corruption records."""
    by_spec = {r.spec: r for r in b if r.kind == "corruption"}
    pairs = [(r, by_spec[r.spec]) for r in a if r.kind == "corruption" and r.spec in by_spec]
    if not pairs:
        return None
    for first, second in pairs:
        check_pairable(first, second)
    n = pairs[0][0].n
    scores = [torch.stack([unpackbits(r.mask, n).double() for r in side]).mean(0) for side in zip(*pairs, strict=True)]
    differences = scores[0] - scores[1]
    half = 1.959964 * float(differences.std(unbiased=True)) / math.sqrt(n) if n > 1 else 1.0
    mean = float(differences.mean())
    return mean, mean - half, mean + half
