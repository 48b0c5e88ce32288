"""Can these ingredients be souped? The Home page's barrier matrix, the lesson beside it (a path
between two ingredients next to one to an independently trained network, the shipped
`assets/unrelated`), and the explorer's warning before its sliders mix ingredients whose cards
show no shared base (`soupviz.evaluate.soupability`)."""

from __future__ import annotations

import streamlit as st

from pages._components import (
    cached_device,
    cached_family,
    cached_images,
    cached_params,
    data_source,
    family_name,
    settings,
)
from pages._state import Keys
from pages._widgets import figure_panel, keep_valid
from soupviz.checkpoints.families import Ingredient, SoupFamily, load_checkpoint
from soupviz.checkpoints.importing import folder_stamp
from soupviz.errors import SoupvizError
from soupviz.evaluate.kept_soupability import family_only, kept_soupability, renamed, soupability_key
from soupviz.evaluate.soupability import (
    SHIPPED_OUTSIDER,
    SOUPS_WELL,
    Soupability,
    measure_against,
    measure_soupability,
    outsider_partner,
    unrelated_pairs,
)
from soupviz.present.labels import ingredient_titles
from soupviz.present.soupability_figures import paths_figure
from soupviz.soups.soup import BATCHNORM_LABELS

IMAGES = 64  # a handful of test images: the barrier is a coarse signal, measured in seconds
POINTS = 7
AUTO_PARAMETERS = 20_000_000  # above this, on a CPU, measuring waits for a button


@st.cache_data(show_spinner="Measuring the straight paths between ingredients…", max_entries=16)
def cached_soupability(folder: str, stamp: str, source: str, device: str, images: int, seed: int) -> Soupability:
    family = cached_family(folder, stamp)
    subset = cached_images(source, "test", images, seed)
    return measure_soupability(family, subset, POINTS, cached_params(folder, stamp, device))


def soupability_panel(family: SoupFamily, folder: str, stamp: str) -> None:
    """The pairwise verdict matrix with its loss and accuracy barriers, and one plain sentence:
    from the report kept in the family folder (`soupviz check --keep`) when it matches, else measured."""
    st.markdown("#### Can these be souped?")
    s = settings()
    images = min(IMAGES, s.images)
    outsider = _outsider(family)
    kept = kept_soupability(family.folder, soupability_key(family, outsider, images, s.seed, POINTS,
                                                           batchnorm=BATCHNORM_LABELS["mix"]))
    titles = dict(zip(family.names, ingredient_titles(family), strict=True))
    if kept is not None:
        _show(renamed(family_only(kept.report), titles), f"Precomputed on {kept.measured_on} by `{kept.command}`. ")
        if outsider is not None:
            _unrelated(family, renamed(kept.report, titles), outsider)
        return
    try:
        source, device = data_source(), cached_device(s.device)
        cached_images(source, "test", images, s.seed)
    except SoupvizError:
        st.caption("The barrier between ingredients is measured on test images: set up the data above.")
        return
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
    _show(renamed(cached_soupability(folder, stamp, source, str(device), images, s.seed), titles))
    if outsider is None:
        return
    try:
        report = cached_comparison(folder, stamp, source, str(device), images, s.seed, str(SHIPPED_OUTSIDER),
                                   folder_stamp(SHIPPED_OUTSIDER.parent))
    except SoupvizError as error:  # e.g. a family of another architecture: no straight path joins them
        st.caption(f"No comparison with the shipped unrelated network: {error}")
        return
    _unrelated(family, renamed(report, titles), outsider)


def _show(report: Soupability, source: str = "") -> None:
    """The family's matrix, its verdict (a warning only where a pair should not be mixed) and caption."""
    st.dataframe(report.matrix(), hide_index=True, width="stretch")
    bad = any(p.verdict != SOUPS_WELL or p.base is None for p in report.pairs)
    (st.warning if bad else st.success)(report.summary())
    st.caption(source + report.caption())


@st.cache_resource(show_spinner="Loading the unrelated network…", max_entries=2)
def cached_outsider(path: str, stamp: str) -> Ingredient:
    """The outside network at `path` (`stamp` changes with its folder's files). Shared: do not modify."""
    return load_checkpoint(path)


def _outsider(family: SoupFamily) -> Ingredient | None:
    """The shipped unrelated network, None where this copy has none or it is of another
    architecture than `family` (no straight path joins them)."""
    if not SHIPPED_OUTSIDER.is_file():
        return None
    outsider = cached_outsider(str(SHIPPED_OUTSIDER), folder_stamp(SHIPPED_OUTSIDER.parent))
    return outsider if outsider.card.arch == family.arch else None


@st.cache_data(show_spinner="Measuring the straight paths to the unrelated network…", max_entries=8)
def cached_comparison(
    folder: str, stamp: str, source: str, device: str, images: int, seed: int, outsider: str, outsider_stamp: str
) -> Soupability:
    family = cached_family(folder, stamp)
    subset = cached_images(source, "test", images, seed)
    return measure_against(family, cached_outsider(outsider, outsider_stamp), subset, POINTS, device)


def _unrelated(family: SoupFamily, report: Soupability, outsider: Ingredient) -> None:
    """Side by side: the path between two ingredients and the path from an ingredient to the
    shipped, independently trained network of the same architecture, on the same images. The
    barrier to it is the lesson, so its verdict is information, not a warning about the family."""
    st.markdown("#### Why only ingredients of one base")
    pairs = {f"{p.a} → {p.b}": p for p in report.within}
    partners = [name for name in report.names if name != report.outsider]
    nominal = partners[family.names.index(outsider_partner(family))]
    keep_valid(Keys.PATHS_PARTNER, partners, nominal)
    keep_valid(Keys.PATHS_PAIR, list(pairs), next(n for n, p in pairs.items() if nominal in (p.a, p.b)))
    left, right = st.columns(2)
    pair = left.selectbox("Two ingredients", list(pairs), key=Keys.PATHS_PAIR)
    partner = right.selectbox(f"Ingredient → {report.outsider}", partners, key=Keys.PATHS_PARTNER,
                              help="A clean-trained outsider is fairest against the nominal ingredient.")
    paper = st.session_state.get(Keys.PAPER, False)
    figure_panel(paths_figure([pairs[pair], report.pair(partner, report.outsider)], report.images, family_name(family),
                              paper), Keys.PATHS_CHART)
    st.info(report.outsider_verdict(), icon=":material/school:")
    st.caption(f"{report.outsider}: {outsider.card.notes or 'a network kept outside the family'} "
               f"{report.caption()}")


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
