"""The network's structural guarantees: shapes, equivariance, parent-only dependence, chunking, fixed point."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from condfip.model import CondFiPConfig, CondFiPModel, fixed_point_generate
from condfip.model.fixed_point import longest_path_of_batch
from condfip.nn.anchors import anchor_indices, gather_rows
from dag_attention import parents_from_adjacency
from scm_gen import sample_scm

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=24
)
# roundings along the deepest path of TINY (encoder and embedding pairs, decoder blocks), on up to 8 nodes
OPERATIONS = network_operations(dim=16, mlp_dim=32, rows=24, nodes=8, blocks=2 * (1 + 1) + 2 + 2)


def same(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal in exact arithmetic, computed in float32 along TINY's path (``rounding``)."""
    assert_close(actual, expected, dtype=torch.float32, operations=OPERATIONS, what=what)


def random_dag(batch: int, nodes: int, generator: torch.Generator, p: float = 0.4) -> torch.Tensor:
    """Parents [b, d, d] of random DAGs (upper-triangular adjacency, then a random relabelling)."""
    adjacency = (torch.rand(batch, nodes, nodes, generator=generator) < p).float().triu(1)
    order = torch.randperm(nodes, generator=generator)
    adjacency = adjacency[:, order][:, :, order]
    return parents_from_adjacency(adjacency)


@pytest.fixture
def model(generator: torch.Generator) -> CondFiPModel:
    torch.manual_seed(0)
    model = CondFiPModel(TINY).eval()
    with torch.no_grad():  # the adaLN gates start at zero; give them values so every path is exercised
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def test_shapes(model: CondFiPModel, generator: torch.Generator) -> None:
    x = torch.randn(3, 30, 5, generator=generator)
    parents = random_dag(3, 5, generator)
    assert model.predict_noise(x, parents).shape == (3, 30, 5)
    embedding = model.embed(x, parents)
    for field in (embedding.scale, embedding.position, embedding.condition):
        assert field.shape == (3, 5, TINY.dim)
    assert model.mechanisms(torch.randn(3, 7, 5, generator=generator), parents, embedding).shape == (3, 7, 5)


def test_permuting_nodes_permutes_outputs(model: CondFiPModel, generator: torch.Generator) -> None:
    x = torch.randn(2, 20, 6, generator=generator)
    parents = random_dag(2, 6, generator)
    perm = torch.randperm(6, generator=generator)
    x_p, parents_p = x[:, :, perm], parents[:, perm][:, :, perm]
    same(model.predict_noise(x_p, parents_p), model.predict_noise(x, parents)[:, :, perm], "noise")
    emb, emb_p = model.embed(x, parents), model.embed(x_p, parents_p)
    same(emb_p.condition, emb.condition[:, perm], "condition")
    same(model.mechanisms(x_p, parents_p, emb_p), model.mechanisms(x, parents, emb)[:, :, perm], "mechanisms")


def test_decoder_output_depends_only_on_parents(model: CondFiPModel, generator: torch.Generator) -> None:
    nodes = 6
    parents = random_dag(1, nodes, generator, p=0.5)
    context = torch.randn(1, 20, nodes, generator=generator)
    embedding = model.embed(context, parents)
    z = torch.randn(1, 8, nodes, generator=generator)
    base = model.mechanisms(z, parents, embedding)
    for node in range(nodes):
        for other in range(nodes):
            perturbed = z.clone()
            perturbed[:, :, other] += 3.0
            changed = model.mechanisms(perturbed, parents, embedding)[:, :, node]
            if parents[0, node, other]:
                assert not torch.allclose(changed, base[:, :, node])
            else:  # a non-parent (or the node itself) has no influence at all
                torch.testing.assert_close(changed, base[:, :, node], rtol=0, atol=0)


def test_root_prediction_is_constant_over_rows(model: CondFiPModel, generator: torch.Generator) -> None:
    parents = random_dag(1, 5, generator)
    roots = ~parents[0].any(dim=-1)
    embedding = model.embed(torch.randn(1, 20, 5, generator=generator), parents)
    out = model.mechanisms(torch.randn(1, 9, 5, generator=generator), parents, embedding)
    assert roots.any()
    rows = out[0, :, roots]  # [m, r]
    # a root reads no value: the same number in every row, up to the float32 rounding of the network's batched
    # products, which a BLAS may round per row (MKL's conditional-reproducibility mode with two threads: 8e-8);
    # a root that read any value would move by orders of magnitude more
    same(rows, rows[:1].expand_as(rows), "a root's prediction over the rows")


@pytest.mark.parametrize("chunk_size", [1, 7, 24, 1000])
def test_chunked_embedding_equals_one_shot(
    model: CondFiPModel, generator: torch.Generator, chunk_size: int
) -> None:
    context = torch.randn(2, 60, 4, generator=generator)  # more rows than anchors: rows attend to anchors
    parents = random_dag(2, 4, generator)
    one_shot = model.embed(context, parents, chunk_size=None)
    chunked = model.embed(context, parents, chunk_size=chunk_size)
    for a, b in zip(
        (one_shot.scale, one_shot.position, one_shot.condition),
        (chunked.scale, chunked.position, chunked.condition),
        strict=True,
    ):
        same(b, a, f"embedding in chunks of {chunk_size}")


def embedding_by_definition(
    model: CondFiPModel, context: torch.Tensor, parents: torch.Tensor, real_rows: list[int]
) -> torch.Tensor:
    """The condition of each dataset from the max over the features of every real row at once, each computed
    by the full row pass (anchors included), one dataset at a time."""
    conditions = []
    for b, n in enumerate(real_rows):
        x, p = context[b : b + 1, :n], parents[b : b + 1]
        indices, _ = anchor_indices(n, model.config.num_anchor_rows, None, 1, x.device)
        states, anchor_tokens = model.encoder.anchor_states(gather_rows(x, indices), p, None)
        head_states, _ = model.embedding_head.anchor_states(anchor_tokens, p, None)
        features = model.embedding_head.row_features(
            model.encoder.tokens(x, p, states, None), p, head_states, None
        )
        conditions.append(model.embedding_head.finish(features.amax(dim=1)).condition)
    return torch.cat(conditions)


def test_embedding_is_the_max_over_every_row(model: CondFiPModel, generator: torch.Generator) -> None:
    """The anchors' features come from their own pass (not run again with the other rows): same max."""
    context = torch.randn(2, 70, 5, generator=generator)
    parents = random_dag(2, 5, generator)
    expected = embedding_by_definition(model, context, parents, [70, 70])
    for chunk_size in (None, 11):
        actual = model.embed(context, parents, chunk_size=chunk_size).condition
        same(actual, expected, f"condition in chunks of {chunk_size}")
    mask = torch.arange(70)[None, :] < torch.tensor([[70], [33]])  # the second dataset is padded
    expected = embedding_by_definition(model, context, parents, [70, 33])
    actual = model.embed(context, parents, sample_mask=mask, chunk_size=16).condition
    same(actual, expected, "condition with padding")


def test_padding_rows_are_ignored(model: CondFiPModel, generator: torch.Generator) -> None:
    context = torch.randn(1, 15, 4, generator=generator)
    parents = random_dag(1, 4, generator)
    padded = torch.cat([context, 100 * torch.randn(1, 9, 4, generator=generator)], dim=1)
    mask = torch.arange(24)[None, :] < 15
    plain, masked = model.embed(context, parents), model.embed(padded, parents, sample_mask=mask)
    same(masked.condition, plain.condition, "condition")
    noise_plain = model.predict_noise(context, parents)
    noise_masked = model.predict_noise(padded, parents, mask)[:, :15]
    same(noise_masked, noise_plain, "noise")


def test_chunked_noise_prediction_equals_one_shot(model: CondFiPModel, generator: torch.Generator) -> None:
    x = torch.randn(2, 50, 5, generator=generator)
    parents = random_dag(2, 5, generator)
    same(
        model.predict_noise(x, parents, chunk_size=9),
        model.predict_noise(x, parents, chunk_size=None),
        "noise",
    )


def test_fixed_point_with_true_mechanisms_reproduces_scm_gen() -> None:
    rng = np.random.default_rng(3)
    for mechanism in ("linear", "rff"):
        scm = sample_scm("in", mechanism, 12, rng=rng)
        x, noise = scm.sample(50, rng)
        parents = parents_from_adjacency(torch.from_numpy(scm.adjacency))[None]

        def true_mechanisms(z: torch.Tensor, scm=scm) -> torch.Tensor:
            return torch.from_numpy(scm.mechanisms(z[0].numpy()))[None]

        generated = fixed_point_generate(true_mechanisms, torch.from_numpy(noise)[None], parents)
        np.testing.assert_allclose(generated[0].numpy(), x, rtol=1e-12, atol=1e-12)
        node = int(scm.topological_order[len(scm.topological_order) // 2])
        intervened = torch.zeros(1, 12, dtype=torch.bool)
        intervened[0, node] = True
        values = torch.full((1, 1, 12), 0.7, dtype=torch.float64)
        generated = fixed_point_generate(
            true_mechanisms, torch.from_numpy(noise)[None], parents, intervened=intervened, values=values
        )
        np.testing.assert_allclose(generated[0].numpy(), scm.generate(noise, {node: 0.7}), atol=1e-12)


def test_longest_path_iterations_match_d_iterations(model: CondFiPModel, generator: torch.Generator) -> None:
    parents = random_dag(2, 7, generator)
    embedding = model.embed(torch.randn(2, 20, 7, generator=generator), parents)
    noise = torch.randn(2, 5, 7, generator=generator)

    def mechanisms(z: torch.Tensor) -> torch.Tensor:
        return model.mechanisms(z, parents, embedding)

    short = fixed_point_generate(mechanisms, noise, parents)
    full = fixed_point_generate(mechanisms, noise, parents, num_iterations=7)
    # each iteration past the longest path recomputes the same values: every extra pass can round anew
    assert_close(short, full, dtype=torch.float32, operations=7 * OPERATIONS, what="fixed point")


def test_longest_path_of_a_batch() -> None:
    chain = parents_from_adjacency(torch.diag(torch.ones(4), 1))[None]  # 0 -> 1 -> 2 -> 3 -> 4
    assert longest_path_of_batch(chain) == 4
    assert longest_path_of_batch(torch.zeros(1, 3, 3, dtype=torch.bool)) == 0
    two = torch.zeros(2, 5, 5, dtype=torch.bool)
    two[1] = chain[0]
    assert longest_path_of_batch(two) == 4  # the longest path of any dataset in the batch


def test_config_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        CondFiPConfig(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="unknown config name"):
        CondFiPConfig.named("huge")
    with pytest.raises(ValueError, match="unknown CondFiPConfig fields"):
        CondFiPConfig.from_dict({"dim": 8, "depth": 3})


def test_mechanisms_of_a_node_subset_equal_the_full_call(
    model: CondFiPModel, generator: torch.Generator
) -> None:
    context = torch.randn(2, 30, 5, generator=generator)
    parents = torch.zeros(2, 5, 5, dtype=torch.bool)
    parents[:, 2, 0] = parents[:, 4, 2] = parents[:, 4, 3] = True
    parents[1, 1, 3] = True  # the second dataset has one more edge
    embedding = model.embed(context, parents)
    z = torch.randn(2, 7, 5, generator=generator)
    full = model.mechanisms(z, parents, embedding)
    for nodes in ([4], [1, 2], [0, 3], [0, 1, 2, 3, 4]):
        subset = model.mechanisms(z, parents, embedding, torch.tensor(nodes))
        assert subset.shape == (2, 7, len(nodes))
        same(subset, full[..., nodes], f"mechanisms of nodes {nodes}")


def test_decoder_sizes_of_the_config() -> None:
    config = dataclasses.replace(TINY, decoder_mlp_dim=40, decoder_value_norm=False)
    model = CondFiPModel(config)
    assert isinstance(model.decoder.value_norm, torch.nn.Identity)
    assert all(block.mlp.fc1.out_features == 40 for block in model.decoder.blocks)
    assert isinstance(CondFiPModel(TINY).decoder.value_norm, torch.nn.LayerNorm)  # the default keeps it
    with pytest.raises(ValueError, match="decoder_mlp_dim must be >= 1 or None, got 0"):
        dataclasses.replace(TINY, decoder_mlp_dim=0)


def test_named_base_is_the_papers_size_with_the_plain_value_embedding() -> None:
    base = CondFiPConfig.named("base")
    assert (base.dim, base.num_heads, base.mlp_dim, base.encoder_pairs, base.embedding_pairs) == (
        256,
        8,
        512,
        4,
        2,
    )
    assert base.decoder_blocks == 4 and not base.decoder_value_norm
    # a config written before the field existed reads as the default decoder (with the LayerNorm)
    assert CondFiPConfig.from_dict({"dim": 8, "num_heads": 2}).decoder_value_norm
