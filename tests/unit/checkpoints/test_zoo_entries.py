"""soupviz's table of RobustBench entries against robustbench 1.1.1's own code (skipped when it is
not installed; `.ci/run` installs it): every entry of a registered architecture is in the table
with robustbench's constructor options and normalisation, and each kind of entry, built by
robustbench's class with non-trivial weights and BatchNorm statistics and saved in the zoo's
on-disk forms, imports to a model giving robustbench's logits (<= 1e-5 relative) on 8 images."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from torch import nn

from soupviz.checkpoints.families import load_checkpoint
from soupviz.checkpoints.foreign_formats import _mismatch
from soupviz.checkpoints.importing import import_checkpoint
from soupviz.checkpoints.zoo_entries import RAW, ZOO, ZooEntry, entry_for_file, zoo_entry
from soupviz.errors import CheckpointError
from soupviz.models.registry import available_models
from tests.peers import robustbench_cifar10

FOLDERS = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}  # robustbench's models/cifar10/<folder>
NORM_KEYS = ("mu", "sigma")
# One entry per kind (robustbench class or constructor call, normalisation, file wrapper), the
# issue's named ones first: each is built and compared logit for logit. WRN-70-16s are left out
# of that (267M parameters); their layout and constructor options are checked like every entry's.
BUILT = (
    "Carmon2019Unlabeled", "Rice2020Overfitting", "Engstrom2019Robustness", "Wong2020Fast",
    "Gowal2020Uncovering_28_10_extra", "Wang2023Better_WRN-28-10", "Zhang2019Theoretically", "Standard",
    "Wu2020Adversarial", "Hendrycks2019Using", "Rony2019Decoupling", "Chen2020Efficient",
    "Augustin2020Adversarial_34_10", "Augustin2020Adversarial", "Andriushchenko2020Understanding",
    "Kireev2021Effectiveness_RLAT", "Sehwag2021Proxy_R18", "Modas2021PRIMEResNet18",
)


def _table(threat: str) -> dict:
    zoo = robustbench_cifar10()
    return {"linf": zoo.linf, "l2": zoo.l2, "corruptions": zoo.common_corruptions}[threat]


class _Call:
    """What a robustbench zoo lambda called: the constructor's name and keyword arguments."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        return (self.name, args, kwargs)


@functools.cache
def _constructors() -> dict[tuple[str, str], object]:
    """(threat, name) -> robustbench's class for class entries, or what its lambda called, with the
    architecture classes its lambdas name replaced by recorders (nothing is built)."""
    zoo = robustbench_cifar10()
    names = ("WideResNet", "DMWideResNet", "PreActResNet", "ResNet18")
    saved = {name: getattr(zoo, name) for name in names}
    try:
        for name in names:
            setattr(zoo, name, _Call(name))
        found = {}
        for threat in FOLDERS:
            for name, entry in _table(threat).items():
                build = entry["model"]
                if not isinstance(build, type) and build.__name__ != "<lambda>":  # a function such as ResNet18
                    build = _Call(build.__name__)
                try:
                    found[threat, name] = build if isinstance(build, type) else build()
                except Exception:  # an architecture robustbench was installed without: not registered
                    found[threat, name] = None
        return found
    finally:
        for name, value in saved.items():
            setattr(zoo, name, value)


def _layout_fits(threat: str, name: str) -> list[str]:
    """Registered architectures robustbench's model for the entry fits, keys and shapes (built on
    the meta device), once its unused `sub_block1` and its normalisation buffers are left out."""
    try:
        with torch.device("meta"):
            model = _table(threat)[name]["model"]()
    except Exception:  # an architecture robustbench was installed without: not registered
        return []
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("sub_block1.") and k not in NORM_KEYS}
    return [arch for arch in available_models() if not _mismatch(state, arch)]


def test_every_robustbench_entry_of_a_registered_architecture_is_in_the_table() -> None:
    robustbench_cifar10()
    table = {(e.threat, e.name): e for e in ZOO}
    fitting = {}
    for threat in FOLDERS:
        for name in _table(threat):
            fits = _layout_fits(threat, name)
            if fits:
                fitting[threat, name] = fits
    assert set(fitting) == set(table), set(fitting) ^ set(table)
    for key, fits in fitting.items():
        assert table[key].arch in fits, (key, fits)


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.key)
def test_each_entry_has_robustbench_constructor_options_and_normalisation(entry: ZooEntry) -> None:
    call = _constructors()[entry.threat, entry.name]
    if isinstance(call, type):  # a robustbench class: its name heads the row; its statistics are checked by a build
        assert entry.constructor.startswith(call.__name__ + ":"), (entry.constructor, call.__name__)
        assert entry.normalisation != RAW
        return
    callee, args, kwargs = call
    if callee == "WideResNet":
        depth = kwargs.get("depth", args[0] if args else 28)
        widen, sub_block1 = kwargs.get("widen_factor", 10), kwargs.get("sub_block1", False)
        assert entry.constructor == f"WideResNet(depth={depth}, widen_factor={widen}, sub_block1={sub_block1})"
        assert entry.normalisation == RAW
    elif callee == "DMWideResNet":
        activation = kwargs["activation_fn"]
        name = "nn.SiLU" if activation is nn.SiLU else activation.__name__
        assert f"depth={kwargs['depth']}, width={kwargs['width']}, activation_fn={name}," in entry.constructor
        assert entry.normalisation == (tuple(kwargs["mean"]), tuple(kwargs["std"]))
        assert kwargs.get("padding", 0) == 0
    elif callee == "PreActResNet":
        assert entry.constructor == "PreActResNet(PreActBlock, [2, 2, 2, 2])" and args[1] == [2, 2, 2, 2]
        assert not kwargs and entry.normalisation == RAW
    else:
        assert callee == "ResNet18" and entry.constructor == "ResNet18()" and entry.normalisation == RAW


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """`model` with seeded weights and non-trivial BatchNorm statistics, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=generator) * 0.2 - 0.1)
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(11)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.05)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def _zoo_file(model: nn.Module, entry: ZooEntry, folder: Path, form: str) -> Path:
    """Save `model` as the zoo's files come: 'bare' (a state dict without the class's `mu`/`sigma`,
    the files robustbench loads strict=False), or 'wrapped' ({'state_dict': ...} with 'module.'
    prefixes and the statistics), under robustbench's `<threat folder>/<name>.pt`."""
    state = model.state_dict()
    if form == "bare":
        state = {k: v for k, v in state.items() if k not in NORM_KEYS}
    else:
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    if entry.wrapper:
        state = {entry.wrapper: state, "best": {k: v * 0 for k, v in state.items()}}
    path = folder / FOLDERS[entry.threat] / f"{entry.name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _assert_same_logits(original, path: Path) -> None:
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    imported = load_checkpoint(path).build_model()
    with torch.no_grad():
        expected, found = original(x), imported(x)
    scale = float(expected.abs().max())
    assert scale > 1e-3 and float((found - expected).abs().max()) <= 1e-5 * scale


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT)
def test_each_kind_of_entry_imports_to_robustbench_logits(name: str, tmp_path: Path) -> None:
    entry = next(e for e in ZOO if e.name == name)
    torch.manual_seed(0)
    original = _randomised(_table(entry.threat)[name]["model"](), seed=1)
    form = "wrapped" if name in ("Carmon2019Unlabeled", "Modas2021PRIMEResNet18") else "bare"
    if name == "Modas2021PRIMEResNet18":  # its statistics come from the file: give it some of its own
        original.mu.copy_(torch.tensor([0.45, 0.5, 0.55]).view(1, 3, 1, 1))
        original.sigma.copy_(torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))
    path = _zoo_file(original, entry, tmp_path, form)
    assert entry_for_file(path) == entry  # named after its entry, in robustbench's folder
    result = import_checkpoint(path, tmp_path / "family")
    assert result.card.arch == entry.arch and entry.name in result.card.source["zoo"]
    _assert_same_logits(original, result.path)


def test_a_file_named_after_no_entry_imports_with_zoo(tmp_path: Path) -> None:
    entry = zoo_entry("Rice2020Overfitting")
    torch.manual_seed(0)
    original = _randomised(_table("l2")["Rice2020Overfitting"]["model"](), seed=2)
    state = {k: v for k, v in original.state_dict().items() if k not in NORM_KEYS}
    torch.save(state, tmp_path / "model_best.pth")
    with pytest.raises(CheckpointError, match="carries no input normalisation.*--zoo.*--mean and --std"):
        import_checkpoint(tmp_path / "model_best.pth", tmp_path / "family")
    result = import_checkpoint(tmp_path / "model_best.pth", tmp_path / "family", zoo="Rice2020Overfitting")
    assert result.card.source["normalisation"] == "RobustBench 1.1.1 entry Rice2020Overfitting (l2)"
    assert result.card.arch == entry.arch and result.card.threat == "l2"
    _assert_same_logits(original, result.path)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_robustness_attacker_model_checkpoints_import_to_its_logits(arch: str, tmp_path: Path) -> None:
    """MadryLab robustness's own AttackerModel (normaliser + model + attacker) in DataParallel, saved as
    its `train.py` saves `checkpoint.pt.latest` and `.best`: both import, neither overwrites the other."""
    import types

    from tests.peers import robustness_library

    library = robustness_library()
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2023, 0.1994, 0.2010])
    cifar = types.SimpleNamespace(mean=mean, std=std)  # robustness.datasets.CIFAR's statistics
    torch.manual_seed(0)
    original = _randomised(library.AttackerModel(getattr(library, arch)(), cifar), seed=4)
    wrapped = nn.DataParallel(original)
    optimizer = torch.optim.SGD(original.parameters(), lr=0.1, momentum=0.9)
    info = {"model": wrapped.state_dict(), "optimizer": optimizer.state_dict(), "schedule": None, "epoch": 150,
            "amp": None}
    for name in ("checkpoint.pt.latest", "checkpoint.pt.best"):
        torch.save(info, tmp_path / name)
    latest = import_checkpoint(tmp_path / "checkpoint.pt.latest", tmp_path / "family", threat="l2")
    with pytest.raises(CheckpointError, match="already exists"):
        import_checkpoint(tmp_path / "checkpoint.pt.best", tmp_path / "family", threat="l2")
    best = import_checkpoint(tmp_path / "checkpoint.pt.best", tmp_path / "family", threat="l2", name="best")
    assert latest.card.arch == best.card.arch == arch and latest.card.source["format"] == "robustness"
    assert latest.card.source["normalisation"] == "the file checkpoint.pt.latest"
    _assert_same_logits(lambda x: original.eval()(x)[0], latest.path)  # AttackerModel returns (logits, input)
