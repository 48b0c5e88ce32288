"""Can these ingredients be souped? The Home page's barrier matrix and the explorer's warning
before its sliders mix ingredients whose cards show no shared base (`soupviz.soupability`)."""

from __future__ import annotations

import streamlit as st

from pages._components import cached_device, cached_family, cached_images, cached_params, data_source, settings
from soupviz.checkpoints import SoupFamily
from soupviz.errors import SoupvizError
from soupviz.soupability import DO_NOT_MIX, Soupability, measure_soupability, unrelated_pairs

IMAGES = 64  # a handful of test images: the barrier is a coarse signal, measured in seconds
POINTS = 7
AUTO_PARAMETERS = 20_000_000  # above this, on a CPU, measuring waits for a button


@st.cache_data(show_spinner="Measuring the straight paths between ingredients…", max_entries=16)
def cached_soupability(folder: str, stamp: str, source: str, device: str, images: int, seed: int) -> Soupability:
    family = cached_family(folder, stamp)
    subset = cached_images(source, "test", images, seed)
    return measure_soupability(family, subset, POINTS, cached_params(folder, stamp, device))


def soupability_panel(family: SoupFamily, folder: str, stamp: str) -> None:
    """The pairwise verdict matrix with its loss and accuracy barriers, and one plain sentence."""
    st.markdown("#### Can these be souped?")
    s = settings()
    try:
        source, device = data_source(), cached_device(s.device)
        cached_images(source, "test", min(IMAGES, s.images), s.seed)
    except SoupvizError:
        st.caption("The barrier between ingredients is measured on test images: set up the data above.")
        return
    images = min(IMAGES, s.images)
    parameters = cached_params(folder, stamp, str(device)).p
    if (
        device.type == "cpu"
        and parameters > AUTO_PARAMETERS
        and not st.button(
            "Measure the barriers",
            help=f"{len(family.names)} ingredients of {parameters / 1e6:.0f}M parameters: this takes a while on a CPU.",
        )
    ):
        return
    report = cached_soupability(folder, stamp, source, str(device), images, s.seed)
    st.dataframe(report.matrix(), hide_index=True, width="stretch")
    bad = any(p.verdict == DO_NOT_MIX or p.base is None for p in report.pairs)
    (st.warning if bad else st.success)(report.summary())
    st.caption(report.caption())


def lineage_warning(family: SoupFamily) -> None:
    """Warn, before the sliders, when the cards show pairs of ingredients with no shared base."""
    pairs = unrelated_pairs(family)
    if pairs:
        names = ", ".join(f"{a}–{b}" for a, b in pairs)
        st.warning(
            f"The cards show no shared base for {names}: soups work for models fine-tuned from one base, "
            "and averaging independently trained networks usually lands in high loss. The Home page "
            "measures the barrier between them."
        )
