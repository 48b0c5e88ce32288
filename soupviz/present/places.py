"""Where things are and what they are called, as a person reading the dashboard should see it: the
data source as the user named it (not the server's absolute folder), any absolute data path inside
a text (cards and stored records name the folder of the machine that computed them) shortened the
same way, the shipped family's folder relative to the project, and a family's display title
instead of its folder name. Display only: records and cards keep what they store.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from soupviz.checkpoints.families import SoupFamily
from soupviz.data import _PROJECT_ROOT, DATA_ENV, LOCAL_CANDIDATES, TORCHVISION

SPLITS = ("train", "test")
_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[^\s/,;:()`'\"]+/)*[^\s/,;:()`'\"]+")


def source_name(typed: str | None = None) -> str:
    """How the user named the CIFAR-10 source: what they typed, else $SOUPVIZ_DATA as set, else
    the local copy found beside the project, relative to it (e.g. '../shared/data/cifar10'), else
    'torchvision'."""
    if typed:
        return typed
    if os.environ.get(DATA_ENV):
        return os.environ[DATA_ENV]
    for candidate in LOCAL_CANDIDATES:
        if (candidate / "test").is_dir():
            return os.path.relpath(candidate, _PROJECT_ROOT)
    return TORCHVISION


def portable(text: str, name: str) -> str:
    """`text` with each absolute path to a data split ('/any/folder/cifar10/test') written from the
    user's source `name` ('../shared/data/cifar10/test') when the folder is the one `name` names
    (same last component), else as the folder and split only ('cifar10/test'); other absolute paths
    by their last component. Relative paths and other words are left as they are.

    Example:
        >>> portable("500 images of /work/shared/data/cifar10/test", "../shared/data/cifar10")
        '500 images of ../shared/data/cifar10/test'
    """
    mine = Path(name).name

    def shorter(match: re.Match) -> str:
        path = Path(match.group(0))
        if path.name in SPLITS and path.parent.name:
            folder = path.parent.name
            return str(Path(name) / path.name) if folder == mine else f"{folder}/{path.name}"
        if path.name == mine:
            return name
        return path.name or match.group(0)

    return _ABSOLUTE.sub(shorter, text)


def family_place(folder: Path | str) -> str:
    """A family's folder relative to the project where it lies inside it (the shipped ones), else
    its last component."""
    folder = Path(folder).resolve()
    try:
        return str(folder.relative_to(_PROJECT_ROOT))
    except ValueError:
        return folder.name


ARCHITECTURES = {  # display names of the registered architectures (`soupviz.models.registry`)
    "preact_resnet_small": "small PreAct ResNet", "preact_resnet18": "PreAct ResNet-18", "resnet18": "ResNet-18",
    "resnet50": "ResNet-50", "wide_resnet28_10": "WRN-28-10", "wide_resnet34_10": "WRN-34-10",
    "dm_wide_resnet28_10": "WRN-28-10 (DeepMind layout)", "wide_resnet70_16": "WRN-70-16",
}


def family_title(family: SoupFamily) -> str:
    """What a family is called where a person reads it: its architecture and dataset when its
    ingredients share them ('small PreAct ResNet on CIFAR-10'), else its folder's name."""
    archs = {i.card.arch for i in family.ingredients}
    datasets = {i.card.dataset for i in family.ingredients}
    if len(archs) != 1 or len(datasets) != 1:
        return family.name
    arch = archs.pop()
    return f"{ARCHITECTURES.get(arch, arch.replace('_', ' '))} on {datasets.pop()}"
