"""How a metric is measured: the attack chain a `MetricSpec` names, built on a model
(`spec_attacks`), and its description for records and labels ('APGD-CE-20 L∞ 8/255',
'PGD-10 + PGD-T-10 (3 targets)'), made from the spec's fields by `attacks.names` without building
an attack, with what the measured strength table says of it.
"""

from __future__ import annotations

from collections.abc import Callable

from soupviz.attacks import FIXED_ITERATIONS, TARGETED, make_attack
from soupviz.attacks.defaults import DEFAULT, DEFAULT_ATTACKS, strength_note
from soupviz.attacks.names import chain_name
from soupviz.corruptions.cifar_c import corruption_label
from soupviz.results.metric_specs import UNIFORM_SOURCE, MetricSpec
from soupviz.threats import DEFAULT_BUDGETS, threat_label


def method_label(spec: MetricSpec, source_name: str | None = None) -> str:
    """How the number is measured, e.g. 'APGD-CE-20 L∞ 8/255', 'union of ... ∧ ...', 'clean
    accuracy'; a transfer's source ingredient called `source_name` where given (its display label),
    else by its checkpoint name. Robust accuracies are upper bounds; `present.labels.method_text`
    says so beside it."""
    if spec.kind == "clean":
        return "clean accuracy"
    if spec.kind == "corruption":
        return f"accuracy under {corruption_label(spec.corruption, spec.severity)}"
    if spec.source:  # 'PGD-10 + PGD-T-10 (3 targets) transferred from the l2 ingredient, L∞ 8/255'
        return f"{attack_label(spec, source_name)}, {threat_label(spec.threat, spec.eps)}"
    threats = [spec.threat] if spec.kind == "attack" else list(spec.threats)
    labels = [f"{_chain_name(spec, t)} {threat_label(t, _budget(spec, t))}" for t in threats]
    return ("union of " if spec.kind == "union" else "") + " ∧ ".join(labels)


def attack_label(spec: MetricSpec, source_name: str | None = None) -> str:
    """The attack chain of a robust metric without its threat and budget, e.g. 'APGD-CE-20' or
    'PGD-10 + PGD-T-10 (3 targets)' (the first threat's, for a union), naming a transfer attack's
    source ('PGD-10 transferred from the l2 ingredient', or called `source_name`); '' for other metrics."""
    if not spec.is_upper_bound:
        return ""
    label = _chain_name(spec, spec.threat if spec.kind == "attack" else spec.threats[0])
    return f"{label} transferred from {source_label(spec.source, source_name)}" if spec.source else label


def source_label(source: str, name: str | None = None) -> str:
    """A transfer source in words: 'the uniform soup' or 'the l2 ingredient' (called `name`, its
    display label, where given: 'the L2 0.5 ingredient')."""
    return "the uniform soup" if source == UNIFORM_SOURCE else f"the {name or source} ingredient"


def _chain_name(spec: MetricSpec, threat: str) -> str:
    """`names.chain_name` of the chain the spec runs at `threat` (a union's 'default': that threat's)."""
    if spec.attack == DEFAULT:
        choice = DEFAULT_ATTACKS[threat]
        return chain_name(choice.attack, choice.steps, spec.restarts, choice.targets)
    return chain_name(spec.attack, spec.steps, spec.restarts, spec.targets)


def _budget(spec: MetricSpec, threat: str) -> float:
    return spec.eps if spec.kind == "attack" else DEFAULT_BUDGETS[threat]


def attack_strength(spec: MetricSpec) -> str:
    """What the measured strength/cost table says of the spec's attack at its threat and budget
    (`defaults.strength_note`); '' for metrics without attack and for unions."""
    return strength_note(spec.attack, spec.steps, spec.targets, spec.threat, spec.eps) if spec.kind == "attack" else ""


def spec_attacks(spec: MetricSpec, model: Callable, threat: str | None = None, seed: int = 0) -> list:
    """The attack chain a spec names (e.g. 'apgd-ce+apgd-t'), built on `model` for `threat`
    (default: the spec's) at the spec's budget, or the threat's default budget for a union."""
    threat = threat or spec.threat
    if spec.kind == "union":  # each threat's attack at its own default budget
        spec = spec.for_threat(threat)
    eps = spec.eps
    chain = []
    for name in spec.attack.split("+"):
        options: dict = {"seed": seed}
        if name not in FIXED_ITERATIONS:
            options["restarts"] = spec.restarts
        if name in TARGETED and spec.targets is not None:
            options["n_target_classes"] = spec.targets
        chain.append(make_attack(name, model, threat, eps, steps=spec.steps or None, **options))
    return chain
