"""Which record speaks for a soup and a quantity: of the records measuring one thing (clean
accuracy, a threat at a budget, a union, a corruption condition), the one made by the strongest
attack, then on the most images. Pages, figures and CLI tables all ask here, so one label never
carries numbers from attacks of different strength; a preview speaks only while nothing stronger
exists, and `is_preview` lets its label say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from soupviz.attacks.defaults import DEFAULT, DEFAULT_ATTACKS
from soupviz.attacks.defaults import is_preview as _is_preview_attack
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.records import CorruptionMean, Record
from soupviz.threats import THREATS

# Strength ranks, strongest first: AutoAttack's standard version, its gradient stages alone, the
# threat's measured default chain, any other attack (strength unmeasured), the preview.
REFERENCE, AUTOATTACK_STAGES, DEFAULT_CHAIN, UNMEASURED, PREVIEW = range(5)
_KIND_ORDER = ("clean", "attack", "union", "corruption-mean", "corruption")

Result = TypeVar("Result", Record, CorruptionMean, Record | CorruptionMean)


def strength_rank(spec: MetricSpec) -> int:
    """How strong the spec's attack is, as a rank (0 strongest): `REFERENCE` for AutoAttack and for
    metrics without attack, then `AUTOATTACK_STAGES`, `DEFAULT_CHAIN`, `UNMEASURED`, `PREVIEW`."""
    if not spec.is_upper_bound or spec.attack == "autoattack":
        return REFERENCE
    if spec.attack == "autoattack-apgd":
        return AUTOATTACK_STAGES
    if _is_preview_attack(spec.attack, spec.steps, spec.targets):
        return PREVIEW
    threats = [spec.threat] if spec.kind == "attack" else list(spec.threats)
    chosen = [DEFAULT_ATTACKS[t] for t in threats]
    if spec.attack == DEFAULT or all((spec.attack, spec.steps, spec.targets) == (c.attack, c.steps, c.targets)
                                     for c in chosen):
        return DEFAULT_CHAIN
    return UNMEASURED


def is_preview(result: Record | CorruptionMean) -> bool:
    """Whether `result` was measured by the preview attack (fast, overstating robustness)."""
    return isinstance(result, Record) and strength_rank(result.measure) == PREVIEW


def spec_quantity(spec: MetricSpec) -> tuple:
    """What a spec measures regardless of the attack, as a sort key in heatmap order: clean,
    threats by budget (a transfer attack its own quantity, after the white-box one), unions, the
    corruption conditions."""
    if spec.kind == "attack":
        return 1, THREATS.index(spec.threat), spec.eps, spec.source or ""
    if spec.kind == "union":
        return 2, 0, 0.0, "+".join(spec.threats)
    return _KIND_ORDER.index(spec.kind), 0, 0.0, spec.key


def quantity(result: Record | CorruptionMean) -> tuple:
    """`spec_quantity` of a result; the corruption mean sorts after the unions, before the conditions."""
    return spec_quantity(result.measure) if isinstance(result, Record) else (3, 0, 0.0, result.spec)


def strength_order(result: Record | CorruptionMean) -> tuple[int, int]:
    """A sort key putting the result that should speak first: the strongest attack
    (`strength_rank`), then the most images."""
    rank = strength_rank(result.measure) if isinstance(result, Record) else REFERENCE
    return rank, -result.n


def speaking_record(results: Iterable[Result | None]) -> Result | None:
    """Of `results` measuring one quantity for one soup (stored or live; None entries skipped),
    the one to show: by the strongest attack, then on the most images, the first on a tie.
    None when there is none.

    Raises:
        ValueError: the results measure different quantities (a caller's bug).
    """
    candidates = [r for r in results if r is not None]
    if not candidates:
        return None
    if len({quantity(r) for r in candidates}) > 1:
        raise ValueError(f"Records of different quantities compared: {sorted({r.spec for r in candidates})}")
    return min(candidates, key=strength_order)
