"""Checkpoints and families: round trips, and one clear error for every bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from soupviz.checkpoints.cards import Card
from soupviz.checkpoints.families import content_hash, load_checkpoint, load_family, save_checkpoint
from soupviz.errors import CheckpointError
from soupviz.models.registry import available_models, create_model


def test_round_trip_keeps_weights_card_and_hash(tmp_path: Path) -> None:
    state = create_model("preact_resnet_small").state_dict()
    card = Card(name="a", arch="preact_resnet_small", threat="linf", eps=8 / 255, recipe={"epochs": 3})
    path = save_checkpoint(state, card, tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.card.recipe == {"epochs": 3} and loaded.card.eps == pytest.approx(8 / 255)
    assert loaded.card.content_hash == content_hash(state)
    assert all(torch.equal(loaded.state_dict[key], state[key]) for key in state)
    assert loaded.card.label == "L∞ 8/255"


def test_family_orders_ingredients_nominal_linf_l2_l1(family) -> None:
    assert [i.card.threat for i in family.ingredients] == ["none", "linf", "l2", "l1"]
    assert family.labels == ["nominal", "L∞ 8/255", "L2 0.5", "L1 12"]
    assert family.ingredients[0].card.parent["name"] == "test-linf"


def test_registry_builds_each_architecture_with_public_key_layout() -> None:
    assert {"preact_resnet_small", "preact_resnet18", "wide_resnet28_10"} <= set(available_models())
    wrn = create_model("wide_resnet28_10").state_dict()
    assert "block1.layer.0.bn1.weight" in wrn and "fc.weight" in wrn and wrn["conv1.weight"].shape == (16, 3, 3, 3)
    preact = create_model("preact_resnet18").state_dict()
    assert "layer2.0.shortcut.0.weight" in preact and "linear.weight" in preact


def test_model_normalises_inside_and_keeps_normalisation_out_of_the_state_dict() -> None:
    model = create_model("preact_resnet_small", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert not any("input_" in key for key in model.state_dict())
    assert torch.allclose(model.normalize(torch.full((1, 3, 2, 2), 0.75)), torch.ones(1, 3, 2, 2))


def _expect(path: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert path.stem in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "absent.safetensors", "does not exist")


def test_missing_card(family_folder: Path) -> None:
    (family_folder / "test-l2.json").unlink()
    _expect(family_folder / "test-l2.safetensors", "card", "missing")


def test_unknown_architecture(family_folder: Path) -> None:
    card_path = family_folder / "test-l2.json"
    card = json.loads(card_path.read_text())
    card["arch"] = "resnet9000"
    card_path.write_text(json.dumps(card))
    _expect(family_folder / "test-l2.safetensors", "unknown architecture", "resnet9000")


def test_truncated_file(family_folder: Path) -> None:
    path = family_folder / "test-l1.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    _expect(path, "truncated or corrupted")


def test_corrupted_bytes_fail_the_content_hash(family_folder: Path) -> None:
    path = family_folder / "test-l1.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    _expect(path, "content hash")


def test_nan_weights(tmp_path: Path) -> None:
    state = create_model("preact_resnet_small").state_dict()
    state["linear.weight"][0, 0] = float("nan")
    path = save_checkpoint(state, Card(name="nan", arch="preact_resnet_small", threat="linf"), tmp_path)
    _expect(path, "NaN or Inf", "linear.weight")


def test_shape_mismatch_with_architecture(tmp_path: Path) -> None:
    state = create_model("preact_resnet_small", num_classes=100).state_dict()
    path = save_checkpoint(state, Card(name="wide", arch="preact_resnet_small", threat="linf"), tmp_path)
    _expect(path, "linear.weight", "shape")


def test_keys_of_another_architecture(tmp_path: Path) -> None:
    state = create_model("preact_resnet18").state_dict()
    path = save_checkpoint(state, Card(name="other", arch="preact_resnet_small", threat="linf"), tmp_path)
    _expect(path, "does not fit its architecture")


def test_family_rejects_an_ingredient_of_another_architecture(family_folder: Path) -> None:
    save_checkpoint(
        create_model("preact_resnet18").state_dict(),
        Card(name="big", arch="preact_resnet18", threat="l2"),
        family_folder,
    )
    with pytest.raises(CheckpointError, match="one architecture"):
        load_family(family_folder)


def test_empty_or_missing_family_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_family(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no .safetensors"):
        load_family(tmp_path)


def test_plain_state_dict_loads_without_unpickling_code(tmp_path: Path) -> None:
    from soupviz.checkpoints.families import read_weights

    state = create_model("preact_resnet_small").state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ok.pt")
    loaded = read_weights(tmp_path / "ok.pt")
    assert set(loaded) == set(state)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused_without_advice_to_turn_the_check_off(tmp_path: Path, capsys) -> None:
    from soupviz.checkpoints.families import read_weights

    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"weight": _Exploit()}, handle)
    with pytest.raises(CheckpointError) as error:
        read_weights(path)
    message = str(error.value)
    assert message.startswith(f"The checkpoint {path} is a raw Python pickle") and "builtins.print" in message
    assert "weights_only" not in message and "\n" not in message
    assert "pwned" not in capsys.readouterr().out  # the payload never ran


def test_a_file_that_is_not_safetensors_is_called_so(tmp_path: Path) -> None:
    from soupviz.checkpoints.families import read_weights

    for name, data in (("random.safetensors", bytes(range(256)) * 8), ("pickle.safetensors", pickle.dumps([1, 2])),
                       ("tiny.safetensors", b"{}")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=f"The file {tmp_path / name} is not a safetensors file"):
            read_weights(tmp_path / name)


def test_a_file_given_as_the_family_folder_is_told_apart_from_a_missing_folder(family_folder: Path) -> None:
    checkpoint = family_folder / "test-l2.safetensors"
    with pytest.raises(CheckpointError, match=f"{checkpoint} is a file, not a folder: .* {family_folder}"):
        load_family(checkpoint)


def test_mixed_normalisations_are_refused_everywhere_a_soup_is_made(family_folder: Path, tmp_path: Path,
                                                                     capsys) -> None:
    from soupviz.checkpoints.families import SoupFamily
    from soupviz.cli import main
    from soupviz.evaluate.soupability import measure_soupability
    from soupviz.soups.soup import Soup

    card_file = family_folder / "test-l2.json"
    card = json.loads(card_file.read_text())
    card["mean"], card["std"] = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    card_file.write_text(json.dumps(card))
    expected = r"mixes input normalisations \(.*test-l2 mean \(0.5, 0.5, 0.5\) std \(0.25, 0.25, 0.25\).*--mean/--std"
    with pytest.raises(CheckpointError, match=expected):  # sweeps, the explorer and `check` load families so
        load_family(family_folder)
    assert main(["check", str(family_folder), "--images", "4", "--points", "3"]) == 2
    assert "mixes input normalisations" in capsys.readouterr().err
    loaded = [load_checkpoint(path) for path in sorted(family_folder.glob("*.safetensors"))]
    family = SoupFamily("hand-made", loaded)  # a family put together without the loader's checks
    with pytest.raises(CheckpointError, match=expected):
        Soup.from_family(family)
    with pytest.raises(CheckpointError, match=expected):
        measure_soupability(family, None)
