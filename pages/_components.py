"""Streamlit glue shared by every page: cached heavy objects (family, parameter matrix, images:
shared across sessions, treated read-only), the session's own evaluator, the data source and
the shared sidebar with the evaluation budget. Pages call these; the library computes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from pages._state import Keys
from soupviz import BuiltEvaluator, Evaluator, open_evaluator, open_family
from soupviz.checkpoints.families import Ingredient, SoupFamily, baselines_folder, load_baselines
from soupviz.checkpoints.importing import folder_stamp
from soupviz.corruptions.cifar_c import corruption_label, corruption_names
from soupviz.data import ImageSet, load_split, resolve_source
from soupviz.device import describe_device, pick_device
from soupviz.errors import DataError, SoupvizError
from soupviz.present.places import family_title, portable, source_name
from soupviz.serve.background import Lane, Slots
from soupviz.serve.settings import ATTACK_CHOICES, ATTACK_NAMES, EvalSettings, default_settings, shipped_family_folder
from soupviz.serve.uploads import typed_family_folder
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.weights import weights_key

HOME = "pages/home.py"


@st.cache_resource(show_spinner="Loading the family…", max_entries=8)
def cached_family(folder: str, stamp: str) -> SoupFamily:
    """The family in `folder` (`stamp` changes when its files do), foreign checkpoints imported
    first (`checkpoints.importing.open_family`). Shared: do not modify."""
    return open_family(folder)


@st.cache_resource(show_spinner="Loading the baselines…", max_entries=8)
def cached_baselines(folder: str, stamp: str, baselines_stamp: str) -> list[Ingredient]:
    """The family's baselines (models outside the soup, such as SAT). Shared: do not modify."""
    return load_baselines(cached_family(folder, stamp))


def family_baselines(family: SoupFamily) -> list[Ingredient]:
    """The chosen family's baselines; empty (with the reason shown) when they cannot be loaded."""
    folder = baselines_folder(family)
    if folder is None or not folder.is_dir():
        return []
    try:
        return cached_baselines(str(family.folder), folder_stamp(family.folder), folder_stamp(folder))
    except SoupvizError as error:
        st.warning(f"The baselines could not be loaded: {error}")
        return []


@st.cache_resource(show_spinner="Stacking the ingredients' parameters…", max_entries=8)
def cached_params(folder: str, stamp: str, device: str) -> ParameterMatrix:
    """The family's K x P parameter matrix on `device`. Shared and read-only: soups mix from it."""
    return ParameterMatrix.from_family(cached_family(folder, stamp), device)


@st.cache_resource(show_spinner="Loading images…", max_entries=16)
def cached_images(source: str, split: str, n: int, seed: int) -> ImageSet:
    """A fixed subset of `n` images of a split, drawn with `seed`. Shared: do not modify."""
    return load_split(source, split).subset(n, seed)


@st.cache_resource(show_spinner=False)
def cached_device(requested: str) -> torch.device:
    return pick_device(requested)


def keep_page_state(defaults: Mapping[str, object] | None = None) -> None:
    """Keep the values of page widgets while the user visits other pages: the one way pages do it.

    Streamlit drops the value of a widget a run does not draw, and may remount a drawn one from
    its default after a page switch; so dashboard.py calls this at the top of every run, and for each
    key of `Keys.KEPT` and each key a page has named it re-assigns the value the session holds
    and backs it up, or, where Streamlit dropped it, puts the backed-up value back. A page names
    its widgets' keys with their `defaults` at its top, before drawing them: a key with no value
    yet gets its default. A page's call touches only the keys it names: the sidebar's widgets are
    drawn by then, and Streamlit refuses a write to a drawn widget's key.
    """
    state = st.session_state
    kept = {**(defaults or {}), **state.get(Keys.KEPT_VALUES, {})}
    for key in dict.fromkeys((*Keys.KEPT, *kept) if defaults is None else defaults):
        if key in state:
            state[key] = kept[key] = state[key]
        elif key in kept:
            state[key] = kept[key]
    state[Keys.KEPT_VALUES] = kept


def family_folder() -> Path | None:
    """The folder of the family chosen on the home page (shipped, typed, or uploaded).

    Raises:
        CheckpointError: a typed folder outside $SOUPVIZ_ROOTS.
    """
    source = st.session_state.get(Keys.FAMILY_SOURCE, "shipped")
    if source == "folder":
        text = st.session_state.get(Keys.FAMILY_PATH, "").strip()
        return typed_family_folder(text) if text else None
    if source == "upload":  # None once the upload is gone (removed as unused by another session)
        folder = st.session_state.get(Keys.UPLOAD_FOLDER)
        return folder if folder is not None and Path(folder).is_dir() else None
    return shipped_family_folder()


def current_family(show_errors: bool = True) -> tuple[SoupFamily, str, str] | None:
    """(family, folder, stamp) of the chosen family, or None after explaining why not."""
    try:
        folder = family_folder()
        if folder is None:
            if show_errors:
                st.info("No family is chosen yet: pick one on the Home page.")
            return None
        return cached_family(str(folder), folder_stamp(folder)), str(folder), folder_stamp(folder)
    except SoupvizError as error:
        if show_errors:
            st.error(str(error))
        return None


def data_source() -> str:
    """Where test images come from: the home page's text box, else SOUPVIZ_DATA or a local copy.

    Raises:
        DataError: no data could be found.
    """
    return resolve_source(st.session_state.get(Keys.DATA_PATH, "").strip() or None)


def readable(text: str) -> str:
    """`text` with absolute data paths written from the data source as the user named it
    (`present.places.portable`): no server folder on screen."""
    return portable(text, source_name(st.session_state.get(Keys.DATA_PATH, "").strip() or None))


def family_name(family: SoupFamily) -> str:
    """What the chosen family is called on screen: the shipped one by its display title
    (`present.places.family_title`, not its folder's slug), a folder or upload by the name the user gave it."""
    chosen = st.session_state.get(Keys.FAMILY_SOURCE, "shipped") == "shipped"
    return family_title(family) if chosen else family.name


def settings() -> EvalSettings:
    """The evaluation budget set in the sidebar (defaults before the sidebar is drawn)."""
    base, state = default_settings(), st.session_state
    return EvalSettings(
        images=int(state.get(Keys.IMAGES, base.images)), seed=int(state.get(Keys.SEED, base.seed)),
        attack=state.get(Keys.ATTACK, base.attack), steps=int(state.get(Keys.STEPS, base.steps)),
        batchnorm=state.get(Keys.BATCHNORM, base.batchnorm), device=state.get(Keys.DEVICE, base.device),
        corruptions=tuple(state.get(Keys.CORRUPTIONS, base.corruptions)),
        severity=int(state.get(Keys.SEVERITY, base.severity)),
    )


def session_lock() -> threading.RLock:
    """The lock that serialises this session's evaluations.

    A widget change starts a new script run in a new thread while the interrupted run is still
    computing up to its next Streamlit call; both would drive the session's one soup (whose
    `set_weights` mutates it) and record each other's numbers. Every evaluation holds this lock.
    """
    lock = st.session_state.get(Keys.LOCK)
    if lock is None:
        lock = st.session_state[Keys.LOCK] = threading.RLock()
    return lock


def _session_build() -> tuple[str, Callable[[], Evaluator]] | None:
    """The key of what this session's evaluators depend on and a function building one; None
    (with the reason shown and a link home) when the family or the data is missing."""
    chosen = current_family()
    if chosen is None:
        st.page_link(HOME, label="Choose a family on the Home page", icon="🏠")
        return None
    family, folder, stamp = chosen
    s = settings()
    try:
        source = data_source()
        device = cached_device(s.device)
    except DataError as error:
        st.warning(f"{error} The Home page explains how to get the data.")
        st.page_link(HOME, label="Set up the data on the Home page", icon="🏠")
        return None

    def build() -> Evaluator:
        images = cached_images(source, "test", s.images, s.seed)
        train = cached_images(source, "train", s.calibration_images, s.seed) if s.batchnorm == "reestimate" else None
        params = cached_params(folder, stamp, str(device))
        return open_evaluator(family, test=images, train=train, params=params, seed=s.seed,
                              batch_size=s.batch_size, batchnorm=s.batchnorm)

    return s.context(f"{folder}:{stamp}", source), build


def session_evaluator() -> Evaluator | None:
    """This session's evaluator for the chosen family, data and budget, built once per change;
    None (with the reason shown and a link home) when the family or the data is missing."""
    made = _session_build()
    if made is None:
        return None
    context, build = made
    held = st.session_state.get(Keys.EVALUATOR)
    if held is not None and held.context == context:
        return held.evaluator
    try:
        with st.spinner("Preparing the soup…"):
            evaluator = build()
    except DataError as error:
        st.warning(f"{error} The Home page explains how to get the data.")
        st.page_link(HOME, label="Set up the data on the Home page", icon="🏠")
        return None
    except SoupvizError as error:
        st.error(str(error))
        return None
    st.session_state[Keys.EVALUATOR] = BuiltEvaluator(context, evaluator)
    return evaluator


@st.cache_resource(show_spinner=False)
def lane_slots() -> Slots:
    """How many sessions' background evaluations run at once on this server: one per two cores
    (each evaluation already uses the cores it can), at least one."""
    return Slots(max(1, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class HeldResults:
    """What a page evaluated on 'Evaluate', kept across reruns with the `request` (the choices)
    it answers, so the page can say when the choices have changed since."""

    request: tuple
    soups: list = field(default_factory=list)
    specs: list = field(default_factory=list)
    records: list = field(default_factory=list)
    ensembles: list = field(default_factory=list)
    baselines: list = field(default_factory=list)
    merges: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltLane:
    """A session's lane with the key of what its evaluator was built for."""

    context: str
    lane: Lane


def session_lane() -> Lane | None:
    """This session's background lane, with an evaluator of its own (same family, images and
    budget as `session_evaluator`), rebuilt when those change; the old lane's job is cancelled.
    None when the session has no evaluator."""
    made = _session_build()
    if made is None:
        return None
    context, build = made
    held = st.session_state.get(Keys.LANE)
    if held is not None and held.context == context:
        return held.lane
    if held is not None:
        held.lane.close()
    try:
        evaluator = build()
    except SoupvizError as error:
        st.error(str(error))
        return None
    lane = Lane(evaluator.evaluate, lane_slots())
    st.session_state[Keys.LANE] = BuiltLane(context, lane)
    return lane


def sidebar() -> None:
    """The evaluation budget and figure style shared by all pages."""
    base = default_settings()
    defaults = {
        Keys.IMAGES: base.images, Keys.SEED: base.seed, Keys.ATTACK: base.attack, Keys.STEPS: base.steps,
        Keys.BATCHNORM: base.batchnorm, Keys.DEVICE: base.device, Keys.CORRUPTIONS: list(base.corruptions),
        Keys.SEVERITY: base.severity, Keys.PAPER: False,
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    with st.sidebar:
        st.toggle("Paper style", key=Keys.PAPER,
                  help="White theme, larger fonts, colour-blind-safe palette, for figures you export.")
        with st.expander("Evaluation budget", expanded=False):
            st.number_input("Test images", min_value=10, max_value=10000, step=50, key=Keys.IMAGES,
                            help="A fixed, seeded subset: every soup is compared on the same images.")
            st.selectbox("Attack", ATTACK_CHOICES, key=Keys.ATTACK, format_func=ATTACK_NAMES.get,
                         help="Robust accuracies are upper bounds by this attack; a stronger attack gives a "
                         "tighter bound. Default is each threat's attack measured within 1 point of "
                         "AutoAttack on the shipped models (bench/results/attack_strength.md).")
            st.number_input("Attack steps", min_value=1, max_value=200, key=Keys.STEPS,
                            help="Iterations of the chosen attack; Default has its own.")
            st.multiselect("Corruptions", corruption_names(), key=Keys.CORRUPTIONS, format_func=corruption_label)
            st.slider("Corruption severity", 1, 5, key=Keys.SEVERITY)
            st.number_input("Seed", min_value=0, max_value=2**31 - 1, key=Keys.SEED)
            st.radio("BatchNorm statistics", ("mix", "reestimate"), key=Keys.BATCHNORM, horizontal=True,
                     format_func={"mix": "mix (log-variance)", "reestimate": "re-estimate"}.get,
                     help="The paper does not say. Mixing: means like the weights, variances in log space "
                     "(positive outside the simplex too); re-estimating uses clean training images per soup.")
            st.selectbox("Device", ("auto", "cpu", "cuda"), key=Keys.DEVICE)
        held = st.session_state.get(Keys.EVALUATOR)
        st.caption(describe_device(cached_device(st.session_state[Keys.DEVICE])) if torch.cuda.is_available()
                   or st.session_state[Keys.DEVICE] != "cuda" else "No GPU here: choose cpu or auto.")
        if held is not None:
            st.caption(readable(f"{held.evaluator.images_label}. {held.evaluator.soup.bn_label}"))


@st.cache_data(show_spinner=False, max_entries=4096)
def _cached_records(context: str, weights: tuple, spec_keys: tuple, _evaluator: Evaluator, _specs: tuple) -> list:
    with session_lock(), lane_slots().foreground():  # the background lanes wait for this number
        return _evaluator.evaluate([list(w) for w in weights], list(_specs))


def quick_records(evaluator: Evaluator, weights: list[list[float]], specs: list) -> list:
    """Records of fast metrics (clean accuracy) without a progress bar, memoised per session
    context in memory on top of the evaluator's disk cache."""
    context = st.session_state[Keys.EVALUATOR].context
    rows = tuple(weights_key(row) for row in weights)
    return _cached_records(context, rows, tuple(spec.key for spec in specs), evaluator, tuple(specs))
