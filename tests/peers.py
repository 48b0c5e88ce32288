"""The peer libraries' own model code, for tests that compare soupviz with them.

robustbench 1.1.1 is installed without its dependencies into a folder of its own,
`pip install --no-deps --target .peers robustbench==1.1.1` (as `.ci/run` does; `SOUPVIZ_PEERS` names
another folder): its wheel also ships a top-level `tests` package that would hide this one if it
were on `sys.path`, so the folder is never put there. Its package `__init__` pulls in timm, gdown,
autoattack and the data code, none
of which its CIFAR-10 model classes need: `model_zoo/cifar10.py` (the zoo's table and its
normalising classes) and the architecture files it builds on import only torch, except the
imports of architectures soupviz does not register (timm, geotorch). Those are stood in for while
`cifar10.py` executes, so its table and classes are robustbench's own source, unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

PEERS = Path(__file__).resolve().parents[1] / ".peers"

# Modules `cifar10.py` imports that need packages robustbench was installed without; the entries
# built from them are not in soupviz's table, so a stand-in that fails when called is enough.
_UNNEEDED = (
    "timm",
    "robustbench.model_zoo.architectures.resnest",
    "robustbench.model_zoo.architectures.CARD_resnet",
    "robustbench.model_zoo.architectures.paf_wide_resnet",
    "robustbench.model_zoo.architectures.sodef_layers",
    "robustbench.model_zoo.architectures.xcit",
    "robustbench.model_zoo.architectures.robust_resnet",
    "robustbench.model_zoo.architectures.comp_model",
    "robustbench.model_zoo.architectures.robustarch_wide_resnet",
    "robustbench.model_zoo.architectures.sparsified_model",
)


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise RuntimeError(f"{self.__name__}.{name} needs packages robustbench was installed without")

        return unavailable


@contextlib.contextmanager
def _standing_in(names: tuple[str, ...]):
    """Stand-ins in `sys.modules` for those of `names` that cannot be imported, removed afterwards."""
    stood_in = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _StandIn(name)
            stood_in.append(name)
    try:
        yield
    finally:
        for name in stood_in:
            del sys.modules[name]


def robustbench_cifar10() -> types.ModuleType:
    """robustbench's `model_zoo/cifar10.py` as a module (its `linf`, `l2`, `common_corruptions`
    tables and classes), or skip the test when robustbench is not installed."""
    if "robustbench.model_zoo.cifar10" in sys.modules:
        return sys.modules["robustbench.model_zoo.cifar10"]
    root = Path(os.environ.get("SOUPVIZ_PEERS", PEERS)) / "robustbench"
    if not (root / "model_zoo" / "cifar10.py").is_file():
        spec = importlib.util.find_spec("robustbench")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"robustbench is not installed: pip install --no-deps --target {PEERS} robustbench==1.1.1")
        root = Path(next(iter(spec.submodule_search_locations)))
    for name, folder in (
        ("robustbench", root),
        ("robustbench.model_zoo", root / "model_zoo"),
        ("robustbench.model_zoo.architectures", root / "model_zoo" / "architectures"),
    ):
        if name not in sys.modules:  # the package, without running its `__init__`
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    with _standing_in(_UNNEEDED):
        return importlib.import_module("robustbench.model_zoo.cifar10")


def robustness_library() -> types.SimpleNamespace:
    """MadryLab `robustness` 1.2.1.post2's own `AttackerModel` and CIFAR-10 ResNets, installed without
    dependencies beside robustbench (`pip install --no-deps --target .peers robustness==1.2.1.post2`),
    or skip. Its `attacker` and `tools.helpers` import dill and cox (for saving and logging, not for
    the model); stand-ins take their place while they are imported."""
    root = Path(os.environ.get("SOUPVIZ_PEERS", PEERS)) / "robustness"
    if not (root / "attacker.py").is_file():
        pytest.skip(f"robustness is not installed: pip install --no-deps --target {PEERS} robustness==1.2.1.post2")
    if "robustness" not in sys.modules:
        package = types.ModuleType("robustness")
        package.__path__ = [str(root)]
        sys.modules["robustness"] = package
    importlib.import_module("torch.utils.data")  # asks whether dill exists: before any stand-in
    with _standing_in(("dill", "cox", "cox.store")):
        attacker = importlib.import_module("robustness.attacker")
        resnet = importlib.import_module("robustness.cifar_models.resnet")
    return types.SimpleNamespace(
        AttackerModel=attacker.AttackerModel, resnet18=resnet.ResNet18, resnet50=resnet.ResNet50
    )


def robustbench_entry(name: str, threat: str):
    """robustbench's constructor for one CIFAR-10 entry (threat 'linf', 'l2' or 'corruptions')."""
    zoo = robustbench_cifar10()
    table = {"linf": zoo.linf, "l2": zoo.l2, "corruptions": zoo.common_corruptions}[threat]
    return table[name]["model"]
