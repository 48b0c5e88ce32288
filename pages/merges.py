"""Merge lab: a layer-wise soup or task-vector merge measured live on the session's images; where
robustness lives (the base with one block group from another ingredient) and the presets under
transfer attacks crafted on each ingredient, both from the family's store."""

import streamlit as st

from pages._components import session_evaluator, settings
from pages._simplex_views import _stored_records
from pages._state import Keys
from pages._widgets import current_weights, figure_panel, keep_valid, with_progress
from soupviz.errors import SoupvizError
from soupviz.evaluate.layer_swaps import MIX_CHOICE, chosen_groups, example_choices, stored_swaps
from soupviz.evaluate.merges import MERGE_NAMES, Merge, lambdas_to_weights, lineage_base, merge_evaluator
from soupviz.evaluate.transfer_records import stored_transfers, transfer_gaps
from soupviz.present.heatmap_figures import accuracy_heatmap
from soupviz.present.labels import attacks_named, group_choice_labels
from soupviz.present.merge_figures import gap_rows, layer_swap_heatmap, transfer_summary
from soupviz.present.tables import text_table
from soupviz.results.grids import family_store
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.store import ResultStore
from soupviz.serve.page_specs import robust_specs
from soupviz.serve.soup_rows import row_soups
from soupviz.soups.weights import weights_key


@st.cache_resource(show_spinner=False, max_entries=2)
def _swaps(path: str, modified: float, folder: str, _family):
    return stored_swaps(ResultStore(path), _family)


st.title("Merge lab")
evaluator = session_evaluator()
if evaluator is None:
    st.stop()
family, paper, s = evaluator.family, st.session_state.get(Keys.PAPER, False), settings()

st.subheader("Try a merge")
kind = st.radio("Merge", ["soup", "ties", "dare", "sum"], format_func=MERGE_NAMES.get, horizontal=True,
                key=Keys.MERGE_KIND)
try:
    if kind == "soup":
        st.caption("Each block group (from the model's own modules) takes the explorer's soup, one ingredient "
                   "or a mix of weights, one per ingredient in family order.")
        options, choices, cells = group_choice_labels(family), {}, st.columns(3)
        for i, (group, default) in enumerate(example_choices(family).items()):
            cell = cells[i % 3]
            keep_valid(Keys.merge_group(group), list(options), default)
            choice = cell.selectbox(group, list(options), format_func=options.get, key=Keys.merge_group(group))
            if choice == MIX_CHOICE:
                choice = cell.text_input(f"{group} weights ({':'.join(family.names)})",
                                         value=":".join(f"{1 / len(family.names):g}" for _ in family.names),
                                         key=Keys.merge_group(group, mix=True))
            choices[group] = choice
        merge, rows = Merge(groups=chosen_groups(choices, family.names)), [current_weights(len(family.names))]
    else:
        base = lineage_base(family)
        others = [name for i, name in enumerate(family.names) if i != base]
        text = st.text_input(f"λ for {', '.join(others)} (task vectors from the base {family.names[base]})",
                             value=",".join(["1"] * len(others)), key=Keys.MERGE_LAMBDAS)
        merge = Merge(kind)
        rows = [lambdas_to_weights([float(x) for x in text.split(",")], len(family.names), base)]
    st.caption(f"{merge.describe(family)}; clean accuracy and robust accuracy by "
               f"{attacks_named(robust_specs(s))} on {evaluator.images_label}.")
    if st.button("Evaluate merge", type="primary"):
        specs = [MetricSpec("clean"), *robust_specs(s)]
        records = with_progress("Merging",
                                lambda report: merge_evaluator(evaluator, merge).evaluate(rows, specs, report))
        st.session_state[Keys.MERGE_RECORDS] = records
except (SoupvizError, ValueError) as error:
    st.error(str(error))
if st.session_state.get(Keys.MERGE_RECORDS):
    st.code(text_table(st.session_state[Keys.MERGE_RECORDS], family.names), language=None)

store = family_store(family.folder)
if not store.path.is_file():
    st.info("This family has no results store yet: `soupviz eval FAMILY --swaps --metrics clean,linf,l2 --images 200 "
            "--store FAMILY/results.sqlite` stores the layer swaps, and metrics such as `linf@l2` stored the same "
            "way are transfer attacks.")
    st.stop()

st.subheader("Where does robustness live?")
swaps = _swaps(str(store.path), store.modified(), str(family.folder), family)
if swaps is None:
    st.info("No layer swaps are stored: `soupviz eval FAMILY --swaps --metrics clean,linf,l2 --images 200 "
            "--store FAMILY/results.sqlite` measures them.")
else:
    figure_panel(layer_swap_heatmap(swaps, family.labels, paper), Keys.LAYER_SWAPS)
    st.caption("Each row is the base with one block group (stem, a stage, head: from the model's own modules) "
               "taken from another ingredient; hover a cell for its interval and its change from the base.")

st.subheader("Transfer attacks")
transfers = stored_transfers(_stored_records(str(store.path), store.modified(), tuple(family.hashes)))
if transfers is None:
    st.info("No transfer attacks are stored: add `linf@l2`-style metrics (crafted on the l2 ingredient) to "
            "`soupviz eval FAMILY ... --store FAMILY/results.sqlite`.")
    st.stop()
present = {weights_key(r.weights) for r in transfers.records}
soups = [(name, w) for name, w in row_soups(["ingredients", "presets"], family, None) if weights_key(w) in present]
figure_panel(accuracy_heatmap(transfers.records, soups, transfers.columns, family.labels, paper),
             Keys.TRANSFER_HEATMAP)
st.caption(f"White-box columns beside the same attack crafted on each source ({transfers.images}); blank cells "
           "are not in the store.")
gaps = transfer_gaps(transfers.records)
if gaps:
    st.dataframe(gap_rows(gaps, family.labels), hide_index=True)
    st.markdown("\n".join(f"- {line}" for line in transfer_summary(gaps, family.labels)))
