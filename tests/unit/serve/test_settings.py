"""Evaluation settings (soupviz/serve/settings.py): the environment overrides the family, the subset size
and the steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.serve.settings import default_settings, shipped_family_folder


def test_environment_overrides_the_family_and_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUPVIZ_FAMILY", str(tmp_path))
    monkeypatch.setenv("SOUPVIZ_EVAL_IMAGES", "64")
    monkeypatch.setenv("SOUPVIZ_EVAL_STEPS", "3")
    assert shipped_family_folder() == tmp_path
    settings = default_settings()
    assert (settings.images, settings.steps) == (64, 3)
    monkeypatch.setenv("SOUPVIZ_EVAL_IMAGES", "many")
    assert default_settings().images == 200
