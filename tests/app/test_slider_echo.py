"""A stale slider value the browser sends back is put back for as long as the browser may still
hold it, counted from when the page drew the slider at its new value, not from the move: a run
slower than the window (a busy server) must not let the echo move the soup."""

from types import SimpleNamespace

import pytest

from pages import _widgets
from pages._state import Keys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Clock]:
    state: dict = {}
    clock = Clock()
    monkeypatch.setattr(_widgets, "st", SimpleNamespace(session_state=state))
    monkeypatch.setattr(_widgets.time, "monotonic", clock)
    _widgets.set_weights([0.5, 0.5])
    for i in range(2):
        _widgets._mark_sent(i)
    clock.now += 60  # the first soup has long been with the browser
    return state, clock


def move(state: dict, index: int, value: float) -> None:
    """The browser reports slider `index` at `value` (its on_change)."""
    state[Keys.slider(index)] = value
    _widgets._slider_moved(index)


def test_an_echo_arriving_during_a_run_longer_than_the_window_is_put_back(session: tuple[dict, Clock]) -> None:
    state, clock = session
    move(state, 0, 0.7)  # the user's move: the page rebalances slider 1 from 0.5 to 0.3
    assert state[Keys.WEIGHTS] == pytest.approx([0.7, 0.3])
    clock.now += 3 * _widgets.STALE_SECONDS  # the run that draws slider 1 at 0.3 is still going
    move(state, 1, 0.5)  # the browser, still showing 0.5, sends it with another change
    assert state[Keys.WEIGHTS] == pytest.approx([0.7, 0.3])
    assert state[Keys.slider(1)] == pytest.approx(0.3)


def test_after_the_window_from_the_draw_the_same_value_is_a_real_move(session: tuple[dict, Clock]) -> None:
    state, clock = session
    move(state, 0, 0.7)
    clock.now += 3 * _widgets.STALE_SECONDS
    _widgets._mark_sent(1)  # the run drew slider 1 at 0.3
    clock.now += _widgets.STALE_SECONDS / 2
    move(state, 1, 0.5)
    assert state[Keys.WEIGHTS] == pytest.approx([0.7, 0.3]), "within the window: still an echo"
    clock.now += _widgets.STALE_SECONDS
    move(state, 1, 0.5)
    assert state[Keys.WEIGHTS] == pytest.approx([0.5, 0.5]), "the user moved it back: applied"
