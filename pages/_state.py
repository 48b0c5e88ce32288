"""Every key the dashboard keeps, named in one place: session-state keys (widgets use them as
their `key`) and the query-string parameter that carries the soup's weights. Pages and their
helpers read and write state only through these names; the library never needs them.
"""

from __future__ import annotations

QUERY_WEIGHTS = "w"  # the soup's weights in the page's URL (`soupviz.weights.weights_to_query`)


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
    STORED_PICK = "stored_pick"  # explorer: a stored soup to move the sliders to (a one-off jump)
    STORED_MOVED = "stored_moved"  # a pick moved the sliders: rerun the whole page

    @staticmethod
    def slider(index: int) -> str:
        """The key of the weight slider of ingredient `index`."""
        return f"weight_slider_{index}"

    @staticmethod
    def budgets(threat: str) -> str:
        """The key of the heatmap's budget list for `threat`."""
        return f"heatmap_budgets_{threat}"
