"""Saliency: the input gradient of each ingredient and of the current soup on the same images,
side by side, with each model's prediction under its map. Robust models' maps look like the
object; the nominal model's look like noise (Tsipras et al. 2019)."""

import streamlit as st

from pages._components import keep_page_state, session_evaluator
from pages._insight import (
    current_soup,
    evaluator_context,
    pick_images,
    picker_defaults,
    result_store,
    test_split,
)
from pages._state import Keys
from pages._widgets import figure_panel, with_progress
from soupviz import SaliencySettings
from soupviz.errors import SoupvizError
from soupviz.serve.insight_runs import request_key, saliency_panels, saliency_view, tensor_digest

METHODS = {"loss": "Loss gradient", "saliency": "Saliency", "smoothgrad": "SmoothGrad",
           "integrated_gradients": "Integrated Gradients"}
MODES = {"abs": "absolute", "signed": "signed"}
CLIPS = {"percentile": "percentile", "std": "± std (paper)", "minmax": "min-max"}

st.title("Saliency")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, paper = evaluator.family, st.session_state.get(Keys.PAPER, False)
split = test_split()
if split is None:
    st.stop()
DEFAULTS = SaliencySettings()
keep_page_state({**picker_defaults(Keys.SALIENCY_IMAGES, split), Keys.SALIENCY_METHOD: DEFAULTS.method,
                 Keys.SALIENCY_MODE: DEFAULTS.mode, Keys.SALIENCY_CLIP: DEFAULTS.clip,
                 Keys.SALIENCY_PERCENTILE: DEFAULTS.percentile, Keys.SALIENCY_SAMPLES: DEFAULTS.nt_samples,
                 Keys.SALIENCY_NOISE: DEFAULTS.noise, Keys.SALIENCY_IG_STEPS: DEFAULTS.ig_steps})
weights, _, _ = current_soup(family)
picked = pick_images(split, Keys.SALIENCY_IMAGES)
a, b, c = st.columns([2, 1, 1])
method = a.radio("Map", list(METHODS), format_func=METHODS.get, key=Keys.SALIENCY_METHOD, horizontal=True,
                 help="Loss gradient: ∂CE/∂x on the true label (the paper). The others are Captum's, on the true "
                      "class's logit.")
mode = b.radio("Sign", list(MODES), format_func=MODES.get, key=Keys.SALIENCY_MODE, horizontal=True)
clip = c.radio("Scaling", list(CLIPS), format_func=CLIPS.get, key=Keys.SALIENCY_CLIP, horizontal=True)
with st.expander("Method settings"):
    x, y, z, w = st.columns(4)
    x.slider("Clip percentile", 90.0, 100.0, step=0.5, key=Keys.SALIENCY_PERCENTILE, disabled=clip != "percentile")
    y.number_input("SmoothGrad samples", 1, 128, key=Keys.SALIENCY_SAMPLES)
    z.number_input("SmoothGrad noise σ", 0.0, 1.0, step=0.05, key=Keys.SALIENCY_NOISE)
    w.number_input("Integrated Gradients steps", 2, 256, key=Keys.SALIENCY_IG_STEPS)
state = st.session_state
try:
    s = SaliencySettings(method, mode, clip, state[Keys.SALIENCY_PERCENTILE],
                         nt_samples=int(state[Keys.SALIENCY_SAMPLES]), noise=float(state[Keys.SALIENCY_NOISE]),
                         ig_steps=int(state[Keys.SALIENCY_IG_STEPS]), seed=evaluator.seed)
except SoupvizError as error:
    st.error(str(error))
    st.stop()
if picked is None:
    st.stop()
images, labels, names = picked
key = request_key("saliency", evaluator_context(), tuple(weights), tensor_digest(images), tuple(labels), s)
panels = result_store().get(key)
if panels is None:
    panels = with_progress("Saliency", lambda report: saliency_panels(
        evaluator.soup, images, labels, weights, s, names=family.names, report=report))
    result_store().put(key, panels)
fig = saliency_view(family, images, labels, names, panels, settings=s, classes=split.classes, weights=weights,
                    paper=paper)
figure_panel(fig, Keys.SALIENCY_CHART, width="content")
st.caption(f"**Map:** {s.method_label}. **Display:** {s.normalisation_label}. Under each map, the model's "
           "prediction and softmax confidence (green: right, orange: wrong).")
st.info("What to look for: a robust model's gradient traces the object (edges, shape), so its map looks like "
        "the picture; the nominal model's is scattered noise. Soups in between show how much of that they keep.")
