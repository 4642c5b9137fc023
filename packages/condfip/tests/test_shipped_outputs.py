"""The shipped ``small`` and ``graph-small`` load unchanged and compute what they computed when they were
shipped, and ``condfip demo`` prints the same scores for a fixed seed.

Weights: a SHA-256 over every tensor's name and bytes, exact. Outputs: a fixed input (from a seeded float64
generator, the same on every machine) through the networks, compared with numbers recorded from the package
as it shipped: a few elements, the sum and the sum of squares of each output. The comparisons run in float64
where the network allows it, so the tolerance (``rounding``: the dtype's epsilon times the roundings along the
path) is about 1e-12 of the values: far below what any change of the computation would move, and above the
differences between CPUs and thread counts, which only reorder sums. The graph network's edge logits need
float32 (its pair-statistics head runs in float32), with the float32 tolerance of their path.
"""

from __future__ import annotations

import hashlib
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP, infer_graph
from condfip.cli import main
from condfip.graph import GraphModel
from condfip.model import CondFiPModel

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

WEIGHTS_SHA256 = {
    "small": "91b1b373fa6a2a42e996477a2f62dc0d27a0e435d513b0f21f69d90000531a60",
    "graph-small": "92eec6b70daea6e9908046646c182d354a3ad2dc39b9320c1c9658a75868f5f5",
}
# roundings along the deepest path: small (2 encoder pairs, 1 embedding pair, 3 decoder blocks, 100 anchors)
SMALL_OPERATIONS = network_operations(dim=64, mlp_dim=128, rows=100, nodes=7, blocks=2 * 2 + 2 + 3)
# graph-small (2 pairs of blocks and the two heads, 64 anchors) and its pair MLP of 3 x 256
GRAPH_OPERATIONS = network_operations(dim=32, mlp_dim=64, rows=64, nodes=7, blocks=2 * 2 + 2) + 3 * 256
GENERATION_PASSES = 7  # a generated row goes through the decoder once per topological level (at most d)

# output -> (sum, sum of squares, {flat index: value}); recorded from the package as shipped
REFERENCE = {
    "scale": (-10.943544725620054, 602.5030460612786, {0: -0.763485933907505, 597: 1.0949801212372425}),
    "position": (-3.174008613386917, 1005.1909452825814, {298: -2.737295967413215, 895: 0.8277075038777372}),
    "condition": (27.79134156177198, 1017.2324745905852, {0: -2.6107075275670533, 298: -0.21067888747809896}),
    "noise": (-29.566118683618996, 1895.6923625189088, {700: -1.2367377338185317, 2099: -0.5514805485103387}),
    "mechanisms": (
        13.86675923714982,
        51.93408096242716,
        {1400: 0.003828698041220213, 2099: 0.17243715075187296},
    ),
    "sample": (230.96072953684117, 1350.9599057287353, {0: 2.7392053092354836, 186: -2.4700937930552933}),
    "decoder noise": (
        -17.629708074246754,
        4242.498473689745,
        {350: 5.269202666146962, 700: -2.518622679039331},
    ),
    "interventional": (
        237.23652782428604,
        896.2647841338171,
        {70: -1.00891101304299, 209: 0.14526418429549515},
    ),
    "counterfactual": (
        121.62274183133064,
        615.4397142287955,
        {0: 0.8233798412245417, 93: 0.35296992611318856},
    ),
    "node features": (
        450.9888072458377,
        532.4360031484629,
        {149: 1.2758555613650242, 447: 0.842795235263084},
    ),
    "edge logits": (-270.7543567419052, 1348.566675868062, {1: 0.7309865951538086, 33: -3.097869873046875}),
    # infer_graph reads the rows in their canonical order (condfip.core.row_order); recorded with it
    "edge probabilities": (1.9370688922936097, 0.5946237462528757, {1: 0.6996827125549316}),
}
INFERRED_DAG_EDGES = [(0, 1)]  # its probability 0.70; every other pair is at least 0.045 from the threshold


def weights_sha256(model: torch.nn.Module) -> str:
    state = model.state_dict()
    return hashlib.sha256(
        b"".join(name.encode() + state[name].numpy().tobytes() for name in sorted(state))
    ).hexdigest()


def fixed_input() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows [2, 150, 7] (float64), parents [2, 7, 7] of one DAG, a sample mask padding the second dataset
    after row 120, and the adjacency [7, 7]."""
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 150, 7, generator=generator, dtype=torch.float64)
    adjacency = (torch.rand(7, 7, generator=generator) < 0.4).triu(1)
    parents = adjacency.T[None].expand(2, -1, -1).clone()
    mask = torch.ones(2, 150, dtype=torch.bool)
    mask[1, 120:] = False
    return x, parents, mask, adjacency


def check(name: str, values: object, *, dtype: torch.dtype, operations: int) -> None:
    """``values`` against ``REFERENCE[name]`` (finite entries only), each number within its rounding bound."""
    array = np.asarray(
        values.detach() if isinstance(values, torch.Tensor) else values, dtype=np.float64
    ).ravel()
    total, squares, elements = REFERENCE[name]
    finite = array[np.isfinite(array)]
    size = np.abs(finite)
    assert_close(
        finite.sum(),
        total,
        dtype=dtype,
        operations=operations + finite.size,
        magnitude=size.sum(),
        what=f"{name}: sum",
    )
    assert_close(
        np.square(finite).sum(),
        squares,
        dtype=dtype,
        operations=2 * operations + finite.size,
        magnitude=2 * (size * np.maximum(size, 1.0)).sum(),
        what=f"{name}: sum of squares",
    )
    for index, value in elements.items():
        assert_close(array[index], value, dtype=dtype, operations=operations, what=f"{name}[{index}]")


@pytest.fixture(scope="module")
def small() -> CondFiPModel:
    return CondFiPModel.from_pretrained("small")


@pytest.fixture(scope="module")
def graph_small() -> GraphModel:
    return GraphModel.from_pretrained("graph-small")


def test_shipped_weights_load_unchanged(small: CondFiPModel, graph_small: GraphModel) -> None:
    assert weights_sha256(small) == WEIGHTS_SHA256["small"]
    assert weights_sha256(graph_small) == WEIGHTS_SHA256["graph-small"]


def test_small_computes_what_it_shipped_with(small: CondFiPModel) -> None:
    model = small.double()
    try:
        x, parents, mask, _ = fixed_input()
        with torch.no_grad():
            embedding = model.embed(x, parents, sample_mask=mask, chunk_size=64)
            outputs = {
                "scale": embedding.scale,
                "position": embedding.position,
                "condition": embedding.condition,
                "noise": model.predict_noise(x, parents, mask),
                "mechanisms": model.mechanisms(x, parents, embedding),
            }
        for name, values in outputs.items():
            check(name, values, dtype=torch.float64, operations=SMALL_OPERATIONS)
    finally:
        small.float()


def test_small_through_the_api_answers_what_it_shipped_with(small: CondFiPModel) -> None:
    """The zero-shot SCM of a fixed table: fresh samples, interventions, counterfactuals, abducted noise."""
    x, _, _, adjacency = fixed_input()
    data = pd.DataFrame(x[0].numpy() * 2 + 1, columns=[f"v{j}" for j in range(7)])
    api = CondFiP(small.double(), device="cpu")
    try:
        scm = api.infer(data, adjacency.numpy().astype(int), zero_shot=True)
        operations = GENERATION_PASSES * SMALL_OPERATIONS
        check("sample", scm.sample(40, seed=5), dtype=torch.float64, operations=operations)
        check("decoder noise", scm.noise(method="decoder"), dtype=torch.float64, operations=operations)
        interventional = scm.interventional_samples({"v2": 1.5}, n=30, seed=1)
        check("interventional", interventional, dtype=torch.float64, operations=operations)
        counterfactual = scm.counterfactual_samples({"v1": 0.0}, data.iloc[:20])
        check("counterfactual", counterfactual, dtype=torch.float64, operations=operations)
    finally:
        small.float()


def test_graph_small_computes_what_it_shipped_with(graph_small: GraphModel) -> None:
    x, _, mask, _ = fixed_input()
    node_mask = torch.ones(2, 7, dtype=torch.bool)
    node_mask[1, 5:] = False
    with torch.no_grad():
        features = graph_small.double().node_features(x, sample_mask=mask, node_mask=node_mask, chunk_size=64)
        graph_small.float()
        logits = graph_small.edge_logits(x.float(), sample_mask=mask, node_mask=node_mask, chunk_size=64)
    check("node features", features, dtype=torch.float64, operations=GRAPH_OPERATIONS)
    check("edge logits", logits, dtype=torch.float32, operations=GRAPH_OPERATIONS)
    probabilities, dag = infer_graph(x[0].numpy(), device="cpu")
    check("edge probabilities", probabilities, dtype=torch.float32, operations=GRAPH_OPERATIONS)
    assert [tuple(edge) for edge in np.argwhere(dag).tolist()] == INFERRED_DAG_EDGES


# `condfip demo --seed 7`: the scenario and the scores of the two methods that do not adapt to the rows
DEMO_HEADER = [
    "Fresh SCM from scm-gen: preset IN, rff mechanisms, er graph, d = 20, 400 context rows, seed 7",
    "Intervention: do(x17 = -7.681); 400 query rows, 400 interventional rows",
    "Graph: the true one, given to every method",
]
DEMO_SCORES = {  # task -> (Cond-FiP zero-shot, linear ANM fitted), printed to 3 decimals
    "noise": ("0.145", "0.662"),
    "generation": ("0.707", "0.740"),
    "interventional": ("0.698", "0.716"),
    "counterfactual": ("0.203", "0.192"),
}


def test_demo_prints_the_same_scores_for_a_fixed_seed() -> None:
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["demo", "--seed", "7", "--device", "cpu"]) == 0
    lines = printed.getvalue().splitlines()
    assert lines[:3] == DEMO_HEADER, lines
    columns = lines[4]
    assert columns.split()[:3] == ["Cond-FiP", "(zero-shot)", "Cond-FiP"] and columns.rstrip().endswith(
        "linear ANM (fitted)"
    ), columns
    for line in lines[5:9]:
        task, *scores = line.split()
        assert (scores[0], scores[-1]) == DEMO_SCORES[task], line
