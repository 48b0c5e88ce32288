"""Fixtures for the AppTest suite: the dashboard pointed at a tiny family and tiny data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("soupviz_app_setup", Path(__file__).with_name("_setup.py"))
_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_setup)


@pytest.fixture(scope="session")
def app_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment variables that point the dashboard at the test family and data."""
    return _setup.make_app_environment(tmp_path_factory.mktemp("app"))


@pytest.fixture
def app_env(app_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`app_environment` set in os.environ for one test."""
    for key, value in app_environment.items():
        monkeypatch.setenv(key, value)
    return app_environment
