"""Every key the dashboard keeps, named in one place: session-state keys (widgets and charts use
them as their `key`) and the query-string parameter that carries the soup's weights. Pages and
their helpers read and write state only through these names; the library never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from soupviz.threats import THREATS

QUERY_WEIGHTS = "w"  # the soup's weights in the page's URL (`soupviz.soups.links.weights_to_query`)


@dataclass(frozen=True)
class PickerKeys:
    """The widget keys of one test-image picker (`pages/_insight.pick_images`), each the picker's
    prefix and the widget's name: 'saliency_source', 'saliency_classes', …"""

    prefix: str

    def _named(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    @property
    def source(self) -> str:
        """Radio: by class, by index, or an upload."""
        return self._named("source")

    @property
    def classes(self) -> str:
        return self._named("classes")

    @property
    def offset(self) -> str:
        """The image's number within its class."""
        return self._named("offset")

    @property
    def indices(self) -> str:
        return self._named("indices")

    @property
    def upload(self) -> str:
        return self._named("upload")

    @property
    def label(self) -> str:
        """The uploaded picture's class."""
        return self._named("label")


class Keys:
    """Session-state keys of the dashboard; widgets and charts use them as their
    `key`. Keys built from a value (an ingredient's index, a threat, a candidate soup) come from
    the functions below, so every spelling lives here."""

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
    LINK_PROBLEM = "link_problem"  # pages/_widgets.HeldLink: a link not honoured as given
    LINK_DISMISS = "link_dismiss"  # button: dismiss the link's message
    EVALUATOR = "session_evaluator"  # evaluate.BuiltEvaluator: one soup per session
    LANE = "session_lane"  # pages/_components.BuiltLane: the session's background evaluations
    LOCK = "session_lock"  # serialises the session's evaluations (see pages/_components.py)
    INGREDIENT_RECORDS = "ingredient_records"
    TERNARY = "ternary_chart"  # the chart's key prefix (`ternary_chart`); TERNARY_CLICKS counts clicks
    TERNARY_CLICKS = "ternary_clicks"
    TERNARY_POINTS = "ternary_points"  # weights of the drawn grid points, for clicks
    TERNARY_CORNERS = "ternary_corners"
    TERNARY_METRIC = "ternary_metric"
    GRID_STEP = "grid_step"
    SWEEP_FILE = "sweep_file"
    LINE_PAIR = "line_pair"
    LINE_METRICS = "line_metrics"
    HEATMAP_ROWS = "heatmap_rows"
    HEATMAP_RECORDS = "heatmap_records"
    TRADEOFF_THREAT = "tradeoff_threat"
    TRADEOFF_AGAINST = "tradeoff_against"
    TRADEOFF_STEP = "tradeoff_step"
    TRADEOFF_MODES = "tradeoff_modes"
    TRADEOFF_RECORDS = "tradeoff_records"
    TRADEOFF_BASELINES = "tradeoff_baselines"
    TRADEOFF_MERGES = "tradeoff_merges"  # Trade-off: task-vector merges drawn beside the linear soup
    PATHS_PAIR = "paths_pair"  # Home: the family pair beside the path to the unrelated network
    PATHS_PARTNER = "paths_partner"  # Home: the ingredient whose path to the unrelated network is drawn

    STORED_METRIC = "stored_metric"  # explorer: the metric the store's simplex views are coloured by
    STORED_PICK = "stored_pick"  # explorer: a stored soup to move the sliders to (a one-off jump)
    STORED_MOVED = "stored_moved"  # a pick moved the sliders: rerun the whole page

    # Saliency (pages/saliency.py)
    SALIENCY_IMAGES = PickerKeys("saliency")
    SALIENCY_METHOD = "saliency_method"
    SALIENCY_MODE = "saliency_mode"
    SALIENCY_CLIP = "saliency_clip"
    SALIENCY_PERCENTILE = "saliency_percentile"
    SALIENCY_SAMPLES = "saliency_samples"
    SALIENCY_NOISE = "saliency_noise"
    SALIENCY_IG_STEPS = "saliency_ig_steps"

    # Generation (pages/generation.py)
    WALK_IMAGES = PickerKeys("walk")  # the test image the walk starts from
    GENERATION_EPS = "generation_eps"
    GENERATION_STEP = "generation_step"
    GENERATION_STEPS = "generation_steps"
    GENERATION_SEED = "generation_seed"
    GENERATION_TARGET = "generation_target"
    GENERATION_FRAMES = "generation_frames"
    GENERATION_WALK = "generation_walk"  # button
    GENERATION_CLASSES = "generation_classes"
    GENERATION_PER_CLASS = "generation_per_class"
    GENERATION_FIT_IMAGES = "generation_fit_images"
    GENERATION_GENERATE = "generation_generate"  # button

    # Few-shot adaptation (pages/adaptation.py)
    ADAPT_SOURCE = "adapt_source"
    ADAPT_CORRUPTION = "adapt_corruption"
    ADAPT_SEVERITY = "adapt_severity"
    ADAPT_PER_CLASS = "adapt_per_class"
    ADAPT_FOLDER = "adapt_folder"
    ADAPT_UPLOAD = "adapt_upload"
    ADAPT_HELDOUT = "adapt_heldout"
    ADAPT_K = "adapt_k"
    ADAPT_STEP = "adapt_step"
    ADAPT_EXTRAPOLATE = "adapt_extrapolate"
    ADAPT_MARGIN = "adapt_margin"
    ADAPT_METHOD = "adapt_method"
    ADAPT_GRADIENT_STEPS = "adapt_gradient_steps"
    ADAPT_LR = "adapt_lr"
    ADAPT_BN_SHIFT = "adapt_bn_shift"
    ADAPT_REPEATS = "adapt_repeats"
    ADAPT_SEED = "adapt_seed"
    ADAPT_SEVERAL = "adapt_several"
    ADAPT_SEVERAL_GO = "adapt_several_go"  # button

    # Charts (`pages/_widgets.figure_panel`; their download buttons add a suffix, see `download`)
    LINE_CHART = "line_chart"
    PATHS_CHART = "paths_chart"  # Home: paths within the family and to the unrelated network
    HEATMAP_CHART = "heatmap_chart"
    BUDGET_CHART = "budget_chart"
    TRADEOFF_CHART = "tradeoff_chart"
    STORED_TERNARY = "stored_ternary"
    STORED_TETRAHEDRON = "stored_tetrahedron"
    STORED_HEATMAP = "stored_heatmap"
    STORED_TRADEOFF = "stored_tradeoff"
    LAYER_SWAPS = "layer_swaps"  # Merge lab: where does robustness live
    MERGE_KIND = "merge_kind"  # Merge lab, live: which merge (radio)
    MERGE_LAMBDAS = "merge_lambdas"  # Merge lab, live: task-vector coefficients
    MERGE_RECORDS = "merge_records"  # Merge lab, live: the last merge's records
    TRANSFER_HEATMAP = "transfer_heatmap"  # Merge lab: presets under transfer attacks
    SALIENCY_CHART = "saliency_chart"
    GENERATION_STRIP = "generation_strip"
    GENERATION_CLASSES_CHART = "generation_classes_chart"
    ADAPT_OUTCOMES = "adapt_outcomes"
    ADAPT_COMPOSITION = "adapt_composition"
    ADAPT_K_CURVE = "adapt_k_curve"
    ADAPT_SEVERAL_CHART = "adapt_several_chart"
    ADAPT_SEVERAL_COMPOSITION = "adapt_several_composition"

    @staticmethod
    def slider(index: int) -> str:
        """The key of the weight slider of ingredient `index`."""
        return f"weight_slider_{index}"

    @staticmethod
    def merge_group(group: str, mix: bool = False) -> str:
        """Merge lab, live: what block `group` of a layer-wise soup takes (the soup, an ingredient or
        a mix); with `mix`, the weights 'W:W:...' it takes when it takes a mix."""
        return f"merge_{'mix' if mix else 'group'}_{group}"

    @staticmethod
    def budgets(threat: str) -> str:
        """The key of the heatmap's budget list for `threat`."""
        return f"heatmap_budgets_{threat}"

    @staticmethod
    def ternary_chart(clicks: int) -> str:
        """The ternary map's key after `clicks` clicks: fresh after each, so no stale selection lingers."""
        return f"{Keys.TERNARY}_{clicks}"

    @staticmethod
    def adapt_use(candidate: str) -> str:
        """The key of the button that makes the adaptation's `candidate` soup current."""
        return f"adapt_use_{candidate}"

    @staticmethod
    def download(chart: str, fmt: str) -> str:
        """The key of the download button of `chart` in `fmt` ('csv', 'png', 'svg', 'pdf')."""
        return f"{chart}_{fmt}"

    KEPT_VALUES = "_kept_values"  # `pages/_components.keep_page_state`'s backup: kept key -> its last value

    # The sidebar's budget and style. Drawn on every run, yet a page switch can remount them in
    # the browser from their widget defaults (the number inputs' minimum: 10 images, 1 step) and
    # send those back; re-assigning them every run sends the kept value with each run instead.
    SIDEBAR = (IMAGES, SEED, ATTACK, STEPS, BATCHNORM, DEVICE, CORRUPTIONS, SEVERITY, PAPER)

    # Page widgets whose values survive visits to other pages (Streamlit drops the state of
    # widgets a run does not draw, unless the key is re-assigned every run).
    KEPT = (*SIDEBAR, FAMILY_SOURCE, FAMILY_PATH, DATA_PATH, EXTRAPOLATE, MARGIN, TERNARY_CORNERS, TERNARY_METRIC,
            GRID_STEP, LINE_PAIR, LINE_METRICS, HEATMAP_ROWS, *map(budgets, THREATS), TRADEOFF_THREAT,
            TRADEOFF_AGAINST, TRADEOFF_STEP, TRADEOFF_MODES, TRADEOFF_BASELINES, TRADEOFF_MERGES)
