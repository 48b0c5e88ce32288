"""With the sidebar's 'Default' attack, every page names the chains it actually runs (PGD-10 +
PGD-T-10 at L∞ and L2, AutoAttack's APGD stages at L1), never 'DEFAULT' or a raw metric key."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._state import Keys
from soupviz.present.labels import attacks_named
from soupviz.serve.page_specs import robust_specs
from soupviz.serve.settings import default_settings
from soupviz.threats import THREATS

APP = str(Path(__file__).resolve().parents[2] / "dashboard.py")
RAW_KEY = re.compile(r"(?<![\w-])(linf|l2|l1|union):[\w.+]*:")  # e.g. linf:0.0313725:pgd:10:1


def page_texts(page: str | None) -> str:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[Keys.ATTACK] = "default"
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    parts = [e.value for kind in ("caption", "markdown", "info", "warning", "text") for e in at.get(kind)]
    parts += [b.label for b in at.button] + [m.label for m in at.metric]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize(("page", "threats"), [(None, THREATS), ("pages/heatmaps.py", THREATS),
                                              ("pages/tradeoff.py", ["linf"])])  # the trade-off opens on L∞
def test_captions_name_the_attacks_the_default_runs(app_env: dict, page: str | None, threats: list[str]) -> None:
    text = page_texts(page)
    run = attacks_named(robust_specs(replace(default_settings(), attack="default"), threats))
    assert run == ("PGD-10 + PGD-T-10 (3 targets) at L∞, L2; AutoAttack (standard: APGD-CE, APGD-T) at L1"
                   if len(threats) == 3 else "PGD-10 + PGD-T-10 (3 targets)")
    assert run in text
    assert "DEFAULT" not in text and not RAW_KEY.search(text), text
