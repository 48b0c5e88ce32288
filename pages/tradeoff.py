"""Trade-off: clean against robust accuracy over a grid of soups with the Pareto front, the
ingredients and the current soup marked, against output-space ensembles with the same weights
on the same images, so you see where weight-space soups win or lose."""

import streamlit as st

from pages._components import HeldResults, family_baselines, readable, session_evaluator, settings
from pages._simplex_views import stored_tradeoff
from pages._state import Keys
from pages._widgets import current_weights, figure_panel, keep_valid, with_progress
from soupviz import MetricSpec
from soupviz.checkpoints.families import baseline_labels
from soupviz.errors import SoupvizError
from soupviz.evaluate.baselines import evaluate_baselines
from soupviz.evaluate.comparison import SAMPLING_NOTE
from soupviz.evaluate.ensembles import EnsembleEvaluator, ensemble_soups
from soupviz.evaluate.merge_curves import CURVE_METHODS, merge_curves
from soupviz.evaluate.merges import MERGE_NAMES, Merge
from soupviz.present.labels import attacks_named, interval_text
from soupviz.present.tables import soup_vs_ensemble
from soupviz.present.tradeoff_figures import tradeoff_figure
from soupviz.serve.page_specs import robust_specs
from soupviz.serve.soup_rows import with_soup
from soupviz.soups.weights import grid_weights
from soupviz.threats import THREAT_LABELS, THREATS

STORED_ONLY = "corruption-mean"
MODES = {"none": "no ensembles", "logits": "ensembles of logits", "probs": "ensembles of probabilities"}

st.title("Trade-off")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, s = evaluator.family, settings()
k, paper = len(family.names), st.session_state.get(Keys.PAPER, False)
keep_valid(Keys.TRADEOFF_THREAT, list(THREATS), "linf")
keep_valid(Keys.TRADEOFF_STEP, [0.5, 0.25, 0.2], 0.5)
keep_valid(Keys.TRADEOFF_MODES, list(MODES), "logits")
a, a2, b, c = st.columns([2, 2, 2, 3])
threat = a.selectbox("Robust to", THREATS, format_func=THREAT_LABELS.get, key=Keys.TRADEOFF_THREAT)
axes = {"clean": "clean accuracy", **{t: f"{THREAT_LABELS[t]} robustness" for t in THREATS if t != threat},
        STORED_ONLY: "corruption mean (stored)"}
keep_valid(Keys.TRADEOFF_AGAINST, list(axes), "clean")
against = a2.selectbox("Against", list(axes), format_func=axes.get, key=Keys.TRADEOFF_AGAINST,
                       help="The x axis: clean accuracy, robustness to another threat (Croce et al. trade L∞ "
                            "against L2), or the corruption mean, which is drawn from the precomputed store only.")
step = b.select_slider("Grid step", (0.5, 0.25, 0.2), key=Keys.TRADEOFF_STEP)
mode = c.radio("Compare with", list(MODES), format_func=MODES.get, key=Keys.TRADEOFF_MODES, horizontal=True)
baselines = family_baselines(family)
if baselines:
    keep_valid(Keys.TRADEOFF_BASELINES, [True, False], True)
    shown = st.toggle(f"Show baselines: {', '.join(model.card.label for model in baselines)}",
                      key=Keys.TRADEOFF_BASELINES, help="Models trained outside the soup (SAT: one of L∞/L2/L1 "
                      "sampled per batch), measured on the same images and attack.")
    baselines = baselines if shown else []
keep_valid(Keys.TRADEOFF_MERGES, list(CURVE_METHODS), [])
merges = st.multiselect("Merges beside the soup", CURVE_METHODS, format_func=MERGE_NAMES.get, key=Keys.TRADEOFF_MERGES,
                        help="TIES and DARE (the papers' defaults) on the base the cards name, at each soup's "
                             "coordinates (λ_i = w_i), on the same images and attack as the soups.")
weights = current_weights(k)
soups = with_soup(grid_weights(k, step), weights)
live = against != STORED_ONLY
specs = [MetricSpec("clean") if against in ("clean", STORED_ONLY) else robust_specs(s, [against])[0],
         *robust_specs(s, [threat])]
request = (soups, [spec.key for spec in specs], mode, [model.name for model in baselines], merges)
st.caption(f"{len(soups)} soups (a grid over all ingredients plus the current soup) "
           f"on {readable(evaluator.images_label)}, "
           f"robust accuracy by {attacks_named(specs)}; ensembles cost {k}× a soup's forward passes.")
held = st.session_state.get(Keys.TRADEOFF_RECORDS)
if st.button("Evaluate", type="primary", disabled=not live,
             help=None if live else "70 corruption conditions per soup: run `soupviz sweep --metrics corruptions`."):
    records = with_progress("Soups", lambda report: evaluator.evaluate(soups, specs, report))
    ensembles = []
    if mode != "none":
        ensembles = with_progress(MODES[mode].capitalize(), lambda report: EnsembleEvaluator(evaluator, mode).evaluate(
            ensemble_soups(soups, mode), specs, report))
    extra = with_progress("Baselines", lambda report: evaluate_baselines(evaluator, baselines, specs, report))
    try:
        curves = {m: with_progress(MERGE_NAMES[m], lambda report, m=m: merge_curves(evaluator, soups, specs, [m],
                                                                                     report)[m]) for m in merges}
    except SoupvizError as error:
        st.error(str(error))
        curves = {}
    held = st.session_state[Keys.TRADEOFF_RECORDS] = HeldResults(request, records=records, ensembles=ensembles,
                                                                 baselines=extra, merges=curves)
if held is None:
    stored_tradeoff(evaluator.family, threat, against, weights, baselines, paper)
    joining = " and ".join(name for name, wanted in (("ensembles", mode != "none"), ("baselines", baselines)) if wanted)
    st.info("Choose the threat, the grid and the comparison, then press Evaluate"
            + (f": {joining} join the soups in the figure it draws." if joining else "."))
    st.stop()
if held.request != request:
    st.caption("The choices changed since these results: press Evaluate to update.")
keys, records, ensembles, extra = held.request[1], held.records, held.ensembles, held.baselines
names = baseline_labels(family, family_baselines(family))
fig = tradeoff_figure(records, keys[1], keys[0], current=weights, ensembles=ensembles or None,
                      labels=family.labels, paper=paper, baselines=extra, baseline_labels=names, merges=held.merges)
figure_panel(fig, Keys.TRADEOFF_CHART)
if held.merges:
    st.caption("Merges at the soups' coordinates: " + "; ".join(Merge(m).describe(family) for m in held.merges) + ".")
if extra:
    st.caption("Baselines: " + " · ".join(f"{names.get(r.family, r.ingredients[0])} {r.metric} {interval_text(r)}"
                                          for r in extra))
if ensembles:
    st.subheader("Soup or ensemble?")
    st.dataframe(soup_vs_ensemble(records, ensembles, family.labels), hide_index=True, width="stretch")
    st.caption("Same weights, same images. The interval is paired (Newcombe's, over the images where the two "
               "disagree); a winner is named only where it excludes 0 and McNemar's p < 0.05. " + SAMPLING_NOTE)
