"""How a metric is measured: the attack chain a `MetricSpec` names, built on a model
(`spec_attacks`), and its description for records and labels ('APGD-CE-20 L∞ 8/255',
'PGD-10 + PGD-T-10 (3 targets)'), with what the measured strength table says of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import torch

from soupviz.attacks import FIXED_ITERATIONS, TARGETED, describe_attacks, make_attack
from soupviz.attacks.defaults import DEFAULT, strength_note
from soupviz.corruptions import corruption_label
from soupviz.evaluate.metrics import UNIFORM_SOURCE, MetricSpec
from soupviz.threats import DEFAULT_BUDGETS, threat_label


def method_label(spec: MetricSpec, model_for_label: Callable | None = None) -> str:
    """How the number is measured, e.g. 'APGD-CE-20 L∞ 8/255', 'union of ... ∧ ...', 'clean
    accuracy'. Robust accuracies are upper bounds; `labels.method_text` says so beside it."""
    if spec.kind == "clean":
        return "clean accuracy"
    if spec.kind == "corruption":
        return f"accuracy under {corruption_label(spec.corruption, spec.severity)}"
    if spec.source:  # 'PGD-10 + PGD-T-10 (3 targets) transferred from the l2 ingredient, L∞ 8/255'
        return f"{attack_label(spec)}, {threat_label(spec.threat, spec.eps)}"
    threats = [spec.threat] if spec.kind == "attack" else list(spec.threats)
    labels = [describe_attacks(spec_attacks(spec, model_for_label or _identity, t, seed=0)) for t in threats]
    return ("union of " if spec.kind == "union" else "") + " ∧ ".join(labels)


@functools.lru_cache(maxsize=256)
def attack_label(spec: MetricSpec) -> str:
    """The attack chain of a robust metric without its threat and budget, e.g. 'APGD-CE-20' or
    'PGD-10 + PGD-T-10 (3 targets)' (the first threat's, for a union), naming a transfer attack's
    source ('PGD-10 transferred from the l2 ingredient'); '' for other metrics."""
    if not spec.is_upper_bound:
        return ""
    threat = spec.threat if spec.kind == "attack" else spec.threats[0]
    chain = spec_attacks(spec, _identity, threat, seed=0)
    label = describe_attacks(chain).removesuffix(f" {threat_label(threat, chain[0].eps)}")
    return f"{label} transferred from {source_label(spec.source)}" if spec.source else label


def source_label(source: str) -> str:
    """A transfer source in words: 'the uniform soup' or 'the l2 ingredient'."""
    return "the uniform soup" if source == UNIFORM_SOURCE else f"the {source} ingredient"


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
