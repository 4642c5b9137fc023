"""Random directed acyclic graphs, and validation of user-given graphs.

Convention: `adjacency[i, j] = 1` means the edge `i -> j`; the parents of node `j` are the nonzero entries
of column `j`. Every sampler builds the graph over nodes in some acyclic "arrival" order (edges only from
later to earlier nodes, i.e. a strictly lower-triangular matrix) and then relabels the nodes with a random
permutation, so node indices carry no information about the causal order.

Families (docs/ARCHITECTURE.md, "Data families"):

- `er`: Erdos-Renyi, `edges_per_node = k` expected edges per node, `p = min(k d / (d (d - 1) / 2), 0.99)`.
- `sf_in`, `sf_out`: Barabasi-Albert preferential attachment (`m = k` edges per new node, attach power 1);
  `sf_in` points edges at the hubs (power-law in-degree), `sf_out` from the hubs (power-law out-degree).
- `ws`: Watts-Strogatz on a periodic lattice of dimension 2 or 3 (`lattice_dim`), 1 neighbour, rewiring
  probability 0.3; undirected, then oriented by a random order.
- `sbm`: stochastic block model with `edges_per_node` expected edges per node (2 in the presets), 5 or 10
  blocks (`num_blocks`), between-block probability `damping` (0.1) times the within-block one.
- `rgg`: random geometric graph, points uniform in the unit square, an edge when closer than `radius` (0.1).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from scm_gen._checks import check_choice, check_int, check_real

GRAPH_KINDS = ("er", "sf_in", "sf_out", "ws", "sbm", "rgg")

_OPTIONS: dict[str, tuple[str, ...]] = {
    "er": (),
    "sf_in": (),
    "sf_out": (),
    "ws": ("lattice_dim", "rewire_probability", "neighbours"),
    "sbm": ("num_blocks", "damping"),
    "rgg": ("radius", "dimension"),
}
_ER_MAX_PROBABILITY = 0.99


def sample_graph(
    kind: str,
    num_nodes: int,
    *,
    edges_per_node: float = 2,
    rng: np.random.Generator,
    **options: Any,
) -> np.ndarray:
    """Sample a random DAG of family `kind` over `num_nodes` nodes, nodes randomly permuted.

    `edges_per_node` is the expected number of edges per node for `er` and `sbm` and the number of edges each
    new node brings for `sf_in` / `sf_out`; `ws` and `rgg` ignore it (their density comes from the lattice and
    the radius). Family options: `ws` (`lattice_dim` in {2, 3}, drawn when not given; `rewire_probability`
    0.3; `neighbours` 1), `sbm` (`num_blocks` in {5, 10}, drawn when not given; `damping` 0.1), `rgg`
    (`radius` 0.1; `dimension` 2).

    Returns `adjacency` `[d, d]` int8 with `adjacency[i, j] = 1` for the edge `i -> j`.
    """
    check_choice("kind", kind, GRAPH_KINDS)
    num_nodes = check_int("num_nodes", num_nodes, minimum=1)
    unknown = sorted(set(options) - set(_OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(_OPTIONS[kind]) or "none"
        raise ValueError(f"options {unknown} are not supported for kind={kind!r}; allowed options: {allowed}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    edges_per_node = _check_edges_per_node(kind, num_nodes, edges_per_node)

    if kind == "er":
        lower = _erdos_renyi(num_nodes, edges_per_node, rng)
    elif kind in ("sf_in", "sf_out"):
        lower = _scale_free(num_nodes, int(edges_per_node), rng, hubs_are_children=kind == "sf_in")
    elif kind == "ws":
        lower = _watts_strogatz(num_nodes, rng, **options)
    elif kind == "sbm":
        lower = _stochastic_block_model(num_nodes, edges_per_node, rng, **options)
    else:
        lower = _random_geometric(num_nodes, rng, **options)
    return _permute(lower, rng)


def max_edges_per_node(kind: str, num_nodes: int) -> float:
    """The largest `edges_per_node` that `sample_graph(kind, num_nodes)` accepts."""
    check_choice("kind", kind, GRAPH_KINDS)
    num_nodes = check_int("num_nodes", num_nodes, minimum=1)
    if kind in ("sf_in", "sf_out"):
        return max(num_nodes - 1, 1)
    if kind in ("er", "sbm"):
        return (num_nodes - 1) / 2  # k d expected edges out of d (d - 1) / 2 possible ones
    return float("inf")


def _check_edges_per_node(kind: str, num_nodes: int, edges_per_node: Any) -> float:
    if kind in ("ws", "rgg"):
        return 0.0
    if kind in ("sf_in", "sf_out"):
        return check_int(
            "edges_per_node", edges_per_node, minimum=1, maximum=int(max_edges_per_node(kind, num_nodes))
        )
    limit = max_edges_per_node(kind, num_nodes)
    if isinstance(edges_per_node, bool) or not isinstance(edges_per_node, numbers.Real):
        raise ValueError(f"edges_per_node={edges_per_node!r} must be a number")
    if not (0 <= edges_per_node <= limit):
        raise ValueError(
            f"edges_per_node={edges_per_node} is not possible for kind={kind!r} with num_nodes={num_nodes}: "
            f"allowed 0 to {limit:g} (at most d (d - 1) / 2 edges in a DAG over d nodes)"
        )
    return float(edges_per_node)


def _permute(lower: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relabel nodes randomly: node `a` of the result is node `permutation[a]` of `lower`."""
    permutation = rng.permutation(lower.shape[0])
    return np.ascontiguousarray(lower[np.ix_(permutation, permutation)], dtype=np.int8)


def _erdos_renyi(num_nodes: int, edges_per_node: float, rng: np.random.Generator) -> np.ndarray:
    if num_nodes < 2:
        return np.zeros((num_nodes, num_nodes), dtype=np.int8)
    probability = min(edges_per_node * num_nodes / (num_nodes * (num_nodes - 1) / 2), _ER_MAX_PROBABILITY)
    return np.tril(rng.random((num_nodes, num_nodes)) < probability, k=-1).astype(np.int8)


def _scale_free(
    num_nodes: int, edges: int, rng: np.random.Generator, *, hubs_are_children: bool
) -> np.ndarray:
    """Barabasi-Albert: a star over the first `edges + 1` nodes, then each new node attaches to `edges`
    distinct earlier nodes drawn with probability proportional to their degree (without replacement, by the
    Gumbel top-k trick). Edge count: `edges * (d - edges)`."""
    lower = np.zeros((num_nodes, num_nodes), dtype=np.int8)
    if num_nodes < 2:
        return lower
    degree = np.zeros(num_nodes)
    first = min(edges + 1, num_nodes)
    for node in range(1, first):  # the initial star around node 0
        lower[node, 0] = 1
    degree[0], degree[1:first] = first - 1, 1
    for node in range(first, num_nodes):
        keys = np.log(degree[:node]) + rng.gumbel(size=node)
        targets = np.argpartition(-keys, edges - 1)[:edges]
        lower[node, targets] = 1
        degree[targets] += 1
        degree[node] = edges
    # `lower[new, old] = 1` is the edge new -> old: hubs (old, high degree) collect parents.
    return lower if hubs_are_children else np.ascontiguousarray(lower.T)


def _watts_strogatz(
    num_nodes: int,
    rng: np.random.Generator,
    *,
    lattice_dim: int | None = None,
    rewire_probability: float = 0.3,
    neighbours: int = 1,
) -> np.ndarray:
    """Periodic lattice of side `ceil(d ** (1 / lattice_dim))` restricted to its first `d` points, edges to the
    `neighbours` nearest points along each axis, each edge's far end rewired with `rewire_probability`."""
    if lattice_dim is None:
        lattice_dim = int(rng.choice((2, 3)))
    lattice_dim = check_int("lattice_dim", lattice_dim, minimum=1)
    rewire_probability = check_real("rewire_probability", rewire_probability, minimum=0.0, maximum=1.0)
    neighbours = check_int("neighbours", neighbours, minimum=1)
    side = 1
    while side**lattice_dim < num_nodes:
        side += 1
    coordinates = np.array(np.unravel_index(np.arange(num_nodes), (side,) * lattice_dim)).T  # [d, dim]
    strides = np.array([side**axis for axis in reversed(range(lattice_dim))])
    edges: set[tuple[int, int]] = set()
    for axis in range(lattice_dim):
        for step in range(1, neighbours + 1):
            shifted = coordinates.copy()
            shifted[:, axis] = (shifted[:, axis] + step) % side
            for node, other in enumerate(shifted @ strides):
                if other < num_nodes and other != node:
                    edges.add((min(node, int(other)), max(node, int(other))))
    undirected = np.zeros((num_nodes, num_nodes), dtype=bool)
    for node, other in edges:
        undirected[node, other] = undirected[other, node] = True
    for node, other in sorted(edges):  # rewire the far end, keeping the graph simple
        if rng.random() < rewire_probability:
            free = np.flatnonzero(~undirected[node])
            free = free[free != node]
            if free.size:
                new_other = int(free[rng.integers(free.size)])
                undirected[node, other] = undirected[other, node] = False
                undirected[node, new_other] = undirected[new_other, node] = True
    return _orient(undirected)


def _stochastic_block_model(
    num_nodes: int,
    edges_per_node: float,
    rng: np.random.Generator,
    *,
    num_blocks: int | None = None,
    damping: float = 0.1,
) -> np.ndarray:
    """Balanced random blocks; within-block edge probability `p`, between blocks `damping * p`, with `p` set
    so that the expected edge count is `edges_per_node * d`."""
    if num_blocks is None:
        num_blocks = int(rng.choice((5, 10)))
    num_blocks = min(check_int("num_blocks", num_blocks, minimum=1), num_nodes)
    damping = check_real("damping", damping, minimum=0.0, maximum=1.0)
    block = rng.permutation(np.arange(num_nodes) % num_blocks)
    same = block[:, None] == block[None, :]
    pairs = np.tril(np.ones((num_nodes, num_nodes), dtype=bool), k=-1)
    weight = np.where(same, 1.0, damping) * pairs
    total = weight.sum()
    if total == 0:
        return np.zeros((num_nodes, num_nodes), dtype=np.int8)
    probability = np.minimum(weight * (edges_per_node * num_nodes / total), 1.0)
    return (rng.random((num_nodes, num_nodes)) < probability).astype(np.int8)


def _random_geometric(
    num_nodes: int, rng: np.random.Generator, *, radius: float = 0.1, dimension: int = 2
) -> np.ndarray:
    radius = check_real("radius", radius, minimum=0.0)
    dimension = check_int("dimension", dimension, minimum=1)
    points = rng.random((num_nodes, dimension))
    distance = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return _orient(distance < radius)


def _orient(undirected: np.ndarray) -> np.ndarray:
    """Keep the lower triangle of a symmetric boolean matrix: edges from later to earlier nodes."""
    return np.tril(undirected, k=-1).astype(np.int8)


def validate_adjacency(graph: Any, *, name: str = "adjacency") -> np.ndarray:
    """A user-given graph as a checked `[d, d]` int8 adjacency (`adjacency[i, j] = 1` for `i -> j`).

    Accepts an array-like of 0/1 (or bool) or a `networkx.DiGraph` (nodes `0..d-1`, otherwise taken in
    insertion order). Raises `ValueError` for a non-square matrix, entries other than 0/1, self-loops or a
    cycle.
    """
    if type(graph).__module__.startswith("networkx"):  # imported only when a networkx graph is given
        import networkx as nx

        if not isinstance(graph, nx.DiGraph):
            raise ValueError(f"{name} must be a networkx.DiGraph (directed), got {type(graph).__name__}")
        nodes = list(graph.nodes)
        if set(nodes) == set(range(len(nodes))):
            nodes = list(range(len(nodes)))
        array = nx.to_numpy_array(graph, nodelist=nodes, weight=None)
    else:
        array = np.asarray(graph)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix [d, d], got shape {array.shape}")
    if array.dtype.kind not in "biuf" or not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must hold only 0 and 1 (adjacency[i, j] = 1 for the edge i -> j)")
    adjacency = array.astype(np.int8)
    loops = np.flatnonzero(np.diag(adjacency))
    if loops.size:
        raise ValueError(f"{name} has self-loops at nodes {loops.tolist()}; a DAG has none")
    topological_order(adjacency, name=name)
    return adjacency


def topological_order(adjacency: np.ndarray, *, name: str = "adjacency") -> np.ndarray:
    """Nodes ordered so that every parent comes before its children: layer after layer of nodes whose
    parents are all placed, each layer in increasing index order.

    Raises `ValueError` when the graph has a cycle.
    """
    adjacency = np.asarray(adjacency) != 0
    in_degree = adjacency.sum(axis=0)
    placed = np.zeros(adjacency.shape[0], dtype=bool)
    layers = []
    while not placed.all():
        layer = np.flatnonzero((in_degree == 0) & ~placed)
        if layer.size == 0:
            cyclic = np.flatnonzero(~placed).tolist()
            raise ValueError(
                f"{name} has a cycle (nodes {cyclic} are on or after one); the graph must be acyclic"
            )
        layers.append(layer)
        placed[layer] = True
        in_degree = in_degree - adjacency[layer].sum(axis=0)
    return np.concatenate(layers).astype(np.int64) if layers else np.zeros(0, dtype=np.int64)
