"""Dashboard state without Streamlit: environment settings, evaluation defaults and session-state
key names (all in one place). Pages read and write state only through these names; the maths of
the soup's weights (sliders, presets, query string) lives in `soupviz.weights`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

FAMILIES_DIR = Path(__file__).resolve().parent.parent / "assets" / "families"
FAMILY_ENV = "SOUPVIZ_FAMILY"
EVAL_IMAGES_ENV = "SOUPVIZ_EVAL_IMAGES"
EVAL_STEPS_ENV = "SOUPVIZ_EVAL_STEPS"
DEVICE_ENV = "SOUPVIZ_DEVICE"
QUERY_WEIGHTS = "w"
# Attacks the dashboard offers: each runs with a chosen number of steps (AutoAttack is for the CLI);
# 'default' is each threat's measured default chain (soupviz.attacks.defaults), steps included.
ATTACK_CHOICES = ("pgd", "default", "pgd-t", "pgd-dlr", "apgd-ce", "apgd-dlr", "apgd-t", "apgd-ce+apgd-t")
ATTACK_NAMES = {"pgd": "PGD (ours): fast preview, overstates robustness",
                "default": "Default: within 1 point of AutoAttack (slower)",
                "pgd-t": "PGD-T (ours, targeted DLR)", "pgd-dlr": "PGD on the DLR loss", "apgd-ce": "APGD-CE",
                "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T (targeted)",
                "apgd-ce+apgd-t": "APGD-CE, then APGD-T on survivors"}


class Keys:
    """Session-state keys of the dashboard; widgets use them as their `key`."""

    FAMILY_SOURCE = "family_source"  # radio: shipped / folder / upload
    FAMILY_PATH = "family_path"  # text input: a family folder
    UPLOADS = "family_uploads"  # file uploader
    UPLOAD_FOLDER = "uploaded_family_folder"  # where the last valid upload was saved (not a widget)
    DATA_PATH = "data_path"  # text input: where CIFAR-10 comes from
    IMAGES = "eval_images"
    SEED = "eval_seed"
    ATTACK = "eval_attack"
    STEPS = "eval_steps"
    BATCHNORM = "eval_batchnorm"
    DEVICE = "eval_device"
    CORRUPTIONS = "eval_corruptions"
    SEVERITY = "eval_severity"
    PAPER = "paper_style"
    WEIGHTS = "soup_weights"  # the current soup, full list of floats (not a widget)
    SLIDER_WRITES = "slider_writes"  # sliders the page moved lately (pages/_widgets.SliderWrite by index)
    PRESET = "soup_preset"  # a one-off jump: reset after use
    EXTRAPOLATE = "extrapolate"
    MARGIN = "extrapolate_margin"
    URL_READ = "url_weights_read"  # the query string was read once this session
    EVALUATOR = "session_evaluator"  # evaluate.BuiltEvaluator: one soup per session
    LANE = "session_lane"  # pages/_components.BuiltLane: the session's background evaluations
    LOCK = "session_lock"  # serialises the session's evaluations (see pages/_components.py)
    INGREDIENT_RECORDS = "ingredient_records"
    TERNARY = "ternary_chart"  # the chart's key prefix; TERNARY_CLICKS counts clicks
    TERNARY_CLICKS = "ternary_clicks"
    TERNARY_POINTS = "ternary_points"  # weights of the drawn grid points, for clicks
    TERNARY_CORNERS = "ternary_corners"
    TERNARY_METRIC = "ternary_metric"
    GRID_STEP = "grid_step"
    SWEEP_FILE = "sweep_file"
    LINE_PAIR = "line_pair"
    LINE_POINTS = "line_points"
    LINE_METRICS = "line_metrics"
    HEATMAP_ROWS = "heatmap_rows"
    HEATMAP_RECORDS = "heatmap_records"
    TRADEOFF_THREAT = "tradeoff_threat"
    TRADEOFF_STEP = "tradeoff_step"
    TRADEOFF_MODES = "tradeoff_modes"
    TRADEOFF_RECORDS = "tradeoff_records"
    TRADEOFF_BASELINES = "tradeoff_baselines"
    PATHS_PAIR = "paths_pair"  # Home: the family pair beside the path to the unrelated network
    PATHS_PARTNER = "paths_partner"  # Home: the ingredient whose path to the unrelated network is drawn
    PATHS_CHART = "paths_chart"

    # Page widgets whose values survive visits to other pages (Streamlit drops the state of
    # widgets a run does not draw, unless the key is re-assigned every run).
    KEPT = (FAMILY_SOURCE, FAMILY_PATH, DATA_PATH, EXTRAPOLATE, MARGIN, TERNARY_CORNERS, TERNARY_METRIC,
            GRID_STEP, LINE_PAIR, LINE_METRICS, HEATMAP_ROWS, "heatmap_budgets_linf", "heatmap_budgets_l2",
            "heatmap_budgets_l1", TRADEOFF_THREAT, TRADEOFF_STEP, TRADEOFF_MODES, TRADEOFF_BASELINES)

    STORED_METRIC = "stored_metric"  # explorer: the metric the store's simplex views are coloured by
    STORED_TETRA = "stored_tetrahedron"  # the chart's key prefix; STORED_CLICKS counts clicks
    STORED_CLICKS = "stored_clicks"
    STORED_MOVED = "stored_moved"  # a click moved the sliders: rerun the whole page

    @staticmethod
    def slider(index: int) -> str:
        """The key of the weight slider of ingredient `index`."""
        return f"weight_slider_{index}"

    @staticmethod
    def budgets(threat: str) -> str:
        """The key of the heatmap's budget list for `threat`."""
        return f"heatmap_budgets_{threat}"


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
