"""What a training run is: `TrainConfig` (recorded as the recipe in the checkpoint's card), its
checks, and the learning-rate schedules. `soupviz.train` runs it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from soupviz.errors import SoupvizError
from soupviz.threats import THREATS
from soupviz.train_losses import LRAT_WEIGHTINGS, METHODS, VULNERABILITIES, LratWeighting

SCHEDULES = ("piecewise", "cosine", "cyclic", "constant")


@dataclass
class TrainConfig:
    """Everything that defines a training run; recorded in the checkpoint's card.

    `threat` is 'none' for nominal training; `eps` None means the paper's budget for the
    threat. `attack_steps` None means 10 (1 for 'fgsm'). `parent` is a checkpoint path to
    fine-tune from (its architecture is used). `warmup` is the fraction of iterations with a
    linear ramp. Validation uses `val_images` training images held out from training.

    TRADES: `trades_beta` weighs the KL term (6.0, the authors' CIFAR-10 value). LRAT: each
    instance is paired with one PGD variant for `threat` and one for each extra entry of
    `lrat_threats` (at its default budget); `lrat_c`, `lrat_floor`, `lrat_g`,
    `lrat_temperature` and `lrat_vulnerability` are passed to `train_losses.lrat_weights`.
    """

    name: str
    out: str
    threat: str = "linf"
    method: str = "pgd"
    eps: float | None = None
    attack_steps: int | None = None
    attack_step_size: float | None = None
    trades_beta: float = 6.0
    lrat_threats: list[str] = field(default_factory=list)
    lrat_c: float = 1.0
    lrat_floor: float = 0.1
    lrat_g: str = "linear"
    lrat_temperature: float = 0.25
    lrat_vulnerability: str = "prob"
    arch: str = "preact_resnet_small"
    parent: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    schedule: str = "piecewise"
    warmup: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    train_images: int | None = None
    val_images: int = 500
    val_steps: int = 10
    select: str = "best"
    data: str | None = None
    device: str = "auto"
    seed: int = 0
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.attack_steps is None:
            self.attack_steps = 1 if self.method == "fgsm" else 10

    def validate(self) -> None:
        """Raise a `SoupvizError` naming the first setting that cannot work."""
        unknown = [t for t in self.lrat_threats if t not in THREATS]
        checks = (
            (self.method in METHODS,
             f"Unknown training method {self.method!r}: use one of {', '.join(METHODS)}."),
            (self.schedule in SCHEDULES,
             f"Unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}."),
            ((self.threat == "none") == (self.method == "standard"),
             "Nominal training is threat 'none' with method 'standard', and only that pair."),
            (self.select in ("best", "last"),
             f"--select must be 'best' or 'last', not {self.select!r}."),
            (self.method != "fgsm" or self.attack_steps == 1,
             "Method 'fgsm' takes one attack step: drop --attack-steps or use --method pgd."),
            (min(self.attack_steps, self.epochs, self.batch_size) >= 1,
             "--attack-steps, --epochs and --batch-size must each be at least 1."),
            (not unknown,
             f"Unknown LRAT threat {unknown[:1]}: use names from {', '.join(THREATS)}."),
            (self.lrat_g in LRAT_WEIGHTINGS,
             f"--lrat-g must be one of {', '.join(LRAT_WEIGHTINGS)}, not {self.lrat_g!r}."),
            (self.lrat_vulnerability in VULNERABILITIES,
             f"--lrat-vulnerability must be one of {', '.join(VULNERABILITIES)}."),
            (self.lrat_c > 0 and self.lrat_floor >= 0 and self.lrat_temperature > 0,
             "LRAT needs --lrat-c > 0, --lrat-floor >= 0 and --lrat-temperature > 0."),
            (self.trades_beta >= 0, "--trades-beta must be non-negative."),
        )
        for ok, message in checks:
            if not ok:
                raise SoupvizError(message)

    def lrat_weighting(self) -> LratWeighting:
        """The LRAT settings as `train_losses.batch_loss` takes them."""
        return LratWeighting(
            c=self.lrat_c,
            floor=self.lrat_floor,
            g=self.lrat_g,
            temperature=self.lrat_temperature,
            vulnerability=self.lrat_vulnerability,
        )


def learning_rate(config: TrainConfig, progress: float) -> float:
    """Learning rate at `progress` in [0, 1] of all iterations.

    'piecewise': ÷10 at 50 % and 75 % (the paper's 100/150 of 200 epochs); 'cosine' and
    'cyclic' (linear decay to 0) start after the linear warm-up; 'constant'.
    """
    if config.warmup > 0 and progress < config.warmup:
        return config.lr * progress / config.warmup
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "piecewise":
        return config.lr * (0.1 if progress >= 0.5 else 1.0) * (0.1 if progress >= 0.75 else 1.0)
    rest = (progress - config.warmup) / max(1e-12, 1 - config.warmup)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * rest))
    return config.lr * max(0.0, 1 - rest)
