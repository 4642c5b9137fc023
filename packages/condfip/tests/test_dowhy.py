"""condfip.dowhy against the real DoWhy-GCM: assignment, agreement with InferredSCM, gcm.fit, bad input.

Tolerances: with the network in float64 both paths differ only by float64 rounding of the same operations
(standardizing, the network, adding noise), a few ulps per node and level, far below ``FLOAT64_TOL`` times a
column's std. With the shipped float32 network, DoWhy evaluates one node's parents at a time while
``InferredSCM.generate`` evaluates whole topological levels; the same float32 network on differently batched
inputs may round differently in its last bits (about 1e-7 of a column's std per node, compounded over the
graph's depth), hence ``FLOAT32_TOL`` there.
"""

from __future__ import annotations

import inspect
import pickle

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("dowhy")

from dowhy import gcm  # noqa: E402
from dowhy.gcm.causal_mechanisms import InvertibleFunctionalCausalModel, StochasticModel  # noqa: E402
from dowhy.gcm.causal_models import validate_node  # noqa: E402
from dowhy.graph import get_ordered_predecessors  # noqa: E402

from condfip import CondFiP  # noqa: E402
from condfip.dowhy import CondFiPPredictionModel, assign_causal_mechanisms, mechanism_noise  # noqa: E402
from scm_gen import make_benchmark_dataset  # noqa: E402

FLOAT64_TOL = 1e-9
FLOAT32_TOL = 1e-5
NUM_NODES = 8

gcm.config.disable_progress_bars()


@pytest.fixture(scope="module")
def model32() -> CondFiP:
    return CondFiP.from_pretrained("small", device="cpu")


@pytest.fixture(scope="module")
def model64() -> CondFiP:
    network = CondFiP.from_pretrained("small", device="cpu").model
    return CondFiP(network.to(torch.float64), device="cpu")


@pytest.fixture(scope="module")
def dataset():
    return make_benchmark_dataset("in", "rff", NUM_NODES, seed=5, num_context=200, num_query=50)


@pytest.fixture(scope="module")
def columns() -> list[str]:
    return [f"x{i}" for i in range(NUM_NODES)]


@pytest.fixture(scope="module")
def graph(dataset, columns) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(columns)
    graph.add_edges_from(
        (columns[i], columns[j]) for i, j in zip(*np.nonzero(dataset.adjacency), strict=True)
    )
    return graph


@pytest.fixture(scope="module")
def context(dataset, columns) -> pd.DataFrame:
    return pd.DataFrame(dataset.context_data, columns=columns)


@pytest.fixture(scope="module")
def query(dataset, columns) -> pd.DataFrame:
    return pd.DataFrame(dataset.query_data, columns=columns)


# DoWhy keeps the graph object it is given and stores the mechanisms on its nodes: every causal model here is
# built on a copy, so that the module's graph stays bare.
def _assigned(graph, context, model):
    causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
    scm = assign_causal_mechanisms(causal_model, context, model=model)
    return causal_model, scm


def _intervened_node(graph: nx.DiGraph) -> str:
    """The node with the most descendants, so that an intervention moves much of the graph."""
    return max(graph.nodes, key=lambda node: (len(nx.descendants(graph, node)), node))


def _assert_close(got: pd.DataFrame, expected: pd.DataFrame, scm, tolerance: float) -> None:
    columns = scm.columns
    scale = scm.std.to_numpy()
    difference = np.abs(got[columns].to_numpy() - expected[columns].to_numpy()) / scale
    assert difference.max() <= tolerance, f"largest difference {difference.max():.3g} std"


def _dowhy_noise(scm, noise: pd.DataFrame, graph: nx.DiGraph) -> pd.DataFrame:
    """Cond-FiP noise -> DoWhy's: a root's DoWhy noise is its value, F_hat_root (a constant) plus its noise."""
    intercept = scm.predict(noise).iloc[0]  # a root's F_hat reads no column
    frame = noise.copy()
    for node in graph.nodes:
        if graph.in_degree(node) == 0:
            frame[node] = noise[node] + intercept[node]
    return frame


class _Replay(StochasticModel):
    """A noise distribution that hands out the same given rows on every draw: fixed noise for DoWhy's sampling."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64).reshape(-1, 1)

    def fit(self, X: np.ndarray) -> None:
        pass

    def draw_samples(self, num_samples: int) -> np.ndarray:
        assert num_samples == self.values.shape[0]
        return self.values.copy()

    def clone(self):
        return _Replay(self.values)


# --------------------------------------------------------------------------------------------- assignment
def test_every_node_gets_a_fitted_invertible_mechanism(graph, context, model32):
    causal_model, scm = _assigned(graph, context, model32)
    assert set(scm.graph.edges) == set(graph.edges)
    for node in graph.nodes:
        validate_node(
            causal_model.graph, node
        )  # DoWhy's check: a fitting mechanism, fitted with these parents
        mechanism = causal_model.causal_mechanism(node)
        if graph.in_degree(node) == 0:
            assert isinstance(mechanism, gcm.EmpiricalDistribution)
            np.testing.assert_array_equal(mechanism.data.reshape(-1), context[node].to_numpy())
        else:
            assert isinstance(mechanism, gcm.AdditiveNoiseModel)
            assert isinstance(mechanism, InvertibleFunctionalCausalModel)
            prediction = mechanism.prediction_model
            assert isinstance(prediction, CondFiPPredictionModel)
            assert prediction.parents == get_ordered_predecessors(graph, node)
            # the noise model holds the abducted noise of the context rows, X - F_hat(X)
            np.testing.assert_allclose(
                mechanism.noise_model.data.reshape(-1),
                scm.noise(method="decoder")[node].to_numpy(),
                rtol=0,
                atol=1e-12,
            )


def test_noise_and_predictions_are_condfips(graph, query, model32):
    causal_model, scm = _assigned(graph, query, model32)
    noise = scm.noise(query, method="decoder")  # DoWhy's additive noise: X - F_hat(X)
    predicted = scm.predict(query)
    for node in graph.nodes:
        if graph.in_degree(node) == 0:
            continue
        mechanism = causal_model.causal_mechanism(node)
        parents = query[mechanism.prediction_model.parents].to_numpy()
        scale = scm.std[node]
        got = mechanism.estimate_noise(query[node].to_numpy(), parents).reshape(-1)
        assert np.abs(got - noise[node].to_numpy()).max() <= FLOAT64_TOL * scale
        on_rows = mechanism.prediction_model.predict(parents)
        assert on_rows.shape == (len(query), 1)
        assert np.abs(on_rows[:, 0] - predicted[node].to_numpy()).max() <= FLOAT64_TOL * scale
        shuffled = parents[::-1].copy()  # other rows than the context: a network pass, not the cached one
        expected = scm.predict(query.iloc[::-1])[node].to_numpy()
        assert np.abs(mechanism.prediction_model.predict(shuffled).reshape(-1) - expected).max() <= (
            FLOAT32_TOL * scale
        )


def test_mechanism_noise_is_each_mechanisms_estimate_and_a_roots_centred_value(
    graph, context, query, model32
):
    causal_model, scm = _assigned(graph, context, model32)
    roots = [node for node in graph.nodes if graph.in_degree(node) == 0]
    means = {node: float(context[node].mean()) for node in roots}
    noise = mechanism_noise(
        causal_model, query[::-1], means
    )  # any column order of the graph's, any row index
    assert list(noise.columns) == list(graph.nodes) and noise.index.equals(query.index[::-1])
    decoder = scm.noise(query[::-1], method="decoder")
    for node in graph.nodes:
        if node in roots:
            np.testing.assert_array_equal(noise[node].to_numpy(), query[node].to_numpy()[::-1] - means[node])
        else:  # DoWhy's additive noise is Cond-FiP's abduction
            difference = np.abs(noise[node].to_numpy() - decoder[node].to_numpy()).max()
            assert difference <= FLOAT32_TOL * scm.std[node]
    own = mechanism_noise(causal_model, query)  # DoWhy's own convention: a root's noise is its value
    np.testing.assert_array_equal(own[roots].to_numpy(), query[roots].to_numpy())
    with pytest.raises(ValueError, match="no column for the graph node"):
        mechanism_noise(causal_model, query.drop(columns=[roots[0]]))


def test_a_model_name_loads_the_shipped_checkpoint(graph, context, model32):
    causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
    scm = assign_causal_mechanisms(causal_model, context, model="small")
    expected = model32.infer(context, graph)
    _assert_close(scm.noise(), expected.noise(), scm, FLOAT32_TOL)


def test_infer_options_reach_infer(graph, context, model32):
    parameters = inspect.signature(model32.infer).parameters
    options = {"zero_shot": True} if "zero_shot" in parameters else {"refit_readout": True}
    plain = model32.infer(context, graph)
    expected = model32.infer(context, graph, **options)
    assert np.abs(plain.noise().to_numpy() - expected.noise().to_numpy()).max() > 1e-3  # the option matters
    causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
    scm = assign_causal_mechanisms(causal_model, context, model=model32, **options)
    _assert_close(scm.noise(), expected.noise(), scm, FLOAT64_TOL)


# ------------------------------------------------------------------------------------ agreement with condfip
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_counterfactuals_equal_inferred_scm_generate(precision, graph, context, query, model32, model64):
    model, tolerance = (model64, FLOAT64_TOL) if precision == "float64" else (model32, FLOAT32_TOL)
    causal_model, scm = _assigned(graph, context, model)
    node = _intervened_node(graph)
    assert nx.descendants(graph, node)
    value = float(query[node].quantile(0.8))
    noise = scm.noise(query, method="decoder")  # what counterfactuals abduct

    got = gcm.counterfactual_samples(causal_model, {node: lambda x: value}, observed_data=query)
    expected = scm.generate(noise, {node: value})
    _assert_close(got, expected, scm, tolerance)
    assert np.abs(expected.to_numpy() - query.to_numpy()).max() > 0.1  # the intervention moved rows

    # a soft intervention (a callable of the factual value) on a node outside the first one's descendants
    other = next(n for n in nx.topological_sort(graph) if n != node and node not in nx.ancestors(graph, n))
    got = gcm.counterfactual_samples(causal_model, {other: lambda x: x + 1.0}, observed_data=query)
    _assert_close(got, scm.generate(noise, {other: lambda x: x + 1.0}), scm, tolerance)

    # no intervention gives the rows back
    _assert_close(gcm.counterfactual_samples(causal_model, {}, observed_data=query), query, scm, tolerance)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_generation_from_given_noise_equals_inferred_scm_generate(
    precision, graph, context, query, model32, model64
):
    model, tolerance = (model64, FLOAT64_TOL) if precision == "float64" else (model32, FLOAT32_TOL)
    causal_model, scm = _assigned(graph, context, model)
    rng = np.random.default_rng(0)
    abducted = scm.noise(query).to_numpy()
    fresh = pd.DataFrame(  # noise of no observed row: each column resampled on its own
        abducted[rng.integers(0, len(abducted), size=abducted.shape), np.arange(abducted.shape[1])],
        columns=scm.columns,
    )
    node = _intervened_node(graph)
    value = float(query[node].quantile(0.2))
    got = gcm.counterfactual_samples(
        causal_model, {node: lambda x: value}, noise_data=_dowhy_noise(scm, fresh, graph)
    )
    _assert_close(got, scm.generate(fresh, {node: value}), scm, tolerance)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_interventional_samples_with_fixed_noise_equal_inferred_scm_generate(
    precision, graph, context, query, model32, model64
):
    model, tolerance = (model64, FLOAT64_TOL) if precision == "float64" else (model32, FLOAT32_TOL)
    causal_model, scm = _assigned(graph, context, model)
    noise = scm.noise(query)
    dowhy_noise = _dowhy_noise(scm, noise, graph)
    for (
        node
    ) in graph.nodes:  # DoWhy's own mechanisms drawing this noise: roots their values, ANMs their noise
        mechanism = causal_model.causal_mechanism(node)
        if graph.in_degree(node) == 0:
            causal_model.set_causal_mechanism(node, _Replay(dowhy_noise[node].to_numpy()))
        else:
            replayed = gcm.AdditiveNoiseModel(mechanism.prediction_model, _Replay(noise[node].to_numpy()))
            causal_model.set_causal_mechanism(node, replayed)
    num_rows = len(query)
    _assert_close(gcm.draw_samples(causal_model, num_rows), scm.generate(noise), scm, tolerance)
    node = _intervened_node(graph)
    value = float(query[node].quantile(0.8))
    got = gcm.interventional_samples(causal_model, {node: lambda x: value}, num_samples_to_draw=num_rows)
    _assert_close(got, scm.generate(noise, {node: value}), scm, tolerance)


# --------------------------------------------------------------------------------------------- gcm.fit
def test_gcm_fit_on_the_same_rows_changes_nothing(graph, context, query, model32):
    causal_model, scm = _assigned(graph, context, model32)
    node = _intervened_node(graph)
    interventions = {node: lambda x: 1.0}
    before = gcm.counterfactual_samples(causal_model, interventions, observed_data=query)
    gcm.fit(causal_model, context)
    after = gcm.counterfactual_samples(causal_model, interventions, observed_data=query)
    np.testing.assert_array_equal(after.to_numpy(), before.to_numpy())
    for name in graph.nodes:
        if graph.in_degree(name) > 0:
            assert causal_model.causal_mechanism(name).prediction_model.inferred_scm is scm


def test_a_pickled_causal_model_answers_as_the_original(graph, context, query, model32):
    """DoWhy's parallel tools (arrow_strength, attribution, ...) send the causal model to worker processes; the
    standard pickle takes it, and the copy answers bit for bit as the original."""
    causal_model, _ = _assigned(graph, context, model32)
    copy = pickle.loads(pickle.dumps(causal_model))
    interventions = {_intervened_node(graph): lambda x: 1.0}
    np.testing.assert_array_equal(
        gcm.counterfactual_samples(copy, interventions, observed_data=query).to_numpy(),
        gcm.counterfactual_samples(causal_model, interventions, observed_data=query).to_numpy(),
    )


def test_gcm_fit_on_other_rows_infers_each_mechanism_again(graph, context, query, model32):
    causal_model, scm = _assigned(graph, context, model32)
    gcm.fit(causal_model, query)
    node = max(graph.nodes, key=lambda n: (graph.in_degree(n), n))
    mechanism = causal_model.causal_mechanism(node)
    parents = mechanism.prediction_model.parents
    local = model32.infer(query[[*parents, node]], graph.subgraph([*parents, node]))
    assert mechanism.prediction_model.inferred_scm is not scm
    np.testing.assert_allclose(
        mechanism.estimate_noise(query[node].to_numpy(), query[parents].to_numpy()).reshape(-1),
        local.noise(method="decoder")[node].to_numpy(),
        rtol=0,
        atol=FLOAT64_TOL * local.std[node],
    )
    for name in graph.nodes:  # every model refitted on the new rows: DoWhy's invariant for invertible SCMs
        validate_node(causal_model.graph, name)
    _assert_close(gcm.counterfactual_samples(causal_model, {}, observed_data=query), query, scm, FLOAT64_TOL)


# --------------------------------------------------------------------------------------------- bad input
def test_data_missing_a_node_is_refused_with_its_name(graph, context, model32):
    causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
    with pytest.raises(ValueError, match=r"no column for the graph node\(s\) \['x3'\]"):
        assign_causal_mechanisms(causal_model, context.drop(columns=["x3"]), model=model32)


def test_other_bad_inputs_are_refused(graph, context, model32):
    causal_model = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        assign_causal_mechanisms(causal_model, context.to_numpy(), model=model32)
    with pytest.raises(ValueError, match="must be a DoWhy causal model"):
        assign_causal_mechanisms(graph, context, model=model32)
    with pytest.raises(ValueError, match="model must be a CondFiP or the name"):
        assign_causal_mechanisms(causal_model, context, model=3)
    assign_causal_mechanisms(causal_model, context, model=model32)
    node = next(n for n in graph.nodes if graph.in_degree(n) > 0)
    prediction = causal_model.causal_mechanism(node).prediction_model
    parents = prediction.parents
    with pytest.raises(
        ValueError, match=rf"takes its {len(parents)} parents .* got shape \(4, {len(parents) + 1}\)"
    ):
        prediction.predict(np.zeros((4, len(parents) + 1)))


def test_incomplete_root_means_and_positive_none(graph, context, model32):
    causal_model, _ = _assigned(graph, context, model32)
    roots = [node for node in graph.nodes if graph.in_degree(node) == 0]
    with pytest.raises(ValueError, match=rf"root_means has no mean for the root node\(s\) \[{roots[0]!r}"):
        mechanism_noise(causal_model, context, {})
    # positive=None is infer's "no positive column", as positive=False
    again = gcm.InvertibleStructuralCausalModel(nx.DiGraph(graph))
    scm = assign_causal_mechanisms(again, context, model=model32, positive=None)
    assert scm.positive == []
    with pytest.raises(ValueError, match="positive= is not supported"):
        assign_causal_mechanisms(again, context, model=model32, positive=True)


def test_a_non_finite_intervention_is_named_as_such_not_as_bad_data(graph, context, model32):
    causal_model, _ = _assigned(graph, context, model32)
    source = next(n for n in graph.nodes if graph.out_degree(n) > 0)
    child = next(iter(graph.successors(source)))
    with pytest.raises(
        ValueError, match=rf"mechanism of {child!r} was given NaN or infinite values of its parent"
    ):
        gcm.interventional_samples(causal_model, {source: lambda x: np.inf}, num_samples_to_draw=10)
