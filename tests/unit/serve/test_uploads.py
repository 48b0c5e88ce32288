"""A shared server: uploads stored by content under the cache, removed when rejected, replaced or
old, errors that name the user's file; typed family folders limited by $SOUPVIZ_ROOTS."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

from soupviz.checkpoints.families import load_family
from soupviz.checkpoints.importing import folder_stamp
from soupviz.errors import CheckpointError
from soupviz.serve import uploads as serving
from soupviz.serve.uploads import prune_uploads, save_uploads, typed_family_folder, upload_folder


class _Payload:
    """Unpickling this would only print; soupviz must never do it."""

    def __reduce__(self):
        return (print, ("payload ran",))


def _family_files(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]


def _left(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def test_uploads_are_saved_by_content_and_load_as_a_family(family_folder: Path, tmp_path: Path) -> None:
    files = _family_files(family_folder)
    folder = save_uploads(files, tmp_path / "up")
    assert folder == save_uploads(list(reversed(files)), tmp_path / "up")  # same files, same folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(name for name, _ in files)
    assert folder_stamp(folder) and folder_stamp(folder) == folder_stamp(folder)


def test_uploads_go_under_the_cache_folder(family_folder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOUPVIZ_CACHE", str(tmp_path / "cache"))
    folder = save_uploads(_family_files(family_folder))
    assert folder.is_relative_to(tmp_path / "cache" / "uploads")


@pytest.mark.parametrize("name", ["model.h5", "../evil.json", "notes.txt", "../model.pt"])
def test_uploads_other_than_checkpoints_and_cards_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a .safetensors, .pt, .pth or .ckpt checkpoint or a .json card"):
        save_uploads([(name, b"x")], tmp_path / "up")
    assert _left(tmp_path / "up") == []


def test_an_upload_over_the_size_cap_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(serving, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(CheckpointError, match="over this server's"):
        save_uploads([("big.safetensors", b"x" * 101)], tmp_path / "up")
    assert _left(tmp_path / "up") == []


def test_bad_uploads_give_one_sentence_naming_the_users_file_and_leave_nothing(
    family_folder: Path, tmp_path: Path, capsys
) -> None:
    card = (family_folder / "test-l2.json").read_bytes()
    good = (family_folder / "test-l2.safetensors").read_bytes()
    cases = {
        "random bytes": (bytes(range(256)) * 16, "test-l2.safetensors is not a safetensors file"),
        "a pickle with code": (pickle.dumps({"weight": _Payload()}), "test-l2.safetensors is not a safetensors file"),
        "a truncated file": (good[: len(good) // 2], "test-l2.safetensors is truncated or corrupted"),
    }
    for what, (data, expected) in cases.items():
        with pytest.raises(CheckpointError) as error:
            save_uploads([("test-l2.safetensors", data), ("test-l2.json", card)], tmp_path / "up")
        message = str(error.value)
        assert expected in message, what
        assert str(tmp_path) not in message and "uploaded" not in message and "0x" not in message, what
        assert "\n" not in message and message.count(". ") == 0, what  # one sentence
        assert _left(tmp_path / "up") == [], what
    assert "payload ran" not in capsys.readouterr().out


def test_a_missing_card_names_the_card_the_user_must_add(family_folder: Path, tmp_path: Path) -> None:
    # the strict loader; the dashboard's default (`checkpoints.importing.open_family`) imports a card-less file instead
    upload = [("test-l2.safetensors", (family_folder / "test-l2.safetensors").read_bytes())]
    with pytest.raises(CheckpointError, match=r"^The card test-l2\.json is missing"):
        save_uploads(upload, tmp_path / "up", check=load_family)
    assert _left(tmp_path / "up") == []


def test_a_replaced_upload_is_removed_and_old_ones_are_pruned(family_folder: Path, tmp_path: Path) -> None:
    files = _family_files(family_folder)
    first = save_uploads(files[:2], tmp_path / "up")  # one checkpoint and its card
    stale = save_uploads(files[2:4], tmp_path / "up")
    an_hour_ago = time.time() - 3600
    os.utime(stale.parent, (an_hour_ago, an_hour_ago))
    second = save_uploads(files, tmp_path / "up", replaces=first)
    assert not first.exists() and second.is_dir() and stale.is_dir()  # replaced: gone; an hour old: kept
    prune_uploads(tmp_path / "up", keep=second, max_age_s=1800)
    assert not stale.exists() and second.is_dir()


def test_the_upload_folder_is_named_by_content_and_checked_without_writing(tmp_path: Path) -> None:
    files = [("a.safetensors", b"1"), ("a.json", b"{}")]
    assert (
        upload_folder(files, tmp_path / "up")
        == upload_folder(files[::-1], tmp_path / "up")
        != upload_folder([("a.safetensors", b"2"), ("a.json", b"{}")], tmp_path / "up")
    )
    with pytest.raises(CheckpointError, match=r"holds no checkpoint"):
        upload_folder([("a.json", b"{}")], tmp_path / "up")
    assert _left(tmp_path / "up") == []


def test_typed_folders_are_limited_to_the_allowed_roots(tmp_path: Path, monkeypatch) -> None:
    allowed, other = tmp_path / "families", tmp_path / "private"
    (allowed / "mine").mkdir(parents=True)
    other.mkdir()
    (allowed / "escape").symlink_to(other)
    monkeypatch.delenv("SOUPVIZ_ROOTS", raising=False)
    assert typed_family_folder("/etc") == Path("/etc")  # a laptop: any folder
    monkeypatch.setenv("SOUPVIZ_ROOTS", os.pathsep.join([str(allowed), str(tmp_path / "more")]))
    assert typed_family_folder(f" {allowed / 'mine'} ") == allowed / "mine"
    for refused in ("/etc", str(other), str(allowed / "escape"), str(allowed / ".." / "private")):
        with pytest.raises(CheckpointError) as error:
            typed_family_folder(refused)
        assert str(error.value) == (
            f"This server opens family folders only under {allowed}, {tmp_path / 'more'}, "
            f"and {refused} is not among them."
        )
