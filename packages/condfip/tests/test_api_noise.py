"""The two abductions of InferredSCM.noise: the encoder's amortized one and the decoder's invertible one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.model import CondFiPConfig, CondFiPModel
from scm_gen import make_benchmark_dataset

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    model = CondFiPModel(TINY).eval()
    data = make_benchmark_dataset(
        "in", "linear", 5, num_context=40, num_query=10, num_interventional=1, seed=2
    )
    names = [f"x{i}" for i in range(5)]
    scm = CondFiP(model, device="cpu").infer(pd.DataFrame(data.context_data, columns=names), data.adjacency)
    return model, scm, data, names


def test_encoder_noise_is_the_models_prediction_in_user_units(fitted) -> None:
    model, scm, data, names = fitted
    mean, std = scm.mean.to_numpy(), scm.std.to_numpy()
    context = torch.tensor((data.context_data - mean) / std, dtype=torch.float32)[None]
    query = torch.tensor((data.query_data - mean) / std, dtype=torch.float32)[None]
    parents = torch.from_numpy(data.adjacency.T != 0)[None]
    with torch.no_grad():
        expected = model.predict_noise(query, parents, context=context)[0].double().numpy() * std
    got = scm.noise(pd.DataFrame(data.query_data, columns=names), method="encoder").to_numpy()
    # the same encoder pass on inputs standardized in float64 either way, then cast to float32 (one step)
    operations = network_operations(dim=16, mlp_dim=32, rows=16, nodes=data.num_nodes, blocks=2 + 1)
    assert_close(got / std, expected / std, dtype=torch.float32, operations=operations, what="encoder noise")


def test_decoder_noise_is_inverted_by_generate(fitted) -> None:
    _, scm, data, names = fitted
    query = pd.DataFrame(data.query_data, columns=names)
    noise = scm.noise(query, method="decoder")
    np.testing.assert_allclose(scm.generate(noise).to_numpy(), data.query_data, atol=1e-9)


def test_default_noise_weighs_encoder_and_adapted_abduction(fitted) -> None:
    _, scm, data, names = fitted
    query = pd.DataFrame(data.query_data, columns=names)
    weight = scm.adaptation["encoder_noise_weight"].to_numpy()  # [d]
    expected = weight * scm.noise(query, method="encoder") + (1 - weight) * scm.noise(query, method="decoder")
    # the same float64 arithmetic, in user units scaled per column
    pd.testing.assert_frame_equal(scm.noise(query), expected, rtol=1e-12, atol=1e-12)


def test_unknown_noise_method(fitted) -> None:
    _, scm, _, _ = fitted
    with pytest.raises(ValueError, match="method must be 'best', 'encoder' or 'decoder'"):
        scm.noise(method="exact")
