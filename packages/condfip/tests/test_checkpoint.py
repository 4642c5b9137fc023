"""save_pretrained / from_pretrained: bit-exact round trip, and every way a checkpoint can be refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from condfip.model import CondFiPConfig, CondFiPModel

TINY = CondFiPConfig(dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[CondFiPModel, Path]:
    torch.manual_seed(0)
    model = CondFiPModel(TINY)
    model.save_pretrained(tmp_path, training={"steps": 3, "preset": "in"})
    return model, tmp_path


def test_round_trip_is_bit_exact(saved: tuple[CondFiPModel, Path]) -> None:
    model, directory = saved
    loaded = CondFiPModel.from_pretrained(directory)
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    config = json.loads((directory / "config.json").read_text())
    assert config["format_version"] == 1 and config["training"] == {"steps": 3, "preset": "in"}
    assert config["package_version"] and config["architecture"]["dim"] == 8
    assert not list(directory.glob("*.tmp"))  # nothing left from the atomic writes


def _edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def test_unknown_format_version(saved) -> None:
    _, directory = saved
    _edit_config(directory, format_version=99)
    with pytest.raises(ValueError, match="format_version 99"):
        CondFiPModel.from_pretrained(directory)


def test_wrong_model_type(saved) -> None:
    _, directory = saved
    _edit_config(directory, model_type="bert")
    with pytest.raises(ValueError, match="model_type 'bert'"):
        CondFiPModel.from_pretrained(directory)


def test_missing_files(tmp_path: Path, saved) -> None:
    with pytest.raises(ValueError, match="no checkpoint folder at '.*nowhere'; check the path"):
        CondFiPModel.from_pretrained(tmp_path / "nowhere")
    _, directory = saved
    (directory / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"lacks \['model.safetensors'\]"):
        CondFiPModel.from_pretrained(directory)


def test_corrupted_config(saved) -> None:
    _, directory = saved
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted"):
        CondFiPModel.from_pretrained(directory)


def test_truncated_weights(saved) -> None:
    _, directory = saved
    path = directory / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        CondFiPModel.from_pretrained(directory)


def test_garbage_weights(saved) -> None:
    _, directory = saved
    (directory / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        CondFiPModel.from_pretrained(directory)


def test_missing_extra_and_misshapen_tensors(saved) -> None:
    _, directory = saved
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    name = "decoder.out.weight"
    del tensors[name]
    tensors["decoder.surprise"] = torch.zeros(2)
    tensors["encoder.value_embedding.bias"] = torch.zeros(5)
    save_file(tensors, str(path))
    with pytest.raises(ValueError) as error:
        CondFiPModel.from_pretrained(directory)
    message = str(error.value)
    assert "missing tensors decoder.out.weight" in message
    assert "unexpected tensors decoder.surprise" in message
    assert "wrong shapes encoder.value_embedding.bias (5,) (expected (8,))" in message


def test_architecture_mismatch_is_named(saved) -> None:
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    config["architecture"]["dim"] = 16
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="wrong shapes"):
        CondFiPModel.from_pretrained(directory)


def test_no_pickle_anywhere() -> None:
    import condfip

    source = Path(condfip.__file__).parent
    offenders = [
        str(path)
        for path in source.rglob("*.py")
        if "torch.load(" in path.read_text() or "import pickle" in path.read_text()
    ]
    assert offenders == []


# ----- shards ------------------------------------------------------------------------------------------------


def _weight_bytes(model: CondFiPModel) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def test_sharded_round_trip_is_bit_exact(saved, tmp_path: Path) -> None:
    from condfip.io.checkpoint import INDEX_NAME

    model, _ = saved
    limit = _weight_bytes(model) // 3 + 1
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_bytes=limit)
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) >= 3 and not (folder / "model.safetensors").exists()
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((folder / INDEX_NAME).read_text())
    assert index["metadata"]["total_size"] == _weight_bytes(model)
    assert set(index["weight_map"]) == set(model.state_dict()) and set(index["weight_map"].values()) == set(
        shards
    )
    for shard in shards:  # every shard under the limit unless a single tensor is larger
        tensors = load_file(str(folder / shard))
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        assert size <= limit or len(tensors) == 1
    loaded = CondFiPModel.from_pretrained(folder)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    # the user API and the shipped-name registry take a sharded folder as a checkpoint
    from condfip import CondFiP
    from condfip.io import shipped_checkpoints

    assert CondFiP.from_pretrained(folder, device="cpu").model.config == model.config
    assert shipped_checkpoints(tmp_path) == {"sharded": folder}
    # saving again in one file removes the shards and the index (never both forms)
    model.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_bfloat16_storage_loads_as_float32(saved, tmp_path: Path) -> None:

    model, _ = saved
    model.save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16, max_shard_bytes=_weight_bytes(model) // 4)
    loaded = CondFiPModel.from_pretrained(tmp_path / "bf16")
    for name, tensor in model.state_dict().items():
        assert loaded.state_dict()[name].dtype == tensor.dtype
        assert torch.equal(loaded.state_dict()[name], tensor.to(torch.bfloat16).to(tensor.dtype)), name


def test_float8_storage_loads_as_float32(saved, tmp_path: Path) -> None:
    model, _ = saved
    model.save_pretrained(tmp_path / "f8", dtype=torch.float8_e4m3fn)
    loaded = CondFiPModel.from_pretrained(tmp_path / "f8")
    for name, tensor in model.state_dict().items():
        stored = tensor.to(torch.float8_e4m3fn) if tensor.is_floating_point() else tensor
        assert torch.equal(loaded.state_dict()[name], stored.to(tensor.dtype)), name


def test_bad_shards_are_refused(saved, tmp_path: Path) -> None:
    from condfip.io.checkpoint import INDEX_NAME

    model, _ = saved
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_bytes=_weight_bytes(model) // 2 + 1)
    index_path = folder / INDEX_NAME
    index = json.loads(index_path.read_text())

    save_file({"x": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="holds both model.safetensors and model.safetensors.index.json"):
        CondFiPModel.from_pretrained(folder)
    (folder / "model.safetensors").unlink()

    moved = dict(index["weight_map"])
    first = next(iter(moved))
    moved[first] = next(name for name in sorted(set(moved.values())) if name != moved[first])
    index_path.write_text(json.dumps({**index, "weight_map": moved}))
    with pytest.raises(ValueError, match=f"does not hold the tensors .* assigns to it \\(differing: {first}"):
        CondFiPModel.from_pretrained(folder)

    index_path.write_text(json.dumps({"weight_map": {first: "../elsewhere.safetensors"}}))
    with pytest.raises(ValueError, match="must map every tensor name to a shard file named model-NNNNN"):
        CondFiPModel.from_pretrained(folder)
    index_path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*index.json.*corrupted"):
        CondFiPModel.from_pretrained(folder)

    index_path.write_text(json.dumps(index))
    last = sorted(set(index["weight_map"].values()))[-1]
    (folder / last).unlink()
    with pytest.raises(ValueError, match=f"{last} is missing"):
        CondFiPModel.from_pretrained(folder)

    with pytest.raises(ValueError, match="max_shard_bytes must be a positive number of bytes"):
        model.save_pretrained(tmp_path / "bad", max_shard_bytes=0)


# ------------------------------------------------------------------------------------ a save as a whole
def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def test_a_value_json_cannot_hold_is_refused_before_any_file_is_written(tmp_path: Path) -> None:
    model = CondFiPModel(TINY)
    model.save_pretrained(tmp_path / "m", training={"steps": 1})
    before = _files(tmp_path / "m")
    with pytest.raises(ValueError, match=r"training\.p is a \w*Path"):
        model.save_pretrained(tmp_path / "m", training={"p": Path("x")})
    with pytest.raises(ValueError, match=r"training\.p is a \w*Path"):
        model.save_pretrained(tmp_path / "new", training={"p": Path("x")})
    assert _files(tmp_path / "m") == before and not (tmp_path / "new").exists()
    model.save_pretrained(tmp_path / "nan", training={"loss": float("nan")})  # written as null, valid JSON
    assert json.loads((tmp_path / "nan" / "config.json").read_text())["training"] == {"loss": None}


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import condfip.io.checkpoint as checkpoint

    torch.manual_seed(0)
    first, second = CondFiPModel(TINY), CondFiPModel(TINY)
    limit = sum(t.numel() * t.element_size() for t in first.state_dict().values()) // 3 + 1
    first.save_pretrained(tmp_path / "m", max_shard_bytes=limit, training={"step": 1})
    before = _files(tmp_path / "m")
    original, calls = checkpoint.save_safetensors, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("during the second shard")
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_safetensors", interrupted)
    with pytest.raises(KeyboardInterrupt):
        second.save_pretrained(tmp_path / "m", max_shard_bytes=limit, training={"step": 2})
    monkeypatch.undo()
    assert _files(tmp_path / "m") == before and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # the swap itself: the new checkpoint replaces the old one, in the other form, and nothing stays behind
    second.save_pretrained(tmp_path / "m", training={"step": 2})
    assert sorted(_files(tmp_path / "m")) == ["config.json", "model.safetensors"]
    loaded = CondFiPModel.from_pretrained(tmp_path / "m")
    assert loaded.training_recipe == {"step": 2} and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # a crash between the swap's two renames leaves m.old, which loads
    (tmp_path / "m").rename(tmp_path / "m.old")
    assert CondFiPModel.from_pretrained(tmp_path / "m").training_recipe == {"step": 2}


def test_a_shared_folder_keeps_its_other_files_and_refuses_mixed_saves(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first, second = CondFiPModel(TINY), CondFiPModel(TINY)
    limit = sum(t.numel() * t.element_size() for t in first.state_dict().values()) // 3 + 1
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train_log.jsonl").write_text("{}\n")
    first.save_pretrained(tmp_path / "run", max_shard_bytes=limit)
    second.save_pretrained(tmp_path / "run", training={"step": 2})
    assert sorted(_files(tmp_path / "run")) == ["config.json", "model.safetensors", "train_log.jsonl"]
    assert not list((tmp_path / "run").glob(".*"))
    # weights of another save beside this config.json (a save interrupted between its renames) are refused
    first.save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").replace(tmp_path / "run" / "model.safetensors")
    with pytest.raises(ValueError, match="written by another save than .*config.json"):
        CondFiPModel.from_pretrained(tmp_path / "run")


def test_load_then_save_keeps_the_training_section(tmp_path: Path) -> None:
    from condfip import CondFiP

    CondFiPModel(TINY).save_pretrained(tmp_path / "a", training={"steps": 9, "node_counts": [5]})
    CondFiPModel.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    CondFiP.from_pretrained(tmp_path / "b", device="cpu").save_pretrained(tmp_path / "c")
    for name in ("b", "c"):
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["training"] == {"steps": 9, "node_counts": [5]}, name
    CondFiPModel.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "d", training={"steps": 1})
    assert CondFiPModel.from_pretrained(tmp_path / "d").training_recipe == {"steps": 1}
