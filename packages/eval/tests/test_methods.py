import numpy as np
import pytest

from condfip.demo import KernelANM as DemoKernelANM
from condfip_eval.methods import (
    METHOD_NAMES,
    KernelANM,
    LinearANM,
    generate_in_order,
    make_method,
    topological_order,
)
from condfip_eval.metrics import rmse


def test_topological_order_and_cycle_error():
    adjacency = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]])  # 1 -> 0, 2 -> 0, 2 -> 1
    assert topological_order(adjacency).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="acyclic"):
        topological_order(np.array([[0, 1], [1, 0]]))


def test_generate_in_order_clamps_and_propagates():
    adjacency = np.array([[0, 1], [0, 0]])  # 0 -> 1
    noise = np.array([[1.0, 0.5], [2.0, -1.0]])

    def double_parent(node, x):
        return 2.0 * x[:, 0] if node == 1 else np.zeros(len(x))

    np.testing.assert_allclose(generate_in_order(adjacency, noise, double_parent), [[1.0, 2.5], [2.0, 3.0]])
    clamped = generate_in_order(adjacency, noise, double_parent, {0: np.array([10.0, 20.0])})
    np.testing.assert_allclose(clamped, [[10.0, 20.5], [20.0, 39.0]])
    with pytest.raises(ValueError, match="intervention node"):
        generate_in_order(adjacency, noise, double_parent, {2: 1.0})
    with pytest.raises(ValueError, match="finite"):
        generate_in_order(adjacency, noise, double_parent, {0: np.nan})


def test_make_method_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        make_method("magic")
    assert make_method("linear").name == "linear"
    assert set(METHOD_NAMES) == {"condfip", "condfip-zero-shot", "fip", "dowhy", "linear", "nonlinear"}
    with pytest.raises(
        ValueError, match="'condfip-refit' no longer exists: 'condfip' runs the Cond-FiP API's"
    ):
        make_method("condfip-refit")


def test_fit_validates_graph_and_rows(toy):
    x, _ = toy.sample(50, nonlinear=False)
    with pytest.raises(ValueError, match="square"):
        LinearANM().fit(x, toy.ADJACENCY[:3])
    with pytest.raises(ValueError, match="acyclic"):
        LinearANM().fit(x, toy.ADJACENCY + toy.ADJACENCY.T)
    with pytest.raises(ValueError, match=r"context must be an array \[n, 4\]"):
        LinearANM().fit(x[:, :3], toy.ADJACENCY)
    with pytest.raises(ValueError, match="finite"):
        LinearANM().fit(np.where(x > 1, np.nan, x), toy.ADJACENCY)


@pytest.mark.parametrize(
    ("adjacency", "message"),
    [
        (lambda a: np.where(a == 1, np.nan, 0.0), "adjacency entries must be 0 or 1 .*; got nan"),
        (lambda a: np.where(a == 1, 0.5, 0.0), "adjacency entries must be 0 or 1 .*; got 0.5"),
        (lambda a: a.astype(str), "adjacency must be a numeric 0/1 .* got dtype <U"),
    ],
)
@pytest.mark.parametrize("name", ["linear", "nonlinear"])
def test_fit_requires_a_numeric_zero_one_adjacency(toy, name, adjacency, message):
    x, _ = toy.sample(20, nonlinear=False)
    with pytest.raises(ValueError, match=message):
        make_method(name).fit(x, adjacency(toy.ADJACENCY))
    fitted = make_method(name).fit(x, toy.ADJACENCY.astype(bool))
    np.testing.assert_array_equal(fitted.adjacency, toy.ADJACENCY)


@pytest.mark.parametrize("name", ["linear", "nonlinear", "fip"])
def test_fit_refuses_a_context_without_columns(name):
    options = {"steps": 1, "dim": 16, "num_heads": 2, "device": "cpu"} if name == "fip" else {}
    with pytest.raises(
        ValueError, match=r"context must have at least one column \(node\); got shape \(5, 0\)"
    ):
        make_method(name, **options).fit(np.zeros((5, 0)), np.zeros((0, 0)))


@pytest.mark.parametrize(
    ("interventions", "message"),
    [
        ({True: 5.0}, r"intervention node must be an integer in \[0, 4\) \(not a bool\); got True"),
        ({1.0: 5.0}, "intervention node must be an integer .*; got 1.0"),
        ({1: np.zeros(3)}, "intervention value for node 1 must be a number or an array of shape \\[6\\]"),
        ({1: "a"}, "intervention value for node 1 must be a number .*, got 'a'"),
        ({1: {}}, "intervention value for node 1 must be a number .*, got {}"),
        ({1: None}, "intervention value for node 1 must be a number .*, got None"),
        ({1: [[1.0], [2.0, 3.0]]}, "intervention value for node 1 must be a number"),
        ({1: np.inf}, "intervention value for node 1 must be finite"),
        ([(1, 2.0)], r"interventions must be a dict \{node: value\}; got list"),
    ],
)
def test_bad_interventions_name_the_node_and_what_is_accepted(toy, interventions, message):
    context, _ = toy.sample(20, nonlinear=False)
    fitted = LinearANM().fit(context, toy.ADJACENCY)
    with pytest.raises(ValueError, match=message):
        fitted.generate(context[:6], interventions)
    with pytest.raises(ValueError, match=message):
        fitted.counterfactual(context[:6], interventions)


@pytest.mark.parametrize("name", ["linear", "nonlinear"])
def test_no_rows_give_empty_results(toy, name):
    context, _ = toy.sample(20, nonlinear=False)
    fitted = make_method(name).fit(context, toy.ADJACENCY)
    empty = np.zeros((0, 4))
    for result in (
        fitted.noise(empty),
        fitted.abducted_noise(empty),
        fitted.generate(empty, {1: 2.0}),
        fitted.counterfactual(empty, {1: np.zeros(0)}),
    ):
        assert result.shape == (0, 4) and result.dtype == np.float64


def test_non_finite_results_are_refused(toy):
    context, _ = toy.sample(20, nonlinear=False)
    fitted = LinearANM().fit(context, toy.ADJACENCY)
    with pytest.raises(ValueError, match="counterfactual: the fitted model gives NaN or infinite values"):
        fitted.counterfactual(context, {0: 1.7e308})


def test_linear_anm_recovers_a_linear_scm(toy):
    context, _ = toy.sample(400, nonlinear=False, seed=1)
    query, true_noise = toy.sample(200, nonlinear=False, seed=2)
    fitted = LinearANM().fit(context, toy.ADJACENCY)
    noise = fitted.noise(query)
    # residuals estimate the (zero-mean) noise; errors shrink like 1/sqrt(400)
    assert rmse(noise, true_noise) < 0.1
    # round trip: the abducted noise regenerates the rows exactly
    np.testing.assert_allclose(fitted.generate(noise), query, atol=1e-10)
    np.testing.assert_allclose(fitted.counterfactual(query, {}), query, atol=1e-10)
    # interventional generation follows the true mechanisms
    truth = toy.generate(true_noise, nonlinear=False, interventions={1: 2.0})
    assert rmse(fitted.generate(true_noise, {1: 2.0}), truth) < 0.1
    assert fitted.fit_seconds > 0 and fitted.sample_seconds > 0


@pytest.mark.parametrize("method", [LinearANM(), KernelANM()], ids=["linear", "nonlinear"])
def test_counterfactual_holds_intervention_and_keeps_non_descendants(toy, method):
    context, _ = toy.sample(200, nonlinear=True, seed=3)
    fitted = method.fit(context, toy.ADJACENCY)
    query, _ = toy.sample(30, nonlinear=True, seed=4)
    values = np.linspace(-1.0, 1.0, 30)
    counterfactual = fitted.counterfactual(query, {1: values})
    np.testing.assert_array_equal(counterfactual[:, 1], values)
    np.testing.assert_allclose(
        counterfactual[:, [0, 3]], query[:, [0, 3]], atol=1e-10
    )  # not descendants of 1
    assert not np.allclose(counterfactual[:, 2], query[:, 2])


def test_kernel_anm_beats_linear_on_a_nonlinear_scm(toy):
    context, _ = toy.sample(400, nonlinear=True, seed=5)
    query, true_noise = toy.sample(200, nonlinear=True, seed=6)
    kernel_error = rmse(KernelANM().fit(context, toy.ADJACENCY).noise(query), true_noise)
    linear_error = rmse(LinearANM().fit(context, toy.ADJACENCY).noise(query), true_noise)
    assert kernel_error < 0.1
    assert kernel_error < 0.5 * linear_error


def test_kernel_anm_is_condfips_kernel_regression(toy):
    """One implementation: the benchmark's kernel baseline answers with condfip.demo.KernelANM's regressions."""
    context, _ = toy.sample(150, nonlinear=True, seed=7)
    query, true_noise = toy.sample(40, nonlinear=True, seed=8)
    options = {"bandwidth_factors": (0.7, 1.5), "ridges": (1e-3, 1e-2, 1e-1)}
    fitted = KernelANM(**options).fit(context, toy.ADJACENCY)
    reference = DemoKernelANM.fit(context, toy.ADJACENCY, **options)
    np.testing.assert_array_equal(fitted.noise(query), reference.noise(query))
    np.testing.assert_array_equal(
        fitted.generate(true_noise, {0: 0.5}), reference.generate(true_noise, {0: 0.5})
    )
    # node 2 (parents 0 and 1) by hand: Gaussian kernel on the standardized parents, ridge solve, prediction
    regression = reference.regressions[2]
    mean, std = context[:, :2].mean(axis=0), context[:, :2].std(axis=0)
    z, q = (context[:, :2] - mean) / std, (query[:, :2] - mean) / std
    median = np.sqrt(np.median(((z[:, None] - z[None]) ** 2).sum(axis=2)[np.triu_indices(150, k=1)]))
    assert regression.ridge in options["ridges"]
    assert min(abs(regression.bandwidth / median - f) for f in options["bandwidth_factors"]) < 1e-12

    def gram(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(axis=2) / (2 * regression.bandwidth**2))

    system = gram(z, z) + regression.ridge * np.eye(150)
    weights = np.linalg.solve(system, context[:, 2] - context[:, 2].mean())
    predicted = context[:, 2].mean() + gram(q, z) @ weights
    # the same solve with the kernel rounded differently: error at most eps x condition number x |weights|
    tolerance = 100 * np.finfo(np.float64).eps * np.linalg.cond(system) * np.abs(weights).sum()
    np.testing.assert_allclose(fitted.noise(query)[:, 2], query[:, 2] - predicted, rtol=0, atol=tolerance)


def test_kernel_anm_rejects_bad_options():
    with pytest.raises(ValueError, match="bandwidth_factors"):
        KernelANM(bandwidth_factors=(0.0,))
    with pytest.raises(ValueError, match="ridges"):
        KernelANM(ridges=())


def test_sample_seconds_accumulate(toy):
    context, _ = toy.sample(100, nonlinear=False)
    fitted = LinearANM().fit(context, toy.ADJACENCY)
    fitted.noise(context)
    first = fitted.sample_seconds
    fitted.generate(np.zeros((10, 4)))
    assert fitted.sample_seconds > first > 0
