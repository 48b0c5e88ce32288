"""The terminal bar the CLI shows progress with: redrawn at most every 0.1 s on a terminal and when
the work is done, with the lines a command picks written above it."""

from __future__ import annotations

import sys

import tqdm

import soupviz.progress as progress_module
from soupviz.progress import Progress, terminal_bar


def test_the_bar_redraws_at_most_every_tenth_of_a_second_and_when_done(monkeypatch) -> None:
    now = [0.0]
    redraws = []
    monkeypatch.setattr(progress_module, "monotonic", lambda: now[0])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(tqdm.tqdm, "refresh", lambda bar, *args, **kwargs: redraws.append(bar.n))
    with terminal_bar("work") as report:
        for step in range(1, 11):  # a report every 0.04 s
            now[0] = 0.04 * step
            report(Progress(step, 10, f"step {step}"))
    assert redraws == [0, 1, 4, 7, 10]  # on opening, then 0.12 s apart, then done


def test_the_lines_echo_picks_are_written_above_the_bar(capsys) -> None:
    with terminal_bar("training", "img", echo=lambda p: p.message if p.partial else None) as report:
        report(Progress(5, 10, "epoch 1: loss 0.5"))
        report(Progress(10, 10, "epoch 1 done", {"epoch": 1}))
    out = capsys.readouterr().out
    assert "epoch 1 done" in out and "loss 0.5" not in out


def test_the_bar_shows_a_unit_partly_done_to_two_decimals(capsys) -> None:
    with terminal_bar("evaluating") as report:
        report(Progress(1 + 1 / 3, 4, "L1 12: 250/1000 images"))
        report(Progress(4, 4, "done"))
    err = capsys.readouterr().err
    assert "1.33/4" in err and "1.3333" not in err


def test_a_part_of_a_piece_of_work_reports_its_share_of_the_whole() -> None:
    seen: list[float] = []
    part = progress_module.share_within(seen.append, 0.25, 0.5)
    for share in (0.0, 0.5, 1.0, 1.5, -1.0):
        part(share)
    assert seen == [0.25, 0.5, 0.75, 0.75, 0.25]
