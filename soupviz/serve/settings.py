"""Evaluation settings and the environment overrides the dashboard and the benches start from:
the family opened first ($SOUPVIZ_FAMILY, else the first family shipped in assets/families), the
attacks the dashboard offers, and the subset size, attack steps and device of every measurement
($SOUPVIZ_EVAL_IMAGES, $SOUPVIZ_EVAL_STEPS, $SOUPVIZ_DEVICE). Session-state keys live in pages/_state.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

FAMILIES_DIR = Path(__file__).resolve().parents[2] / "assets" / "families"
FAMILY_ENV = "SOUPVIZ_FAMILY"
EVAL_IMAGES_ENV = "SOUPVIZ_EVAL_IMAGES"
EVAL_STEPS_ENV = "SOUPVIZ_EVAL_STEPS"
DEVICE_ENV = "SOUPVIZ_DEVICE"
# Attacks the dashboard offers: each runs with a chosen number of steps (AutoAttack is for the CLI);
# 'default' is each threat's measured default chain (soupviz.attacks.defaults), steps included.
ATTACK_CHOICES = ("pgd", "default", "pgd-t", "pgd-dlr", "apgd-ce", "apgd-dlr", "apgd-t", "apgd-ce+apgd-t")
ATTACK_NAMES = {"pgd": "PGD (ours): fast preview, overstates robustness",
                "default": "Default: within 1 point of AutoAttack (slower)",
                "pgd-t": "PGD-T (ours, targeted DLR)", "pgd-dlr": "PGD on the DLR loss", "apgd-ce": "APGD-CE",
                "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T (targeted)",
                "apgd-ce+apgd-t": "APGD-CE, then APGD-T on survivors"}


@dataclass(frozen=True)
class EvalSettings:
    """What every dashboard number is measured with (the sidebar's 'Evaluation budget').

    `images` test images drawn with `seed`; robust accuracy by `attack` with `steps` steps at
    the paper's budgets; `batch_size` images per batch, small so a slider move interrupts a
    running attack within one batch; corruptions at `severity`.
    """

    images: int = 200
    seed: int = 0
    attack: str = "pgd"
    steps: int = 10
    batch_size: int = 32
    batchnorm: str = "mix"
    device: str = "auto"
    corruptions: tuple[str, ...] = ("gaussian_noise", "fog")
    severity: int = 3
    calibration_images: int = 512

    def context(self, family: str, data: str) -> str:
        """A key naming the images, soup and settings an evaluator depends on."""
        return "|".join(map(str, (family, data, self.images, self.seed, self.batch_size, self.batchnorm, self.device)))


def default_settings() -> EvalSettings:
    """Defaults; SOUPVIZ_EVAL_IMAGES, SOUPVIZ_EVAL_STEPS and SOUPVIZ_DEVICE override the subset
    size, the attack steps and the device."""
    images, steps = os.environ.get(EVAL_IMAGES_ENV, ""), os.environ.get(EVAL_STEPS_ENV, "")
    return EvalSettings(
        images=int(images) if images.isdigit() and int(images) > 0 else EvalSettings.images,
        steps=int(steps) if steps.isdigit() and int(steps) > 0 else EvalSettings.steps,
        device=os.environ.get(DEVICE_ENV) or EvalSettings.device,
    )


def shipped_family_folder() -> Path | None:
    """The family the dashboard starts on: $SOUPVIZ_FAMILY, else the first family folder
    shipped in assets/families, else None."""
    override = os.environ.get(FAMILY_ENV)
    if override:
        return Path(override).expanduser()
    folders = sorted(p for p in FAMILIES_DIR.glob("*") if p.is_dir() and any(p.glob("*.safetensors")))
    return folders[0] if folders else None
