"""Results as data: a `Record` is one metric of one soup on one image subset, with its Wilson 95%
interval, and carries its `MetricSpec` as data, so no consumer reads a label back. Files hold
records in `Record.to_dict`'s form; `Record.from_dict` also reads the forms written before specs
were stored as data. `corruption_mean` summarises a model's corruption records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from soupviz.errors import SoupvizError
from soupviz.results.metric_specs import MetricSpec
from soupviz.soups.weights import weights_text

CORRUPTION_MEAN = "corruption mean"
ROW_SPEC_FIELDS = ("threat", "eps", "chain", "steps", "restarts", "targets", "corruption", "severity", "threats",
                   "source")
ROW_NUMBER_FIELDS = ("n", "correct", "accuracy", "ci_low", "ci_high", "method", "images", "seed", "batchnorm", "family",
                     "code_fingerprint")
LEGACY_UPPER_BOUND = " (upper bound on robust accuracy)"  # ended robust methods in files written before specs were data


@dataclass(frozen=True)
class CorruptionMean:
    """Mean accuracy over corruption conditions (`corruption_mean`): a summary, not a measurement,
    so it has no `MetricSpec`; `conditions` counts the (corruption, severity) pairs averaged.
    A soup's mean carries its `weights`, so figures of soups draw it like a record."""

    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    conditions: int
    images: str
    seed: int | None
    method: str
    metric: str = CORRUPTION_MEAN
    kind: str = "corruption-mean"
    upper_bound: bool = False
    weights: list[float] | None = None
    ingredients: list[str] | None = None
    family: str = ""

    @property
    def spec(self) -> str:
        """The summary's key among metric keys, 'corruption-mean:70' for 70 conditions."""
        return f"{self.kind}:{self.conditions}"

    def to_dict(self) -> dict[str, Any]:
        """The mean as a card stores it beside the conditions (a soup's weights where it has them)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("weights", "ingredients", "family"):
            if not data[name]:
                del data[name]
        return {"spec": self.kind, **data}

    def row(self) -> dict[str, Any]:
        """One flat row for CSV export, in the columns of `Record.row`."""
        return {"weights": weights_text(self.weights), "ingredients": self.ingredients,
                "metric": self.metric, "spec": self.spec, "kind": self.kind, "upper_bound": self.upper_bound,
                **{key: "" for key in ROW_SPEC_FIELDS},
                **{key: getattr(self, key, "") for key in ROW_NUMBER_FIELDS}}


def corruption_mean(records: Sequence[Record]) -> CorruptionMean | None:
    """The mean accuracy over the corruption records of one model, every corruption type and
    severity counting once, as CIFAR-10-C reports it.

    The interval is the mean of the conditions' 95% Wilson bounds: conservative, since the
    standard error of a mean is at most the mean of the standard errors however strongly the
    conditions (the same images, corrupted) correlate. None without corruption records.
    """
    chosen = [r for r in records if r.kind == "corruption"]
    if not chosen:
        return None
    types = len({r.measure.corruption for r in chosen})
    severities = sorted({r.measure.severity for r in chosen})
    levels = f"severity {severities[0]}" if len(severities) == 1 else f"{len(severities)} severities"
    mean = {key: sum(getattr(r, key) for r in chosen) / len(chosen) for key in ("accuracy", "ci_low", "ci_high")}
    first = chosen[0]
    return CorruptionMean(**mean, n=first.n, conditions=len(chosen), images=first.images, seed=first.seed,
                          method=f"mean over {types} corruptions × {levels} (interval: mean of the Wilson bounds)",
                          weights=first.weights, ingredients=first.ingredients, family=first.family)


@dataclass
class Record:
    """One metric of one soup on one image subset, with its 95% Wilson interval.

    `measure` is what was measured, as data; `method` says how, in words ('PGD-10 + PGD-T-10
    (3 targets) L∞ 8/255'; an ensemble's starts with its combination rule). `weights` and
    `ingredients` are None for a metric stored in a checkpoint's card. `code_fingerprint` names
    the code that computed it (`results.store.code_fingerprint`); empty for older records.
    """

    weights: list[float] | None
    ingredients: list[str] | None
    measure: MetricSpec
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    method: str
    images: str
    seed: int | None
    batchnorm: str
    family: str = ""
    mask: str = field(default="", repr=False)
    code_fingerprint: str = ""

    @property
    def spec(self) -> str:
        """The metric's stable key (`MetricSpec.key`), for matching records of one metric."""
        return self.measure.key

    @property
    def metric(self) -> str:
        """The metric's column name, e.g. 'L∞ 8/255'."""
        return self.measure.column

    @property
    def kind(self) -> str:
        return self.measure.kind

    @property
    def upper_bound(self) -> bool:
        """Whether the accuracy is an upper bound (robust accuracy found by attacks)."""
        return self.measure.is_upper_bound

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data: `measure` structured (`MetricSpec.to_dict`), with the metric's
        column, key, kind and upper-bound flag beside it for people and tools reading the file
        (`from_dict` reads only `measure`)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["measure"] = self.measure.to_dict()
        return {**data, "metric": self.metric, "spec": self.spec, "kind": self.kind, "upper_bound": self.upper_bound}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """A record from `to_dict`'s form, or from the older form that kept the spec only as its
        key (results files, caches and cards written before specs were stored as data).

        Raises:
            SoupvizError: a field is missing or the stored metric is unknown.
        """
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if isinstance(data.get("measure"), Mapping):
            values["measure"] = MetricSpec.from_dict(data["measure"])
        elif "spec" in data:
            values["measure"] = MetricSpec.from_key(data["spec"])
            values["method"] = str(data.get("method", "")).removesuffix(LEGACY_UPPER_BOUND)
        try:
            return cls(**values)
        except TypeError as error:
            raise SoupvizError(f"A stored record lacks fields ({error}).") from error

    def row(self) -> dict[str, Any]:
        """The record as a flat dict for tables and CSV, without the per-image mask: the metric's
        column, key, kind and upper-bound flag, then the spec's fields ('' where its kind has
        none; lists joined by spaces), then the numbers. Every record has the same columns."""
        head = {"weights": weights_text(self.weights), "ingredients": self.ingredients,
                "metric": self.metric, "spec": self.spec, "kind": self.kind, "upper_bound": self.upper_bound}
        data = self.measure.to_dict()
        measure = {key: " ".join(map(str, data[key])) if isinstance(data.get(key), list) else data.get(key, "")
                   for key in ROW_SPEC_FIELDS}
        return {**head, **measure, **{key: getattr(self, key) for key in ROW_NUMBER_FIELDS}}


def records_of(metrics: Sequence[Mapping[str, Any]]) -> list[Record]:
    """The records among a card's stored metrics, old forms included; the corruption mean it may
    hold is left out (`corruption_mean` recomputes it from the conditions)."""
    return [Record.from_dict(m) for m in metrics if m.get("kind") != "corruption-mean"]
