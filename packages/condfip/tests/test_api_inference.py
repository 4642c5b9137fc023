"""The inference API end to end: invariants that hold for any weights, and exactness against known SCMs.

Two kinds of model: a tiny random-init ``CondFiPModel`` (invariants of the API, whatever the weights) and an
oracle whose ``F_hat`` is the true mechanism of an scm-gen SCM (then every answer must equal scm-gen's).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import scm_gen
from condfip import CondFiP, InferredSCM
from condfip.api import inferred_scm
from condfip.api.engine import CUDA_TOKENS_PER_CHUNK, DEFAULT_TOKENS_PER_CHUNK, rows_per_chunk
from condfip.api.inferred_scm import MAX_SAMPLING_LEVERAGE
from condfip.api.progress import progress_slices
from condfip.api.sampling import stratified_noise
from condfip.model import CondFiPConfig, CondFiPModel, DatasetEmbedding
from condfip.model.adaptation import NETWORK_EVIDENCE_MARGIN
from condfip.model.model_weights import nonlinear_weights, shared_log_odds
from condfip.model.parent_basis import ADDITIVE_SCALES, LENGTH_SCALES

sys.path.insert(0, str(Path(__file__).parent))
from rounding import adapted_round_trip, assert_close, network_operations  # noqa: E402

ROUND_TRIP = adapted_round_trip()  # rounding.adapted_round_trip: the kernel basis' conditioning

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=32
)


# float32 roundings along TINY's deepest path (encoder, embedding, decoder) on up to 8 nodes: what two
# computations of the same answer from other chunks, batches or row counts may differ by (``rounding``)
OPERATIONS = network_operations(dim=16, mlp_dim=32, rows=32, nodes=8, blocks=2 * (1 + 1) + 2 + 2)


def same_in_float32(actual: object, expected: object, what: str, *, passes: int = 1) -> None:
    """Equal in exact arithmetic; ``passes`` network evaluations feed one another (fixed-point iterations)."""
    assert_close(actual, expected, dtype=torch.float32, operations=passes * OPERATIONS, what=what)


def tiny_model(seed: int = 0, config: CondFiPConfig = TINY) -> CondFiPModel:
    """Random weights, every parameter perturbed: the default init zeroes gates, which would make F_hat
    ignore the parents and the invariants below trivially true."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CondFiPModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model


class OracleModel(nn.Module):
    """Test double with the CondFiPModel interface: ``F_hat`` is the true ``F`` of ``scm`` in the standardized
    units of a context with the given per-column ``mean`` and ``std``. Runs in float64."""

    def __init__(self, scm: scm_gen.SCM, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.scm, self.mean, self.std = scm, mean, std
        self.config = CondFiPConfig()
        self.anchor = nn.Parameter(torch.zeros(1, dtype=torch.float64))  # sets the dtype the API runs in

    def embed(self, context, parents, *, sample_mask=None, chunk_size=None) -> DatasetEmbedding:
        zeros = torch.zeros(context.shape[0], context.shape[2], 1, dtype=torch.float64)
        return DatasetEmbedding(scale=zeros, position=zeros, condition=zeros)

    def mechanisms(self, z, parents, embedding, nodes=None) -> torch.Tensor:
        x = z[0].numpy() * self.std + self.mean
        full = torch.from_numpy((self.scm.mechanisms(x) - self.mean) / self.std)[None]
        return full if nodes is None else full[..., nodes]


@pytest.fixture(scope="module")
def scm_and_rows():
    rng = np.random.default_rng(7)
    scm = scm_gen.sample_scm("in", "rff", 6, rng=rng, graph="er")
    context, _ = scm.sample(150, rng)
    query, query_noise = scm.sample(40, rng)
    return scm, context, query, query_noise


@pytest.fixture(scope="module", params=[True, False], ids=["zero-shot", "adapted"])
def inferred(scm_and_rows, request) -> InferredSCM:
    """The invariants below hold zero-shot and adapted to the context rows (the default)."""
    scm, context, _, _ = scm_and_rows
    return CondFiP(tiny_model()).infer(context, scm.adjacency, zero_shot=request.param)


def descendants(adjacency: np.ndarray, node: int) -> set[int]:
    return nx.descendants(nx.from_numpy_array(adjacency, create_using=nx.DiGraph), node)


# ------------------------------------------------------------------------------- exact against the true SCM
@pytest.mark.parametrize("mechanism", ["linear", "rff"])
def test_oracle_model_reproduces_scm_gen_exactly(mechanism):
    rng = np.random.default_rng(11)
    scm = scm_gen.sample_scm("in", mechanism, 8, rng=rng, graph="er")
    context, _ = scm.sample(200, rng)
    query, query_noise = scm.sample(50, rng)
    mean, std = context.mean(axis=0), context.std(axis=0)
    inferred = CondFiP(OracleModel(scm, mean, std), device="cpu").infer(context, scm.adjacency)
    node = int(scm.topological_order[2])
    name = inferred.columns[node]

    np.testing.assert_allclose(inferred.noise(query).to_numpy(), query_noise, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        inferred.predict(query).to_numpy(), scm.mechanisms(query), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(inferred.generate(query_noise).to_numpy(), query, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        inferred.generate(query_noise, {name: 1.5}).to_numpy(),
        scm.generate(query_noise, {node: 1.5}),
        rtol=1e-9,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        inferred.counterfactual_samples({name: -0.5}, query).to_numpy(),
        scm.counterfactual(query, {node: -0.5}),
        rtol=1e-9,
        atol=1e-9,
    )


def test_oracle_average_causal_effect_is_the_mean_counterfactual_difference():
    rng = np.random.default_rng(5)
    scm = scm_gen.sample_scm("in", "rff", 8, rng=rng, graph="er")
    context, _ = scm.sample(200, rng)
    query, _ = scm.sample(50, rng)
    inferred = CondFiP(OracleModel(scm, context.mean(axis=0), context.std(axis=0)), device="cpu").infer(
        context, scm.adjacency
    )
    node = int(scm.topological_order[0])
    target = max(descendants(scm.adjacency, node))
    names = inferred.columns
    effect = inferred.average_causal_effect(
        names[target], {names[node]: 1.0}, {names[node]: -1.0}, data=query
    )
    expected = (
        scm.counterfactual(query, {node: 1.0})[:, target] - scm.counterfactual(query, {node: -1.0})[:, target]
    ).mean()
    assert abs(expected) > 1e-3
    np.testing.assert_allclose(effect, expected, rtol=1e-9, atol=1e-12)


def _effect_spread(inferred: InferredSCM, target: str, arm: dict, **options) -> float:
    """The standard deviation over 12 seeds of ``average_causal_effect(target, arm, {})``."""
    values = [inferred.average_causal_effect(target, arm, {}, seed=seed, **options) for seed in range(12)]
    return float(np.std(values, ddof=1))


def test_default_effect_is_stratified_and_reaches_its_standard_error():
    rng = np.random.default_rng(9)
    names = [f"x{i}" for i in range(6)]
    effects = {}
    for mechanism in ("linear", "rff"):
        scm = scm_gen.sample_scm("in", mechanism, 6, rng=rng, graph="er")
        context, _ = scm.sample(500, rng)
        inferred = CondFiP(OracleModel(scm, context.mean(axis=0), context.std(axis=0))).infer(
            pd.DataFrame(context, columns=names), scm.adjacency, zero_shot=True
        )
        node = int(scm.topological_order[0])
        target = max(descendants(scm.adjacency, node))
        arm = {names[node]: float(np.quantile(context[:, node], 0.9))}
        tolerance = 0.02 * context[:, target].std()
        effects[mechanism] = (
            _effect_spread(inferred, names[target], arm, standard_error=tolerance),
            _effect_spread(inferred, names[target], arm, n=1_000),
            tolerance,
        )
    # a linear SCM's effect is a sum of one term per node's noise, which a stratified block nearly removes: the
    # default's 1,000 rows are far more precise than as many independent rows (30 times here)
    default, independent, tolerance = effects["linear"]
    assert default < independent / 5 and default < tolerance
    # a nonlinear one keeps drawing until the standard error of its blocks is reached (seeds differ by about it)
    default, independent, tolerance = effects["rff"]
    assert default < 2 * tolerance and default < independent


def test_oracle_fresh_samples_follow_the_scm():
    rng = np.random.default_rng(3)
    scm = scm_gen.sample_scm("in", "linear", 5, rng=rng, graph="er")
    context, _ = scm.sample(4000, rng)
    inferred = CondFiP(OracleModel(scm, context.mean(axis=0), context.std(axis=0))).infer(
        context, scm.adjacency
    )
    samples = inferred.sample(4000, seed=0).to_numpy()
    # same marginals as the SCM, to sampling error: means within 0.1 std, stds within 10 %
    np.testing.assert_allclose(
        samples.mean(axis=0), context.mean(axis=0), atol=0.1 * context.std(axis=0).max()
    )
    np.testing.assert_allclose(samples.std(axis=0), context.std(axis=0), rtol=0.1)


# ------------------------------------------------------------------------------- invariants for any weights
def test_counterfactual_without_intervention_returns_the_rows(inferred, scm_and_rows):
    _, context, query, _ = scm_and_rows
    np.testing.assert_allclose(
        inferred.counterfactual_samples({}, query).to_numpy(), query, rtol=ROUND_TRIP, atol=ROUND_TRIP
    )
    np.testing.assert_allclose(
        inferred.generate(inferred.noise(method="decoder")).to_numpy(),
        context,
        rtol=ROUND_TRIP,
        atol=ROUND_TRIP,
    )


def test_noise_maps_back_exactly_also_after_an_effect_abducted_a_few_nodes(scm_and_rows):
    scm, context, _, _ = scm_and_rows
    zero_shot = CondFiP(tiny_model()).infer(context, scm.adjacency, zero_shot=True)  # float32 network
    node = int(scm.topological_order[0])
    target = max(descendants(scm.adjacency, node))
    names = zero_shot.columns
    zero_shot.average_causal_effect(names[target], {names[node]: 1.0}, {}, n=20, seed=0)  # a few nodes' noise
    np.testing.assert_allclose(
        zero_shot.generate(zero_shot.noise(method="decoder")).to_numpy(), context, rtol=1e-12, atol=1e-12
    )


def test_counterfactual_keeps_non_descendants_and_moves_descendants(inferred, scm_and_rows):
    scm, _, query, _ = scm_and_rows
    node = int(scm.topological_order[0])
    below = descendants(scm.adjacency, node)
    assert below, "the test graph needs a node with descendants"
    counterfactual = inferred.counterfactual_samples({inferred.columns[node]: 3.0}, query).to_numpy()
    unaffected = [j for j in range(scm.num_nodes) if j not in below and j != node]
    np.testing.assert_allclose(counterfactual[:, unaffected], query[:, unaffected], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(counterfactual[:, node], 3.0)
    assert np.abs(counterfactual[:, sorted(below)] - query[:, sorted(below)]).max() > 1e-3


def test_an_intervention_leaves_non_descendants_bit_for_bit(inferred, scm_and_rows):
    """Generation from the same noise with and without do(): nodes the intervention does not reach are computed
    in the same batches, so they agree exactly (not only to float32 rounding)."""
    scm, _, _, query_noise = scm_and_rows
    node = int(scm.topological_order[0])
    below = descendants(scm.adjacency, node)
    noise = inferred.noise(scm_and_rows[2], method="decoder")
    plain = inferred.generate(noise).to_numpy()
    intervened = inferred.generate(noise, {inferred.columns[node]: 3.0}).to_numpy()
    unaffected = [j for j in range(scm.num_nodes) if j not in below and j != node]
    np.testing.assert_array_equal(intervened[:, unaffected], plain[:, unaffected])


@pytest.mark.parametrize(
    "make_value",
    [
        lambda rows: 2.5,
        lambda rows: np.linspace(-1, 1, len(rows)),
        lambda rows: lambda current: current + 1.0,
    ],
    ids=["constant", "array", "callable"],
)
def test_intervened_nodes_hold_their_values(inferred, scm_and_rows, make_value):
    scm, _, query, _ = scm_and_rows
    first_index, second_index = (int(j) for j in scm.topological_order[:2])
    first, second = inferred.columns[first_index], inferred.columns[second_index]
    value = make_value(query)
    expected = value(query[:, first_index]) if callable(value) else np.broadcast_to(value, (len(query),))
    for result in (
        inferred.counterfactual_samples({first: value, second: -4.0}, query),
        inferred.interventional_samples({first: value, second: -4.0}, data=query),
    ):
        np.testing.assert_allclose(result[first].to_numpy(), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(result[second].to_numpy(), -4.0)
    fresh = inferred.interventional_samples({second: -4.0, first: 2.5}, n=len(query), seed=1)
    np.testing.assert_array_equal(fresh[[first, second]].to_numpy(), np.tile([2.5, -4.0], (len(query), 1)))


def test_callable_sees_the_value_without_intervention(inferred):
    shifted = inferred.interventional_samples({"x0": lambda current: current + 10.0}, n=30, seed=5)
    observational = inferred.sample(30, seed=5)
    np.testing.assert_allclose(shifted["x0"].to_numpy(), observational["x0"].to_numpy() + 10.0, rtol=1e-12)


def test_average_causal_effect_is_the_difference_of_interventional_means(inferred, scm_and_rows):
    scm, _, query, _ = scm_and_rows
    node = int(scm.topological_order[0])
    target = max(descendants(scm.adjacency, node))
    name, target_name = inferred.columns[node], inferred.columns[target]
    shift = {name: lambda current: current + 1.0}
    # fresh rows: the same seed gives both arms the noise that sample / interventional_samples draw
    effect = inferred.average_causal_effect(target_name, shift, {}, n=300, seed=2)
    shifted = inferred.interventional_samples(shift, n=300, seed=2)[target_name].mean()
    observational = inferred.sample(300, seed=2)[target_name].mean()
    # the effect generates only the target's ancestors, the samples every node: other node sets per network
    # call, which a float32 network may round differently
    same_in_float32(effect, shifted - observational, "effect", passes=scm.num_nodes)
    assert effect != 0.0
    # given rows: the mean of their counterfactual differences
    on_rows = inferred.average_causal_effect(target_name, {name: 0.5}, {}, data=query)
    counterfactual = inferred.counterfactual_samples({name: 0.5}, query)[target_name].to_numpy()
    np.testing.assert_allclose(on_rows, (counterfactual - query[:, target]).mean(), rtol=1e-9, atol=1e-12)
    # the default draws rounds of blocks of stratified rows until the standard error is reached: from 1,000 rows
    # (a loose target) to 10,000 (a target it cannot reach)
    arm = {name: 0.5}
    drawn = []

    def recorded(abducted, num_blocks, block_rows, rng, noise_model):
        drawn.append(num_blocks * block_rows)
        return stratified_noise(abducted, num_blocks, block_rows, rng, noise_model)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inferred_scm, "stratified_noise", recorded)
        loose = inferred.average_causal_effect(target_name, arm, {}, seed=4, standard_error=1e9)
        assert drawn == [1_000]
        drawn.clear()
        tight = inferred.average_causal_effect(target_name, arm, {}, seed=4, standard_error=1e-12)
        assert drawn[0] == 1_000 and sum(drawn) == 10_000
    assert loose == inferred.average_causal_effect(target_name, arm, {}, seed=4, standard_error=1e9)
    assert loose != tight


def test_average_causal_effect_is_zero_on_non_descendants_and_for_equal_arms(inferred, scm_and_rows):
    scm, context, query, _ = scm_and_rows
    # a node with descendants and non-descendants: the arms differ on the first, not on the second
    node = next(
        int(j)
        for j in scm.topological_order
        if 0 < len(descendants(scm.adjacency, int(j))) < scm.num_nodes - 1
    )
    below = descendants(scm.adjacency, node)
    others = [j for j in range(scm.num_nodes) if j != node and j not in below]
    name = inferred.columns[node]
    # arms inside the node's range: beyond it an adapted nonlinear mechanism is flat, and two arms on the same
    # side of the rows can give exactly the same rows
    low, high = (float(np.quantile(context[:, node], q)) for q in (0.1, 0.9))
    assert (
        inferred.average_causal_effect(inferred.columns[min(below)], {name: high}, {name: low}, n=50) != 0.0
    )
    for target in others:
        assert (
            inferred.average_causal_effect(inferred.columns[target], {name: high}, {name: low}, n=50) == 0.0
        )
    first = inferred.columns[int(scm.topological_order[0])]
    assert inferred.average_causal_effect("x5", {first: 2.0}, {first: 2.0}, data=query) == 0.0


def test_average_causal_effect_errors(inferred, scm_and_rows):
    _, _, query, _ = scm_and_rows
    with pytest.raises(ValueError, match="unknown target 'y'; choose one of the columns"):
        inferred.average_causal_effect("y", {"x0": 1.0}, {"x0": 0.0})
    with pytest.raises(ValueError, match="not both"):
        inferred.average_causal_effect("x1", {"x0": 1.0}, {"x0": 0.0}, n=10, data=query)
    with pytest.raises(ValueError, match="intervention on unknown node 'z'"):
        inferred.average_causal_effect("x1", {"z": 1.0}, {})
    with pytest.raises(ValueError, match="n must be a positive int"):
        inferred.average_causal_effect("x1", {"x0": 1.0}, {}, n=0)
    for bad in (0.0, -1.0, float("nan"), True, "small"):
        with pytest.raises(ValueError, match="standard_error must be a positive number"):
            inferred.average_causal_effect("x1", {"x0": 1.0}, {}, standard_error=bad)
    with pytest.raises(ValueError, match="standard_error chooses the number of fresh rows"):
        inferred.average_causal_effect("x1", {"x0": 1.0}, {}, n=10, standard_error=0.1)
    with pytest.raises(ValueError, match="an intervention given as an array .* needs n"):
        inferred.average_causal_effect("x1", {"x0": np.zeros(5)}, {})


def test_same_seed_same_rows_and_different_seed_different_rows(inferred):
    for noise_model in ("empirical", "gaussian"):
        first = inferred.sample(25, seed=3, noise_model=noise_model)
        pd.testing.assert_frame_equal(first, inferred.sample(25, seed=3, noise_model=noise_model))
        assert not np.allclose(
            first.to_numpy(), inferred.sample(25, seed=4, noise_model=noise_model).to_numpy()
        )
    pd.testing.assert_frame_equal(
        inferred.interventional_samples({"x2": 0.0}, n=10, seed=8),
        inferred.interventional_samples({"x2": 0.0}, n=10, seed=8),
    )


def test_empirical_noise_stays_within_the_abducted_range(inferred):
    """Fresh noise lies within the abducted noise's range, widened about its mean by ``1 / sqrt(1 - leverage)``
    for an adapted node with parents (``MAX_SAMPLING_LEVERAGE`` at most); a root's and a zero-shot model's are not
    widened."""
    generated = inferred.sample(500, seed=0)
    abducted = inferred.noise(method="decoder").to_numpy()
    fresh_noise = inferred.noise(generated, method="decoder").to_numpy()
    widen = np.ones(abducted.shape[1])
    if inferred.adapted:
        leverage = inferred._runner.adaptation.fitted_leverage.numpy()
        has_parents = inferred.adjacency.any(axis=0)
        widen = np.where(has_parents, 1.0 / np.sqrt(1.0 - np.minimum(leverage, MAX_SAMPLING_LEVERAGE)), 1.0)
        assert bool((widen[has_parents] > 1.0).all())
    mean = abducted.mean(axis=0)
    scale = np.abs(abducted).max(axis=0)
    low, high = mean + (abducted.min(axis=0) - mean) * widen, mean + (abducted.max(axis=0) - mean) * widen
    assert (fresh_noise.min(axis=0) >= low - 1e-9 * scale).all()
    assert (fresh_noise.max(axis=0) <= high + 1e-9 * scale).all()
    # what fresh noise draws from: the abducted noise, its spread times exactly ``widen``, its mean kept, roots'
    # columns bit for bit
    drawn = inferred._sampling_noise_standard()
    context = inferred._context_noise_standard()
    np.testing.assert_allclose(drawn.std(axis=0), context.std(axis=0) * widen, rtol=1e-12)
    np.testing.assert_allclose(drawn.mean(axis=0), context.mean(axis=0), rtol=0, atol=1e-12)
    assert np.array_equal(drawn[:, widen == 1.0], context[:, widen == 1.0])


def test_dataframe_and_array_inputs_agree(scm_and_rows):
    scm, context, query, _ = scm_and_rows
    names = [f"gene_{j}" for j in range(scm.num_nodes)]
    model = CondFiP(tiny_model())
    frame = pd.DataFrame(context, columns=names)
    graph = nx.DiGraph([(names[i], names[j]) for i, j in zip(*np.nonzero(scm.adjacency), strict=True)])
    graph.add_nodes_from(names)
    from_frame = model.infer(frame, graph)
    from_array = model.infer(context, scm.adjacency, columns=names)
    assert from_frame.columns == from_array.columns == names
    pd.testing.assert_frame_equal(from_frame.noise(query), from_array.noise(query))
    pd.testing.assert_frame_equal(from_frame.sample(20, seed=2), from_array.sample(20, seed=2))
    # query columns given in another order are matched by name
    shuffled = pd.DataFrame(query, columns=names)[names[::-1]]
    pd.testing.assert_frame_equal(from_frame.predict(shuffled), from_array.predict(query))


def test_standardization_is_undone_exactly(scm_and_rows):
    """Units do not matter: a positive affine change of every column changes every answer the same way."""
    scm, context, query, _ = scm_and_rows
    scale = np.array([1.0, 1e3, 0.01, 7.0, 2.0, 1e-4])
    shift = np.array([0.0, -5e4, 3.0, 1.0, 1e6, -2.0])
    model = CondFiP(tiny_model())
    base = model.infer(context, scm.adjacency)
    moved = model.infer(context * scale + shift, scm.adjacency)
    # compared in the base units: the standardized inputs agree to float64 rounding, which can still move
    # an input of the float32 network by one float32 step; the generated rows pass through 4 levels
    same_in_float32(moved.noise(query * scale + shift).to_numpy() / scale, base.noise(query), "noise")
    same_in_float32(
        (moved.sample(30, seed=1).to_numpy() - shift) / scale, base.sample(30, seed=1), "samples", passes=4
    )
    same_in_float32(
        (moved.interventional_samples({"x1": 2.0 * scale[1] + shift[1]}, n=30, seed=1).to_numpy() - shift)
        / scale,
        base.interventional_samples({"x1": 2.0}, n=30, seed=1),
        "interventional samples",
        passes=4,
    )
    pd.testing.assert_series_equal(moved.std, base.std * scale)


def test_chunked_and_one_shot_embeddings_agree(scm_and_rows):
    scm, context, query, _ = scm_and_rows
    model = CondFiP(tiny_model())
    one_shot = model.infer(context, scm.adjacency, chunk_size=10_000)
    chunked = model.infer(context, scm.adjacency, chunk_size=32)  # 5 chunks of the 150 rows
    for field in dataclasses.fields(DatasetEmbedding):
        same_in_float32(
            getattr(chunked._runner.embedding, field.name),
            getattr(one_shot._runner.embedding, field.name),
            field.name,
        )
    same_in_float32(chunked.noise(query), one_shot.noise(query), "noise")


def test_infer_batch_equals_one_by_one():
    rng = np.random.default_rng(5)
    datasets = []
    for num_nodes, num_rows in [(4, 60), (7, 90), (5, 33), (7, 50), (3, 120)]:
        scm = scm_gen.sample_scm("in", "rff", num_nodes, rng=rng, graph="er")
        datasets.append((scm.sample(num_rows, rng)[0], scm.adjacency))
    model = CondFiP(tiny_model())
    batched = model.infer_batch(datasets, batch_size=3)
    assert len(batched) == len(datasets)
    for (data, graph), together in zip(datasets, batched, strict=True):
        alone = model.infer(data, graph)
        assert together.columns == alone.columns
        for field in dataclasses.fields(DatasetEmbedding):
            same_in_float32(
                getattr(together._runner.embedding, field.name),
                getattr(alone._runner.embedding, field.name),
                field.name,
            )
        same_in_float32(together.noise(), alone.noise(), "noise")


def test_longest_path_plus_one_iterations_equal_d_iterations():
    # 8 nodes, longest path 0 -> 2 -> 5 -> 7 (3 edges): 4 iterations instead of 8
    edges = [(0, 2), (1, 2), (2, 5), (3, 5), (5, 7), (4, 6), (0, 6), (1, 7)]
    adjacency = np.zeros((8, 8), dtype=np.int8)
    adjacency[tuple(np.array(edges).T)] = 1
    rng = np.random.default_rng(0)
    inferred = CondFiP(tiny_model()).infer(rng.normal(size=(100, 8)), adjacency, zero_shot=True)
    assert inferred.num_iterations == 4
    noise = rng.normal(size=(30, 8))
    runner = inferred._runner
    exact = runner.fixed_point(noise, 8)
    np.testing.assert_allclose(runner.fixed_point(noise, inferred.num_iterations), exact, rtol=0, atol=1e-12)
    # one iteration fewer does not reach the fixed point: the check above can fail
    assert np.abs(runner.fixed_point(noise, 3) - exact).max() > 1e-4
    # the one-sweep generation over the 4 topological levels reaches the same fixed point
    assert [level.tolist() for level in runner.levels] == [[0, 1, 3, 4], [2, 6], [5], [7]]
    same_in_float32(runner.generate(noise), exact, "generated rows", passes=8)
    # and clamped: do(x2 = 0.7, x3 = -1) for every row
    clamp_nodes, clamp_values = np.array([2, 3]), np.tile([0.7, -1.0], (30, 1))
    clamped = runner.fixed_point(noise, 8, clamp_nodes, clamp_values)
    same_in_float32(runner.generate(noise, clamp_nodes, clamp_values), clamped, "clamped rows", passes=8)
    assert np.array_equal(clamped[:, [2, 3]], clamp_values)


def test_outputs_are_frames_with_the_input_columns_and_index(inferred, scm_and_rows):
    scm, _, query, _ = scm_and_rows
    frame = pd.DataFrame(query, columns=inferred.columns, index=pd.RangeIndex(100, 100 + len(query)))
    for result in (
        inferred.noise(frame),
        inferred.predict(frame),
        inferred.counterfactual_samples({"x0": 1.0}, frame),
    ):
        assert list(result.columns) == inferred.columns
        pd.testing.assert_index_equal(result.index, frame.index)
    assert list(inferred.sample(4, seed=0).columns) == ["x0", "x1", "x2", "x3", "x4", "x5"]
    assert inferred.noise().shape == (150, 6)
    assert set(inferred.graph.edges) == {
        (f"x{i}", f"x{j}") for i, j in zip(*np.nonzero(scm.adjacency), strict=True)
    }
    assert list(inferred.to_networkx().nodes) == inferred.columns
    inferred.graph.add_edge("x0", "new")  # a copy: the SCM's graph is unchanged
    assert "new" not in inferred.graph


def test_noise_of_rows_does_not_depend_on_the_other_rows(inferred, scm_and_rows):
    """Rows are independent given the context: a row's noise is the same whichever rows come with it, up to
    the rounding of the float32 network, whose BLAS kernels sum in an order that depends on how many rows a
    call holds. The adapted F_hat runs in float64 (its per-node weights can be large, and would amplify that
    rounding); the encoder's noise it is weighted with is float32."""
    _, _, query, _ = scm_and_rows
    same_in_float32(inferred.noise(query[5:9]), inferred.noise(query)[5:9], "noise of rows 5 to 8")


def test_default_chunks_are_larger_on_cuda():
    assert rows_per_chunk(None, 20) == DEFAULT_TOKENS_PER_CHUNK // 20
    assert rows_per_chunk(None, 20, torch.device("cpu")) == DEFAULT_TOKENS_PER_CHUNK // 20
    assert rows_per_chunk(None, 20, torch.device("cuda:1")) == CUDA_TOKENS_PER_CHUNK // 20
    assert rows_per_chunk(None, 10_000) == 64  # at least 64 rows
    assert rows_per_chunk(300, 20, torch.device("cuda")) == 300


def test_device_auto_is_cpu_without_cuda():
    model = CondFiP(tiny_model(), device="auto")
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        CondFiP(tiny_model(), device="quantum")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("zero_shot", [True, False], ids=["zero-shot", "adapted"])
def test_cuda_matches_cpu(scm_and_rows, zero_shot):
    scm, context, query, _ = scm_and_rows
    on_cpu, on_gpu = (
        CondFiP(tiny_model(), device=device).infer(context, scm.adjacency, zero_shot=zero_shot)
        for device in ("cpu", "cuda")
    )
    assert on_gpu._runner.prepared is not None  # the prepared decoder runs on CUDA too
    np.testing.assert_allclose(
        on_gpu.noise(query).to_numpy(), on_cpu.noise(query).to_numpy(), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(
        on_gpu.counterfactual_samples({"x0": 0.5}, query).to_numpy(),
        on_cpu.counterfactual_samples({"x0": 0.5}, query).to_numpy(),
        rtol=1e-3,
        atol=1e-3,
    )
    pd.testing.assert_frame_equal(
        on_gpu.interventional_samples({"x0": 0.5}, n=20, seed=1),
        on_gpu.interventional_samples({"x0": 0.5}, n=20, seed=1),
    )


# ---------------------------------------------------------------------------------------------- adaptation
def _standardized_error(estimate: np.ndarray, truth: np.ndarray, std: np.ndarray) -> float:
    return float(np.sqrt((((estimate - truth) / std) ** 2).mean()))


@pytest.mark.parametrize("mechanism", ["linear", "rff"])
def test_adapted_default_beats_zero_shot_on_noise_and_generation(mechanism):
    """With the shipped weights: the default (adapted) path estimates the noise of new rows and generates them
    from their true noise more accurately than the zero-shot path, on both training families."""
    rng = np.random.default_rng(5)
    scm = scm_gen.sample_scm("in", mechanism, 10, rng=rng, graph="er")
    context, _ = scm.sample(400, rng)
    query, query_noise = scm.sample(200, rng)
    model = CondFiP.from_pretrained("small", device="cpu")
    std = context.std(axis=0)
    errors = {}
    for zero_shot in (True, False):
        inferred = model.infer(context, scm.adjacency, zero_shot=zero_shot)
        errors[zero_shot] = (
            _standardized_error(inferred.noise(query).to_numpy(), query_noise, std),
            _standardized_error(inferred.generate(query_noise).to_numpy(), query, std),
        )
    assert errors[False][0] < 0.8 * errors[True][0], errors
    assert errors[False][1] < 0.8 * errors[True][1], errors


def test_adapted_linear_scm_matches_least_squares():
    """On a linear SCM with many rows, the adapted F_hat keeps the linear model (the evidence does not insist on
    more) and equals each column's least-squares fit on its parents."""
    rng = np.random.default_rng(11)
    scm = scm_gen.sample_scm("in", "linear", 6, rng=rng, graph="er")
    context, _ = scm.sample(5_000, rng)
    inferred = CondFiP(tiny_model(), device="cpu").infer(context, scm.adjacency)
    assert not inferred.adaptation["full_basis"].any()
    predicted = inferred.predict(context).to_numpy()
    for node in range(6):
        parents = np.flatnonzero(scm.adjacency[:, node])
        design = np.column_stack([np.ones(len(context)), context[:, parents]])
        coefficients, *_ = np.linalg.lstsq(design, context[:, node], rcond=None)
        # float64 normal equations of a well-conditioned design, against lstsq: 1e-6 of the column's scale
        np.testing.assert_allclose(
            predicted[:, node], design @ coefficients, rtol=0, atol=1e-6 * context[:, node].std()
        )


def test_adapted_in_batches_equals_one_by_one(scm_and_rows):
    scm, context, query, _ = scm_and_rows
    api = CondFiP(tiny_model(), device="cpu")
    datasets = [(context, scm.adjacency), (context[:90, :4], scm.adjacency[:4, :4])]
    batched = api.infer_batch(datasets, batch_size=2)
    for (data, graph), scm_batched in zip(datasets, batched, strict=True):
        alone = api.infer(data, graph)
        # the embeddings of a padded batch and of one dataset agree to float32 rounding, and the adaptation
        # refits on features computed from them
        np.testing.assert_allclose(
            scm_batched.noise().to_numpy(), alone.noise().to_numpy(), rtol=1e-4, atol=1e-4
        )


def test_a_node_runs_the_network_only_where_its_groups_earned_their_margin():
    """With the shipped weights on RFF rows (the network's training family; 60 rows, where its prior counts) some
    nodes keep the network's groups: each gained more than the margin over the parents and kernel alone, and the
    other nodes run without the network."""
    rng = np.random.default_rng(1)
    scm = scm_gen.sample_scm("in", "rff", 10, rng=rng, graph="er")
    context, _ = scm.sample(60, rng)
    inferred = CondFiP.from_pretrained("small").infer(context, scm.adjacency)
    table = inferred.adaptation
    reads = inferred._runner.prepared.adaptation[0].reads_decoder.cpu().numpy()
    assert reads.any() and not reads.all()
    assert (table["network_gain"].to_numpy()[reads] > NETWORK_EVIDENCE_MARGIN).all()
    assert table["full_basis"].to_numpy()[reads].all()


def test_adaptation_table_and_repr(scm_and_rows):
    scm, context, _, _ = scm_and_rows
    api = CondFiP(tiny_model(), device="cpu")
    adapted, zero_shot = (api.infer(context, scm.adjacency, zero_shot=flag) for flag in (False, True))
    table = adapted.adaptation
    assert list(table.index) == adapted.columns
    assert (table["noise_scale"] > 0).all() and table["encoder_noise_weight"].between(0, 1).all()
    # the effective parameters: the held-out pass's leverages summed over the fitted rows, at least the constant's
    freedom = table["degrees_of_freedom"].to_numpy()
    mean_leverage = adapted._runner.adaptation.mean_leverage.numpy()
    np.testing.assert_allclose(freedom, mean_leverage * context.shape[0], rtol=1e-9)
    assert (freedom >= 1.0 - 1e-9).all() and (freedom < context.shape[0]).all()
    parents = torch.as_tensor(scm.adjacency.sum(axis=0))
    gain = torch.tensor(table["evidence_gain"].to_numpy())
    odds = shared_log_odds(gain, parents)
    np.testing.assert_array_equal(table["prior_log_odds"].to_numpy(), np.full(len(gain), odds))
    expected = nonlinear_weights(gain, odds, parents)
    np.testing.assert_array_equal(table["nonlinear_weight"].to_numpy(), expected.numpy())
    assert (table["full_basis"] == (table["nonlinear_weight"] > 0)).all()
    # the quadratic model's share of the nonlinear model: a probability, 0 for a linear node
    assert table["quadratic_share"].between(0, 1).all()
    assert (table["quadratic_share"][~table["full_basis"]] == 0).all()
    adaptation, basis = adapted._runner.prepared.adaptation  # the sampling basis clamps what the fit says
    assert torch.equal(basis.clamp_linear, adaptation.clamps_linear.cpu())
    # continued beyond the rows (the edge check): only nonlinear nodes, and what the sampling basis does
    assert table["continued"].dtype == bool and not (table["continued"] & ~table["full_basis"]).any()
    continued = (basis.margins > 0) | (basis.product_margins > 0)  # the kernel or the products continue
    assert np.array_equal(continued.numpy(), table["continued"].to_numpy())
    # the kernel each node's fit chose: its length on the standardized parents, joint or additive
    for column, parents in zip(adapted.columns, scm.adjacency.sum(axis=0), strict=True):
        joint = [factor * math.sqrt(max(1, int(parents))) for factor in LENGTH_SCALES]
        # one parent: an additive kernel is the joint one at its length, reported as joint
        joint += list(ADDITIVE_SCALES) if int(parents) == 1 else []
        allowed = ADDITIVE_SCALES if table.loc[column, "kernel_additive"] else joint
        allowed = [0.0] if table.loc[column, "kernel_step"] else allowed
        assert not (table.loc[column, "kernel_step"] and table.loc[column, "kernel_additive"])
        assert min(abs(table.loc[column, "kernel_length"] - length) for length in allowed) < 1e-12
    assert adapted.adapted and not zero_shot.adapted and zero_shot.adaptation is None
    assert "adapted" in repr(adapted) and "zero_shot" in repr(zero_shot)


def test_too_few_rows_fall_back_to_zero_shot_with_a_warning(scm_and_rows):
    scm, context, _, _ = scm_and_rows
    with pytest.warns(UserWarning, match="too few to adapt"):
        inferred = CondFiP(tiny_model()).infer(context[:5], scm.adjacency)
    assert not inferred.adapted


def test_refit_readout_is_a_deprecated_alias(scm_and_rows):
    scm, context, query, _ = scm_and_rows
    api = CondFiP(tiny_model(), device="cpu")
    with pytest.warns(DeprecationWarning, match="refit_readout is deprecated"):
        old_default = api.infer(context, scm.adjacency, refit_readout=False)
    assert not old_default.adapted
    with pytest.warns(DeprecationWarning):
        assert api.infer(context, scm.adjacency, refit_readout=True).adapted
    with pytest.raises(ValueError, match="contradict"), pytest.warns(DeprecationWarning):
        api.infer(context, scm.adjacency, zero_shot=True, refit_readout=True)


def test_inference_flag_errors(scm_and_rows):
    scm, context, _, _ = scm_and_rows
    with pytest.raises(ValueError, match="zero_shot must be True or False"):
        CondFiP(tiny_model()).infer(context, scm.adjacency, zero_shot="yes")
    half = CondFiP(tiny_model().to(torch.bfloat16), device="cpu")
    with pytest.warns(UserWarning, match="cannot adapt"):
        assert not half.infer(context, scm.adjacency).adapted


def test_infer_shows_its_stages_on_request_and_nothing_by_default_off_a_terminal(
    scm_and_rows, capsys, monkeypatch
):
    """``progress=True`` draws the stages (the embedding, the fit, the edge check) on stderr once the call has
    taken ``PROGRESS_DELAY`` seconds (0 here); the default draws nothing when stderr is not a terminal, and
    neither does ``progress=False``; the SCM is the same either way."""
    from condfip.api import progress as progress_module

    scm, context, query, _ = scm_and_rows
    model = CondFiP(tiny_model())
    monkeypatch.setattr(progress_module, "PROGRESS_DELAY", 0.0)  # the name the bars read
    shown = model.infer(context, scm.adjacency, progress=True)
    drawn = capsys.readouterr().err
    assert "infer" in drawn and "embedding 150 rows of 6 columns" in drawn
    assert "of 6 nodes to 150 rows" in drawn and "checking the edges" in drawn  # the fit of each node group
    for progress in (None, False):
        quiet = model.infer(context, scm.adjacency, progress=progress)
        assert capsys.readouterr().err == ""
        pd.testing.assert_frame_equal(quiet.noise(query), shown.noise(query), check_exact=True)
    with pytest.raises(ValueError, match="progress must be True, False or None"):
        model.infer(context, scm.adjacency, progress="yes")


@pytest.mark.parametrize(("num_rows", "chunk_rows"), [(10, 3), (9, 3), (2, 5), (0, 4)])
def test_progress_slices_cover_every_row_once_in_order_and_draw_nothing_off_a_terminal(
    num_rows, chunk_rows, capsys
):
    slices = progress_slices(num_rows, chunk_rows, "generating", "row")
    covered = [row for part in slices for row in range(num_rows)[part]]
    assert covered == list(range(num_rows))
    assert capsys.readouterr().err == ""  # stderr is no terminal here: no progress bar
