"""APGD (Croce & Hein 2020) from pyautoattack, the AutoAttack authors' code, behind our interface.

The wrapper adds what pyautoattack leaves to the caller: eval mode, contiguous inputs on one
device, a seed that makes a call deterministic without touching the caller's global random
state (pyautoattack reseeds torch's global generator), and a label for every number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from soupviz.attacks.base import Attack, Classifier, fixed_batch
from soupviz.attacks.names import stage_name
from soupviz.errors import SoupvizError
from soupviz.progress import ShareCallback

NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward returns a contiguous gradient: pyautoattack calls `.view` on
    input gradients, which fails on the channels-last gradients some models produce."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def as_predict(model: Classifier) -> Classifier:
    """`model` as the forward function pyautoattack expects (logits, contiguous gradients)."""
    return lambda x: model(_ContiguousGrad.apply(x))


def seeded_devices(x: torch.Tensor) -> list[int]:
    """CUDA devices whose global generator `torch.random.fork_rng` must save and restore."""
    return [x.device.index if x.device.index is not None else torch.cuda.current_device()] if x.is_cuda else []


def report_iterations(runners: Sequence[Any], planned: float, report: ShareCallback) -> None:
    """Make pyautoattack's attack objects `runners` call `report`, after each of their single
    runs, with the share of `planned` iterations run so far: how an APGD or AutoAttack call that
    takes minutes on one batch shows progress. An iteration is a gradient step, a Square query a
    third of one (a forward pass); runs skipped because no point is left make the share jump at
    the end of the call instead."""
    done = 0.0

    def counted(runner: Any) -> Callable[..., Any]:
        single = runner.attack_single_run

        def run(*args: Any, **kwargs: Any) -> Any:
            nonlocal done
            result = single(*args, **kwargs)
            done += runner.n_queries / 3 if hasattr(runner, "n_queries") else runner.n_iter
            report(min(1.0, done / planned))
            return result

        return run

    for runner in {id(r): r for r in runners}.values():
        runner.attack_single_run = counted(runner)


def planned_iterations(runner: Any, runs: int = 1) -> float:
    """The iterations `runs` single runs of a pyautoattack attack object take (`report_iterations`)."""
    if hasattr(runner, "n_queries"):
        return runs * runner.n_queries / 3
    return runs * getattr(runner, "n_iter_orig", runner.n_iter)


class APGD(Attack):
    """Auto-PGD from pyautoattack: APGD-CE, APGD-DLR, or APGD-T (targeted DLR).

    Each restart (and each target class of APGD-T) attacks only the points still correctly
    classified; points misclassified without attack come back unchanged.

    Args:
        model, threat, eps, seed: see `Attack`.
        steps: iterations per restart (AutoAttack uses 100; the soups paper evaluates with 40).
        loss: 'ce' or 'dlr' for the untargeted attack; APGD-T always uses targeted DLR.
        targeted: run APGD-T, which tries the `n_target_classes` highest-scoring wrong classes
            in turn (pyautoattack chooses them; a caller cannot pass its own targets).
        n_target_classes: target classes tried by APGD-T.
        restarts: random restarts (per target class for APGD-T).
        large_reps: AutoAttack's L1 setting (`use_largereps`): each restart runs 30% of its
            steps at 3·eps, 30% at 2·eps and the rest at eps, escaping the sparse L1 ball's
            poor local optima. None (default) turns it on for L1, as AutoAttack's standard
            version does; L1 only.

    Example:
        >>> x_adv = APGD(model, "l2", 0.5, steps=40, loss="dlr")(x, y)
    """

    name = "APGD"

    def __init__(
        self,
        model: Classifier,
        threat: str,
        eps: float,
        steps: int = 100,
        loss: str | None = None,
        targeted: bool = False,
        n_target_classes: int = 9,
        restarts: int = 1,
        seed: int = 0,
        large_reps: bool | None = None,
    ) -> None:
        super().__init__(model, threat, eps, seed)
        if large_reps and threat != "l1":
            raise SoupvizError("APGD's large_reps schedule exists for L1 only; leave it unset for L∞ and L2.")
        loss = loss or ("dlr" if targeted else "ce")
        if loss not in ("ce", "dlr") or (targeted and loss != "dlr"):
            raise SoupvizError(f"APGD loss {loss!r} is not available: use 'ce' or 'dlr' (APGD-T uses 'dlr').")
        if int(steps) < 1 or int(restarts) < 1 or int(n_target_classes) < 1:
            raise SoupvizError(
                f"APGD needs at least one step, restart and target class, got steps={steps}, "
                f"restarts={restarts}, n_target_classes={n_target_classes}."
            )
        if fixed_batch(model):
            raise SoupvizError(
                "APGD drops broken points from the batch, so it cannot attack a model with a "
                "fixed batch layout; use PGD."
            )
        self.steps = int(steps)
        self.loss = loss
        self.targeted = targeted
        self.n_target_classes = int(n_target_classes)
        self.restarts = int(restarts)
        self.large_reps = threat == "l1" if large_reps is None else bool(large_reps)

    def attack_name(self) -> str:
        name = "apgd-t" if self.targeted else f"apgd-{self.loss}"
        return stage_name(name, self.steps, self.restarts, self.n_target_classes)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        if target is not None:
            raise SoupvizError(
                "APGD chooses its own target classes (targeted=True); to push towards given classes use PGD."
            )
        common = dict(
            n_iter=self.steps, norm=NORMS[self.threat], n_restarts=self.restarts, eps=self.eps,
            seed=self.seed, device=x.device, verbose=False,
        )  # fmt: skip
        if self.targeted:
            attack = APGDAttack_targeted(as_predict(self.model), n_target_classes=self.n_target_classes, **common)
        else:
            attack = APGDAttack(as_predict(self.model), loss=self.loss, **common)
        attack.use_largereps = self.large_reps
        runs = self.restarts * (self.n_target_classes if self.targeted else 1)
        report_iterations([attack], planned_iterations(attack, runs), self.report)
        with torch.random.fork_rng(devices=seeded_devices(x)):
            return attack.perturb(x, y)
