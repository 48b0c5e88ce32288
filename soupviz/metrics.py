"""What a number is: metric specs, result records with Wilson 95% intervals, and labels.

A `MetricSpec` names one number (clean accuracy; robust accuracy under a threat, budget and
attack; accuracy under a corruption and severity; union robustness over threats); a `Record`
is that number for one soup on one image subset. Robust accuracies are upper bounds and
their labels say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch

from soupviz.attacks import DEFAULT_BUDGETS, FIXED_ITERATIONS, TARGETED, THREATS, describe_attacks, make_attack
from soupviz.attacks.base import THREAT_LABELS, format_budget
from soupviz.attacks.defaults import DEFAULT, DEFAULT_ATTACKS, strength_note
from soupviz.corruptions import corruption_label, corruption_names
from soupviz.errors import SoupvizError

KINDS = ("clean", "attack", "corruption", "union")


@dataclass(frozen=True)
class MetricSpec:
    """One metric. `kind` is 'clean', 'attack' (threat, eps, attack, steps, restarts, and
    `targets`: target classes of a targeted stage such as APGD-T, None for its default),
    'corruption' (corruption, severity) or 'union' (every threat in `threats` at its
    default budget, same attack: a point counts only if it survives all of them)."""

    kind: str = "clean"
    threat: str | None = None
    eps: float | None = None
    attack: str = DEFAULT
    steps: int = 20
    restarts: int = 1
    targets: int | None = None
    corruption: str | None = None
    severity: int | None = None
    threats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SoupvizError(f"Unknown metric kind {self.kind!r}: use one of {', '.join(KINDS)}.")
        if self.kind == "attack":
            if self.threat not in THREATS:
                raise SoupvizError(f"An attack metric needs a threat among {', '.join(THREATS)}, got {self.threat!r}.")
            if self.eps is None:
                object.__setattr__(self, "eps", DEFAULT_BUDGETS[self.threat])
            if self.attack == DEFAULT:  # the threat's measured default chain, stored as such
                choice = DEFAULT_ATTACKS[self.threat]
                for name in ("attack", "steps", "targets"):
                    object.__setattr__(self, name, getattr(choice, name))
        if self.kind == "corruption":
            if self.corruption not in corruption_names():
                raise SoupvizError(
                    f"Unknown corruption {self.corruption!r}: use one of {', '.join(corruption_names())}."
                )
            if self.severity not in (1, 2, 3, 4, 5):
                raise SoupvizError(f"Corruption severity must be 1 to 5, got {self.severity!r}.")
        if self.kind == "union" and not self.threats:
            object.__setattr__(self, "threats", THREATS)
        if self.attack in FIXED_ITERATIONS:
            object.__setattr__(self, "steps", 0)

    @classmethod
    def parse(cls, text: str, attack: str = DEFAULT, steps: int = 20) -> MetricSpec:
        """Parse 'clean', 'linf', 'l2:0.25', 'l1:12:pgd:40', 'linf::apgd-ce+apgd-t:20:3', 'fog:3'
        or 'union'.

        Threat budgets accept fractions such as '8/255'; the attack and steps default to
        the arguments; a fifth part sets the target classes of a targeted stage.
        """
        parts = text.strip().lower().split(":")
        head = parts[0]
        try:
            if head == "clean":
                return cls("clean")
            if head == "union":
                return cls("union", attack=attack, steps=steps)
            if head in THREATS:
                eps = _number(parts[1]) if len(parts) > 1 and parts[1] else None
                name = parts[2] if len(parts) > 2 else attack
                count = int(parts[3]) if len(parts) > 3 and parts[3] else steps
                targets = int(parts[4]) if len(parts) > 4 and parts[4] else None
                if count < 1 or (targets is not None and targets < 1):
                    raise ValueError(f"{count} attack steps, {targets} targets; give at least 1")
                return cls("attack", threat=head, eps=eps, attack=name, steps=count, targets=targets)
            if head in corruption_names():
                return cls("corruption", corruption=head, severity=int(parts[1]) if len(parts) > 1 else 3)
        except (ValueError, IndexError, ZeroDivisionError) as error:
            raise SoupvizError(f"Cannot read the metric {text!r} ({error}).") from error
        raise SoupvizError(
            f"Unknown metric {text!r}: use clean, union, a threat ({', '.join(THREATS)}) with optional "
            "':eps:attack:steps', or a corruption name with ':severity'."
        )

    @property
    def key(self) -> str:
        """A stable identity for caches and CSV columns."""
        if self.kind == "clean":
            return "clean"
        if self.kind == "attack":
            return f"{self.threat}:{self.eps:.6g}:{self.attack}:{self.steps}:{self.restarts}{self._targets_key}"
        if self.kind == "corruption":
            return f"{self.corruption}:{self.severity}"
        return f"union:{'+'.join(self.threats)}:{self.attack}:{self.steps}:{self.restarts}{self._targets_key}"

    @property
    def _targets_key(self) -> str:
        return "" if self.targets is None else f":t{self.targets}"

    @property
    def column(self) -> str:
        """Short column name: 'clean', 'L∞ 8/255', 'Fog, severity 3', 'union'."""
        if self.kind == "attack":
            return f"{THREAT_LABELS[self.threat]} {format_budget(self.threat, self.eps)}"
        if self.kind == "corruption":
            return corruption_label(self.corruption, self.severity)
        return self.kind

    @property
    def is_upper_bound(self) -> bool:
        return self.kind in ("attack", "union")


def default_specs(attack: str = DEFAULT, steps: int = 20, corruptions: bool = False) -> list[MetricSpec]:
    """Clean accuracy and robust accuracy per threat at the paper's CIFAR-10 budgets; with
    `corruptions`, every corruption at severity 3 too."""
    specs = [MetricSpec("clean")]
    specs += [MetricSpec("attack", threat=t, attack=attack, steps=steps) for t in THREATS]
    if corruptions:
        specs += [MetricSpec("corruption", corruption=c, severity=3) for c in corruption_names()]
    return specs


def parse_metrics(text: str, attack: str = DEFAULT, steps: int = 20) -> list[MetricSpec]:
    """Parse a comma-separated list of `MetricSpec.parse` texts, where 'corruptions' stands for
    every corruption at every severity (CIFAR-10-C's mean) and 'corruptions:3' for every
    corruption at severity 3."""
    specs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        head, _, severity = part.lower().partition(":")
        if head == "corruptions":
            try:
                severities = [int(severity)] if severity else [1, 2, 3, 4, 5]
            except ValueError as error:
                raise SoupvizError(f"Cannot read {part!r}: write 'corruptions' or 'corruptions:S'.") from error
            specs += [MetricSpec("corruption", corruption=name, severity=level)
                      for name in corruption_names() for level in severities]
        else:
            specs.append(MetricSpec.parse(part, attack, steps))
    return specs


def corruption_mean(records: Sequence[Mapping]) -> dict | None:
    """The mean accuracy over corruption records (`Record.row()` dicts or card metrics of one
    model), every corruption type and severity counting once, as CIFAR-10-C reports it.

    The interval is the mean of the conditions' 95% Wilson bounds: conservative, since the
    standard error of a mean is at most the mean of the standard errors however strongly the
    conditions (the same images, corrupted) correlate. None without corruption records.
    """
    chosen = [r for r in records if r.get("kind") == "corruption"]
    if not chosen:
        return None
    conditions = [_condition(r) for r in chosen]
    types = len({name for name, _ in conditions})
    severities = sorted({severity for _, severity in conditions})
    levels = f"severity {severities[0]}" if len(severities) == 1 else f"{len(severities)} severities"
    mean = {key: sum(r[key] for r in chosen) / len(chosen) for key in ("accuracy", "ci_low", "ci_high")}
    return {
        "metric": "corruption mean", "spec": "corruption-mean", "kind": "corruption-mean", **mean,
        "n": chosen[0].get("n"), "conditions": len(chosen), "upper_bound": False,
        "images": chosen[0].get("images", ""),
        "method": f"mean over {types} corruptions × {levels} (interval: mean of the Wilson bounds)",
    }


def _condition(record: Mapping) -> tuple[str, int]:
    """(corruption, severity) of a corruption record: from its spec key ('fog:3'), else from a
    metric name written before names were made readable ('fog 3')."""
    if ":" in record.get("spec", ""):
        name, severity = record["spec"].split(":")
    else:
        name, severity = record["metric"].rsplit(" ", 1)
    return name, int(severity)


def with_corruption_mean(cells: dict[str, Mapping]) -> dict[str, Mapping]:
    """`cells` (one model's metrics by column) with its corruption entries, and any stored mean,
    replaced by their mean computed afresh under 'corruption mean': one column instead of up to
    14 types × 5 severities. Unchanged when it holds no corruption entries."""
    mean = corruption_mean(list(cells.values()))
    if mean is None:
        return cells
    kept = {key: m for key, m in cells.items() if m.get("kind") not in ("corruption", "corruption-mean")}
    return {**kept, mean["metric"]: mean}


def wilson_interval(correct: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion `correct`/`n` (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Record:
    """One metric of one soup on one image subset, with its 95% Wilson interval.

    `code_fingerprint` names the code that computed it (`store.code_fingerprint`);
    empty for records written before it was stored.
    """

    weights: list[float]
    ingredients: list[str]
    metric: str
    spec: str
    kind: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    method: str
    upper_bound: bool
    images: str
    seed: int
    batchnorm: str
    family: str = ""
    mask: str = field(default="", repr=False)
    code_fingerprint: str = ""

    def row(self) -> dict:
        """The record as a flat dict for tables and CSV (without the per-image mask)."""
        data = asdict(self)
        data.pop("mask")
        data["weights"] = " ".join(f"{w:g}" for w in self.weights)
        return data


@dataclass(frozen=True)
class Progress:
    """A progress report: `done` of `total` work units, and the running estimate if any."""

    done: int
    total: int
    message: str
    partial: Record | None = None


ProgressCallback = Callable[[Progress], None]


def method_label(spec: MetricSpec, model_for_label: Callable | None = None) -> str:
    """How the number was measured, e.g. 'APGD-CE-20 L∞ 8/255 (upper bound on robust accuracy)'."""
    if spec.kind == "clean":
        return "clean accuracy"
    if spec.kind == "corruption":
        return f"accuracy under {corruption_label(spec.corruption, spec.severity)}"
    threats = [spec.threat] if spec.kind == "attack" else list(spec.threats)
    labels = [describe_attacks(spec_attacks(spec, model_for_label or _identity, t, seed=0)) for t in threats]
    prefix = "union of " if spec.kind == "union" else ""
    return prefix + " ∧ ".join(labels) + " (upper bound on robust accuracy)"


def attack_strength(spec: MetricSpec) -> str:
    """What the measured strength/cost table says of the spec's attack: within 1 point of
    AutoAttack (the default), the measured excess (the preview), '' otherwise."""
    return strength_note(spec.attack, spec.steps, spec.targets, spec.threat) if spec.kind == "attack" else ""


def spec_attacks(spec: MetricSpec, model: Callable, threat: str | None = None, seed: int = 0) -> list:
    """The attack chain a spec names (e.g. 'apgd-ce+apgd-t'), built on `model` for `threat`
    (default: the spec's) at the spec's budget, or the threat's default budget for a union."""
    threat = threat or spec.threat
    eps = spec.eps if spec.kind == "attack" else DEFAULT_BUDGETS[threat]
    if spec.attack == DEFAULT:  # a union over threats: each threat's own default
        spec = replace(spec, kind="attack", threat=threat, eps=eps, threats=())
    chain = []
    for name in spec.attack.split("+"):
        options: dict = {"seed": seed}
        if name not in FIXED_ITERATIONS:
            options["restarts"] = spec.restarts
        if name in TARGETED and spec.targets is not None:
            options["n_target_classes"] = spec.targets
        chain.append(make_attack(name, model, threat, eps, steps=spec.steps or None, **options))
    return chain


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _number(text: str) -> float:
    if "/" in text:
        numerator, denominator = text.split("/", 1)
        return float(numerator) / float(denominator)
    return float(text)
