"""Transfer attacks: adversarial examples crafted on a source model, judged on another model.

`transfer_examples` runs each attack of a chain on every image (the source's mistakes are not
skipped: its examples are what a transfer attacker would send); `survives_transfer` says which
images a target classifies correctly both clean and under every stage's example, so its mean is
an upper bound on the target's robust accuracy, as every attack's number is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from soupviz.attacks.base import Attack, Classifier, ShareCallback, eval_mode


def transfer_examples(
    chain: Sequence[Attack], x: torch.Tensor, y: torch.Tensor, progress: ShareCallback | None = None
) -> list[torch.Tensor]:
    """Adversarial images (N, C, H, W), one tensor per attack of `chain`, each crafted on that
    attack's own model (the source) from the clean images `x` in [0, 1] with labels `y`."""
    report = progress or (lambda share: None)
    examples = []
    size = 1 / len(chain)
    for order, attack in enumerate(chain):
        examples.append(attack(x, y, progress=lambda share, start=order * size: report(start + size * share)))
    report(1.0)
    return examples


@torch.no_grad()
def survives_transfer(
    model: Classifier, x: torch.Tensor, y: torch.Tensor, examples: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Bool (N,): whether `model` classifies image i correctly clean and as every example of it."""
    with eval_mode(model):
        alive = model(x).argmax(1) == y
        for adversarial in examples:
            alive &= model(adversarial).argmax(1) == y
    return alive
