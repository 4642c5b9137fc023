import networkx as nx
import numpy as np
import pytest

from scm_gen import (
    SCM,
    LinearMechanisms,
    NoiseModel,
    sample_scm,
)

HOMOSCEDASTIC = [("in", "linear"), ("in", "rff"), ("out", "linear"), ("out", "rff")]


def _scm(preset="in", mechanism="rff", num_nodes=12, seed=0, graph=None):
    return sample_scm(preset, mechanism, num_nodes, rng=np.random.default_rng(seed), graph=graph)


@pytest.mark.parametrize(("preset", "mechanism"), HOMOSCEDASTIC)
def test_data_equals_mechanisms_plus_noise_exactly(preset, mechanism):
    for seed in range(10):
        scm = _scm(preset, mechanism, seed=seed)
        x, noise = scm.sample(200, np.random.default_rng(seed))
        np.testing.assert_array_equal(x, scm.mechanisms(x) + noise)


@pytest.mark.parametrize(
    ("preset", "mechanism"), [*HOMOSCEDASTIC, ("in", "rff_hetero"), ("out", "rff_hetero")]
)
def test_abduction_recovers_the_noise(preset, mechanism):
    for seed in range(5):
        scm = _scm(preset, mechanism, seed=seed)
        x, noise = scm.sample(300, np.random.default_rng(seed))
        np.testing.assert_allclose(scm.abduct(x), noise, rtol=1e-9, atol=1e-9 * np.abs(x).max())


def test_linear_scm_matches_the_closed_form():
    # X = (b + N) (I - W)^-1 for a linear SCM.
    scm = _scm("in", "linear", num_nodes=8, seed=3)
    x, noise = scm.sample(50, np.random.default_rng(3))
    weights, bias = scm.mechanisms_model.weights, scm.mechanisms_model.bias
    expected = (noise + bias) @ np.linalg.inv(np.eye(8) - weights)
    np.testing.assert_allclose(x, expected, rtol=1e-9, atol=1e-9)


def test_mechanisms_only_look_at_parents():
    scm = _scm("in", "rff", num_nodes=10, seed=4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 10))
    for node in range(10):
        changed = x.copy()
        non_parents = np.flatnonzero(scm.adjacency[:, node] == 0)
        changed[:, non_parents] += 5.0
        np.testing.assert_array_equal(scm.mechanisms(changed)[:, node], scm.mechanisms(x)[:, node])


@pytest.mark.parametrize("mechanism", ["linear", "rff", "rff_hetero"])
def test_intervened_node_equals_its_value_and_non_descendants_are_unchanged(mechanism):
    scm = _scm("in", mechanism, num_nodes=15, seed=5)
    noise = scm.sample_noise(100, np.random.default_rng(5))
    factual = scm.generate(noise)
    graph = nx.from_numpy_array(scm.adjacency, create_using=nx.DiGraph)
    for node in range(15):
        intervened = scm.generate(noise, {node: 1.5})
        assert np.all(intervened[:, node] == 1.5)
        reach = nx.descendants(graph, node)
        untouched = [j for j in range(15) if j != node and j not in reach]
        np.testing.assert_array_equal(intervened[:, untouched], factual[:, untouched])
        if reach:
            changed = sorted(reach)
            assert np.any(intervened[:, changed] != factual[:, changed])


def test_intervention_on_several_nodes_with_per_row_values():
    scm = _scm("out", "rff", num_nodes=10, seed=6)
    rng = np.random.default_rng(6)
    noise = scm.sample_noise(40, rng)
    values = rng.normal(size=40)
    x = scm.generate(noise, {2: values, 7: -1.0})
    np.testing.assert_array_equal(x[:, 2], values)
    assert np.all(x[:, 7] == -1.0)
    # Every other node still follows its mechanism.
    others = [j for j in range(10) if j not in (2, 7)]
    np.testing.assert_array_equal(x[:, others], (scm.mechanisms(x) + noise)[:, others])


@pytest.mark.parametrize("mechanism", ["linear", "rff", "rff_hetero"])
def test_counterfactual_without_intervention_returns_the_factual_rows(mechanism):
    scm = _scm("in", mechanism, seed=7)
    x, _ = scm.sample(100, np.random.default_rng(7))
    np.testing.assert_array_equal(scm.counterfactual(x, {}), x)


@pytest.mark.parametrize("mechanism", ["linear", "rff", "rff_hetero"])
def test_counterfactual_equals_the_true_noise_pushed_through_the_intervention(mechanism):
    scm = _scm("out", mechanism, seed=8)
    x, noise = scm.sample(100, np.random.default_rng(8))
    for node in range(scm.num_nodes):
        expected = scm.generate(noise, {node: 0.5})
        # rounding of the abducted noise is amplified by the float32 RFF features: agreement to ~1e-7
        np.testing.assert_allclose(scm.counterfactual(x, {node: 0.5}), expected, rtol=1e-5, atol=1e-6)


def test_intervention_values_lie_between_the_quantiles():
    scm = _scm("in", "rff", seed=9)
    rng = np.random.default_rng(9)
    reference, _ = scm.sample(500, rng)
    for node in range(scm.num_nodes):
        low, high = np.quantile(reference[:, node], [0.1, 0.9])
        value = scm.sample_intervention_value(node, rng, reference=reference)
        assert low <= value <= high
        assert isinstance(scm.sample_intervention_value(node, rng), float)


def test_user_graph_and_hand_built_scm():
    adjacency = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    weights = np.array([[0, 2.0, -1.0], [0, 0, 3.0], [0, 0, 0]])
    scm = SCM(
        adjacency,
        LinearMechanisms(adjacency, weights, np.zeros(3)),
        NoiseModel(("gaussian",) * 3, np.ones(3)),
    )
    x = scm.generate(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(x, [[1.0, 2.0, 5.0], [0.0, 1.0, 4.0]])
    from_digraph = _scm("in", "linear", num_nodes=3, graph=nx.DiGraph([(0, 1), (1, 2), (0, 2)]))
    np.testing.assert_array_equal(from_digraph.adjacency, adjacency)
    assert from_digraph.metadata["graph"] == "user"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda scm: scm.generate(np.zeros((3, 4))), r"shape \[n, 5\]"),
        (lambda scm: scm.generate(np.full((3, 5), np.nan)), "NaN"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {5: 1.0}), "node 5 does not exist"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {-1: 1.0}), "node -1 does not exist"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {0: np.nan}), "must be finite"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {0: np.zeros(4)}), r"shape \[3\]"),
        (lambda scm: scm.counterfactual(np.zeros((3, 5)), {0: "a"}), "must be a number"),
        (lambda scm: scm.sample(0, np.random.default_rng(0)), "num_samples=0"),
        (lambda scm: scm.sample_intervention_value(9, np.random.default_rng(0)), "node=9"),
        (
            lambda scm: scm.sample_intervention_value(
                1, np.random.default_rng(0), reference=np.zeros((0, 5))
            ),
            "reference has no rows",
        ),
        (lambda scm: scm.generate(np.zeros((3, 5)), {1: None}), "must be a number .* got None"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {1: {}}), "node 1 must be a number"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {1: [[1, 2], [3]]}), "node 1 must be a number"),
        (lambda scm: scm.generate(np.zeros((3, 5)), {True: 1.0}), "node True does not exist"),
        (lambda scm: scm.descendants([-1]), "node -1 does not exist; allowed: integers 0 to 4"),
        (lambda scm: scm.descendants([7]), "node 7 does not exist"),
        (lambda scm: scm.descendants([True]), "node True does not exist"),
        (lambda scm: scm.descendants("1"), r"nodes='1' must be a list, e.g. nodes=\[0\]"),
        (lambda scm: scm.descendants(1), "nodes=1 must be a list"),
    ],
)
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(_scm(num_nodes=5))


def test_descendants_accept_numpy_integers():
    scm = SCM(
        np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]),
        LinearMechanisms(np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]), np.ones((3, 3)), np.zeros(3)),
        NoiseModel(("gaussian",) * 3, np.ones(3)),
    )
    np.testing.assert_array_equal(scm.descendants(np.array([0])), [True, True, False])
    np.testing.assert_array_equal(scm.descendants([np.int64(2)]), [False, False, True])


@pytest.mark.parametrize(
    "call",
    [
        lambda scm, x, noise: scm.generate(noise, {0: 1.7e308}),
        lambda scm, x, noise: scm.counterfactual(x, {0: 1.7e308}),
        lambda scm, x, noise: scm.counterfactual_from_noise(x, noise, {0: 1.7e308}),
    ],
)
def test_interventions_beyond_float64_are_refused_by_node(call):
    # 0 -> 1 with weight 2: do(X_0 = 1.7e308) would make X_1 infinite
    adjacency = np.array([[0, 1], [0, 0]])
    scm = SCM(
        adjacency,
        LinearMechanisms(adjacency, np.full((2, 2), 2.0), np.zeros(2)),
        NoiseModel(("gaussian",) * 2, np.ones(2)),
    )
    noise = np.array([[0.5, 1.0]])
    x = scm.generate(noise)
    with pytest.raises(
        ValueError,
        match=r"node 1 takes values beyond the float64 range .* under the intervention on node\(s\) \[0\]; "
        "give intervention values of smaller magnitude",
    ):
        call(scm, x, noise)
    np.testing.assert_array_equal(scm.generate(noise, {0: 1e300}), [[1e300, 2e300 + 1.0]])
    with pytest.raises(ValueError, match="node 1 takes values beyond the float64 range .*; give noise"):
        scm.generate(np.array([[1e308, 0.0]]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "mid", "mechanism": "rff", "num_nodes": 5}, "preset='mid'"),
        ({"preset": "in", "mechanism": "mlp", "num_nodes": 5}, "mechanism='mlp'"),
        ({"preset": "in", "mechanism": "rff", "num_nodes": 0}, "num_nodes=0"),
        ({"preset": "in", "mechanism": "rff", "num_nodes": 5, "graph": "tree"}, "graph='tree'"),
        ({"preset": "in", "mechanism": "rff", "num_nodes": 5, "graph": np.ones((5, 5))}, "self-loops"),
        ({"preset": "in", "mechanism": "rff", "num_nodes": 4, "graph": np.zeros((5, 5))}, "num_nodes=4"),
    ],
)
def test_sample_scm_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_scm(rng=np.random.default_rng(0), **kwargs)


def test_single_node_scm():
    scm = _scm(num_nodes=1)
    x, noise = scm.sample(10, np.random.default_rng(0))
    np.testing.assert_array_equal(x, scm.mechanisms(x) + noise)


@pytest.mark.parametrize("mechanism", ["linear", "rff", "rff_hetero"])
def test_counterfactual_from_true_noise_equals_generation_under_the_intervention(mechanism):
    scm = _scm("in", mechanism, seed=10)
    x, noise = scm.sample(60, np.random.default_rng(10))
    for node in range(scm.num_nodes):
        np.testing.assert_array_equal(
            scm.counterfactual_from_noise(x, noise, {node: -0.7}), scm.generate(noise, {node: -0.7})
        )
