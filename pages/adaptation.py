"""Few-shot soup adaptation (Croce et al. 2023): pick a shift and k labelled images per class,
choose the soup on them by `few_shot.adapt_to_shift` (grid search, then gradient steps from the
grid's choice), and compare it on held-out images of the shift with each ingredient, the uniform
soup and the best ingredient; see how the choice improves with k, and one soup for several shifts."""

import streamlit as st

from pages._components import data_source, family_name, keep_page_state, session_evaluator
from pages._insight import evaluator_context, result_store, split_id, test_split
from pages._state import Keys
from pages._widgets import figure_panel, set_soup, with_progress
from soupviz.corruptions.cifar_c import corruption_label, corruption_names
from soupviz.errors import SoupvizError
from soupviz.insight.few_shot import K_CURVE, AdaptConfig, adapt_several, adapt_to_shift
from soupviz.insight.shifts import HELDOUT_PER_CLASS, PER_CLASS, SEVERITY, ShiftData, shift_identity, upload_spec
from soupviz.present.labels import precomputed_caption
from soupviz.present.tables import outcome_table
from soupviz.progress import ProgressCallback, silent
from soupviz.serve.adaptation_views import (
    adaptation_figures,
    chosen_soups,
    grid_caption,
    k_curve_caption,
    kept_shifts,
    several_figures,
)
from soupviz.serve.insight_runs import request_key
from soupviz.serve.kept_runs import kept_run, portable_key
from soupviz.soups.weights import DEFAULT_MARGIN

SOURCES = {"corruption": "A corruption of the test images", "folder": "A folder of labelled images",
           "upload": "Upload labelled images (.zip)"}
METHODS = {"grid": "Grid search", "gradient": "Grid search, then gradient steps"}


def shifts_of(specs: list[tuple], report: ProgressCallback = silent, upload: object = None) -> list[ShiftData]:
    """The shifts `specs` name, kept for all sessions; `upload` is the file an 'upload' spec names."""
    return kept_shifts(specs, split, per_class, heldout, seed, store=result_store(), context=evaluator_context(),
                       upload=upload.getvalue() if upload is not None else None, report=report)


st.title("Few-shot soup adaptation")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, paper, state = evaluator.family, st.session_state.get(Keys.PAPER, False), st.session_state
labels, split = family.labels, test_split()
if split is None:
    st.stop()
base = AdaptConfig()
keep_page_state({Keys.ADAPT_SOURCE: "corruption", Keys.ADAPT_CORRUPTION: "fog", Keys.ADAPT_SEVERITY: SEVERITY,
                 Keys.ADAPT_FOLDER: "", Keys.ADAPT_PER_CLASS: PER_CLASS, Keys.ADAPT_HELDOUT: HELDOUT_PER_CLASS,
                 Keys.ADAPT_K: base.k, Keys.ADAPT_STEP: base.step, Keys.ADAPT_EXTRAPOLATE: False,
                 Keys.ADAPT_MARGIN: DEFAULT_MARGIN, Keys.ADAPT_METHOD: base.method,
                 Keys.ADAPT_GRADIENT_STEPS: base.gradient_steps, Keys.ADAPT_LR: base.lr,
                 Keys.ADAPT_BN_SHIFT: base.bn_on_shift, Keys.ADAPT_REPEATS: base.draws, Keys.ADAPT_SEED: evaluator.seed,
                 Keys.ADAPT_SEVERAL: ["gaussian_noise", "fog", "contrast"]})

st.subheader("Shift")
source = st.radio("Shift", list(SOURCES), format_func=SOURCES.get, key=Keys.ADAPT_SOURCE, horizontal=True,
                  label_visibility="collapsed")
a, b, c, d = st.columns(4)
upload = None
if source == "corruption":
    a.selectbox("Corruption", corruption_names(), key=Keys.ADAPT_CORRUPTION, format_func=corruption_label)
    b.slider("Severity", 1, 5, key=Keys.ADAPT_SEVERITY)
    c.number_input("Test images per class", 2, 1000, key=Keys.ADAPT_PER_CLASS,
                   help="Drawn from the test split with the seed.")
    spec = ("corruption", state[Keys.ADAPT_CORRUPTION], int(state[Keys.ADAPT_SEVERITY]))
elif source == "folder":
    a.text_input("Folder", key=Keys.ADAPT_FOLDER, placeholder="path/with/cat/, dog/, …")
    spec = ("folder", state[Keys.ADAPT_FOLDER].strip())
else:
    upload = a.file_uploader("A .zip of class folders (cat/, dog/, …)", type=["zip"], key=Keys.ADAPT_UPLOAD)
    spec = upload_spec(upload.name, upload.getvalue()) if upload else ("upload", "")
d.number_input("Held out per class", 1, 1000, key=Keys.ADAPT_HELDOUT, help="Scored, never used for choosing.")

st.subheader("Selection")
a, b, c, d = st.columns(4)
k = a.select_slider("Labelled images per class (k)", K_CURVE, key=Keys.ADAPT_K)
step = b.select_slider("Grid step", (0.5, 0.25, 0.2, 0.1), key=Keys.ADAPT_STEP)
extrapolate = c.toggle("Extrapolate", key=Keys.ADAPT_EXTRAPOLATE, help="Weights in [−margin, 1 + margin].")
margin = d.select_slider("Margin", (0.2, 0.4), key=Keys.ADAPT_MARGIN, disabled=not extrapolate)
a, b, c, d = st.columns(4)
method = a.radio("Method", list(METHODS), format_func=METHODS.get, key=Keys.ADAPT_METHOD)
gradient_steps = int(b.number_input("Gradient steps", 1, 200, key=Keys.ADAPT_GRADIENT_STEPS, disabled=method == "grid",
                                    help="Projected Adam on the weights, from the grid's choice."))
lr = float(c.number_input("Learning rate", 0.001, 1.0, step=0.01, format="%.3f", key=Keys.ADAPT_LR,
                          disabled=method == "grid"))
bn_on_shift = d.toggle("BatchNorm from the shift", key=Keys.ADAPT_BN_SHIFT,
                       help="Re-estimate BatchNorm statistics per soup on unlabelled images of the shift "
                            "(test-time adaptation; held-out images are not used).")
a, b = st.columns(2)
repeats = int(a.number_input("Draws per k (k curve)", 2, 20, key=Keys.ADAPT_REPEATS))
seed = int(b.number_input("Seed", 0, 2**31 - 1, key=Keys.ADAPT_SEED))
heldout, per_class = int(state[Keys.ADAPT_HELDOUT]), int(state[Keys.ADAPT_PER_CLASS])
try:
    config = AdaptConfig(k, step, margin if extrapolate else 0.0, method, gradient_steps, lr, bn_on_shift, K_CURVE,
                         repeats)
    st.caption(grid_caption(config, len(labels)))
except SoupvizError as error:
    st.error(str(error))
    st.stop()
key = request_key("adapt", evaluator_context(), shift_identity(spec), heldout, per_class, seed, config)
run, failed, kept = result_store().get(key), False, None
pressed = st.button("Select and report", type="primary", disabled=not spec[1])
if run is None and not pressed:
    kept = kept_run(family.folder, portable_key(family, split_id(data_source(), "test"), evaluator.soup.bn_label, spec,
                                                heldout, per_class=per_class, seed=seed, config=config))
    run = kept.run if kept else None
if pressed:
    try:
        shift = shifts_of([spec], upload=upload)[0]
        run = with_progress(f"Adapting to {shift.name}",
                            lambda report: adapt_to_shift(evaluator.soup, shift, config, labels, report))
        result_store().put(key, run)
    except SoupvizError as error:
        st.error(str(error))
        failed = True
if run is None and not failed:
    st.info("Choose the shift and the selection, then press the button.")
elif run is not None:
    if kept is not None:
        st.caption(precomputed_caption(kept.command, kept.created))
    st.caption(run.batchnorm)
    for note in run.notes:
        st.warning(note)
    figures = adaptation_figures(run, labels, family_name(family), paper)
    figure_panel(figures["outcomes"], Keys.ADAPT_OUTCOMES, width="content")
    st.table(outcome_table(run.outcomes, labels), hide_index=True)  # a static table wraps its text, never cuts it
    figure_panel(figures["composition"], Keys.ADAPT_COMPOSITION, width="content")
    chosen = chosen_soups(run)
    for column, (name, weights) in zip(st.columns(len(chosen)), chosen, strict=True):
        column.button(f"Make the {name} current", key=Keys.adapt_use(name), on_click=set_soup, args=(weights,))
    if "k-curve" in figures:
        figure_panel(figures["k-curve"], Keys.ADAPT_K_CURVE, width="content")
        st.caption(k_curve_caption(run))

st.divider()
st.subheader("One soup for several shifts")
several = st.multiselect("Corruptions", corruption_names(), key=Keys.ADAPT_SEVERAL, format_func=corruption_label,
                         help="Each at the severity above, each on its own test images; one soup of the grid is "
                              "chosen for the best mean accuracy over them, with k images per class of each.")
severity = int(state[Keys.ADAPT_SEVERITY])
specs = [("corruption", name, severity) for name in several]
key = request_key("several", evaluator_context(), specs, heldout, per_class, seed, config)
held = result_store().get(key)
if st.button("Choose one soup for these shifts", key=Keys.ADAPT_SEVERAL_GO, disabled=len(specs) < 2):
    try:
        shifts = with_progress("Corrupting", lambda report: shifts_of(specs, report))
        held = with_progress("One soup for all", lambda report: adapt_several(
            evaluator.soup, shifts, config, labels, report))
        result_store().put(key, held)
    except SoupvizError as error:
        st.error(str(error))
if held is not None:
    figures = several_figures(*held, labels, family_name(family), paper)
    figure_panel(figures["outcomes"], Keys.ADAPT_SEVERAL_CHART, width="content")
    figure_panel(figures["composition"], Keys.ADAPT_SEVERAL_COMPOSITION, width="content")
    st.table(outcome_table(held[1], labels), hide_index=True)
