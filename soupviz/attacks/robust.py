"""Robust accuracy the way AutoAttack counts it: attack only the points still robust.

`attack_survivors` is that loop, the one home of it: stage after stage (the attacks of a chain,
PGD's restarts, PGD-T's target classes), each run only on the points no earlier stage broke.
`robust_mask` is what evaluation calls: clean-wrong points are never attacked and count as
not robust. Numbers from it are upper bounds on robust accuracy, labelled with `describe_attacks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TypeVar

import torch

from soupviz.attacks.base import Attack, Classifier, check_batch, eval_mode, fixed_batch
from soupviz.progress import ShareCallback, share_within
from soupviz.threats import threat_label

Stage = TypeVar("Stage")


def describe_attacks(attacks: Attack | Sequence[Attack]) -> str:
    """One label for a chain: 'APGD-CE-40 + APGD-T-40 (9 targets) L∞ 8/255' when the attacks
    share threat and budget, else their labels joined by ' + '."""
    chain = [attacks] if isinstance(attacks, Attack) else list(attacks)
    budgets = {(a.threat, a.eps) for a in chain}
    if len(budgets) != 1:
        return " + ".join(a.describe() for a in chain)
    threat, eps = budgets.pop()
    return " + ".join(a.attack_name() for a in chain) + f" {threat_label(threat, eps)}"


def attack_survivors(
    alive: torch.Tensor, stages: Iterable[Stage], run: Callable[[Stage, torch.Tensor], torch.Tensor], whole: bool
) -> torch.Tensor:
    """Run `stages` in order, each only on the points still alive, until none is; `alive` is updated in place.

    Args:
        alive: bool (N,), the points not yet broken (e.g. those classified correctly clean).
        stages: what `run` is given in turn: attacks, restarts, target classes.
        run: `run(stage, rows)` attacks the points `rows` (int64 indices) and returns bool
            (len(rows),), whether each point survived the stage; it may read `alive`, which
            still holds the state before the stage.
        whole: the model has a fixed batch layout (`base.fixed_batch`): every stage runs on all
            N points and only the survivors' results count.

    Returns:
        `alive`, now the points that survived every stage.
    """
    for stage in stages:
        if not alive.any():
            break
        rows = torch.arange(alive.shape[0], device=alive.device) if whole else alive.nonzero()[:, 0]
        alive[rows] &= run(stage, rows)
    return alive


@torch.no_grad()
def _correct(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with eval_mode(model):
        return model(x).argmax(dim=1) == y


def _survives(
    model: Classifier, x: torch.Tensor, y: torch.Tensor, stage: tuple[Attack, ShareCallback], rows: torch.Tensor
) -> torch.Tensor:
    """Whether `model` still classifies the images `rows` correctly after the stage's attack."""
    attack, within = stage
    survived = _correct(model, attack(x[rows], y[rows], progress=within), y[rows])
    within(1.0)
    return survived


def robust_mask(
    attack: Attack | Sequence[Attack],
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: ShareCallback | None = None,
) -> torch.Tensor:
    """Per image, whether `model` still classifies it correctly after the attacks.

    Args:
        attack: one attack, or a chain run in order (e.g. APGD-CE then APGD-T, or one attack
            per threat for union robustness); each runs only on the points every earlier one
            failed on, and only on points `model` classifies correctly without attack.
        model: the classifier judged (normally the attacks' own model).
        x: images (N, C, H, W) in [0, 1]; y: labels (N,).
        batch_size: images attacked at once.
        device: where to attack; default `x`'s device.
        progress: told the share of the work done as each attack of the chain ends on each
            batch, and inside an attack that reports its own progress (each attack one equal share).

    Returns:
        Bool tensor (N,) on `x`'s device; its mean is an upper bound on robust accuracy
        under the attacks' threat, labelled by `describe_attacks(attack)`.
    """
    chain = [attack] if isinstance(attack, Attack) else list(attack)
    check_batch(x, y)
    device = torch.device(device) if device is not None else x.device
    robust = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    whole = fixed_batch(model) or any(fixed_batch(a.model) for a in chain)
    report = progress or (lambda share: None)
    starts = range(0, x.shape[0], batch_size)
    for number, start in enumerate(starts):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        shares = [
            share_within(report, (number + order / len(chain)) / len(starts), 1 / (len(chain) * len(starts)))
            for order in range(len(chain))
        ]
        stages = zip(chain, shares, strict=True)
        alive = attack_survivors(_correct(model, xb, yb), stages, partial(_survives, model, xb, yb), whole)
        report((number + 1) / len(starts))
        robust[start : start + batch_size] = alive.to(x.device)
    return robust
