"""Paths in error messages: as they are, or named inside the folder a user gave (an upload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.checkpoints.cards import read_card
from soupviz.errors import CheckpointError
from soupviz.files import paths_shown_within, shown_path


def test_paths_are_named_inside_the_folder_only_within_it(tmp_path: Path) -> None:
    folder, outside = tmp_path / "uploads" / "3f2a" / "uploaded", tmp_path / "elsewhere" / "a.json"
    with paths_shown_within(folder, "the upload"):
        assert shown_path(folder / "nominal.json") == "nominal.json"
        assert shown_path(folder) == "the upload"
        assert shown_path(outside) == str(outside)
    assert shown_path(folder / "nominal.json") == str(folder / "nominal.json")


def test_an_error_raised_within_names_the_users_file(tmp_path: Path) -> None:
    (tmp_path / "nominal.json").write_text("[1, 2]")
    with paths_shown_within(tmp_path, "the upload"), pytest.raises(CheckpointError) as error:
        read_card(tmp_path / "nominal.json")
    assert str(error.value) == "The card nominal.json must hold a JSON object."
