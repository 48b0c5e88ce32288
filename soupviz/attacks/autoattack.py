"""AutoAttack (Croce & Hein 2020) as pyautoattack runs it, the reference for robust accuracy.

The standard version runs APGD-CE, APGD-T, FAB-T and Square in turn, each on the points the
previous ones left robust; its numbers are the ones RobustBench and papers report.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from pyautoattack import AutoAttack as _AutoAttack

from soupviz.attacks.apgd import NORMS, as_predict, planned_iterations, report_iterations, seeded_devices
from soupviz.attacks.base import Attack, Classifier, fixed_batch
from soupviz.attacks.names import autoattack_name
from soupviz.errors import SoupvizError

VERSIONS = ("standard", "plus", "rand")
STAGES = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


class AutoAttack(Attack):
    """pyautoattack's AutoAttack, quiet and seeded.

    Args:
        model, threat, eps, seed: see `Attack`.
        version: 'standard' (what RobustBench reports), 'plus' (more restarts and attacks)
            or 'rand' (for randomised defences).
        stages: run only these stages of the version, each configured as the version sets
            it (e.g. ('apgd-ce', 'apgd-t'): the standard version's gradient stages, with
            its 9 target classes, or at L1 its 5 restarts, 5 targets and large reps).

    Example:
        >>> x_adv = AutoAttack(model, "linf", 8 / 255)(x, y)
    """

    name = "AutoAttack"

    def __init__(
        self,
        model: Classifier,
        threat: str,
        eps: float,
        version: str = "standard",
        seed: int = 0,
        stages: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(model, threat, eps, seed)
        if version not in VERSIONS:
            raise SoupvizError(f"Unknown AutoAttack version {version!r}: use one of {', '.join(VERSIONS)}.")
        unknown = sorted(set(stages or ()) - set(STAGES))
        if unknown or stages == ():
            raise SoupvizError(f"Unknown AutoAttack stages {unknown or stages}: choose among {', '.join(STAGES)}.")
        self.stages = tuple(stages) if stages else None
        if fixed_batch(model):
            raise SoupvizError(
                "AutoAttack drops broken points from the batch, so it cannot attack a model with a fixed batch layout."
            )
        self.version = version

    def attack_name(self) -> str:
        return autoattack_name(self.version, self.stages)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        if target is not None:
            raise SoupvizError(
                "AutoAttack is untargeted (its APGD-T and FAB-T choose their own targets); pass no target."
            )
        attack = _AutoAttack(
            as_predict(self.model), norm=NORMS[self.threat], eps=self.eps, seed=self.seed,
            version=self.version, device=x.device,
        )  # fmt: skip
        attack.verbose = False
        if self.stages:
            attack.attacks_to_run = [stage for stage in attack.attacks_to_run if stage in self.stages]
            if not attack.attacks_to_run:
                raise SoupvizError(f"AutoAttack's {self.version} version has none of the stages {self.stages}.")
        report_iterations([_runner(attack, stage) for stage in attack.attacks_to_run],
                          sum(_planned(attack, stage) for stage in attack.attacks_to_run), self.report)
        logger, notes = logging.getLogger("auto-attack"), _Notes()
        logger.addHandler(notes)
        propagate, logger.propagate = logger.propagate, False
        try:
            with torch.random.fork_rng(devices=seeded_devices(x)):
                x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=max(1, x.shape[0]))
        finally:
            logger.removeHandler(notes)
            logger.propagate = propagate
        for message in dict.fromkeys(notes.messages):
            warnings.warn(f"AutoAttack: {message}", RuntimeWarning, stacklevel=3)
        return x_adv


def _runner(attack: _AutoAttack, stage: str) -> Any:
    """The pyautoattack object that runs `stage` of `attack`."""
    return {"apgd-ce": attack.apgd, "apgd-dlr": attack.apgd, "apgd-t": attack.apgd_targeted,
            "fab": attack.fab, "fab-t": attack.fab, "square": attack.square}[stage]


def _planned(attack: _AutoAttack, stage: str) -> float:
    """The iterations `stage` of `attack` takes as its version configures it (FAB-T with one restart
    per target class, as AutoAttack runs it)."""
    runner = _runner(attack, stage)
    if stage == "apgd-t":
        return planned_iterations(runner, runner.n_target_classes * runner.n_restarts)
    if stage == "fab-t":
        return planned_iterations(runner, runner.n_target_classes)
    return planned_iterations(runner, 1 if stage == "square" else runner.n_restarts)


class _Notes(logging.Handler):
    """Collects AutoAttack's sanity-check warnings (randomised or dynamic defence, zero
    gradients, Square beating the gradient attacks) to re-raise them as Python warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
