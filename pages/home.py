"""Home: pick a family (shipped, a folder, or uploaded checkpoints), check the data and the
device, and see the ingredients x threats table with 95% intervals."""

import streamlit as st
import torch

from pages._components import (
    cached_device,
    cached_family,
    cached_images,
    current_family,
    data_source,
    family_name,
    readable,
    session_evaluator,
    settings,
)
from pages._simplex_views import stored_heatmap
from pages._soupability import soupability_panel
from pages._state import Keys
from pages._widgets import with_progress
from soupviz import MetricSpec, Record, SoupFamily
from soupviz.checkpoints.importing import folder_stamp
from soupviz.device import describe_device
from soupviz.errors import DataError, SoupvizError
from soupviz.present.labels import attacks_named
from soupviz.present.places import family_place, family_title
from soupviz.present.tables import ingredient_caption, ingredient_table
from soupviz.serve.page_specs import robust_specs
from soupviz.serve.settings import shipped_family_folder
from soupviz.serve.uploads import save_uploads

SOURCES = {"shipped": "Shipped family", "folder": "A folder", "upload": "Upload checkpoints"}


def data_and_device() -> None:
    """The data source and the device, with the ways to get CIFAR-10 when it is missing."""
    st.subheader("Data and device")
    s = settings()
    try:
        images = cached_images(data_source(), "test", s.images, s.seed)
        st.caption(readable(f"Evaluating on {len(images)} test images (seed {s.seed}) from `{images.source}`."))
        missing = False
    except DataError as error:
        missing = True
        st.warning(str(error))
        st.markdown("Two ways to get CIFAR-10:\n"
                    "- **torchvision's download** (needs internet, about 170 MB): start with "
                    "`SOUPVIZ_DATA=torchvision` or press the button below;\n"
                    "- **a local folder** in ImageFolder layout, with `train/<class>/*.png` and `test/<class>/*.png`: "
                    "start with `SOUPVIZ_DATA=/path/to/cifar10` or type the path below.")
        st.button("Use torchvision's download", on_click=st.session_state.update,
                  args=({Keys.DATA_PATH: "torchvision"},))
    with st.expander("Data source", expanded=missing):
        st.text_input("CIFAR-10 folder (with train/ and test/) or 'torchvision'", key=Keys.DATA_PATH)
    try:
        st.caption(f"Computing on {describe_device(cached_device(s.device))}"
                   f"{'' if torch.cuda.is_available() else ' (no GPU found)'}.")
    except SoupvizError as error:
        st.error(str(error))


def ingredients_measured(family: SoupFamily, records: list[Record], chosen: tuple[str, str]) -> None:
    """The ingredients x metrics table (`records` where measured here, else the cards'), where its
    numbers come from, and the button that measures them with the sidebar's budget."""
    s = settings()
    rows, methods = ingredient_table(family, records)
    st.dataframe(rows, hide_index=True, width="stretch")
    if methods:
        st.caption(readable(ingredient_caption(methods, bool(records), s.images, attacks_named(robust_specs(s)))))
    if not records:
        hint = "" if methods else "The cards report no metrics. "
        if st.button(f"Measure on {s.images} test images with {attacks_named(robust_specs(s))}",
                     type="secondary" if methods else "primary",
                     help=hint + "Clean and robust accuracy of each ingredient, with the sidebar's evaluation budget."):
            st.session_state[Keys.INGREDIENT_RECORDS] = chosen
            st.rerun()


st.title("soupviz")
st.caption("Model soups of adversarially robust CIFAR-10 classifiers (Croce et al., CVPR 2023): mix the "
           "weights of a nominal, an L∞, an L2 and an L1 ingredient and see what the soup does.")

shipped = shipped_family_folder()
st.session_state.setdefault(Keys.FAMILY_SOURCE, "shipped" if shipped else "folder")
st.subheader("Family")
choice = st.radio("Family", list(SOURCES), format_func=SOURCES.get, key=Keys.FAMILY_SOURCE, horizontal=True,
                  label_visibility="collapsed")
if choice == "shipped":
    st.caption(f"{family_title(cached_family(str(shipped), folder_stamp(shipped)))} · `{family_place(shipped)}`"
               if shipped else
               "No family ships with this copy yet: give a folder or upload checkpoints.")
elif choice == "folder":
    st.text_input("Family folder", key=Keys.FAMILY_PATH,
                  placeholder="path/to/family (NAME.safetensors + NAME.json, or .pt/.pth files to import)")
else:
    files = st.file_uploader("Checkpoints: .safetensors with their .json cards, or .pt/.pth/.ckpt files from "
                             "RobustBench, robustness or your own training (imported, no code unpickled)",
                             type=["safetensors", "json", "pt", "pth", "ckpt"], accept_multiple_files=True,
                             key=Keys.UPLOADS)
    if files:
        try:
            folder = save_uploads([(f.name, f.getvalue()) for f in files], replaces=st.session_state.get(
                Keys.UPLOAD_FOLDER), check=lambda folder: cached_family(str(folder), folder_stamp(folder)))
            st.session_state[Keys.UPLOAD_FOLDER] = folder
        except SoupvizError as error:
            st.session_state.pop(Keys.UPLOAD_FOLDER, None)
            st.error(str(error))

s = settings()
data_box = st.container()  # filled last: decoding the test images must not hold back the figures below

chosen = current_family(show_errors=choice != "upload")
if chosen is None:
    with data_box:
        data_and_device()
    st.stop()
family = chosen[0]
st.subheader(f"Ingredients of {family_name(family)}")
table_box = st.container()  # filled after the stored figure: a table's first draw loads pandas (seconds)
records = []
if st.session_state.get(Keys.INGREDIENT_RECORDS) == chosen[1:]:  # measured before: re-read from the cache
    evaluator = session_evaluator()
    if evaluator is not None:
        specs = [MetricSpec("clean"), *robust_specs(s)]
        one_hot = evaluator.ingredient_weights()
        with table_box:
            records = with_progress("Ingredients", lambda report: evaluator.evaluate(one_hot, specs, report))
if not records:
    stored_heatmap(family, st.session_state.get(Keys.PAPER, False), interactive=False)
with table_box:
    ingredients_measured(family, records, chosen[1:])
if len(family.names) > 1:
    soupability_panel(family, *chosen[1:])

with data_box:
    data_and_device()
