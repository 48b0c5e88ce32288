"""Generation: robust models draw by large targeted L2 attacks (Santurkar et al. 2019). Walk a
test image towards a chosen class and watch the strip of intermediate images, or start from
class-conditional Gaussian seeds and generate each class; every ingredient and the current soup
side by side. Slow work runs when asked, with progress, and is kept for the same inputs."""

import streamlit as st

from pages._components import data_source, family_name, keep_page_state, session_evaluator
from pages._insight import (
    cached_split,
    current_soup,
    evaluator_context,
    gaussian_store,
    pick_images,
    picker_defaults,
    result_store,
    test_split,
)
from pages._state import Keys
from pages._widgets import figure_panel, with_progress
from soupviz import GenerationSettings
from soupviz.errors import SoupvizError
from soupviz.present.insight_figures import class_figure, strip_figure
from soupviz.serve.insight_runs import (
    WALK_AT_ONCE,
    fit_gaussians,
    generate_per_model,
    generation_settings,
    request_key,
    tensor_digest,
    walk_towards,
    walks_at_once,
)

DEFAULTS = GenerationSettings()  # Santurkar et al.'s CIFAR-10 settings: ε 30, step 0.5, 60 steps

st.title("Generation")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, paper, state = evaluator.family, st.session_state.get(Keys.PAPER, False), st.session_state
split = test_split()
if split is None:
    st.stop()
classes = list(split.classes)
keep_page_state({**picker_defaults(Keys.WALK_IMAGES, split, single=True), Keys.GENERATION_EPS: DEFAULTS.eps,
                 Keys.GENERATION_STEP: DEFAULTS.step_size, Keys.GENERATION_STEPS: DEFAULTS.steps,
                 Keys.GENERATION_FRAMES: 6, Keys.GENERATION_SEED: evaluator.seed, Keys.GENERATION_TARGET: 3,
                 Keys.GENERATION_CLASSES: list(range(len(classes))), Keys.GENERATION_PER_CLASS: 1,
                 Keys.GENERATION_FIT_IMAGES: 5000})
weights, rows, titles = current_soup(family)
a, b, c, d = st.columns(4)
a.number_input("L2 budget ε", 0.1, 100.0, step=1.0, key=Keys.GENERATION_EPS, help="Pixels in [0, 1]: a 32 × 32 image "
               "spans √3072 ≈ 55, so ε = 30 (Santurkar et al.) lets the image change almost entirely.")
b.number_input("Step size", 0.01, 10.0, step=0.1, key=Keys.GENERATION_STEP, help="Along the normalised gradient.")
c.number_input("Steps", 1, 1000, key=Keys.GENERATION_STEPS)
d.number_input("Seed", 0, 2**31 - 1, key=Keys.GENERATION_SEED,
               help="Of the class seeds; the walk itself is deterministic.")
try:
    steps = int(state[Keys.GENERATION_STEPS])
    gen = generation_settings(float(state[Keys.GENERATION_EPS]), float(state[Keys.GENERATION_STEP]), steps,
                              int(state[Keys.GENERATION_FRAMES]), int(state[Keys.GENERATION_SEED]))
except SoupvizError as error:
    st.error(str(error))
    st.stop()
st.caption(f"{gen.label}; each step projected onto the ε-ball around the start and the [0, 1] box. "
           f"Defaults from Santurkar et al. (CIFAR-10): ε = {DEFAULTS.eps:g}, step {DEFAULTS.step_size:g}, "
           f"{DEFAULTS.steps} steps.")

walk, seeded = st.tabs(["From a test image", "From class seeds"])
with walk:
    picked = pick_images(split, Keys.WALK_IMAGES, single=True)
    x, y = st.columns(2)
    target = x.selectbox("Towards", range(len(classes)), format_func=classes.__getitem__, key=Keys.GENERATION_TARGET)
    y.slider("Images in the strip", 2, 12, key=Keys.GENERATION_FRAMES)
    if picked is not None:
        image = picked[0][0]
        key = request_key("walk", evaluator_context(), tuple(weights), tensor_digest(image), target, gen)
        runs = result_store().get(key)
        pressed = st.button("Walk towards the target", type="primary", key=Keys.GENERATION_WALK)
        if pressed or (runs is None and walks_at_once(len(rows), gen)):
            runs = with_progress(f"Walking {picked[2][0]} towards {classes[target]!r}", lambda report: walk_towards(
                evaluator.soup, rows, image, target, gen, report=report))
            result_store().put(key, runs)
        if runs is None:
            st.info(f"Press the button: {len(rows)} models × {gen.steps} steps of the attack (up to "
                    f"{WALK_AT_ONCE} steps in all run without asking).")
        else:
            figure_panel(strip_figure(runs, titles, classes, family_name(family), weights, paper),
                         Keys.GENERATION_STRIP, width="content")
            st.caption("A robust model turns the picture into its idea of the target class; the nominal model "
                       "reaches the target with changes you can barely see.")

with seeded:
    x, y, z = st.columns([3, 1, 1])
    chosen = x.multiselect("Classes", range(len(classes)), format_func=classes.__getitem__, key=Keys.GENERATION_CLASSES)
    y.number_input("Images per class", 1, 8, key=Keys.GENERATION_PER_CLASS)
    z.number_input("Training images per class", 2, 5000, key=Keys.GENERATION_FIT_IMAGES,
                   help="For each class's Gaussian (mean and full 3072 × 3072 covariance + 1e-4·I).")
    per_class, fit_images = int(state[Keys.GENERATION_PER_CLASS]), int(state[Keys.GENERATION_FIT_IMAGES])
    key = request_key("classes", evaluator_context(), tuple(weights), tuple(chosen), per_class, fit_images, gen)
    runs = result_store().get(key)
    if st.button("Fit the seeds and generate", type="primary", key=Keys.GENERATION_GENERATE, disabled=not chosen):
        try:
            source = data_source()
            train = cached_split(source, "train")
            fits = request_key(source, fit_images, gen.seed)
            gaussians = with_progress("Class Gaussians", lambda report: fit_gaussians(
                train, chosen, fit_images, gen.seed, gaussian_store(), key=fits, report=report))
            runs = with_progress("Generating", lambda report: generate_per_model(
                evaluator.soup, rows, gaussians, chosen, per_class, settings=gen, report=report))
            result_store().put(key, runs)
        except SoupvizError as error:
            st.error(str(error))
    if runs is None:
        st.info("Press the button: fits a Gaussian to each chosen class's training images (about 4 s a class "
                f"on a 2-core CPU for 5000 images), then {len(rows)} models × {gen.steps} attack steps.")
    else:
        figure_panel(class_figure(runs, titles, classes, family_name(family), weights, paper),
                     Keys.GENERATION_CLASSES_CHART, width="content")
        st.caption("Top row: the seeds, drawn from each class's Gaussian with the seed above; below, what each model "
                   "made of them. Under each image: the model's class and the target's probability.")
