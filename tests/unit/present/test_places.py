"""What a person reads about places and names: the data source as they named it, no server folder
from cards or stored records, the shipped family by title and by its folder inside the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.checkpoints.families import load_family
from soupviz.present.places import family_place, family_title, portable, source_name

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("text", "name", "expected"), [
    ("500 images of /work/shared/data/cifar10/test", "../shared/data/cifar10",
     "500 images of ../shared/data/cifar10/test"),
    ("on 1000 images of /home/someone/cifar10/test (seed 0)", "../shared/data/cifar10",
     "on 1000 images of ../shared/data/cifar10/test (seed 0)"),
    ("from `/srv/other/test`.", "../shared/data/cifar10", "from `other/test`."),
    ("200 images of ../shared/data/cifar10/test", "../shared/data/cifar10",
     "200 images of ../shared/data/cifar10/test"),
    ("L∞ 8/255 and L2 0.5 on 40 images", "x", "L∞ 8/255 and L2 0.5 on 40 images"),
])
def test_data_paths_are_written_from_the_users_source(text: str, name: str, expected: str) -> None:
    assert portable(text, name) == expected


def test_the_source_is_named_as_the_user_named_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUPVIZ_DATA", "/data/cifar10")
    assert source_name("torchvision") == "torchvision"
    assert source_name(None) == "/data/cifar10"
    monkeypatch.delenv("SOUPVIZ_DATA")
    assert not Path(source_name(None)).is_absolute()


def test_the_shipped_family_reads_as_a_title_and_a_project_folder() -> None:
    folder = ROOT / "assets" / "families" / "cifar10-preact_resnet_small"
    assert family_title(load_family(folder)) == "small PreAct ResNet on CIFAR-10"
    assert family_place(folder) == "assets/families/cifar10-preact_resnet_small"
    assert family_place("/somewhere/else/mine") == "mine"
