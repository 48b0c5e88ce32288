"""Dashboard state without Streamlit: environment settings, evaluation defaults, session-state
key names (all in one place), soup presets, keeping slider weights on the simplex, and the
current soup as a URL query string. Pages read and write state only through these names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from soupviz.errors import SoupWeightsError
from soupviz.soup import DEFAULT_MARGIN, check_weights

FAMILIES_DIR = Path(__file__).resolve().parent.parent / "assets" / "families"
FAMILY_ENV = "SOUPVIZ_FAMILY"
EVAL_IMAGES_ENV = "SOUPVIZ_EVAL_IMAGES"
EVAL_STEPS_ENV = "SOUPVIZ_EVAL_STEPS"
DEVICE_ENV = "SOUPVIZ_DEVICE"
DECIMALS = 3  # slider weights are kept to 3 decimals, so a soup reads (and caches) the same way
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
    PRESET = "soup_preset"  # a one-off jump: reset after use
    EXTRAPOLATE = "extrapolate"
    MARGIN = "extrapolate_margin"
    URL_READ = "url_weights_read"  # the query string was read once this session
    EVALUATOR = "session_evaluator"  # (context key, Evaluator): one soup per session
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


def tidy(weights: Sequence[float], keep: int | None = None) -> list[float]:
    """Weights rounded to `DECIMALS` that still sum to 1: the rounding residue goes to the
    largest weight other than `keep` (the one the user just set)."""
    rounded = [round(float(w), DECIMALS) for w in weights]
    residue = round(1.0 - sum(rounded), DECIMALS)
    if residue and len(rounded) > 1:
        others = [i for i in range(len(rounded)) if i != keep] or list(range(len(rounded)))
        target = max(others, key=lambda i: abs(rounded[i]))
        rounded[target] = round(rounded[target] + residue, DECIMALS)
    return [w + 0.0 for w in rounded]  # no -0.0 in labels


def bounds(extrapolate: bool, margin: float = DEFAULT_MARGIN) -> tuple[float, float]:
    """The range a weight may take: [0, 1], or [-margin, 1 + margin] when extrapolating."""
    return (-margin, 1.0 + margin) if extrapolate else (0.0, 1.0)


def _fill(targets: Sequence[float], total: float, low: float, high: float) -> list[float]:
    """clip(t + λ, low, high) with the shift λ chosen by bisection so the values sum to `total`."""
    lo, hi = low - max(targets) - 1, high - min(targets) + 1
    for _ in range(100):
        shift = (lo + hi) / 2
        if sum(min(high, max(low, t + shift)) for t in targets) < total:
            lo = shift
        else:
            hi = shift
    return [min(high, max(low, t + (lo + hi) / 2)) for t in targets]


def rebalance(weights: Sequence[float], index: int, value: float, low: float = 0.0, high: float = 1.0) -> list[float]:
    """Weights after the user sets weight `index` to `value`, kept summing to 1 within [low, high].

    The other weights keep their proportions where they can (scaled to fill 1 - value), else
    share it equally; they are then shifted as little as possible to stay within the bounds.
    `value` itself is limited to what the others can balance.

    Example:
        >>> rebalance([0.5, 0.5, 0.0], 0, 0.8)
        [0.8, 0.2, 0.0]
    """
    k = len(weights)
    if k == 1:
        return [1.0]
    value = min(max(value, 1 - (k - 1) * high, low), 1 - (k - 1) * low, high)
    others = [float(w) for i, w in enumerate(weights) if i != index]
    rest, before = 1.0 - value, sum(others)
    targets = [w * rest / before for w in others] if abs(before) > 1e-9 else [rest / (k - 1)] * (k - 1)
    filled = iter(_fill(targets, rest, low, high))
    return tidy([value if i == index else next(filled) for i in range(k)], keep=index)


def project(weights: Sequence[float], low: float = 0.0, high: float = 1.0) -> list[float]:
    """The nearest weights (Euclidean) summing to 1 within [low, high], e.g. when extrapolation
    is switched off with a negative weight on."""
    shift = (1.0 - sum(weights)) / len(weights)
    return tidy(_fill([float(w) + shift for w in weights], 1.0, low, high))


def uniform(k: int) -> list[float]:
    """The uniform soup of k ingredients, to `DECIMALS`."""
    return tidy([1.0 / k] * k)


def presets(threats: Sequence[str], labels: Sequence[str]) -> list[tuple[str, list[float]]]:
    """Named soups to start from: each ingredient, the uniform soup, and the paper's pairs,
    half the L∞ base (or the first ingredient) with half of each other ingredient."""
    k = len(labels)
    one_hot = [[1.0 if i == j else 0.0 for i in range(k)] for j in range(k)]
    chosen = [(label, one_hot[j]) for j, label in enumerate(labels)]
    if k > 1:
        chosen.append(("uniform soup", uniform(k)))
        base = list(threats).index("linf") if "linf" in threats else 0
        for j in range(k):
            if j != base:
                pair = [0.5 if i in (base, j) else 0.0 for i in range(k)]
                chosen.append((f"½ {labels[base]} + ½ {labels[j]}", pair))
    return chosen


def weights_to_query(weights: Sequence[float]) -> str:
    """The query-string value of a soup, e.g. '0.5,0.5,0,0'."""
    return ",".join(f"{float(w):.6g}" for w in weights)


def weights_from_query(text: str, k: int, margin: float = DEFAULT_MARGIN) -> list[float]:
    """Read a soup written by `weights_to_query` for a family of `k` ingredients.

    Weights may lie outside [0, 1] (extrapolation) within `margin`.

    Raises:
        SoupWeightsError: one sentence saying what is wrong with the link's weights.
    """
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise SoupWeightsError(f"The link's soup weights {text!r} are not numbers separated by commas.") from error
    if len(values) != k:
        raise SoupWeightsError(f"The link's soup has {len(values)} weights but this family has {k} ingredients.")
    check_weights(values, k, extrapolate=True, margin=margin, normalise=True)
    return tidy([v / sum(values) for v in values])


def is_extrapolated(weights: Sequence[float]) -> bool:
    """Whether any weight lies outside [0, 1]."""
    return any(w < -1e-12 or w > 1 + 1e-12 for w in weights)

