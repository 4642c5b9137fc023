"""The shipped graph weights (``graph-small``): they load by name, find edges far better than chance on fresh
scm-gen SCMs, and ``graph="infer"`` runs end to end with both shipped models and no network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scm_gen
from condfip import CondFiP, infer_graph
from condfip.core.graph_scores import auroc
from condfip.graph import DEFAULT_GRAPH_MODEL, GraphModel
from condfip.io import shipped_checkpoints


def test_graph_small_is_shipped_and_loads_by_name() -> None:
    assert DEFAULT_GRAPH_MODEL == "graph-small"
    assert "graph-small" in shipped_checkpoints(model_type="graph")
    model = GraphModel.from_pretrained()
    assert model.config.pair_statistics and model.trained_max_nodes == 30
    # a calibrated default threshold (condfip.training.calibration), not the uncalibrated 0.5
    assert model.inference["calibration"]["node_counts"] == [10, 20, 30]
    assert 0.0 < model.default_threshold < 0.5


@pytest.mark.parametrize("mechanism", ["linear", "rff"])
def test_shipped_graph_model_ranks_true_edges_high(mechanism: str) -> None:
    scores = []
    for index in range(3):  # seeds apart from training (fresh stream) and validation (its fixed seed)
        dataset = scm_gen.make_benchmark_dataset(
            "in", mechanism, 12, num_context=400, num_query=0, num_interventional=0, seed=2026, index=index
        )
        probabilities, dag = infer_graph(dataset.data, device="cpu")
        assert probabilities.shape == (12, 12) and dag.shape == (12, 12)
        threshold = GraphModel.from_pretrained().default_threshold
        # every DAG edge is above the default threshold
        assert ((probabilities > threshold) | (dag == 0)).all()
        scores.append(auroc(dataset.adjacency, probabilities))
    assert np.mean(scores) > 0.8  # chance is 0.5; the validation figures at d = 20 are in TRAINING.md


def test_infer_with_graph_infer_runs_on_the_shipped_models() -> None:
    dataset = scm_gen.make_benchmark_dataset(
        "in", "linear", 6, num_context=300, num_query=0, num_interventional=0, seed=7, index=0
    )
    table = pd.DataFrame(dataset.data, columns=[f"gene{i}" for i in range(6)])
    scm = CondFiP.from_pretrained("small", device="cpu").infer(table, graph="infer")
    _, dag = infer_graph(table, device="cpu")
    assert set(scm.graph.edges()) == {(f"gene{i}", f"gene{j}") for i, j in np.argwhere(dag)}
    assert scm.graph.number_of_edges() > 0
    samples = scm.sample(50, seed=0)
    assert list(samples.columns) == list(table.columns) and np.isfinite(samples.to_numpy()).all()
