"""What a training run is: `TrainConfig` (recorded as the recipe in the checkpoint's card), its
checks, and the learning-rate schedules. `soupviz.train.loop` runs it; each field's metadata describes
its `soupviz train` flag (help, choices, range), so the defaults live here only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from soupviz.errors import SoupvizError
from soupviz.threats import NOMINAL, THREATS
from soupviz.train.losses import LRAT_WEIGHTINGS, METHODS, VULNERABILITIES, LratWeighting

SCHEDULES = ("piecewise", "cosine", "cyclic", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


def option(
    default: Any,
    help: str = "",
    *,
    choices: Sequence[str] = (),
    low: float | None = None,
    high: float = math.inf,
    above: bool = False,
    below: bool = False,
    flag: str | None = None,
    cli: str | None = "option",
) -> Any:
    """A `TrainConfig` field with its command-line flag described in the field's metadata.

    Args:
        default: the one default of the setting (lists and dicts are copied per config).
        help: the flag's help text.
        choices: the only values accepted.
        low, high, above, below: the range of a number, [low, high]; `above`/`below` exclude
            the ends (whole numbers take `low` as their minimum).
        flag: the flag's name when it is not `--` plus the field's name with dashes.
        cli: 'option' (a flag of `soupviz train`), 'common' (a flag shared with the other
            subcommands, added by the CLI with the same default), or None (not on the command line).
    """
    metadata = {"cli": cli, "help": help, "choices": tuple(choices), "low": low, "high": high, "above": above,
                "below": below, "flag": flag}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


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
    `lrat_temperature` and `lrat_vulnerability` are passed to `train.losses.lrat_weights`.
    """

    name: str = field(metadata={"cli": "positional", "help": "checkpoint name (file stem)"})
    out: str = field(metadata={"cli": "required",
                               "help": "folder for the checkpoint, its card, log and resumable state"})
    threat: str = option("linf", choices=(NOMINAL, *THREATS))
    method: str = option("pgd", choices=METHODS, help="pgd (Madry), fgsm (one step from a random start: fast FGSM-RS), "
                         "trades, lrat, sat (one threat sampled per batch) or standard (with --threat none)")
    eps: float | None = option(None, low=0, above=True, help="budget in pixel scale (default: 8/255, 0.5, 12)")
    attack_steps: int | None = option(None, low=1, help="training attack steps (default 10, fgsm 1)")
    attack_step_size: float | None = option(None, low=0, above=True,
                                            help="default 2.5·eps/steps (1.25·eps for one step)")
    trades_beta: float = option(6.0, low=0, help="TRADES: weight of the KL term")
    lrat_threats: list[str] = option([], help="LRAT: comma-separated extra threats whose PGD variants join each "
                                     "instance's pair (the training threat is always in it), e.g. l2,l1")
    lrat_c: float = option(1.0, low=0, above=True, help="LRAT: weight budget C of each pair")
    lrat_floor: float = option(0.1, low=0, help="LRAT: lower bound of the natural weight")
    lrat_g: str = option("linear", choices=LRAT_WEIGHTINGS, help="LRAT: how the variants share the adversarial weight")
    lrat_temperature: float = option(0.25, low=0, above=True, help="LRAT: temperature of --lrat-g softmax")
    lrat_vulnerability: str = option("prob", choices=VULNERABILITIES,
                                     help="LRAT: prob (1 - p_true) or margin (sigmoid of the CW margin)")
    arch: str = option("preact_resnet_small")
    parent: str | None = option(None, flag="--from", help="checkpoint to fine-tune from")
    epochs: int = option(10, low=1)
    batch_size: int = option(128, low=1)
    lr: float = option(0.1, low=0, above=True)
    schedule: str = option("piecewise", choices=SCHEDULES)
    warmup: float = option(0.0, low=0, high=1, below=True, help="fraction of iterations with a linear warm-up")
    momentum: float = option(0.9, low=0, high=1, below=True)
    weight_decay: float = option(5e-4, low=0)
    train_images: int | None = option(None, low=1, help="train on this many images only")
    val_images: int = option(500, low=1)
    val_steps: int = option(10, low=1, help="PGD steps of the per-epoch validation")
    select: str = option("best", choices=("best", "last"),
                         help="keep the epoch with the best validation score, or the last")
    precision: str = option("auto", choices=PRECISIONS,
                            help="training arithmetic: bf16 autocast of the attack and the forward pass, or fp32; "
                                 "auto: bf16 on a GPU that has it, fp32 elsewhere (validation is always fp32)")
    data: str | None = option(None, cli="common")
    device: str = option("auto", cli="common")
    seed: int = option(0, cli="common")
    command: str = option("", cli=None)
    extra: dict[str, Any] = option({}, cli=None)

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
            (self.precision in PRECISIONS,
             f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}."),
        )
        for ok, message in checks:
            if not ok:
                raise SoupvizError(message)

    def lrat_weighting(self) -> LratWeighting:
        """The LRAT settings as `train.losses.batch_loss` takes them."""
        return LratWeighting(
            c=self.lrat_c,
            floor=self.lrat_floor,
            g=self.lrat_g,
            temperature=self.lrat_temperature,
            vulnerability=self.lrat_vulnerability,
        )


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run's `precision` on `device`, None for plain float32.

    'auto' is bfloat16 on a CUDA GPU that supports it (no loss scaling needed, unlike float16)
    and float32 elsewhere, so CPU runs stay bit-for-bit what they were; 'bf16' asked for on a
    device without it is refused.
    """
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        supported = True  # CPU autocast has bfloat16 everywhere, though it is rarely faster
    if not supported:
        if precision == "auto":
            return None
        raise SoupvizError(f"--precision bf16 was asked for but {device} has no bfloat16: use fp32 or auto.")
    return torch.bfloat16


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
