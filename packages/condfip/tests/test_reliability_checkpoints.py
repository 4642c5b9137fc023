"""Corrupt checkpoints are refused by name before anything is built, checkpoint bytes depend on the weights
alone, and files and folders written atomically respect the umask and leave no temporary behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from condfip import CondFiP
from condfip.io.atomic import atomic_directory, atomic_file, remove_stale_temporaries
from condfip.io.checkpoint import save_safetensors
from condfip.io.registry import parameter_bytes
from condfip.model import CondFiPConfig, CondFiPModel

TINY = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    CondFiPModel(TINY).save_pretrained(folder)
    return folder


def _edit_architecture(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for name, value in changes.items():
        if value is _REMOVE:
            del config["architecture"][name]
        else:
            config["architecture"][name] = value
    path.write_text(json.dumps(config))


_REMOVE = object()


def _edit_weights(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt", "model_type": "condfip"})


# ------------------------------------------------------------------------------------------------ config.json
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dim": _REMOVE}, r"lacks the fields \['dim'\]"),
        ({"dim": _REMOVE, "mlp_dim": _REMOVE}, r"lacks the fields \['dim', 'mlp_dim'\]"),
        ({"dim": "sixty-four"}, "CondFiPConfig.dim must be an integer, got 'sixty-four'"),
        ({"dim": 1e9}, r"CondFiPConfig.dim must be an integer, got 1000000000.0"),
        ({"dim": True}, "CondFiPConfig.dim must be an integer, got True"),
        ({"decoder_value_norm": "yes"}, "decoder_value_norm must be true/false, got 'yes'"),
        ({"max_nodes": 2.5}, "max_nodes must be an integer or null, got 2.5"),
        ({"num_heads": 3}, "must be divisible by num_heads"),
    ],
)
def test_bad_architecture_fields_are_refused_by_name(saved: Path, changes, message: str) -> None:
    _edit_architecture(saved, **changes)
    with pytest.raises(ValueError, match=message) as error:
        CondFiPModel.from_pretrained(saved)
    assert str(saved / "config.json") in str(error.value)


def test_absurd_sizes_are_refused_with_their_estimate_before_allocating(saved: Path) -> None:
    # dim = mlp_dim = 10^9: each decoder block alone holds 6 dim^2 modulation weights; nothing is allocated, so
    # the refusal comes at once (building such a network would need exabytes)
    _edit_architecture(saved, dim=10**9, mlp_dim=10**9, num_heads=1)
    with pytest.raises(ValueError, match=r"more than 2\^63 parameter values"):
        CondFiPModel.from_pretrained(saved)
    _edit_architecture(saved, dim=2**17, mlp_dim=2**17, num_heads=1)  # representable, about a terabyte
    with pytest.raises(
        ValueError, match=r"needs about [\d.]+ TiB of memory, more than this machine's"
    ) as error:
        CondFiPModel.from_pretrained(saved)
    assert "TiB of parameters" in str(error.value)


def test_the_parameter_estimate_counts_what_the_model_holds() -> None:
    model = CondFiPModel(TINY)
    held = sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())
    assert parameter_bytes(CondFiPModel, TINY) == held


def test_training_section_must_be_an_object(saved: Path) -> None:
    path = saved / "config.json"
    config = json.loads(path.read_text())
    config["training"] = ["steps", 3]
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'training' section that is not a JSON object"):
        CondFiPModel.from_pretrained(saved)


# -------------------------------------------------------------------------------------------------- weights
def test_non_finite_weights_are_refused_by_name(saved: Path) -> None:
    def poison(tensors):
        tensors["decoder.out.bias"] = torch.full_like(tensors["decoder.out.bias"], float("nan"))
        tensors["decoder.out.weight"][0, 3] = float("inf")

    _edit_weights(saved, poison)
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in decoder\.out\.bias, decoder\.out\.weight"
    ):
        CondFiP.from_pretrained(saved, device="cpu")


def test_integer_weights_are_refused_by_name(saved: Path) -> None:
    def to_int(tensors):
        tensors["decoder.out.weight"] = tensors["decoder.out.weight"].to(torch.int32)

    _edit_weights(saved, to_int)
    with pytest.raises(ValueError, match=r"wrong type: decoder\.out\.weight \(int32, expected float32\)"):
        CondFiPModel.from_pretrained(saved)


def test_half_precision_weights_still_load(saved: Path) -> None:
    _edit_weights(saved, lambda tensors: tensors.update({k: v.half() for k, v in tensors.items()}))
    assert CondFiPModel.from_pretrained(saved).decoder.out.weight.dtype == torch.float32


# ------------------------------------------------------------------------------ what loading refuses, saving too
def _with_weights(kind: str) -> CondFiPModel:
    """A model whose decoder readout holds NaN and an infinity ("poisoned"), a value beyond float16 ("large")
    or nothing special ("plain")."""
    model = CondFiPModel(TINY)
    with torch.no_grad():
        if kind == "poisoned":
            model.decoder.out.bias.fill_(float("nan"))
            model.decoder.out.weight[0, 3] = float("inf")
        if kind == "large":
            model.decoder.out.weight[0, 3] = 1e6
    return model


def _everything(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``, hidden temporaries included."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    ("weights", "dtype", "message"),
    [
        (
            "poisoned",
            None,
            r"NaN or infinite values in decoder\.out\.bias, decoder\.out\.weight, which loading refuses",
        ),
        (
            "large",
            torch.float16,
            r"NaN or infinite values in decoder\.out\.weight once stored as torch\.float16",
        ),
        (
            "plain",
            torch.int8,
            r"dtype=torch\.int8 stores tensors of the wrong type: \S+ \(int8, expected float32\)",
        ),
        ("plain", torch.bool, r"wrong type: \S+ \(bool, expected float32\)"),
        ("plain", torch.complex64, r"wrong type: \S+ \(complex64, expected float32\)"),
        ("plain", "bfloat16", "dtype must be a torch.dtype such as torch.bfloat16"),
    ],
)
def test_a_save_refuses_what_loading_refuses_and_writes_nothing(
    tmp_path: Path, weights: str, dtype, message: str
) -> None:
    CondFiPModel(TINY).save_pretrained(tmp_path / "kept")  # a checkpoint the refused save leaves as it was
    (tmp_path / "run").mkdir()  # a folder with other files, where a save stages its files beside them
    (tmp_path / "run" / "train_log.jsonl").write_text("{}\n")
    before = _everything(tmp_path)
    model = _with_weights(weights)
    for target in ("kept", "run", "new"):
        with pytest.raises(ValueError, match=message):
            model.save_pretrained(tmp_path / target, dtype=dtype)
    assert _everything(tmp_path) == before


def test_a_training_section_loading_refuses_is_not_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="training must be a dict .* got list"):
        CondFiPModel(TINY).save_pretrained(tmp_path / "m", training=["steps", 3])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ deterministic bytes
def test_safetensors_bytes_do_not_depend_on_the_metadata_order(tmp_path: Path) -> None:
    tensors = {"b": torch.arange(3.0), "a": torch.ones(2, 2, dtype=torch.float64)}
    metadata = {f"key{k}": f"value{k}" for k in (7, 3, 5, 1, 0, 6, 2, 4)}
    written = []
    for attempt in range(6):  # the writer's hash map orders these keys differently from map to map
        path = tmp_path / f"{attempt}.safetensors"
        save_safetensors(tensors, path, dict(reversed(metadata.items())) if attempt % 2 else metadata)
        written.append(path.read_bytes())
    assert all(data == written[0] for data in written)
    size = int.from_bytes(written[0][:8], "little")
    header = json.loads(written[0][8 : 8 + size])
    assert list(header["__metadata__"]) == sorted(metadata)
    loaded = load_file(str(tmp_path / "0.safetensors"))
    assert torch.equal(loaded["b"], tensors["b"]) and torch.equal(loaded["a"], tensors["a"])


def test_the_same_weights_write_the_same_checkpoint_bytes(tmp_path: Path) -> None:
    model = CondFiPModel(TINY)
    for name in ("first", "second", "third"):
        model.save_pretrained(tmp_path / name, training={"steps": 3, "seed": 1, "lr": 0.001})
    for file in ("model.safetensors", "config.json"):
        first = (tmp_path / "first" / file).read_bytes()
        assert (tmp_path / "second" / file).read_bytes() == first
        assert (tmp_path / "third" / file).read_bytes() == first


# ---------------------------------------------------------------------------------------- atomic writes, umask
@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_files_and_folders_respect_the_umask(tmp_path: Path, umask_027) -> None:
    with atomic_file(tmp_path / "table.csv") as temporary:
        temporary.write_text("a\n1\n")
    with atomic_directory(tmp_path / "state") as temporary:
        (temporary / "inside.json").write_text("{}")
    CondFiPModel(TINY).save_pretrained(tmp_path / "model")
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "state" / "inside.json").stat().st_mode & 0o777 == 0o640
    for file in ("model.safetensors", "config.json"):
        assert (tmp_path / "model" / file).stat().st_mode & 0o777 == 0o640
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model", "state", "table.csv"]


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    stale_file = tmp_path / f".out.csv.{dead}.k3j9x_.tmp"
    stale_folder = tmp_path / f".out.csv.{dead}.a8b2c1.tmp"
    live_file = tmp_path / f".out.csv.{alive}.q0w9e8.tmp"
    other = tmp_path / f".other.csv.{dead}.z1x2c3.tmp"  # another target's temporary: not ours to judge here
    stale_file.write_text("half a table")
    stale_folder.mkdir()
    (stale_folder / "part").write_text("x")
    live_file.write_text("being written")
    other.write_text("x")
    with atomic_file(tmp_path / "out.csv") as temporary:
        temporary.write_text("a\n1\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([live_file.name, other.name, "out.csv"])
    assert remove_stale_temporaries(tmp_path / "other.csv") == [other]
