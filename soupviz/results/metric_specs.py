"""What a number is: metric specs and the interval of an accuracy.

A `MetricSpec` names one number (clean accuracy; robust accuracy under a threat, budget and
attack chain, white-box or transferred from a source model; accuracy under a corruption and
severity; union robustness over threats), parsed
from the command line's text, keyed for caches and written as JSON data; `wilson_interval` gives
an accuracy's 95% interval. Results are `soupviz.results.records`; how an attack metric is
measured is `soupviz.evaluate.methods`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from soupviz.attacks import FIXED_ITERATIONS
from soupviz.attacks.defaults import DEFAULT, DEFAULT_ATTACKS
from soupviz.corruptions.cifar_c import corruption_label, corruption_names
from soupviz.errors import SoupvizError
from soupviz.threats import DEFAULT_BUDGETS, THREATS, exact_budget, parse_budget, threat_label

KINDS = ("clean", "attack", "corruption", "union")
UNIFORM_SOURCE = "uniform"  # a transfer source naming the uniform soup of the family
TRANSFER_RESERVED = (":", ",", "@", " ")
_KIND_FIELDS = {"clean": (), "attack": ("threat", "eps", "steps", "restarts", "targets"),
                "corruption": ("corruption", "severity"), "union": ("threats", "steps", "restarts", "targets")}


@dataclass(frozen=True)
class MetricSpec:
    """One metric. `kind` is 'clean', 'attack' (threat, eps, attack, steps, restarts, and
    `targets`: target classes of a targeted stage such as APGD-T, None for its default),
    'corruption' (corruption, severity) or 'union' (every threat in `threats` at its
    default budget, same attack: a point counts only if it survives all of them).

    An attack metric with a `source` is a transfer attack: the chain is crafted on the source
    model (an ingredient's name in its family, or 'uniform' for the uniform soup) and the
    evaluated model must classify the clean image and every stage's adversarial image."""

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
    source: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SoupvizError(f"Unknown metric kind {self.kind!r}: use one of {', '.join(KINDS)}.")
        if self.kind == "attack":
            self._settle_attack()
        if self.kind == "corruption":
            self._check_corruption()
        if self.kind == "union":
            self._settle_union()
        if self.attack in FIXED_ITERATIONS:
            object.__setattr__(self, "steps", 0)
        if self.source is not None:
            self._check_source()

    def _settle_attack(self) -> None:
        """Check the threat; fill in its default budget and, for the default attack, the threat's
        measured default chain (stored as such)."""
        if self.threat not in THREATS:
            raise SoupvizError(f"An attack metric needs a threat among {', '.join(THREATS)}, got {self.threat!r}.")
        if self.eps is None:
            object.__setattr__(self, "eps", DEFAULT_BUDGETS[self.threat])
        if self.attack == DEFAULT:
            choice = DEFAULT_ATTACKS[self.threat]
            for name in ("attack", "steps", "targets"):
                object.__setattr__(self, name, getattr(choice, name))

    def _check_corruption(self) -> None:
        if self.corruption not in corruption_names():
            raise SoupvizError(
                f"Unknown corruption {self.corruption!r}: use one of {', '.join(corruption_names())}."
            )
        if self.severity not in (1, 2, 3, 4, 5):
            raise SoupvizError(f"Corruption severity must be 1 to 5, got {self.severity!r}.")

    def _settle_union(self) -> None:
        """Every threat when none is named; else check the named ones."""
        if not self.threats:
            object.__setattr__(self, "threats", THREATS)
        if not set(self.threats) <= set(THREATS):
            raise SoupvizError(f"A union metric joins threats among {', '.join(THREATS)}, got {self.threats!r}.")

    def _check_source(self) -> None:
        if self.kind != "attack":
            raise SoupvizError(f"Only an attack metric can be transferred from a source model, not {self.kind!r}.")
        if not self.source or any(mark in self.source for mark in TRANSFER_RESERVED):
            raise SoupvizError(f"A transfer source must be an ingredient name or 'uniform', got {self.source!r}.")

    @classmethod
    def parse(cls, text: str, attack: str = DEFAULT, steps: int = 20) -> MetricSpec:
        """Parse 'clean', 'linf', 'l2:0.25', 'l1:12:pgd:40', 'linf::apgd-ce+apgd-t:20:1:t3',
        'fog:3', 'union' or 'union:linf+l2:pgd:10'; every `key` parses back to its spec. An
        attack metric ending '@SOURCE' ('linf@l2', 'linf:8/255:pgd:10@uniform') is transferred
        from that source model.

        Threat budgets accept fractions such as '8/255'; the attack and steps default to the
        arguments. After the steps come the random restarts and, marked 't', the target classes
        of a targeted stage ('...:20:t3' or '...:20:2:t3').
        """
        body, transfer, source = text.strip().lower().partition("@")
        if transfer:
            spec = cls.parse(body, attack, steps)
            if spec.kind != "attack":
                raise SoupvizError(f"Only an attack metric can be transferred from a source model: {text!r}.")
            return replace(spec, source=source)
        parts = body.split(":")
        head = parts[0]
        try:
            if head == "clean" and len(parts) == 1:
                return cls("clean")
            if head == "union":
                threats = tuple(parts[1].split("+")) if len(parts) > 1 and parts[1] else ()
                return cls("union", threats=threats, **_attack_fields(parts[2:], attack, steps))
            if head in THREATS:
                eps = exact_budget(head, parse_budget(parts[1], head)) if len(parts) > 1 and parts[1] else None
                return cls("attack", threat=head, eps=eps, **_attack_fields(parts[2:], attack, steps))
            if head in corruption_names() and len(parts) <= 2:
                return cls("corruption", corruption=head, severity=int(parts[1]) if len(parts) > 1 else 3)
        except (ValueError, IndexError, ZeroDivisionError) as error:
            raise SoupvizError(f"Cannot read the metric {text!r} ({error}).") from error
        raise SoupvizError(
            f"Unknown metric {text!r}: use clean, union, a threat ({', '.join(THREATS)}) with optional "
            "':eps:attack:steps:restarts:tTARGETS', or a corruption name with ':severity'."
        )

    @property
    def key(self) -> str:
        """A stable identity for caches and CSV columns."""
        if self.kind == "clean":
            return "clean"
        if self.kind == "attack":
            transfer = f"@{self.source}" if self.source else ""
            head = f"{self.threat}:{self.eps:.6g}:{self.attack}:{self.steps}:{self.restarts}"
            return f"{head}{self._targets_key}{transfer}"
        if self.kind == "corruption":
            return f"{self.corruption}:{self.severity}"
        return f"union:{'+'.join(self.threats)}:{self.attack}:{self.steps}:{self.restarts}{self._targets_key}"

    @property
    def _targets_key(self) -> str:
        return "" if self.targets is None else f":t{self.targets}"

    @classmethod
    def from_key(cls, key: str) -> MetricSpec:
        """The spec whose `key` is `key`: how records written before specs were stored as data
        are read. L∞ budgets regain their exact fraction (`threats.exact_budget`).

        Raises:
            SoupvizError: not a key `MetricSpec.key` writes.
        """
        try:
            spec = cls.parse(key)
        except SoupvizError as error:
            raise SoupvizError(f"The stored metric {key!r} is not one soupviz writes ({error}).") from error
        if spec.key != key:
            raise SoupvizError(f"The stored metric {key!r} is not one soupviz writes (it reads as {spec.key!r}).")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON data: its kind and the fields that kind uses, the attack written as
        its `chain` of stages, e.g. {'kind': 'attack', 'threat': 'linf', 'eps': 0.0314,
        'chain': ['pgd', 'pgd-t'], 'steps': 10, 'restarts': 1, 'targets': 3}."""
        data: dict[str, Any] = {"kind": self.kind}
        for name in _KIND_FIELDS[self.kind]:
            value = getattr(self, name)
            data[name] = list(value) if isinstance(value, tuple) else value
        if self.is_upper_bound:
            data["chain"] = list(self.chain)
        if self.source:
            data["source"] = self.source
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricSpec:
        """The spec `to_dict` wrote (its `chain` is the attack, stage by stage)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if "chain" in data:
            values["attack"] = "+".join(data["chain"])
        values["threats"] = tuple(values.get("threats", ()))
        return cls(**values)

    @property
    def chain(self) -> tuple[str, ...]:
        """The attack's stages in the order they run on the survivors, e.g. ('pgd', 'pgd-t');
        an AutoAttack version is one stage that runs its own."""
        return tuple(self.attack.split("+"))

    @property
    def column(self) -> str:
        """Short column name: 'clean', 'L∞ 8/255', 'L∞ 8/255 transfer from l2', 'Fog, severity 3', 'union'."""
        return self.column_named(self.source)

    def column_named(self, source: str | None) -> str:
        """`column` with a transfer's source called `source` (e.g. its display label, 'L2 0.5')."""
        if self.kind == "attack":
            return threat_label(self.threat, self.eps) + (f" transfer from {source}" if self.source else "")
        if self.kind == "corruption":
            return corruption_label(self.corruption, self.severity)
        return self.kind

    @property
    def is_upper_bound(self) -> bool:
        return self.kind in ("attack", "union")

    def for_threat(self, threat: str) -> MetricSpec:
        """The attack spec a union measures for one of its threats: its attack at that threat's
        default budget."""
        return replace(self, kind="attack", threat=threat, eps=DEFAULT_BUDGETS[threat], threats=())

    def measured_specs(self) -> list[MetricSpec]:
        """The specs measured to get this one: a union's attack per threat (`for_threat`; its
        record is their intersection), else itself."""
        return [self.for_threat(t) for t in self.threats] if self.kind == "union" else [self]


def _attack_fields(parts: list[str], attack: str, steps: int) -> dict[str, Any]:
    """The attack, steps, restarts and targets of a metric text's tail 'attack:steps:restarts:tN',
    each part optional."""
    targets = int(parts.pop()[1:]) if parts and parts[-1].startswith("t") else None
    if len(parts) > 3:
        raise ValueError(f"unexpected parts after the restarts: {':'.join(parts[3:])}")
    name = parts[0] if parts and parts[0] else attack
    count = int(parts[1]) if len(parts) > 1 and parts[1] else steps
    restarts = int(parts[2]) if len(parts) > 2 and parts[2] else 1
    if min(count if name not in FIXED_ITERATIONS else 1, restarts, 1 if targets is None else targets) < 1:
        raise ValueError(f"{count} steps, {restarts} restarts, {targets} targets; give at least 1 of each")
    return {"attack": name, "steps": count, "restarts": restarts, "targets": targets}


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


def wilson_interval(correct: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion `correct`/`n` (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
