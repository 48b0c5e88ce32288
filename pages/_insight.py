"""Streamlit glue of the insight pages (saliency, generation, adaptation): whole data splits and
a store of finished results, both cached and shared; the current soup; and a test-image picker
with uploads and its defaults.
"""

from __future__ import annotations

import streamlit as st
import torch

from pages._components import data_source
from pages._state import Keys, PickerKeys
from pages._widgets import current_weights
from soupviz import ImageSet, SoupFamily, load_split
from soupviz.errors import SoupvizError
from soupviz.insight.saliency import load_uploaded_image
from soupviz.present.labels import soup_label
from soupviz.serve.insight_runs import (
    MAX_PICKED,
    ResultStore,
    class_positions,
    compared_models,
    default_classes,
    images_at,
    parse_indices,
)

EXPLORER = "pages/explorer.py"
PICTURE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
SOURCES = {"class": "Test images by class", "index": "Test images by index", "upload": "Upload a picture"}


@st.cache_resource(show_spinner="Loading the images…", max_entries=4)
def cached_split(source: str, split: str) -> ImageSet:
    """A whole split, in the data's own order. Shared: do not modify."""
    return load_split(source, split)


@st.cache_resource(show_spinner=False, max_entries=4)
def split_id(source: str, split: str) -> str:
    """`ImageSet.digest` of a whole split, computed once per source."""
    return cached_split(source, split).digest()


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    """Finished saliency maps, generations and adaptation runs, by request key, for all sessions."""
    return ResultStore(max_entries=48)


@st.cache_resource(show_spinner=False)
def gaussian_store() -> ResultStore:
    """Fitted class Gaussians (36 MiB each for CIFAR-10), by source and class."""
    return ResultStore(max_entries=12)


def evaluator_context() -> str:
    """The key of the family, data and budget the session's evaluator was built for."""
    return st.session_state[Keys.EVALUATOR].context


def current_soup(family: SoupFamily) -> tuple[list[float], torch.Tensor, list[str]]:
    """The soup set in the Soup explorer, the weights (K + 1, K) of the models a page compares
    (each ingredient, then that soup), and their titles; says which soup it is."""
    weights = current_weights(len(family.names))
    left, right = st.columns([3, 1])
    left.caption(f"Compared: each ingredient and the **current soup, {soup_label(weights, family.labels)}** "
                 "(set in the Soup explorer).")
    right.page_link(EXPLORER, label="Change the soup", icon=":material/tune:")
    return weights, *compared_models(family, weights)


def test_split() -> ImageSet | None:
    """The whole test split, or None after saying why not."""
    try:
        return cached_split(data_source(), "test")
    except SoupvizError as error:
        st.error(str(error))
        return None


def picker_defaults(keys: PickerKeys, split: ImageSet, single: bool = False) -> dict[str, object]:
    """Default values of `pick_images`' widgets, for `keep_page_state`: airplane, cat, dog and horse
    (dog alone when `single`) where the split has them, else its first classes."""
    chosen = default_classes(split.labels, single)
    return {keys.source: "class", keys.classes: chosen[0] if single else chosen, keys.offset: 0,
            keys.indices: "0" if single else "0, 1, 2, 3", keys.label: 0}


def pick_images(
    split: ImageSet, keys: PickerKeys, single: bool = False,
) -> tuple[torch.Tensor, list[int], list[str]] | None:
    """Images chosen by class, by index or by upload: floats (N, 3, H, W) in [0, 1], true labels,
    names; None (with the reason shown) when the choice is not usable."""
    classes = list(split.classes)
    source = st.radio("Images", list(SOURCES), format_func=SOURCES.get, key=keys.source, horizontal=True)
    if st.session_state.get(keys.offset, 0) >= len(split):  # remembered from a larger data set
        st.session_state[keys.offset] = 0
    try:
        if source == "class":
            a, b = st.columns([3, 1])
            if single:
                chosen = [a.selectbox("Class", range(len(classes)), format_func=classes.__getitem__,
                                      key=keys.classes)]
            else:
                chosen = a.multiselect("Classes", range(len(classes)), format_func=classes.__getitem__,
                                       max_selections=MAX_PICKED, key=keys.classes)
            offset = b.number_input("Image number in its class", 0, len(split) - 1, key=keys.offset,
                                    help="0 is the class's first test image, in the data's order.")
            if not chosen:
                st.info("Choose at least one class.")
                return None
            indices = class_positions(split.labels, chosen, int(offset), 1, classes)
        elif source == "index":
            text = st.text_input("Test-split index" if single else "Test-split indices", key=keys.indices,
                                 help=f"0 to {len(split) - 1}, separated by commas.")
            indices = parse_indices(text, len(split), 1 if single else MAX_PICKED)
        else:
            a, b = st.columns([3, 1])
            upload = a.file_uploader("A picture (PNG, JPEG, …): centre-cropped to a square and resized to "
                                     f"{split.images.shape[-1]} × {split.images.shape[-1]}", type=PICTURE_TYPES,
                                     key=keys.upload)
            label = b.selectbox("Its class", range(len(classes)), format_func=classes.__getitem__,
                                key=keys.label, help="The loss gradient is taken on this label.")
            if upload is None:
                st.info("Upload a picture to see what the models make of it.")
                return None
            image = load_uploaded_image(upload, size=split.images.shape[-1])
            return image[None], [int(label)], [f"upload {upload.name}"]
    except SoupvizError as error:
        st.error(str(error))
        return None
    return images_at(split, indices)
