import os
import subprocess
import sys

import numpy as np
import pytest

from scm_gen import limits, make_benchmark_dataset, make_training_batch, sample_scm
from scm_gen.export import export_benchmark
from scm_gen.parquet_io import ROWS_PER_ROW_GROUP, matrix_cells, row_group_size
from scm_gen.specs import generate_specs, grid_specs
from scm_gen.staging import make_staging_directory, remove_dead_staging


def test_dataset_bytes_counts_every_matrix():
    # 10 nodes: (6 rows + 6 noise + 2 interventional + 2 noise + 3 counterfactual) x 10 doubles, adjacency 100
    assert limits.dataset_bytes(10, 6, 3, 2) == 8 * 10 * (12 + 4 + 3) + 100
    assert limits.format_bytes(1536) == "1.5 KiB" and limits.format_bytes(3 * 2**40) == "3.0 TiB"


def test_generation_memory_counts_one_nodes_random_features():
    """At 3 nodes the float32 random features of one node's evaluation (100 per row) outweigh the tables."""
    tables = 3 * limits.dataset_bytes(3, 10**8, 400, 400)
    assert limits.generation_memory(3, 10**8, 400, 400) == tables + 4 * 10**8 * (100 + 3 + 1)


def test_requests_beyond_the_memory_are_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 10**6)
    with pytest.raises(ValueError, match="of memory, more than this machine's 976.6 KiB"):
        make_benchmark_dataset("in", "rff", 20, num_context=5000)
    with pytest.raises(ValueError, match="rows x 3 nodes"):
        sample_scm("in", "linear", 3, rng=np.random.default_rng(0)).sample(10**5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="training batch"):
        make_training_batch(0, batch_size=64, num_samples=4000, node_counts=(20,))
    with pytest.raises(ValueError, match="of memory"):
        generate_specs(preset="in", mechanism="rff", num_nodes=20, num_datasets=1, num_context=5000)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generate_specs(preset="in", mechanism="rff", num_nodes=6000, num_datasets=1), "34.3 MiB"),
        (lambda: generate_specs(preset="in", mechanism="rff", num_nodes=5, num_datasets=10**7), "one export"),
        (
            lambda: generate_specs(preset="in", mechanism="rff", num_nodes=5, num_datasets=1, seed=2**63),
            "seed",
        ),
        (lambda: grid_specs(node_counts=(10, 9000)), "nodes=9000"),
        (lambda: grid_specs(scms_per_graph=10**6), "grid would hold about 48000000 datasets"),
        (lambda: make_benchmark_dataset("in", "rff", 5, seed=2**64), "seed"),
        (lambda: sample_scm("in", "rff", 10**7, rng=np.random.default_rng(0)), "num_nodes"),
    ],
)
def test_sizes_beyond_the_documented_bounds_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_matrices_beyond_arrow_offsets_are_refused_and_row_groups_shrink(monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: None)  # only the Arrow bound speaks
    with pytest.raises(ValueError, match="values per dataset"):
        limits.check_dataset_request(5000, 500_000, 0, 0)
    assert row_group_size(matrix_cells(20, 800, 400)) == ROWS_PER_ROW_GROUP
    assert row_group_size(matrix_cells(1000, 800_000, 0)) == 2  # 2^31 // 8e8
    assert row_group_size(limits.MAX_MATRIX_CELLS) == 1


def test_exports_larger_than_the_free_disk_space_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "free_disk_space", lambda path: 10_000)
    specs = generate_specs(preset="in", mechanism="linear", num_nodes=5, num_datasets=4, num_context=20)
    with pytest.raises(ValueError, match="needs about .* on disk, but only 9.8 KiB are free"):
        export_benchmark(specs, tmp_path / "out", generator={})
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_staging_left_by_dead_processes_of_this_host_is_removed(tmp_path):
    own = make_staging_directory(tmp_path / "out")
    host = own.name.split(".partial-")[1].rsplit("-", 2)[0]
    dead = tmp_path / f".old.partial-{host}-{_dead_pid()}-0123abcd"
    alive = tmp_path / f".busy.partial-{host}-{os.getppid()}-0123abcd"
    foreign = tmp_path / f".x.partial-another_host-{_dead_pid()}-0123abcd"
    legacy = tmp_path / ".y.partial-0123abcd"
    user = tmp_path / "partial-notes"
    for folder in (dead, alive, foreign, legacy, user):
        (folder / "data").mkdir(parents=True)
    assert remove_dead_staging(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (own, alive, foreign, legacy, user)
    )


def test_worker_processes_count_in_the_memory_estimate(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 2**30)
    specs = generate_specs(preset="in", mechanism="linear", num_nodes=3, num_datasets=40, num_context=4)
    with pytest.raises(
        ValueError, match="generating with 10 process"
    ):  # 10 shards of 4 datasets: ten workers
        export_benchmark(specs, tmp_path / "out", generator={}, num_proc=64, shard_size=4)
    assert list(tmp_path.iterdir()) == []
