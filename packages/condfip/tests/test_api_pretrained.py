"""Checkpoints: shipped names, local folders, the Hugging Face cache (offline) and uploads to a fake Hub client."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import condfip
import condfip.io.pretrained as registry
from condfip import CondFiP
from condfip.io import resolve_checkpoint, shipped_checkpoints
from condfip.model import CondFiPConfig, CondFiPModel

TINY = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)
CHAIN = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
ROWS = np.random.default_rng(0).normal(size=(40, 3))


def tiny() -> CondFiP:
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = CondFiPModel(TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return CondFiP(model, device="cpu")


def same_answers(first: CondFiP, second: CondFiP) -> None:
    a, b = first.infer(ROWS, CHAIN), second.infer(ROWS, CHAIN)
    np.testing.assert_array_equal(a.noise().to_numpy(), b.noise().to_numpy())
    np.testing.assert_array_equal(a.sample(10, seed=0).to_numpy(), b.sample(10, seed=0).to_numpy())


@pytest.fixture
def saved(tmp_path) -> tuple[CondFiP, Path]:
    model = tiny()
    model.save_pretrained(tmp_path / "tiny")
    return model, tmp_path / "tiny"


def test_save_and_load_a_local_folder(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = CondFiP.from_pretrained(folder, device="cpu")
    assert loaded.config == TINY
    same_answers(model, loaded)
    same_answers(model, CondFiP.from_pretrained(str(folder), device="cpu"))


def test_shipped_names_come_from_the_registry_folder(saved, tmp_path, monkeypatch):
    model, folder = saved
    root = tmp_path / "registry"
    shutil.copytree(folder, root / "tiny")
    (root / "incomplete").mkdir()
    (root / "incomplete" / "config.json").write_text("{}")
    assert shipped_checkpoints(root) == {"tiny": root / "tiny"}
    assert resolve_checkpoint("tiny", root=root) == root / "tiny"
    monkeypatch.setattr(registry, "shipped_root", lambda: root)
    same_answers(model, CondFiP.from_pretrained("tiny", device="cpu"))
    with pytest.raises(ValueError, match=r"'medium' is not a shipped checkpoint \(shipped: 'tiny'\)"):
        CondFiP.from_pretrained("medium")


def test_shipped_root_is_inside_the_installed_package():
    root = registry.shipped_root()
    assert root == Path(condfip.__file__).parent / "pretrained"
    for name, folder in shipped_checkpoints().items():  # whatever is shipped must load
        assert CondFiP.from_pretrained(name, device="cpu").model is not None, folder


def test_folder_without_checkpoint_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"lacks \['model.safetensors'\].*save_pretrained"):
        CondFiP.from_pretrained(tmp_path)


def test_unknown_name_or_path():
    with pytest.raises(ValueError, match="not a shipped checkpoint.*an existing folder.*'owner/name'"):
        resolve_checkpoint("no-such-name", root=Path("/nonexistent"))


def _no_hub(*args, **kwargs):
    raise AssertionError("a local path was looked up on the Hugging Face Hub")


@pytest.mark.parametrize(
    "name",
    ["./nonexistent", "../nonexistent", "runs/a/b", "~/condfip-nonexistent", "ABSOLUTE", Path("runs/x")],
)
def test_a_path_without_a_folder_is_named_as_a_path(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "download_checkpoint", _no_hub)
    name = str(tmp_path / "gone") if name == "ABSOLUTE" else name
    with pytest.raises(
        ValueError, match=r"^no checkpoint folder at '.*'.*check the path.*save_pretrained"
    ) as error:
        CondFiP.from_pretrained(name)
    assert repr(str(name)) in str(error.value)
    assert "Hugging Face" not in str(error.value)


def test_a_file_is_not_a_checkpoint_folder(saved, monkeypatch):
    _, folder = saved
    monkeypatch.chdir(folder)
    monkeypatch.setattr(registry, "download_checkpoint", _no_hub)
    with pytest.raises(ValueError, match=r"'model.safetensors' \(.*\) is a file, not a checkpoint folder"):
        CondFiP.from_pretrained("model.safetensors")


def test_a_hub_id_that_is_not_cached_also_says_no_folder_is_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match="not in the Hugging Face cache.*no local folder 'runs/x' exists here"
    ):
        CondFiP.from_pretrained("runs/x", cache_dir=tmp_path / "cache", local_files_only=True)
    for bad in ("runs/-x", "runs/a--b", "runs/x.git", "run s/x"):
        with pytest.raises(
            ValueError, match=f"^{bad!r} is not a Hugging Face Hub repo id: .*no local folder"
        ):
            CondFiP.from_pretrained(bad, cache_dir=tmp_path / "cache", local_files_only=True)


def _fake_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay out ``folder`` as huggingface_hub's cache does after a download of ``repo_id``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_hub_repo_id_loads_from_the_standard_cache_offline(saved, tmp_path):
    model, folder = saved
    _fake_hub_cache(tmp_path / "hf-cache", "someone/condfip-tiny", folder)
    loaded = CondFiP.from_pretrained(
        "someone/condfip-tiny", cache_dir=tmp_path / "hf-cache", local_files_only=True, device="cpu"
    )
    same_answers(model, loaded)


def test_hub_repo_id_not_cached_offline_says_so(tmp_path):
    with pytest.raises(ValueError, match="'someone/absent' is not in the Hugging Face cache.*offline"):
        CondFiP.from_pretrained("someone/absent", cache_dir=tmp_path, local_files_only=True)


class FakeHubClient:
    """Records calls like huggingface_hub.HfApi and keeps a copy of every uploaded folder."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **options):
        self.calls.append(("create_repo", {"repo_id": repo_id, **options}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **options):
        self.calls.append(("upload_folder", {"repo_id": repo_id, **options}))
        shutil.copytree(folder_path, self.store / repo_id, dirs_exist_ok=True)
        return "commit-info"


def test_push_to_hub_uploads_a_loadable_checkpoint_with_a_card(saved, tmp_path):
    model, _ = saved
    client = FakeHubClient(tmp_path / "hub")
    assert model.push_to_hub("me/tiny", private=True, api=client) == "commit-info"
    assert [name for name, _ in client.calls] == ["create_repo", "upload_folder"]
    assert client.calls[0][1] == {"repo_id": "me/tiny", "token": None, "private": True, "exist_ok": True}
    assert client.calls[1][1]["commit_message"] == "Upload Cond-FiP checkpoint"
    uploaded = tmp_path / "hub" / "me" / "tiny"
    assert sorted(p.name for p in uploaded.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert 'CondFiP.from_pretrained("me/tiny")' in (uploaded / "README.md").read_text()
    same_answers(model, CondFiP.from_pretrained(uploaded, device="cpu"))


def test_push_to_hub_offline_says_so_before_anything_is_uploaded(saved, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants

    def no_client(*args, **kwargs):
        raise AssertionError("a Hub client was made in offline mode")

    model, _ = saved
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 does
    monkeypatch.setattr(huggingface_hub, "HfApi", no_client)
    with pytest.raises(
        ValueError,
        match=r"cannot upload to 'me/tiny': .*offline mode \(HF_HUB_OFFLINE=1\).*unset HF_HUB_OFFLINE",
    ):
        model.push_to_hub("me/tiny")


def test_push_to_hub_turns_the_clients_offline_error_into_one_message(saved, tmp_path):
    from huggingface_hub.errors import OfflineModeIsEnabled

    class OfflineClient(FakeHubClient):
        def create_repo(self, repo_id, **options):
            raise OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled.")

    model, _ = saved
    with pytest.raises(ValueError, match="cannot upload to 'me/tiny': .*offline mode.*unset HF_HUB_OFFLINE"):
        model.push_to_hub("me/tiny", api=OfflineClient(tmp_path / "hub"))


@pytest.mark.parametrize(
    ("repo_id", "rule"),
    [
        ("tiny", "the form 'owner/name'"),
        ("me/tiny/v2", "the form 'owner/name'"),
        ("me/", "the form 'owner/name'"),
        ("me/ti ny", "only letters, digits"),
        ("me/-tiny", "neither starts or ends with '-' or '.'"),
        ("me/tiny.", "neither starts or ends with '-' or '.'"),
        ("me/ti--ny", "refuses '--' and '..'"),
        ("me/tiny.git", "a name ending in '.git'"),
        ("me/" + "t" * 97, "longer than 96 characters"),
    ],
)
def test_push_to_hub_checks_the_repo_id_before_anything_is_uploaded(saved, tmp_path, repo_id, rule):
    model, _ = saved
    client = FakeHubClient(tmp_path / "hub")
    with pytest.raises(ValueError, match=f"is not a Hugging Face Hub repo id: .*{re.escape(rule)}"):
        model.push_to_hub(repo_id, api=client)
    assert client.calls == []


def test_hub_offline_mode_uses_the_cache_or_says_so(saved, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 does
    model, folder = saved
    _fake_hub_cache(tmp_path / "hf-cache", "someone/cached", folder)
    same_answers(
        model, CondFiP.from_pretrained("someone/cached", cache_dir=tmp_path / "hf-cache", device="cpu")
    )
    with pytest.raises(
        ValueError, match="'someone/absent' is not in the Hugging Face cache.*HF_HUB_OFFLINE=1"
    ):
        CondFiP.from_pretrained("someone/absent", cache_dir=tmp_path / "hf-cache")
