"""The graph model: permutation equivariance, excluded diagonal, chunking and padding, the objective, and
checkpoints (model_type "graph", refused where a Cond-FiP model is expected and vice versa)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from condfip.graph import GraphModel, GraphModelConfig
from condfip.graph.statistics import NUM_PAIR_FEATURES
from condfip.io import shipped_checkpoints
from condfip.model import CondFiPConfig, CondFiPModel
from condfip.nn.anchors import anchor_indices, gather_rows
from condfip.training.graph_objective import acyclicity, acyclicity_weight, edge_cross_entropy, graph_loss

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

TINY = GraphModelConfig(
    dim=8, num_heads=2, mlp_dim=16, num_layers=2, num_anchor_rows=16, pair_statistics=True, pair_mlp_dim=8
)
# float32 roundings of TINY's logits: the alternating stack and the cause/effect heads over up to 6 nodes, and
# the pair MLP (the pair statistics themselves are float64)
OPERATIONS = network_operations(dim=8, mlp_dim=16, rows=16, nodes=6, blocks=2 * 2 + 2) + 3 * 16


def same_logits(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert_close(actual, expected, dtype=torch.float32, operations=OPERATIONS, what=what)


def tiny_model(seed: int = 0) -> GraphModel:
    """A random model whose edge probabilities spread around 0.5 (not all near the initial bias)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GraphModel(TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
        logits = model.edge_logits(torch.randn(4, 30, 6, generator=generator))
        model.edge_bias.sub_(logits[torch.isfinite(logits)].median())
    return model.eval()


def test_logits_shape_and_excluded_diagonal(generator: torch.Generator) -> None:
    data = torch.randn(3, 20, 5, generator=generator)
    logits = tiny_model().edge_logits(data)
    assert logits.shape == (3, 5, 5) and logits.dtype == torch.float32
    assert torch.isneginf(torch.diagonal(logits, dim1=-2, dim2=-1)).all()
    off = ~torch.eye(5, dtype=torch.bool)
    assert torch.isfinite(logits[:, off]).all()
    probabilities = tiny_model().edge_probabilities(data)
    assert (torch.diagonal(probabilities, dim1=-2, dim2=-1) == 0).all()
    assert probabilities[:, off].std() > 0.05  # the test model is not trivially constant


@pytest.mark.parametrize("num_rows", [12, 40])  # all rows are anchors / rows attend to 16 anchors
def test_permuting_nodes_permutes_the_edges(num_rows: int, generator: torch.Generator) -> None:
    model = tiny_model()
    data = torch.randn(2, num_rows, 6, generator=generator)
    permutation = torch.randperm(6, generator=generator)
    logits = model.edge_logits(data)
    permuted = model.edge_logits(data[:, :, permutation])
    # node k of the permuted table is node permutation[k] of the original
    expected = logits[:, permutation][:, :, permutation]
    same_logits(permuted, expected, "permuted logits")


def test_chunks_of_rows_give_the_same_logits(generator: torch.Generator) -> None:
    model = tiny_model()
    data = torch.randn(2, 45, 4, generator=generator)
    same_logits(model.edge_logits(data, chunk_size=7), model.edge_logits(data), "logits in chunks of 7")
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        model.edge_logits(data, chunk_size=0)


def test_node_features_are_the_max_over_every_row(generator: torch.Generator) -> None:
    """The anchors' features come from their own pass (not run again with the other rows): same max."""
    model = tiny_model()
    data = torch.randn(2, 50, 5, generator=generator)
    indices, _ = anchor_indices(50, TINY.num_anchor_rows, None, 2, data.device)
    states, _ = model.stack.anchor_states(model._embed(gather_rows(data, indices)), None, None)
    every_row = model.norm(model.stack(model._embed(data), None, states, None))  # [b, n, d, e]
    for chunk_size in (None, 9):
        actual = model.node_features(data, chunk_size=chunk_size)
        same_logits(actual, every_row.amax(dim=1), f"node features in chunks of {chunk_size}")


def test_padded_rows_and_nodes_change_nothing(generator: torch.Generator) -> None:
    model = tiny_model()
    data = torch.randn(1, 14, 4, generator=generator)
    padded = torch.full((2, 20, 6), 7.0)  # garbage in the padding
    padded[0, :14, :4] = data[0]
    padded[1] = torch.randn(20, 6, generator=generator)
    sample_mask = torch.zeros(2, 20, dtype=torch.bool)
    sample_mask[0, :14] = True
    sample_mask[1] = True
    node_mask = torch.zeros(2, 6, dtype=torch.bool)
    node_mask[0, :4] = True
    node_mask[1] = True
    logits = model.edge_logits(padded, sample_mask=sample_mask, node_mask=node_mask)
    same_logits(logits[0, :4, :4], model.edge_logits(data)[0], "logits beside padding")
    assert torch.isneginf(logits[0, 4:]).all() and torch.isneginf(logits[0, :, 4:]).all()
    same_logits(logits[1], model.edge_logits(padded[1:])[0], "logits of the unpadded dataset")


def test_acyclicity_is_zero_for_dags_and_exact_on_a_two_cycle(generator: torch.Generator) -> None:
    upper = torch.triu(torch.rand(3, 7, 7, generator=generator), diagonal=1)
    permutation = torch.randperm(7, generator=generator)
    dag = upper[:, permutation][:, :, permutation]  # a weighted DAG in a random node order
    # matrix_exp in float32: a degree-18 Taylor/Pade evaluation with scaling and squaring over 7 x 7 products
    matrix_exp_operations = 18 * 7
    assert_close(
        acyclicity(dag), torch.zeros(3), dtype=torch.float32, operations=matrix_exp_operations, what="h(DAG)"
    )
    a, b, d = 0.6, 0.3, 4
    cycle = torch.zeros(1, d, d)
    cycle[0, 0, 1], cycle[0, 1, 0] = a, b
    # exp of [[0, a], [b, 0]] has trace 2 cosh(sqrt(ab)); the other nodes add 1 each
    expected = (2 * math.cosh(math.sqrt(a * b)) - 2) / d
    assert_close(
        acyclicity(cycle),
        [expected],
        dtype=torch.float32,
        operations=matrix_exp_operations,
        what="h(two-cycle)",
    )
    padded = torch.zeros(1, d + 2, d + 2)
    padded[0, :d, :d] = cycle[0]
    mask = torch.tensor([[True] * d + [False, False]])
    assert_close(
        acyclicity(padded, mask),
        acyclicity(cycle),
        dtype=torch.float32,
        operations=matrix_exp_operations,
        what="h(padded two-cycle)",
    )


def test_cross_entropy_counts_only_possible_edges() -> None:
    logits = torch.tensor(
        [[[float("-inf"), 2.0, -1.0], [0.5, float("-inf"), 0.0], [1.0, -2.0, float("-inf")]]]
    )
    adjacency = torch.tensor([[[1, 1, 0], [0, 1, 0], [1, 0, 1]]])  # the diagonal is ignored even when set
    off = ~torch.eye(3, dtype=torch.bool)
    x, y = logits[0][off], adjacency[0][off].float()
    expected = -(y * torch.nn.functional.logsigmoid(x) + (1 - y) * torch.nn.functional.logsigmoid(-x)).mean()
    torch.testing.assert_close(edge_cross_entropy(logits, adjacency), expected)
    node_mask = torch.tensor([[True, True, False]])
    keep = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    x, y = logits[0][keep], adjacency[0][keep].float()
    expected = -(y * torch.nn.functional.logsigmoid(x) + (1 - y) * torch.nn.functional.logsigmoid(-x)).mean()
    torch.testing.assert_close(edge_cross_entropy(logits, adjacency, node_mask), expected)
    loss, cross_entropy, penalty = graph_loss(logits, adjacency, weight=0.5)
    torch.testing.assert_close(loss, cross_entropy + 0.5 * penalty)
    assert float(penalty) > 0  # the logits put weight on both 0 -> 1 and 1 -> 0


def test_acyclicity_weight_grows_linearly_to_the_final_weight() -> None:
    weights = [acyclicity_weight(step, total_steps=11, final_weight=2.0) for step in range(13)]
    assert weights[0] == 0.0 and weights[10] == pytest.approx(2.0) and weights[12] == pytest.approx(2.0)
    assert weights[5] == pytest.approx(1.0)


# ----- checkpoints ------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_recipe(tmp_path: Path, generator: torch.Generator) -> None:
    model = tiny_model()
    model.save_pretrained(tmp_path, training={"node_counts": [10, 30], "step": 3})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "graph" and config["architecture"] == TINY.to_dict()
    loaded = GraphModel.from_pretrained(tmp_path)
    assert loaded.config == TINY and loaded.trained_max_nodes == 30 and not loaded.training
    data = torch.randn(1, 20, 5, generator=generator)
    torch.testing.assert_close(loaded.edge_logits(data), model.edge_logits(data), rtol=0, atol=0)
    assert tiny_model().trained_max_nodes is None


def test_checkpoint_tensor_names_and_shapes_are_stable() -> None:
    """Checkpoints already written (runs, the Hub) load only while these names and shapes stay as they are."""
    layer_pair = {
        "sample_blocks.0.norm_x.weight": (8,),
        "sample_blocks.0.norm_x.bias": (8,),
        "sample_blocks.0.attention.to_q.weight": (8, 8),
        "sample_blocks.0.attention.to_q.bias": (8,),
        "sample_blocks.0.attention.to_kv.weight": (16, 8),
        "sample_blocks.0.attention.to_kv.bias": (16,),
        "sample_blocks.0.attention.out.weight": (8, 8),
        "sample_blocks.0.attention.out.bias": (8,),
        "sample_blocks.0.norm_mlp.weight": (8,),
        "sample_blocks.0.norm_mlp.bias": (8,),
        "sample_blocks.0.mlp.fc1.weight": (16, 8),
        "sample_blocks.0.mlp.fc1.bias": (16,),
        "sample_blocks.0.mlp.fc2.weight": (8, 16),
        "sample_blocks.0.mlp.fc2.bias": (8,),
        "node_blocks.0.norm_attention.weight": (8,),
        "node_blocks.0.norm_attention.bias": (8,),
        "node_blocks.0.attention.to_qkv.weight": (24, 8),
        "node_blocks.0.attention.to_qkv.bias": (24,),
        "node_blocks.0.attention.out.weight": (8, 8),
        "node_blocks.0.attention.out.bias": (8,),
        "node_blocks.0.norm_mlp.weight": (8,),
        "node_blocks.0.norm_mlp.bias": (8,),
        "node_blocks.0.mlp.fc1.weight": (16, 8),
        "node_blocks.0.mlp.fc1.bias": (16,),
        "node_blocks.0.mlp.fc2.weight": (8, 16),
        "node_blocks.0.mlp.fc2.bias": (8,),
    }
    expected = {"edge_bias": (), "value_embedding.weight": (8, 1), "value_embedding.bias": (8,)}
    for layer in range(TINY.num_layers):
        for name, shape in layer_pair.items():
            expected[f"stack.{name.replace('.0.', f'.{layer}.', 1)}"] = shape
    for name in ("norm", "to_cause.0", "to_cause.1", "to_effect.0", "to_effect.1"):
        width = (8, 8) if name.endswith(".1") else (8,)
        expected[f"{name}.weight"] = width
        expected[f"{name}.bias"] = (8,)
    for index, shape in ((0, (8, NUM_PAIR_FEATURES)), (2, (8, 8)), (4, (1, 8))):  # the pair statistics MLP
        expected[f"pair_head.{index}.weight"] = shape
        expected[f"pair_head.{index}.bias"] = shape[:1]
    found = {name: tuple(tensor.shape) for name, tensor in GraphModel(TINY).state_dict().items()}
    assert found == expected
    deeper = dataclasses.replace(TINY, pair_mlp_layers=3)
    found = {name: tuple(tensor.shape) for name, tensor in GraphModel(deeper).state_dict().items()}
    assert found["pair_head.4.weight"] == (8, 8) and found["pair_head.6.weight"] == (1, 8)
    assert len([name for name in found if name.startswith("pair_head.")]) == 8
    without = dataclasses.replace(TINY, pair_statistics=False)  # configurations written before the channel
    found = {name for name in GraphModel(without).state_dict()}
    assert found == {name for name in expected if not name.startswith("pair_head.")}


def test_a_new_model_predicts_from_the_pair_statistics_alone(generator: torch.Generator) -> None:
    """The attention channel starts silent (v = 0), so a pair head trained first keeps its predictions."""
    data = torch.randn(2, 30, 6, generator=generator)
    node_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    fresh = GraphModel(TINY)
    logits = fresh.edge_logits(data, node_mask=node_mask)
    torch.testing.assert_close(logits, fresh.pair_logits(data, node_mask=node_mask), rtol=0, atol=0)
    assert torch.isinf(logits[1, 4:, :]).all() and torch.isfinite(logits[1, :4, :4].fill_diagonal_(0)).all()
    trained = tiny_model()  # every weight moved: the attention channel now adds to the logits
    assert not torch.allclose(trained.edge_logits(data), trained.pair_logits(data))
    with pytest.raises(ValueError, match="this graph model has no pair-statistics channel"):
        GraphModel(dataclasses.replace(TINY, pair_statistics=False)).pair_logits(data)


def test_checkpoints_of_the_other_kind_are_refused(tmp_path: Path) -> None:
    tiny_model().save_pretrained(tmp_path / "graph")
    CondFiPModel(
        CondFiPConfig(dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1)
    ).save_pretrained(tmp_path / "condfip")
    with pytest.raises(ValueError, match="model_type 'graph', expected 'condfip'"):
        CondFiPModel.from_pretrained(tmp_path / "graph")
    with pytest.raises(ValueError, match="model_type 'condfip', expected 'graph'"):
        GraphModel.from_pretrained(tmp_path / "condfip")


def test_corrupted_graph_checkpoints_are_refused(tmp_path: Path) -> None:
    tiny_model().save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["edge_bias"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing tensors edge_bias"):
        GraphModel.from_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="format_version 99"):
        GraphModel.from_pretrained(tmp_path)


BAD_NODE_COUNTS = [["10", 20], "20", 20, [0, 5], [True], [2.5], {"min": 10}]


@pytest.mark.parametrize("counts", BAD_NODE_COUNTS)
def test_a_recipe_whose_node_counts_are_not_integers_is_refused_on_load_and_save(
    tmp_path: Path, counts
) -> None:
    tiny_model().save_pretrained(tmp_path / "g", training={"node_counts": [10, 20]})
    path = tmp_path / "g" / "config.json"
    config = json.loads(path.read_text())
    config["training"]["node_counts"] = counts
    path.write_text(json.dumps(config))
    message = r"has an invalid 'training\.node_counts' .*: it must be a list of the node counts"
    with pytest.raises(ValueError, match=message) as error:
        GraphModel.from_pretrained(tmp_path / "g")
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match=message):  # and what loading refuses is not saved
        tiny_model().save_pretrained(tmp_path / "new", training={"node_counts": counts})
    assert not (tmp_path / "new").exists()


def test_shipped_checkpoints_are_listed_by_kind(tmp_path: Path) -> None:
    tiny_model().save_pretrained(tmp_path / "graph-tiny")
    CondFiPModel(
        CondFiPConfig(dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1)
    ).save_pretrained(tmp_path / "tiny")
    assert shipped_checkpoints(tmp_path) == {"tiny": tmp_path / "tiny"}
    assert shipped_checkpoints(tmp_path, model_type="graph") == {"graph-tiny": tmp_path / "graph-tiny"}


def test_unknown_graph_config() -> None:
    with pytest.raises(ValueError, match="unknown graph config name 'huge'"):
        GraphModelConfig.named("huge")
    with pytest.raises(ValueError, match="divisible by num_heads"):
        GraphModelConfig(dim=10, num_heads=4)
    with pytest.raises(ValueError, match="unknown GraphModelConfig fields"):
        GraphModelConfig.from_dict({"dim": 8, "width": 3})
    with pytest.raises(ValueError, match="pair_statistics must be true or false"):
        GraphModelConfig(pair_statistics="yes")
    with pytest.raises(ValueError, match="pair_mlp_dim must be an integer >= 1"):
        GraphModelConfig(pair_mlp_dim=0)
    with pytest.raises(ValueError, match="pair_mlp_layers must be an integer >= 1"):
        GraphModelConfig(pair_mlp_layers=0)
    assert GraphModelConfig.from_dict({"dim": 8, "num_heads": 2}).pair_statistics is False
    assert GraphModelConfig.named("small").dim < GraphModelConfig.named("base").dim


def test_the_default_graph_model_loads_or_says_how_to_get_one() -> None:
    shipped = shipped_checkpoints(model_type="graph")
    for name in shipped:  # whatever is shipped must load
        assert GraphModel.from_pretrained(name).trained_max_nodes is not None
    if "graph-small" not in shipped:
        with pytest.raises(
            ValueError, match="'graph-small' is not shipped.*condfip train graph.*--graph-model DIR"
        ):
            GraphModel.from_pretrained()
