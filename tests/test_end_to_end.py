"""Cross-package: a benchmark dataset from scm-gen, zero-shot inference through condfip's user API with a
network whose node attention runs through dag-attention, scored by condfip-eval. The network is a tiny
random one: the checks are the invariants that hold for any weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.model import CondFiPConfig, CondFiPModel
from condfip_eval.methods.condfip_method import CondFiPMethod
from condfip_eval.scoring import TASKS, score_dataset
from dag_attention import parents_from_adjacency
from scm_gen import make_benchmark_dataset

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=32
)


@pytest.fixture(scope="module")
def dataset():
    return make_benchmark_dataset("in", "rff", 6, num_context=80, num_query=40, num_interventional=40, seed=7)


def test_pipeline_scores_a_random_network(dataset) -> None:
    torch.manual_seed(0)
    method = CondFiPMethod(CondFiP(CondFiPModel(TINY)))
    result = score_dataset(method, dataset)
    assert set(result["rmse"]) == set(TASKS)
    assert all(np.isfinite(value) and value > 0 for value in result["rmse"].values())
    assert result["fit_seconds"] >= 0 and result["sample_seconds"] >= 0


def test_factual_counterfactual_and_intervened_node(dataset) -> None:
    """For any weights: the empty intervention returns the factual rows, and do(X_k = a) holds a exactly."""
    torch.manual_seed(1)
    names = [f"x{i}" for i in range(dataset.adjacency.shape[1])]
    context = pd.DataFrame(dataset.context_data, columns=names)
    scm = CondFiP(CondFiPModel(TINY)).infer(context, dataset.adjacency)
    query = pd.DataFrame(dataset.query_data, columns=names)
    np.testing.assert_allclose(scm.counterfactual_samples({}, query).to_numpy(), query.to_numpy(), atol=1e-6)
    node = names[dataset.intervention_node]
    out = scm.counterfactual_samples({node: dataset.intervention_value}, query)
    assert np.all(out[node].to_numpy() == dataset.intervention_value)


def test_graph_conventions_agree_across_packages(dataset) -> None:
    """scm-gen's adjacency (i -> j) becomes dag-attention's parents mask by one transpose."""
    adjacency = dataset.adjacency
    parents = parents_from_adjacency(torch.from_numpy(adjacency)).numpy()
    for child in range(adjacency.shape[0]):
        np.testing.assert_array_equal(np.flatnonzero(parents[child]), np.flatnonzero(adjacency[:, child]))
