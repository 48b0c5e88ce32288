"""The dashboard's keys (pages/_state.py): one session-state key per slider, the widgets whose
values survive visits to other pages, and no two names for one key."""

from __future__ import annotations

from pages._state import Keys, PickerKeys
from soupviz.threats import THREATS

DOWNLOADS = ("csv", "png", "svg", "pdf")


def named_keys() -> list[str]:
    """Every key `Keys` names as a constant, each picker's keys spelled out."""
    keys = []
    for name, value in vars(Keys).items():
        if isinstance(value, PickerKeys):
            keys += [value.source, value.classes, value.offset, value.indices, value.upload, value.label]
        elif isinstance(value, str) and name.isupper():
            keys.append(value)
    return keys


def test_slider_keys_are_distinct_per_ingredient() -> None:
    assert len({Keys.slider(i) for i in range(5)}) == 5
    assert Keys.FAMILY_SOURCE in Keys.KEPT


def test_every_heatmap_budget_list_is_kept() -> None:
    assert {Keys.budgets(threat) for threat in THREATS} <= set(Keys.KEPT)


def test_no_two_names_share_a_key_and_no_download_button_takes_one() -> None:
    keys = named_keys()
    assert len(set(keys)) == len(keys), sorted(k for k in keys if keys.count(k) > 1)
    assert not {Keys.download(key, fmt) for key in keys for fmt in DOWNLOADS} & set(keys)


def test_picker_keys_are_the_prefix_and_the_widget() -> None:
    assert Keys.SALIENCY_IMAGES.offset == "saliency_offset" and Keys.WALK_IMAGES.source == "walk_source"
