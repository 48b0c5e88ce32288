"""soupviz dashboard entry: pick a family and see its ingredients; routes to the pages."""

from __future__ import annotations

import streamlit as st

from soupviz.app_state import shipped_family_folder
from soupviz.checkpoints import load_family
from soupviz.errors import SoupvizError


def home() -> None:
    st.title("soupviz")
    st.caption("Model soups of adversarially robust CIFAR-10 classifiers (Croce et al., CVPR 2023).")
    folder = st.text_input("Family folder", value=str(shipped_family_folder() or ""))
    try:
        family = load_family(folder)
    except SoupvizError as error:
        st.error(str(error))
        return
    rows = []
    for ingredient in family.ingredients:
        card = ingredient.card
        row = {"ingredient": card.name, "trained against": card.label, "parent": (card.parent or {}).get("name", "—")}
        for metric in card.metrics:
            row[metric["metric"]] = f"{metric['accuracy']:.1%} [{metric['ci_low']:.1%}, {metric['ci_high']:.1%}]"
        rows.append(row)
    st.dataframe(rows, hide_index=True)


st.navigation([st.Page(home, title="Home", icon="🍲", default=True)]).run()
