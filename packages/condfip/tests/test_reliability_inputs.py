"""What the API accepts gets a finite, correct answer; what it cannot answer is a ValueError naming the column,
the entry or the estimate: extreme column scales, values beyond the network's range, masked nodes holding
non-finite values, adjacency entries other than 0/1, requests too large for memory, devices this machine lacks."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP, infer_graph
from condfip.api.tables import MAX_MAGNITUDE, MIN_SPREAD, check_context_memory
from condfip.core.dag_rule import dag_from_probabilities
from condfip.core.standardization import STANDARD_LIMIT, Standardization
from condfip.model import CondFiPConfig, CondFiPModel
from condfip.model.fit_size import LANDMARK_GROWTH_BYTES, fit_bytes, kernel_size, kernel_tiers
from condfip.model.parent_basis import MAX_LANDMARKS, NUM_LANDMARKS, ParentBasis, landmark_count
from condfip.model.prepared_decoder import prepare_decoder
from condfip.training.options import EncoderOptions, TrainingOptions

sys.path.insert(0, str(Path(__file__).parent))
from rounding import adapted_round_trip, assert_close, network_operations  # noqa: E402

ROUND_TRIP = adapted_round_trip()  # rounding.adapted_round_trip: the kernel basis' conditioning

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=32
)
EDGES = [("a", "b"), ("b", "d"), ("c", "d")]  # c is no descendant of a
# float32 roundings along TINY's decoder (2 blocks) for one row of 4 nodes
DECODER_OPERATIONS = network_operations(dim=16, mlp_dim=32, rows=1, nodes=4, blocks=2)


def tiny_model(seed: int = 0) -> CondFiPModel:
    """Random weights, every parameter perturbed (the default init zeroes the gates, which would hide leaks)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CondFiPModel(TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def model() -> CondFiP:
    return CondFiP(tiny_model(), device="cpu")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a = rng.normal(size=80)
    b = 2 * a + rng.normal(size=80)
    c = rng.normal(size=80)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": b - c + 0.3 * rng.normal(size=80)})


# ------------------------------------------------------------------------------------------ column scales
@pytest.mark.parametrize(
    ("column", "edit", "found"),
    [
        ("b", lambda x: x * 1e300, "values up to"),
        ("b", lambda x: x * 1e-300, "a standard deviation of"),
        ("c", lambda x: np.r_[1e300, x[1:]], "values up to 1e+300"),  # one value in an ordinary column
        ("a", lambda x: x * 1e251, "values up to"),
    ],
)
def test_columns_outside_the_usable_scale_are_refused_by_name(model, frame, column, edit, found) -> None:
    edited = frame.assign(**{column: edit(frame[column].to_numpy())})
    with pytest.raises(ValueError, match=re.escape(f"data column '{column}' has {found}")) as error:
        model.infer(edited, EDGES)
    assert f"±{MAX_MAGNITUDE:g}" in str(error.value) and f"at least {MIN_SPREAD:g}" in str(error.value)
    with pytest.raises(ValueError, match=re.escape(f"data column '{column}' has {found}")):
        infer_graph(edited, model="graph-small")


@pytest.mark.parametrize("zero_shot", [True, False])
@pytest.mark.parametrize("exponent", [600, -600])  # 2^600 = 4.1e180, 2^-600 = 2.4e-181
def test_rescaling_a_column_by_a_power_of_two_rescales_every_answer_exactly(
    model, frame, zero_shot, exponent
) -> None:
    """Standardization divides out the scale: with a power of two every float operation commutes with it, so
    the answers in the rescaled units are the original answers times the scale, bit for bit."""
    scale = np.ldexp(1.0, exponent)
    base = model.infer(frame, EDGES, zero_shot=zero_shot)
    scaled = model.infer(frame.assign(b=frame["b"] * scale), EDGES, zero_shot=zero_shot)
    factor = np.array([1.0, scale, 1.0, 1.0])
    np.testing.assert_array_equal(
        scaled.sample(50, seed=3).to_numpy(), base.sample(50, seed=3).to_numpy() * factor
    )
    np.testing.assert_array_equal(scaled.noise().to_numpy(), base.noise().to_numpy() * factor)
    do_b = {"b": 2.5 * scale}
    np.testing.assert_array_equal(
        scaled.interventional_samples(do_b, n=40, seed=1).to_numpy(),
        base.interventional_samples({"b": 2.5}, n=40, seed=1).to_numpy() * factor,
    )
    assert scaled.average_causal_effect("d", do_b, {}, n=200, seed=2) == base.average_causal_effect(
        "d", {"b": 2.5}, {}, n=200, seed=2
    )


def test_standardization_equals_numpy_on_ordinary_columns_and_survives_extreme_ones() -> None:
    rng = np.random.default_rng(1)
    ordinary = rng.normal(size=(300, 5)) * rng.uniform(0.01, 100, 5) + rng.uniform(-50, 50, 5)
    fitted = Standardization.fit(ordinary)
    # numpy's own statistics of the sorted columns, bit for bit: the same rows in any order give the same numbers
    np.testing.assert_array_equal(fitted.mean, np.sort(ordinary, axis=0).mean(axis=0))
    np.testing.assert_array_equal(fitted.std, np.sort(ordinary, axis=0).std(axis=0))
    shuffled = Standardization.fit(ordinary[rng.permutation(300)])
    np.testing.assert_array_equal(shuffled.mean, fitted.mean)
    np.testing.assert_array_equal(shuffled.std, fitted.std)
    # and numpy's statistics of the rows as given, to the rounding of sums of 300 terms of at most that magnitude
    bound = 300 * 2**-52 * np.abs(ordinary).max(axis=0)
    assert (np.abs(fitted.mean - ordinary.mean(axis=0)) <= bound).all()
    assert (np.abs(fitted.std - ordinary.std(axis=0)) <= bound).all()
    for scale in (1e300, 1e-300, 1e-310):  # squares overflow, underflow, or the values are subnormal
        extreme = Standardization.fit(ordinary * scale)
        # the same statistics to float64 rounding (a few ulps: the scale is not a power of two)
        np.testing.assert_allclose(extreme.mean / scale, fitted.mean, rtol=1e-12 if scale > 1e-308 else 1e-6)
        np.testing.assert_allclose(extreme.std / scale, fitted.std, rtol=1e-12 if scale > 1e-308 else 1e-6)
    assert Standardization.fit(np.zeros((4, 2))).std.tolist() == [1.0, 1.0]  # the guard of constant columns
    # a column of 0.1s: the rounding of its mean can leave a computed spread of ~1e-17, which is still no spread
    assert Standardization.fit(np.full((7, 1), 0.1)).std.tolist() == [1.0]


def test_a_header_without_rows_is_named_as_such(model) -> None:
    with pytest.raises(ValueError, match=r"data has columns \['a', 'b'\] but no rows"):
        model.infer(pd.read_csv(io.StringIO("a,b\n")), [("a", "b")])


# ---------------------------------------------------------------------------------- values beyond the range
@pytest.mark.parametrize("zero_shot", [True, False])
def test_interventions_beyond_the_range_are_refused_in_user_units(model, frame, zero_shot) -> None:
    scm = model.infer(frame, EDGES, zero_shot=zero_shot)
    mean, std = frame["a"].mean(), frame["a"].std(ddof=0)
    for value in (1e40, -1e300, mean + 1.001 * STANDARD_LIMIT * std):
        with pytest.raises(ValueError, match=r"intervention on column 'a': .* is outside the range") as error:
            scm.interventional_samples({"a": value}, n=5, seed=0)
        low, high = (float(x) for x in str(error.value).split("[")[1].split("]")[0].split(", "))
        np.testing.assert_allclose(
            [low, high], [mean - STANDARD_LIMIT * std, mean + STANDARD_LIMIT * std], rtol=1e-5
        )
    with pytest.raises(ValueError, match="intervention on column 'a'"):
        scm.average_causal_effect("c", {"a": 1e40}, {}, n=10)
    with pytest.raises(ValueError, match="intervention on column 'a'"):
        scm.counterfactual_samples({"a": lambda x: x * 1e40}, frame)


@pytest.mark.parametrize("zero_shot", [True, False])
def test_interventions_at_the_edge_of_the_range_are_finite(model, frame, zero_shot) -> None:
    scm = model.infer(frame, EDGES, zero_shot=zero_shot)
    mean, std = frame["a"].mean(), frame["a"].std(ddof=0)
    for value in (mean + 0.999 * STANDARD_LIMIT * std, mean - 0.999 * STANDARD_LIMIT * std):
        rows = scm.interventional_samples({"a": value}, n=30, seed=0)
        assert np.isfinite(rows.to_numpy()).all()
        counterfactual = scm.counterfactual_samples({"a": value}, frame)
        assert np.isfinite(counterfactual.to_numpy()).all()
        # c does not descend from a: its rows do not move (zero-shot: up to the float32 rounding of the decoder,
        # which evaluates c beside other nodes in each case) and its effect is exactly 0
        factual = scm.counterfactual_samples({}, frame)["c"]
        if zero_shot:
            assert_close(counterfactual["c"], factual, dtype=torch.float32, operations=DECODER_OPERATIONS)
        else:
            np.testing.assert_array_equal(counterfactual["c"], factual)
        assert scm.average_causal_effect("c", {"a": value}, {}, n=100, seed=1) == 0.0
        assert np.isfinite(scm.average_causal_effect("d", {"a": value}, {}, n=100, seed=1))


def test_rows_and_noise_beyond_the_range_are_refused_by_column(model, frame) -> None:
    scm = model.infer(frame, EDGES)
    far = frame.assign(c=1e30)
    for query in (scm.noise, scm.predict, lambda rows: scm.counterfactual_samples({"a": 0.0}, rows)):
        with pytest.raises(ValueError, match=r"data column 'c': 1e\+30 is outside the range"):
            query(far)
    with pytest.raises(ValueError, match=r"noise column 'b': -1e\+20 is outside the range"):
        scm.generate(scm.noise().assign(b=-1e20))


# ------------------------------------------------------------------------------------------ masked nodes
def _chain_and_isolated() -> tuple[torch.Tensor, np.ndarray]:
    """Nodes 0 -> 1, 1 -> 3, 2 -> 3: node 2 reads nothing, node 3 reads 1 and 2; parents [1, d, d]."""
    adjacency = np.zeros((4, 4), dtype=bool)
    adjacency[0, 1] = adjacency[1, 3] = adjacency[2, 3] = True
    return torch.as_tensor(adjacency.T)[None], adjacency


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e30, 3e38])
def test_a_masked_node_never_leaks_into_another(value: float) -> None:
    """Node 0 holds an extreme value; nodes 2 and 3 do not read it, so their outputs equal those with node 0 at
    0, bit for bit, on every path: the prepared decoder (float32, float64, adapted) and the plain decoder."""
    model = tiny_model(3)
    parents, _ = _chain_and_isolated()
    generator = torch.Generator().manual_seed(0)
    embedding = model.embed(torch.randn(1, 40, 4, generator=generator), parents)
    z = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    z_extreme, z_zero = z.clone(), z.clone()
    z_extreme[:, 0], z_zero[:, 0] = value, 0.0
    others = [2, 3]
    for dtype in (torch.float32, torch.float64):
        prepared = prepare_decoder(model.decoder, parents, embedding, dtype=dtype)
        torch.testing.assert_close(
            prepared(z_extreme)[:, others], prepared(z_zero)[:, others], rtol=0, atol=0
        )
    prepared = prepare_decoder(model.decoder, parents, embedding, dtype=torch.float64)
    prepared.adapt(torch.randn(40, 4, generator=generator, dtype=torch.float64))
    adapted = prepared(z_extreme)[:, others]
    assert torch.isfinite(adapted).all()
    torch.testing.assert_close(adapted, prepared(z_zero)[:, others], rtol=0, atol=0)
    with torch.no_grad():
        plain = model.decoder(z_extreme.float()[None], parents, embedding)[0]
        reference = model.decoder(z_zero.float()[None], parents, embedding)[0]
    torch.testing.assert_close(plain[:, others], reference[:, others], rtol=0, atol=0)
    if not np.isfinite(value):
        assert torch.isnan(plain[:, 1]).all()  # the child reads it: NaN, never a made-up number


def test_the_adapted_basis_pads_with_zeros_whatever_node_0_holds() -> None:
    parents, _ = _chain_and_isolated()
    basis = ParentBasis(
        parents, torch.randn(20, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    z = torch.zeros(3, 4, dtype=torch.float64)
    z[:, 0] = float("inf")
    features = basis(z)  # [m, d, p + sM]
    assert torch.isfinite(features[:, [0, 2, 3]]).all()  # node 0, 2 and 3 do not read node 0


@pytest.mark.parametrize("rows", [12, 300])  # fewer rows than landmarks, and more
def test_discrete_parents_adapt_to_finite_exact_answers(model, rows) -> None:
    """Two binary parents give their child only four distinct landmark values, repeated: the adapted SCM stays
    finite, and its abducted noise generates the rows back to float64 rounding."""
    rng = np.random.default_rng(1)
    first = rng.integers(0, 2, size=rows).astype(float)
    second = rng.integers(0, 2, size=rows).astype(float)
    child = np.where(first > 0, 1.5, -0.5) * (1 + second) + 0.2 * rng.normal(size=rows)
    grandchild = np.tanh(child) + 0.2 * rng.normal(size=rows)
    table = pd.DataFrame({"first": first, "second": second, "child": child, "grandchild": grandchild})
    graph = nx.DiGraph([("first", "child"), ("second", "child"), ("child", "grandchild")])
    scm = model.infer(table, graph)
    assert scm.adapted
    noise = scm.noise(method="decoder")
    assert np.isfinite(noise.to_numpy()).all() and np.isfinite(scm.noise().to_numpy()).all()
    np.testing.assert_allclose(
        scm.generate(noise).to_numpy(), table.to_numpy(), rtol=ROUND_TRIP, atol=ROUND_TRIP
    )
    assert np.isfinite(scm.interventional_samples({"first": 1.0}, n=50, seed=0).to_numpy()).all()


# ------------------------------------------------------------------------------------------- adjacencies
@pytest.mark.parametrize("entry", [0.5, -1, 2, np.nan, np.inf])
def test_adjacency_entries_other_than_0_and_1_are_refused_by_name(model, frame, entry) -> None:
    adjacency = np.zeros((4, 4))
    adjacency[0, 1] = 1
    adjacency[2, 3] = entry
    with pytest.raises(ValueError, match=r"adjacency entry \['c', 'd'\] \(row 2, column 3\) is"):
        model.infer(frame, adjacency)
    labelled = pd.DataFrame(adjacency, index=frame.columns, columns=frame.columns)
    with pytest.raises(ValueError, match=r"entry \['c', 'd'\]"):
        model.infer(frame, labelled)
    with pytest.raises(ValueError, match=r"required adjacency entry \['c', 'd'\]"):
        infer_graph(frame, model="graph-small", required=adjacency)
    with pytest.raises(ValueError, match="forbidden must hold only 0 and 1"):
        dag_from_probabilities(np.full((4, 4), 0.3), forbidden=adjacency)


def test_boolean_and_float_0_1_adjacencies_are_the_same_graph(model, frame) -> None:
    adjacency = np.zeros((4, 4), dtype=bool)
    adjacency[0, 1] = adjacency[1, 3] = adjacency[2, 3] = True
    for graph in (adjacency, adjacency.astype(float), adjacency.astype(np.int64).tolist()):
        np.testing.assert_array_equal(model.infer(frame, graph, zero_shot=True).adjacency, adjacency)


def test_dag_rule_messages_name_the_columns() -> None:
    names = ["age", "dose", "risk"]
    both = np.zeros((3, 3), dtype=int)
    both[2, 0] = 1
    with pytest.raises(ValueError, match="edge 'risk' -> 'age' is both required and forbidden"):
        dag_from_probabilities(np.zeros((3, 3)), required=both, forbidden=both, names=names)
    cycle = np.zeros((3, 3), dtype=int)
    cycle[0, 1] = cycle[1, 0] = 1
    with pytest.raises(ValueError, match="cycle through 'dose' -> 'age'"):
        dag_from_probabilities(np.zeros((3, 3)), required=cycle, names=names)


# -------------------------------------------------------------------------------------------- sizes, devices
def test_absurd_sample_counts_are_refused_with_the_estimate(model, frame) -> None:
    scm = model.infer(frame, EDGES, zero_shot=True)
    with pytest.raises(
        ValueError, match=r"drawing n=100,000,000,000 rows of 4 columns needs about [\d.]+ TiB"
    ):
        scm.sample(10**11)
    with pytest.raises(ValueError, match="needs about"):
        scm.interventional_samples({"a": 1.0}, n=10**11)
    with pytest.raises(ValueError, match="needs about"):
        scm.average_causal_effect("d", {"a": 1.0}, {}, n=10**11)
    with pytest.raises(ValueError, match=r"inferring from 1,000,000,000,000 rows of 20 columns needs about"):
        check_context_memory(10**12, 20)


def test_an_adaptation_that_cannot_fit_in_memory_is_refused_before_it_starts(
    model, frame, monkeypatch
) -> None:
    """The adaptation's moments grow with the columns: beyond the machine's memory infer refuses, naming the
    estimate and the way out, before any of it is allocated."""
    # 80 rows: b and d on 80 landmarks, the roots a and c apart on one
    counts = torch.tensor([0, 1, 0, 2])
    assert [(n.tolist(), size) for n, size in kernel_tiers(len(frame), counts)] == [([1, 3], 80), ([0, 2], 1)]
    needed = fit_bytes(2, 2, num_kernel=kernel_size(len(frame), 2, 2)) + fit_bytes(2, 0, num_kernel=1)
    monkeypatch.setattr("condfip.io.memory.physical_memory", lambda: needed - 1)
    with pytest.raises(
        ValueError, match=r"adapting to the rows of 4 columns needs about [\d.]+ MiB .* zero_shot=True"
    ):
        model.infer(frame, EDGES)
    model.infer(frame, EDGES, zero_shot=True)  # the zero-shot path needs none of it
    monkeypatch.setattr("condfip.io.memory.physical_memory", lambda: needed)
    assert model.infer(frame, EDGES).adapted


def test_a_fit_on_more_rows_gets_more_landmarks_within_the_memory_budget(model) -> None:
    """Beyond LANDMARK_ROWS rows the kernel basis grows with the rows; with many columns it shrinks back toward
    NUM_LANDMARKS so that the fit's memory estimate stays under LANDMARK_GROWTH_BYTES."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=1600)
    table = pd.DataFrame({"a": a, "b": np.sin(2 * a) + 0.3 * rng.normal(size=1600)})
    for rows, expected in ((400, NUM_LANDMARKS), (1600, landmark_count(1600))):
        scm = model.infer(table.iloc[:rows], [("a", "b")])
        assert scm._runner.prepared.adaptation[1].num_kernel == expected
    assert landmark_count(1600) == 2 * NUM_LANDMARKS
    assert kernel_size(1600, 20, 3) == landmark_count(1600)  # small fits: memory is no limit
    many = kernel_size(10**5, 150, 4)
    assert NUM_LANDMARKS <= many < MAX_LANDMARKS
    assert fit_bytes(150, 4, num_kernel=many) <= LANDMARK_GROWTH_BYTES
    assert fit_bytes(150, 4, num_kernel=many + 8) > LANDMARK_GROWTH_BYTES
    assert kernel_size(10**5, 5000, 4) == NUM_LANDMARKS  # never fewer than a fit on 400 rows would use


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_value_error(frame, tmp_path) -> None:
    message = r"device 'cuda' is not available here \(a CPU-only build of torch\)|no CUDA device is visible"
    with pytest.raises(ValueError, match=message):
        CondFiP(tiny_model(), device="cuda")
    with pytest.raises(ValueError, match=message):
        CondFiP.from_pretrained("small", device="cuda")
    with pytest.raises(ValueError, match="not available here"):
        infer_graph(frame, model="graph-small", device="cuda:0")
    options = TrainingOptions(stage=EncoderOptions(TINY), out=tmp_path / "run", steps=1, device="cuda")
    with pytest.raises(ValueError, match=message):
        options.validate()
    assert list(tmp_path.iterdir()) == []


def test_unknown_devices_are_value_errors() -> None:
    for device in ("tpu", "gpu", "cuda:x", 3.5):
        with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
            CondFiP(tiny_model(), device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_index_beyond_the_devices_is_a_value_error() -> None:
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match=f"does not exist: this machine has {count} CUDA device"):
        CondFiP(tiny_model(), device=f"cuda:{count}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_masked_node_never_leaks_on_cuda(frame) -> None:
    """The plain decoder on CUDA (the fused DAG-attention kernels) and the API at the edge of the range."""
    model = tiny_model(3).cuda()
    parents, _ = _chain_and_isolated()
    parents = parents.cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    embedding = model.embed(torch.randn(1, 40, 4, generator=generator, device="cuda"), parents)
    z = torch.randn(1, 6, 4, generator=generator, device="cuda")
    z_extreme, z_zero = z.clone(), z.clone()
    z_extreme[..., 0], z_zero[..., 0] = float("inf"), 0.0
    with torch.no_grad():
        plain = model.decoder(z_extreme, parents, embedding)[0]
        reference = model.decoder(z_zero, parents, embedding)[0]
    assert torch.isfinite(plain[:, [2, 3]]).all()
    assert_close(plain[:, [2, 3]], reference[:, [2, 3]], dtype=torch.float32, operations=DECODER_OPERATIONS)
    scm = CondFiP(tiny_model(), device="cuda").infer(frame, EDGES)
    edge = float(scm.mean["a"] + 0.999 * STANDARD_LIMIT * scm.std["a"])
    assert np.isfinite(scm.interventional_samples({"a": edge}, n=50, seed=0).to_numpy()).all()
    assert scm.average_causal_effect("c", {"a": edge}, {}, n=100, seed=0) == 0.0
