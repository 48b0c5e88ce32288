"""Attack names come from one place (`attacks.names`): a spec's label, made from its fields without
building an attack, is exactly what the attacks it builds call themselves."""

from __future__ import annotations

import pytest
import torch

from soupviz.attacks import describe_attacks
from soupviz.attacks.names import chain_name, stage_name
from soupviz.evaluate.methods import attack_label, method_label, spec_attacks
from soupviz.results.metric_specs import MetricSpec
from soupviz.threats import threat_label

TEXTS = ["linf::pgd:10", "l2::default", "l1::default", "linf::default", "l1:6:pgd:10", "linf:4/255:apgd-ce:20",
         "l2::apgd-t:40", "l2::apgd-t:40:1:t3", "l1::apgd-dlr:30:2", "linf::pgd-t:5:3:t2", "linf::pgd-dlr:20",
         "l2::apgd-ce+apgd-t:20", "linf::autoattack", "l1::autoattack-apgd", "l2:0.25:pgd+pgd-t:10:t3"]


def tiny(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)[:, :10]


@pytest.mark.parametrize("text", TEXTS)
def test_a_specs_label_is_what_its_attacks_call_themselves(text: str) -> None:
    spec = MetricSpec.parse(text)
    built = describe_attacks(spec_attacks(spec, tiny, seed=0))
    assert method_label(spec) == built
    assert f"{attack_label(spec)} {threat_label(spec.threat, spec.eps)}" == built


def test_the_sidebars_default_is_named_by_the_chain_it_runs() -> None:
    assert attack_label(MetricSpec("attack", threat="linf", attack="default", steps=10)) == \
        "PGD-10 + PGD-T-10 (3 targets)"
    assert attack_label(MetricSpec("attack", threat="l1", attack="default", steps=10)) == \
        "AutoAttack (standard: APGD-CE, APGD-T)"
    assert attack_label(MetricSpec("union", threats=("l1", "l2"), attack="default")) == \
        "AutoAttack (standard: APGD-CE, APGD-T)"


def test_stage_names_follow_the_registry() -> None:
    assert stage_name("apgd-t", 0) == "APGD-T-40 (9 targets)"
    assert stage_name("pgd", 20, restarts=3) == "PGD-20×3"
    assert chain_name("pgd+pgd-t", 10, targets=3) == "PGD-10 + PGD-T-10 (3 targets)"
