"""The dashboard's keys (pages/_state.py): one session-state key per slider, and the widgets whose
values survive visits to other pages."""

from __future__ import annotations

from pages._state import Keys


def test_slider_keys_are_distinct_per_ingredient() -> None:
    assert len({Keys.slider(i) for i in range(5)}) == 5
    assert Keys.FAMILY_SOURCE in Keys.KEPT
