import os

import numpy as np
import pytest
import yaml

from scm_gen.export import FEATURES, export_benchmark, iter_benchmark, load_hf_dataset, read_summary
from scm_gen.hub import push_to_hub
from scm_gen.specs import DatasetSpec, csuite_specs, generate_specs

ARRAYS = ("adjacency", "data", "noise", "interventional_data", "interventional_noise", "counterfactual_data")


def _specs(**kwargs):
    options = {
        "preset": "out",
        "mechanism": "rff",
        "num_nodes": 5,
        "num_datasets": 5,
        "num_context": 12,
        "num_query": 8,
        "num_interventional": 6,
        "seed": 7,
    }
    return generate_specs(**{**options, **kwargs})


def _assert_same(loaded, expected):
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(expected, name))
        assert getattr(loaded, name).dtype == getattr(expected, name).dtype
    assert loaded.num_context == expected.num_context
    assert loaded.intervention_node == expected.intervention_node
    assert loaded.intervention_value == expected.intervention_value
    assert loaded.metadata == expected.metadata


def test_round_trip_restores_every_dataset_exactly(tmp_path):
    specs = _specs() + csuite_specs(
        num_context=10, num_query=5, num_interventional=0, names=("lingauss", "weak_arrow")
    )
    out = export_benchmark(specs, tmp_path / "export", generator={"test": True}, shard_size=2)
    summary = read_summary(out)
    assert summary["configs"]["out_rff_d5"]["num_datasets"] == 5
    assert summary["configs"]["out_rff_d5"]["num_shards"] == 3
    loaded = list(iter_benchmark(out, "out_rff_d5"))
    assert len(loaded) == 5
    for dataset, spec in zip(loaded, specs[:5], strict=True):
        _assert_same(dataset, spec.build())
    (weak,) = iter_benchmark(out, "weak_arrow")
    _assert_same(weak, specs[-1].build())
    assert weak.interventional_data.shape == (0, 9)


def test_export_loads_with_datasets_and_declared_features(tmp_path):
    out = export_benchmark(_specs(), tmp_path / "export", generator={}, shard_size=2)
    table = load_hf_dataset(out, cache_dir=str(tmp_path / "cache"))
    assert table.features == FEATURES
    assert table.num_rows == 5
    row = table[3]
    expected = _specs()[3].build()
    np.testing.assert_array_equal(np.array(row["data"]), expected.data)
    np.testing.assert_array_equal(np.array(row["adjacency"], dtype=np.int8), expected.adjacency)
    assert row["seed"] == 7 and row["index"] == 3 and row["preset"] == "out"


def test_dataset_card_declares_configs_conventions_and_citations(tmp_path):
    specs = _specs() + csuite_specs(num_context=10, num_query=5, num_interventional=2, names=("lingauss",))
    out = export_benchmark(specs, tmp_path / "export", generator={"command": "test", "seed": 7}, split="test")
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "mit"
    configs = {c["config_name"]: c["data_files"] for c in header["configs"]}
    assert set(configs) == {"out_rff_d5", "lingauss"}
    for files in configs.values():
        assert files[0]["split"] == "test"
        assert list(out.glob(files[0]["path"]))
    for fact in (
        "adjacency[i][j] = 1",
        "not standardized",
        "SeedSequence",
        '"seed": 7',
        "0.1.0",
        "2410.06128",
        "Deep End-to-end Causal Inference",
    ):
        assert fact in text


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch, error):
    original = DatasetSpec.build

    def failing_build(self):
        if self.index == 3:
            raise error("generation failed")
        return original(self)

    monkeypatch.setattr(DatasetSpec, "build", failing_build)
    with pytest.raises(error):
        export_benchmark(_specs(), tmp_path / "export", generator={}, shard_size=2)
    assert os.listdir(tmp_path) == []


def test_export_refuses_an_existing_directory_and_bad_options(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        export_benchmark(_specs(), tmp_path / "taken", generator={})
    with pytest.raises(ValueError, match="num_proc=0"):
        export_benchmark(_specs(), tmp_path / "new", generator={}, num_proc=0)
    with pytest.raises(ValueError, match="empty"):
        export_benchmark([], tmp_path / "new", generator={})
    assert os.listdir(tmp_path) == ["taken"]


class FakeHubApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))


def test_push_to_hub_creates_a_dataset_repo_and_uploads_the_folder(tmp_path):
    out = export_benchmark(_specs(), tmp_path / "export", generator={})
    api = FakeHubApi()
    url = push_to_hub(out, "someone/cond-fip-grid", api=api, private=True)
    assert url == "https://huggingface.co/datasets/someone/cond-fip-grid"
    (create, create_args), (upload, upload_args) = api.calls
    assert create == "create_repo" and upload == "upload_folder"
    assert create_args == {
        "repo_id": "someone/cond-fip-grid",
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
    }
    assert upload_args["folder_path"] == str(out) and upload_args["repo_type"] == "dataset"
    assert upload_args["repo_id"] == "someone/cond-fip-grid"


def test_push_to_hub_rejects_bad_repo_ids_and_non_exports(tmp_path):
    out = export_benchmark(_specs(), tmp_path / "export", generator={})
    with pytest.raises(ValueError, match="OWNER/NAME"):
        push_to_hub(out, "no-owner", api=FakeHubApi())
    with pytest.raises(ValueError, match="not an scm-gen export"):
        push_to_hub(tmp_path, "a/b", api=FakeHubApi())
