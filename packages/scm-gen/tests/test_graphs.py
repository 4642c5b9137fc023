import networkx as nx
import numpy as np
import pytest

from scm_gen import GRAPH_KINDS, sample_graph, topological_order, validate_adjacency
from scm_gen.graphs import max_edges_per_node


def _is_acyclic(adjacency: np.ndarray) -> bool:
    return nx.is_directed_acyclic_graph(nx.from_numpy_array(adjacency, create_using=nx.DiGraph))


@pytest.mark.parametrize("kind", GRAPH_KINDS)
@pytest.mark.parametrize("num_nodes", [1, 2, 7, 30])
def test_every_family_gives_a_dag_without_self_loops(kind, num_nodes):
    rng = np.random.default_rng(num_nodes)
    for _ in range(10):
        edges = min(1, max_edges_per_node(kind, num_nodes))
        adjacency = sample_graph(kind, num_nodes, edges_per_node=edges, rng=rng)
        assert adjacency.shape == (num_nodes, num_nodes) and adjacency.dtype == np.int8
        assert set(np.unique(adjacency)) <= {0, 1}
        assert not np.diag(adjacency).any()
        assert _is_acyclic(adjacency)


@pytest.mark.parametrize("edges_per_node", [1, 2, 3])
def test_erdos_renyi_has_k_edges_per_node_on_average(edges_per_node):
    rng = np.random.default_rng(0)
    counts = [sample_graph("er", 20, edges_per_node=edges_per_node, rng=rng).sum() for _ in range(400)]
    # Binomial(190, p) with mean k d; the mean of 400 draws has a standard error below 0.3.
    assert abs(np.mean(counts) - edges_per_node * 20) < 1.5


@pytest.mark.parametrize("kind", ["sf_in", "sf_out"])
@pytest.mark.parametrize("edges_per_node", [1, 2, 3])
def test_scale_free_edge_count_is_exact(kind, edges_per_node):
    rng = np.random.default_rng(1)
    for _ in range(20):
        adjacency = sample_graph(kind, 25, edges_per_node=edges_per_node, rng=rng)
        assert adjacency.sum() == edges_per_node * (25 - edges_per_node)


def test_scale_free_orientation_puts_hubs_on_the_named_side():
    rng = np.random.default_rng(2)
    sf_in = [sample_graph("sf_in", 50, edges_per_node=2, rng=rng) for _ in range(50)]
    sf_out = [sample_graph("sf_out", 50, edges_per_node=2, rng=rng) for _ in range(50)]
    # sf_in: every node has at most 2 children and the hubs collect parents; sf_out is the mirror image.
    assert max(a.sum(axis=1).max() for a in sf_in) == 2
    assert max(a.sum(axis=0).max() for a in sf_out) == 2
    assert np.mean([a.sum(axis=0).max() for a in sf_in]) > 8
    assert np.mean([a.sum(axis=1).max() for a in sf_out]) > 8


def test_sbm_has_the_requested_edges_per_node_on_average():
    rng = np.random.default_rng(3)
    counts = [sample_graph("sbm", 30, edges_per_node=2, rng=rng).sum() for _ in range(300)]
    assert abs(np.mean(counts) - 60) < 2


def test_sbm_edges_are_denser_inside_blocks():
    # With damping 0 only within-block edges exist: 5 blocks of 6 nodes have at most 5 * 15 edges.
    rng = np.random.default_rng(4)
    adjacency = sample_graph("sbm", 30, edges_per_node=2, rng=rng, num_blocks=5, damping=0.0)
    assert adjacency.sum() <= 75
    undirected = nx.from_numpy_array(adjacency + adjacency.T)
    assert all(len(component) <= 6 for component in nx.connected_components(undirected))


@pytest.mark.parametrize("lattice_dim", [2, 3])
def test_watts_strogatz_without_rewiring_is_the_lattice(lattice_dim):
    rng = np.random.default_rng(5)
    side = 4
    num_nodes = side**lattice_dim
    adjacency = sample_graph("ws", num_nodes, rng=rng, lattice_dim=lattice_dim, rewire_probability=0.0)
    undirected = adjacency + adjacency.T
    # A periodic lattice of side 4: every node has 2 neighbours per axis.
    assert np.all(undirected.sum(axis=0) == 2 * lattice_dim)
    assert adjacency.sum() == lattice_dim * num_nodes


def test_watts_strogatz_rewiring_keeps_the_edge_count():
    rng = np.random.default_rng(6)
    for _ in range(20):
        adjacency = sample_graph("ws", 27, rng=rng, lattice_dim=3)
        assert adjacency.sum() == 3 * 27


def test_random_geometric_edge_count_matches_the_disc_area():
    rng = np.random.default_rng(7)
    counts = [sample_graph("rgg", 50, rng=rng).sum() for _ in range(300)]
    # Pairs closer than r = 0.1 in the unit square: about pi r^2 (minus a border effect) of 1225 pairs.
    expected = 1225 * (np.pi * 0.01 - 8 * 0.1**3 / 3 + 0.1**4 / 2)
    assert abs(np.mean(counts) - expected) < 1.5


def test_nodes_are_randomly_permuted():
    rng = np.random.default_rng(8)
    lower = [np.all(np.triu(sample_graph("er", 10, rng=rng)) == 0) for _ in range(50)]
    assert sum(lower) < 5  # without the permutation every ER graph would be lower-triangular


def test_same_generator_state_gives_the_same_graph():
    first = sample_graph("sf_out", 30, rng=np.random.default_rng(9))
    second = sample_graph("sf_out", 30, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "tree", "num_nodes": 5}, "kind='tree'"),
        ({"kind": "er", "num_nodes": 0}, "num_nodes=0"),
        ({"kind": "er", "num_nodes": 5, "edges_per_node": 3}, "edges_per_node=3"),
        ({"kind": "er", "num_nodes": 5, "edges_per_node": -1}, "edges_per_node=-1"),
        ({"kind": "sf_in", "num_nodes": 5, "edges_per_node": 5}, "edges_per_node=5"),
        ({"kind": "sf_in", "num_nodes": 5, "edges_per_node": 0}, "edges_per_node=0"),
        ({"kind": "ws", "num_nodes": 5, "radius": 0.2}, "radius"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        sample_graph(rng=np.random.default_rng(0), **kwargs)


def test_user_adjacency_and_digraph_are_accepted():
    adjacency = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(validate_adjacency(adjacency), adjacency)
    graph = nx.DiGraph([(0, 1), (1, 2), (0, 2)])
    np.testing.assert_array_equal(validate_adjacency(graph), adjacency)
    assert list(topological_order(adjacency)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (np.zeros((2, 3)), "square"),
        (np.array([[0, 1], [1, 0]]), "cycle"),
        (np.array([[1, 0], [0, 0]]), "self-loops"),
        (np.array([[0, 2], [0, 0]]), "only 0 and 1"),
        (np.array([[0, np.nan], [0, 0]]), "only 0 and 1"),
        (nx.Graph([(0, 1)]), "DiGraph"),
        (nx.DiGraph([(0, 1), (1, 2), (2, 0)]), "cycle"),
    ],
)
def test_bad_user_graphs_are_rejected(graph, message):
    with pytest.raises(ValueError, match=message):
        validate_adjacency(graph)
