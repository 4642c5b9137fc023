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
