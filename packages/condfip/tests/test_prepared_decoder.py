"""The decoder prepared for inference (``condfip.model.prepared_decoder``) computes the decoder's ``F_hat``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from condfip.api.engine import DecoderRunner
from condfip.core.dags import topological_levels
from condfip.model import CondFiPConfig, CondFiPModel
from condfip.model.prepared_decoder import prepare_decoder
from dag_attention import parents_from_adjacency

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=24
)
# the decoder's two blocks over up to 9 nodes; the prepared form rounds along its own path as well: twice that
DECODER_OPERATIONS = 2 * network_operations(dim=16, mlp_dim=32, rows=1, nodes=9, blocks=2)


def randomized_model(config: CondFiPConfig, generator: torch.Generator, dtype: torch.dtype) -> CondFiPModel:
    model = CondFiPModel(config).eval().to(dtype)
    with torch.no_grad():  # the adaLN gates start at zero; give every parameter values so each path counts
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=dtype))
    return model


def graph(nodes: int, generator: torch.Generator, p: float) -> torch.Tensor:
    """Parents [1, d, d] of a random DAG, relabelled so that node order is not topological order."""
    adjacency = (torch.rand(nodes, nodes, generator=generator) < p).float().triu(1)
    order = torch.randperm(nodes, generator=generator)
    return parents_from_adjacency(adjacency[order][:, order][None])


@pytest.mark.parametrize("value_norm", [True, False])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_equals_the_decoder_in_float64(value_norm: bool, density: float, generator: torch.Generator) -> None:
    """In float64 the algebra is checked to rounding: the prepared form is the same function."""
    config = dataclasses.replace(TINY, decoder_value_norm=value_norm)
    model = randomized_model(config, generator, torch.float64)
    parents = graph(7, generator, density)
    embedding = model.embed(torch.randn(1, 40, 7, generator=generator, dtype=torch.float64), parents)
    z = 3 * torch.randn(1, 25, 7, generator=generator, dtype=torch.float64)  # values far outside [-1, 1] too
    prepared = prepare_decoder(model.decoder, parents, embedding)
    expected = model.mechanisms(z, parents, embedding)[0]  # [m, d]
    # the value embeddings and attention scores grow with the inputs (|z| up to ~10 here), and so do the terms
    # whose sums are rounded: the bound is at the inputs' magnitude, not the output's (CPUs with other vector
    # kernels, e.g. AVX2 against AVX-512, round those sums differently)
    magnitude = max(1.0, float(z.abs().max()))
    assert_close(
        prepared(z[0]),
        expected,
        dtype=torch.float64,
        operations=DECODER_OPERATIONS,
        magnitude=magnitude,
        what="F_hat",
    )
    for nodes in ([0], [6, 2], [1, 3, 5], list(range(7))):
        index = torch.tensor(nodes)
        assert_close(
            prepared(z[0], index),
            expected[:, nodes],
            dtype=torch.float64,
            operations=DECODER_OPERATIONS,
            magnitude=magnitude,
            what=f"F_hat of nodes {nodes}",
        )


def test_equals_the_decoder_in_float32_with_roots_and_hubs(generator: torch.Generator) -> None:
    model = randomized_model(TINY, generator, torch.float32)
    parents = torch.zeros(1, 9, 9, dtype=torch.bool)
    parents[0, 8, :8] = True  # a hub with eight parents
    parents[0, 4, 2] = True  # one node with one parent; the rest are roots
    embedding = model.embed(torch.randn(1, 50, 9, generator=generator), parents)
    z = torch.randn(1, 300, 9, generator=generator)
    prepared = prepare_decoder(model.decoder, parents, embedding)
    expected = model.mechanisms(z, parents, embedding)[0]
    assert_close(prepared(z[0]), expected, dtype=torch.float32, operations=DECODER_OPERATIONS, what="F_hat")
    roots = torch.tensor([0, 1, 3])
    assert_close(
        prepared(z[0], roots),
        expected[:, roots],
        dtype=torch.float32,
        operations=DECODER_OPERATIONS,
        what="roots",
    )
    assert torch.equal(
        prepared(z[0], roots), prepared(z[0], roots)[:1].expand(300, -1)
    )  # roots read no value


def test_output_depends_only_on_parents(generator: torch.Generator) -> None:
    model = randomized_model(TINY, generator, torch.float64)
    parents = graph(6, generator, 0.5)
    embedding = model.embed(torch.randn(1, 30, 6, generator=generator, dtype=torch.float64), parents)
    prepared = prepare_decoder(model.decoder, parents, embedding)
    z = torch.randn(10, 6, generator=generator, dtype=torch.float64)
    for node in range(6):
        moved = z.clone()
        non_parents = ~parents[0, node]
        moved[:, non_parents] += 5.0
        assert torch.equal(prepared(moved, torch.tensor([node])), prepared(z, torch.tensor([node])))


def test_rejects_a_batch_of_embeddings(generator: torch.Generator) -> None:
    model = randomized_model(TINY, generator, torch.float32)
    parents = graph(4, generator, 0.5).expand(2, -1, -1)
    embedding = model.embed(torch.randn(2, 20, 4, generator=generator), parents)
    with pytest.raises(ValueError, match="one dataset"):
        prepare_decoder(model.decoder, parents, embedding)


def test_the_runner_uses_it_and_matches_the_module_path(generator: torch.Generator) -> None:
    """Generation through the prepared decoder equals generation through ``model.mechanisms``."""
    model = randomized_model(TINY, generator, torch.float32)
    parents = graph(6, generator, 0.4)
    embedding = model.embed(torch.randn(1, 30, 6, generator=generator), parents)
    levels = topological_levels(parents[0].numpy().T.astype(int))  # adjacency[j, i] = parents[i, j]
    runner = DecoderRunner(model, parents, embedding, torch.device("cpu"), chunk_rows=64, levels=levels)
    assert runner.prepared is not None
    noise = np.random.default_rng(0).normal(size=(100, 6))
    fast = runner.generate(noise)
    runner.prepared = None  # the module path
    slow = runner.generate(noise)
    # each of the (at most 6) levels feeds the next: the decoder's rounding once per level
    assert_close(fast, slow, dtype=torch.float32, operations=6 * DECODER_OPERATIONS, what="generated rows")


def test_half_precision_models_keep_the_module_path(generator: torch.Generator) -> None:
    model = randomized_model(TINY, generator, torch.float32)
    parents = graph(4, generator, 0.5)
    embedding = model.embed(torch.randn(1, 20, 4, generator=generator), parents)
    runner = DecoderRunner(model.to(torch.bfloat16), parents, embedding, torch.device("cpu"), 64, None)
    assert runner.prepared is None
