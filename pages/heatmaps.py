"""Attack heatmaps: accuracy of chosen soups (rows) under each threat x budget (columns), and
accuracy-vs-budget curves per threat. Attacks are slow, so they run when asked."""

import streamlit as st

from pages._components import HeldResults, readable, session_evaluator, settings
from pages._simplex_views import stored_heatmap
from pages._state import Keys
from pages._widgets import current_weights, figure_panel, keep_valid, with_progress
from soupviz import MetricSpec
from soupviz.errors import SoupvizError
from soupviz.present.budget_figures import budget_curves
from soupviz.present.heatmap_figures import accuracy_heatmap
from soupviz.present.labels import attacks_named
from soupviz.serve.page_specs import budget_specs
from soupviz.serve.soup_rows import ROW_GROUPS, row_soups
from soupviz.threats import THREAT_LABELS, THREATS, default_budgets, format_budgets, parse_budgets

st.title("Attack heatmaps")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, s = evaluator.family, settings()
paper = st.session_state.get(Keys.PAPER, False)
keep_valid(Keys.HEATMAP_ROWS, list(ROW_GROUPS), ["ingredients", "current soup"])
groups = st.multiselect("Rows", ROW_GROUPS, key=Keys.HEATMAP_ROWS,
                        help="Ingredients, the presets (uniform soup, the paper's pairs), the soup set in the "
                             "explorer, or a grid over all ingredients in steps of 0.5.")
budgets, columns = {}, st.columns(len(THREATS))
for column, threat in zip(columns, THREATS, strict=True):
    st.session_state.setdefault(Keys.budgets(threat), format_budgets(threat, default_budgets()[threat]))
    text = column.text_input(f"{THREAT_LABELS[threat]} budgets", key=Keys.budgets(threat))
    try:
        budgets[threat] = parse_budgets(text, threat)
    except SoupvizError as error:
        column.error(str(error))
soups = row_soups(groups, family, current_weights(len(family.names)))
specs = [MetricSpec("clean"), *budget_specs(budgets, s)]
request = ([w for _, w in soups], [spec.key for spec in specs])
st.caption(f"{len(soups)} soups × {len(specs) - 1} attacks ({attacks_named(specs)}) "
           f"on {readable(evaluator.images_label)}; "
           "finished cells are cached, so asking again is instant.")
held = st.session_state.get(Keys.HEATMAP_RECORDS)
if st.button("Evaluate", type="primary", disabled=not soups or len(specs) < 2):
    records = with_progress("Attacking", lambda report: evaluator.evaluate(request[0], specs, report))
    held = st.session_state[Keys.HEATMAP_RECORDS] = HeldResults(request, soups, specs, records)
if held is None:
    stored_heatmap(evaluator.family, paper)
    st.info("Choose rows and budgets, then press Evaluate.")
    st.stop()
if held.request != request:
    st.caption("The choices changed since these results: press Evaluate to update.")
soups, specs, records = held.soups, held.specs, held.records
figure_panel(accuracy_heatmap(records, soups, [spec.key for spec in specs], family.labels, paper), Keys.HEATMAP_CHART)
figure_panel(budget_curves(records, soups, family.labels, paper), Keys.BUDGET_CHART)
