"""Importing foreign checkpoints: each format (RobustBench-style with its own normalisation,
DeepMind layout, `robustness` with prefixes and normaliser, plain and DataParallel state dicts)
imports to a model giving the original module's logits; zoo layouts map key for key; every bad
file gets one sentence; a folder of foreign files opens as a family."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from soupviz.checkpoints.families import load_checkpoint
from soupviz.checkpoints.foreign_formats import ForeignCheckpoint, match_architecture, read_foreign
from soupviz.checkpoints.importing import import_checkpoint, open_family
from soupviz.cli import main
from soupviz.errors import CheckpointError
from soupviz.models.registry import create_model
from soupviz.serve.uploads import save_uploads

IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def small_net(seed: int = 0) -> nn.Module:
    """A random preact_resnet_small taking already-normalised inputs, with non-trivial BN statistics."""
    torch.manual_seed(seed)
    net = create_model("preact_resnet_small", mean=IDENTITY[0], std=IDENTITY[1])
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(7)
    return net.eval()


class Normalised(nn.Module):
    """A zoo-style model keeping its own normalisation as `mu`/`sigma` buffers beside `net`."""

    def __init__(self, net: nn.Module, mean=MEAN, std=STD) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mu", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mu) / self.sigma)


class Normalizer(nn.Module):
    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("new_mean", torch.tensor(mean).view(3, 1, 1))
        self.register_buffer("new_std", torch.tensor(std).view(3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.new_mean) / self.new_std


class AttackerModel(nn.Module):
    """The MadryLab `robustness` wrapper: normalizer + model, and an attacker holding both again."""

    def __init__(self, net: nn.Module, mean=MEAN, std=STD) -> None:
        super().__init__()
        self.normalizer, self.model = Normalizer(mean, std), net
        self.attacker = nn.Module()
        self.attacker.model, self.attacker.normalize = net, Normalizer(mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalizer(x))


def inputs(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def assert_same_logits(original: nn.Module, path: Path, x: torch.Tensor | None = None) -> None:
    x = inputs() if x is None else x
    imported = load_checkpoint(path).build_model()
    with torch.no_grad():
        torch.testing.assert_close(imported(x), original.eval()(x), rtol=1e-4, atol=1e-5)


def test_robustbench_state_dict_with_its_own_normalisation(tmp_path: Path) -> None:
    original = Normalised(small_net())
    torch.save({"state_dict": original.state_dict()}, tmp_path / "zoo.pt")
    result = import_checkpoint(tmp_path / "zoo.pt", tmp_path / "family", threat="linf")
    card = result.card
    assert card.arch == "preact_resnet_small" and card.mean == pytest.approx(MEAN) and card.std == pytest.approx(STD)
    assert card.source["format"] == "robustbench" and card.source["file"] == "zoo.pt"
    assert len(card.source["sha256"]) == 64 and card.eps == pytest.approx(8 / 255) and card.label == "L∞ 8/255"
    assert_same_logits(original, result.path)


def test_a_file_without_normalisation_and_no_zoo_entry_is_refused_never_guessed(tmp_path: Path) -> None:
    original = small_net(1)
    torch.save(original.state_dict(), tmp_path / "raw.pth")
    _expect(tmp_path / "raw.pth", "carries no input normalisation", "--zoo", "--mean and --std")
    assert not (tmp_path / "family").exists()
    result = import_checkpoint(tmp_path / "raw.pth", tmp_path / "family", normalisation=IDENTITY)
    assert result.card.mean == IDENTITY[0] and result.card.threat == "unknown" and result.card.label == "raw"
    assert result.card.source["normalisation"] == "--mean/--std"
    assert_same_logits(original, result.path)


def test_robustness_checkpoint_with_prefixes_normaliser_optimizer_and_numpy_scalars(tmp_path: Path) -> None:
    original = AttackerModel(small_net(2))
    state = {f"module.{key}": value for key, value in original.state_dict().items()}
    assert any(key.startswith("module.attacker.model.") for key in state)
    optimizer = torch.optim.SGD(original.parameters(), lr=0.1, momentum=0.9)
    blob = {
        "model": state,
        "optimizer": optimizer.state_dict(),
        "schedule": None,
        "epoch": 150,
        "nat_prec1": np.float64(0.87),
    }
    torch.save(blob, tmp_path / "cifar_linf_8.pt")
    result = import_checkpoint(tmp_path / "cifar_linf_8.pt", tmp_path / "family", name="madry", threat="linf")
    assert result.card.source["format"] == "robustness" and result.card.name == "madry"
    assert result.card.mean == pytest.approx(MEAN)
    assert not any("attacker" in key or "normalizer" in key for key in load_checkpoint(result.path).state_dict)
    assert_same_logits(original, result.path)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module.model."])
def test_plain_state_dicts_with_dataparallel_or_compile_prefixes(tmp_path: Path, prefix: str) -> None:
    original = small_net(3)
    state = {prefix + key: value for key, value in original.state_dict().items()}
    torch.save({"model_state_dict": state, "epoch": 3}, tmp_path / "mine.pt")
    result = import_checkpoint(tmp_path / "mine.pt", tmp_path / "family", normalisation=IDENTITY)
    assert_same_logits(original, result.path)


def test_old_checkpoints_without_batchnorm_counters_and_half_precision_import(tmp_path: Path) -> None:
    original = small_net(4).half().float()
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in original.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    torch.save(state, tmp_path / "old.pt")
    result = import_checkpoint(tmp_path / "old.pt", tmp_path / "family", normalisation=IDENTITY)
    assert_same_logits(original, result.path)


class ReferenceDMBlock(nn.Module):
    """RobustBench's `dm_wide_resnet._Block`, written as its source reads."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.batchnorm_0, self.relu_0 = nn.BatchNorm2d(in_planes, momentum=0.01), nn.SiLU()
        self.conv_0 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=0, bias=False)
        self.batchnorm_1, self.relu_1 = nn.BatchNorm2d(out_planes, momentum=0.01), nn.SiLU()
        self.conv_1 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.has_shortcut = in_planes != out_planes
        self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False) if self.has_shortcut else None
        self._stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_shortcut:
            x = self.relu_0(self.batchnorm_0(x))
        else:
            out = self.relu_0(self.batchnorm_0(x))
        v = x if self.has_shortcut else out
        v = F.pad(v, (1, 1, 1, 1)) if self._stride == 1 else F.pad(v, (0, 1, 0, 1))
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(v))))
        return torch.add(self.shortcut(x) if self.has_shortcut else x, out)


class ReferenceDMWideResNet(nn.Module):
    """RobustBench's `DMWideResNet` with Swish: CIFAR-10 normalisation inside, not in the state dict."""

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(3, 1, 1)
        self.std = torch.tensor((0.2471, 0.2435, 0.2616)).view(3, 1, 1)
        c, n = [16, 16 * width, 32 * width, 64 * width], (depth - 4) // 6
        self.init_conv = nn.Conv2d(3, c[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(*[nn.Module() for _ in range(3)])
        for g, stride in enumerate((1, 2, 2)):
            self.layer[g].block = nn.Sequential(
                *[ReferenceDMBlock(c[g] if i == 0 else c[g + 1], c[g + 1], stride if i == 0 else 1) for i in range(n)]
            )
        self.batchnorm, self.relu, self.logits = nn.BatchNorm2d(c[3], momentum=0.01), nn.SiLU(), nn.Linear(c[3], 10)
        self.num_channels = c[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.init_conv((x - self.mean) / self.std)
        for group in self.layer:
            out = group.block(out)
        out = F.avg_pool2d(self.relu(self.batchnorm(out)), 8)
        return self.logits(out.view(-1, self.num_channels))


def test_deepmind_layout_wrn_28_10_gives_robustbench_logits(tmp_path: Path) -> None:
    torch.manual_seed(5)
    original = ReferenceDMWideResNet(28, 10).eval()
    torch.save(original.state_dict(), tmp_path / "Gowal2020Uncovering_28_10_extra.pt")
    result = import_checkpoint(tmp_path / "Gowal2020Uncovering_28_10_extra.pt", tmp_path / "family")
    assert result.card.arch == "dm_wide_resnet28_10" and result.card.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert_same_logits(original, result.path, inputs(2))


def _meta_foreign(model: nn.Module, name: str) -> ForeignCheckpoint:
    return ForeignCheckpoint(Path(name), "robustbench", model.state_dict(), None, None, "")


def test_zoo_layouts_map_key_for_key_without_building_the_weights() -> None:
    with torch.device("meta"):
        dm_70_16 = ReferenceDMWideResNet(70, 16)
        wrn_34_10, resnet50 = create_model("wide_resnet34_10"), create_model("resnet50", num_classes=100)
    assert match_architecture(_meta_foreign(dm_70_16, "Rebuffi2021Fixing_70_16.pt")) == ("wide_resnet70_16", 10)
    assert match_architecture(_meta_foreign(wrn_34_10, "trades.pt")) == ("wide_resnet34_10", 10)
    assert match_architecture(_meta_foreign(resnet50, "madry.pt")) == ("resnet50", 100)
    layout = resnet50.state_dict()
    assert layout["layer1.0.conv3.weight"].shape == (256, 64, 1, 1) and "layer4.0.shortcut.1.running_var" in layout
    assert sum(p.numel() for p in dm_70_16.parameters()) == pytest.approx(266.8e6, rel=1e-3)


def _expect(path: Path, *fragments: str, **kw) -> None:
    with pytest.raises(CheckpointError) as error:
        import_checkpoint(path, path.parent / "family", **kw)
    message = str(error.value)
    assert path.name in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_every_bad_file_gets_one_sentence(tmp_path: Path) -> None:
    state = small_net().state_dict()
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3), "head.weight": torch.zeros(10, 4)}, tmp_path / "other.pt")
    _expect(tmp_path / "other.pt", "matches no registered architecture")
    torch.save(state, tmp_path / "small.pt")
    _expect(tmp_path / "small.pt", "does not fit wide_resnet28_10", arch="wide_resnet28_10")
    torch.save({k: v for k, v in state.items() if not k.startswith("linear")}, tmp_path / "headless.pt")
    _expect(tmp_path / "headless.pt", "missing", "linear.weight", arch="preact_resnet_small")
    torch.save({**state, "payload": Evil()}, tmp_path / "evil.pt")
    _expect(tmp_path / "evil.pt", "pickles Python objects", "system")
    assert not (tmp_path / "pwned.txt").exists() and not Path("pwned.txt").exists()
    torch.save({**state, "linear.bias": torch.full((10,), float("nan"))}, tmp_path / "nan.pt")
    _expect(tmp_path / "nan.pt", "NaN", "linear.bias")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "small.pt").read_bytes()[:5000])
    _expect(tmp_path / "cut.pt", "truncated")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "cut-legacy.pt").write_bytes((tmp_path / "legacy.pt").read_bytes()[:5000])
    _expect(tmp_path / "cut-legacy.pt", "truncated")
    torch.save([1, 2], tmp_path / "list.pt")
    _expect(tmp_path / "list.pt", "does not hold a state dict")
    _expect(tmp_path / "absent.pt", "does not exist")
    with pytest.raises(CheckpointError, match="Unknown checkpoint format"):
        read_foreign(tmp_path / "small.pt", "keras")


def test_a_folder_or_upload_of_foreign_files_opens_as_a_family(tmp_path: Path) -> None:
    originals = [small_net(seed) for seed in (6, 7)]
    uploads = []
    for index, net in enumerate(originals):
        stats = {"module.mu": torch.zeros(1, 3, 1, 1), "module.sigma": torch.ones(1, 3, 1, 1)}
        torch.save({**{f"module.{k}": v for k, v in net.state_dict().items()}, **stats}, tmp_path / f"m{index}.pt")
        uploads.append((f"m{index}.pt", (tmp_path / f"m{index}.pt").read_bytes()))
    folder = save_uploads(uploads, tmp_path / "uploads", check=lambda f: open_family(f, cache=tmp_path / "cache"))
    family = open_family(folder, cache=tmp_path / "cache")
    assert family.names == ["m0", "m1"] and family.name == "uploaded"
    with torch.no_grad():
        torch.testing.assert_close(family.ingredients[1].build_model()(inputs()), originals[1](inputs()))
    assert open_family(folder, cache=tmp_path / "cache").folder == family.folder  # imported once


def test_cli_import_writes_a_carded_checkpoint(tmp_path: Path, capsys) -> None:
    original = Normalised(small_net(8))
    torch.save(original.state_dict(), tmp_path / "zoo.pt")
    args = [
        "import",
        str(tmp_path / "zoo.pt"),
        "--out",
        str(tmp_path / "family"),
        "--threat",
        "l2",
        "--eps",
        "0.25",
        "--check-images",
        "0",
    ]
    assert main(args) == 0
    assert "preact_resnet_small from a robustbench file" in capsys.readouterr().out
    card = load_checkpoint(tmp_path / "family" / "zoo.safetensors").card
    assert card.label == "L2 0.25" and card.source["file"] == "zoo.pt"
    assert main([*args, "--mean", "0.5,0.5"]) == 2
    assert "--mean and --std go together" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "zoo.pt"), "--out", str(tmp_path / "f"), "--arch", "resnet18"]) == 2
    assert "does not fit resnet18" in capsys.readouterr().err


def test_import_never_overwrites_an_ingredient_unless_asked(tmp_path: Path) -> None:
    for run, seed in (("run1", 10), ("run2", 11)):  # robustness names every run's file alike
        (tmp_path / run).mkdir()
        torch.save({"model": {f"module.{k}": v for k, v in AttackerModel(small_net(seed)).state_dict().items()}},
                   tmp_path / run / "checkpoint.pt.latest")
    first = import_checkpoint(tmp_path / "run1" / "checkpoint.pt.latest", tmp_path / "family")
    before = first.path.read_bytes()
    with pytest.raises(CheckpointError, match="already exists: give the import another --name, or --overwrite"):
        import_checkpoint(tmp_path / "run2" / "checkpoint.pt.latest", tmp_path / "family")
    assert first.path.read_bytes() == before
    second = import_checkpoint(tmp_path / "run2" / "checkpoint.pt.latest", tmp_path / "family", name="run2")
    assert second.path != first.path and first.path.read_bytes() == before
    replaced = import_checkpoint(tmp_path / "run2" / "checkpoint.pt.latest", tmp_path / "family", overwrite=True)
    assert replaced.path == first.path and first.path.read_bytes() != before


def test_the_card_records_the_command_and_where_the_normalisation_came_from(tmp_path: Path, monkeypatch,
                                                                              capsys) -> None:
    torch.save(Normalised(small_net(12)).state_dict(), tmp_path / "zoo.pt")
    argv = ["import", str(tmp_path / "zoo.pt"), "--out", str(tmp_path / "family"), "--check-images", "0"]
    monkeypatch.setattr("sys.argv", ["soupviz", *argv])
    assert main(argv) == 0
    card = load_checkpoint(tmp_path / "family" / "zoo.safetensors").card
    assert card.command == "soupviz " + " ".join(argv) and card.source["normalisation"] == "the file zoo.pt"
    assert "(from the file zoo.pt)" in capsys.readouterr().out
    assert main([*argv, "--overwrite", "--mean", "0,0,0", "--std", "1,1,1"]) == 0
    assert load_checkpoint(tmp_path / "family" / "zoo.safetensors").card.source["normalisation"] == "--mean/--std"


def test_bad_files_are_named_in_the_users_terms_before_any_image_is_loaded(tmp_path: Path, monkeypatch,
                                                                           capsys) -> None:
    import pickle
    import warnings

    loads = []
    monkeypatch.setattr("soupviz.data.load_split", lambda *a, **k: loads.append(a) or pytest.fail("images loaded"))
    state = small_net().state_dict()
    (tmp_path / "folder.pt").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with open(tmp_path / "raw.pt", "wb") as handle:
        pickle.dump(state, handle)
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    (tmp_path / "cut-legacy.pt").write_bytes((tmp_path / "legacy.pt").read_bytes()[:3000])
    torch.save(state, tmp_path / "legacy4.pt", _use_new_zipfile_serialization=False, pickle_protocol=4)
    torch.save(state, tmp_path / "zip.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "zip.pt").read_bytes()[:3000])
    torch.save({**state, "linear.weight": torch.zeros(10, 100)}, tmp_path / "shape.pt")
    torch.save({"last": state, "best": state}, tmp_path / "two.pt")
    expected = {
        "folder.pt": "is a folder, not a file",
        "empty.pt": "is empty (0 bytes)",
        "notes.pt": "is not a PyTorch checkpoint",
        "raw.pt": "is a raw Python pickle (pickle.dump)",
        "cut-legacy.pt": "legacy (pre-1.6) format and is truncated or damaged",
        "legacy4.pt": "legacy (pre-1.6) format with pickle protocol 4, which torch's safe loader cannot read",
        "legacy.pt": "carries no input normalisation",  # read: torch's legacy format, protocol 2
        "cut.pt": "is truncated or damaged (its zip archive cannot be read)",
        "shape.pt": "shape (10, 100) for 'linear.weight' where (10, 192) is expected",
        "two.pt": "holds several state dicts ('last', 'best')",
        "zip.pt": "carries no input normalisation",
        "absent.pt": "does not exist",
    }
    for name, fragment in expected.items():
        extra = ["--arch", "preact_resnet_small"] if name == "shape.pt" else []
        with warnings.catch_warnings(record=True) as caught:  # torch's pickle warnings are not shown either
            warnings.simplefilter("always")
            assert main(["import", str(tmp_path / name), "--out", str(tmp_path / "family"), *extra]) == 2, name
        assert not caught, (name, [str(w.message)[:80] for w in caught])
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert fragment in err and str(tmp_path / name) in err and "\n" not in err, err
        for internal in ("pop from empty list", "enforce fail", "PytorchStreamReader", "weights_only", "Warning"):
            assert internal not in err + captured.out, (name, err)
    assert loads == [] and not (tmp_path / "family").exists()
