"""The two abductions of InferredSCM.noise: the encoder's amortized one and the decoder's invertible one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.api.inferred_scm import (
    ENCODER_ERROR_FLOOR,
    LINEAR_ENCODER_ERROR_FLOOR,
    LINEAR_FLOOR_ROWS,
    linear_encoder_error_floor,
    shrunk_misfit,
)
from condfip.model import CondFiPConfig, CondFiPModel
from condfip.model import adaptation as adaptation_module
from scm_gen import make_benchmark_dataset

sys.path.insert(0, str(Path(__file__).parent))
from rounding import assert_close, network_operations  # noqa: E402

TINY = CondFiPConfig(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    model = CondFiPModel(TINY).eval()
    data = make_benchmark_dataset(
        "in", "linear", 5, num_context=40, num_query=10, num_interventional=1, seed=2
    )
    names = [f"x{i}" for i in range(5)]
    scm = CondFiP(model, device="cpu").infer(pd.DataFrame(data.context_data, columns=names), data.adjacency)
    return model, scm, data, names


def test_encoder_noise_is_the_models_prediction_in_user_units(fitted) -> None:
    model, scm, data, names = fitted
    mean, std = scm.mean.to_numpy(), scm.std.to_numpy()
    # the adapted path's encoder attends to the context rows in their canonical order (``scm.row_order``)
    context = torch.tensor((data.context_data[scm.row_order] - mean) / std, dtype=torch.float32)[None]
    query = torch.tensor((data.query_data - mean) / std, dtype=torch.float32)[None]
    parents = torch.from_numpy(data.adjacency.T != 0)[None]
    with torch.no_grad():
        expected = model.predict_noise(query, parents, context=context)[0].double().numpy() * std
    got = scm.noise(pd.DataFrame(data.query_data, columns=names), method="encoder").to_numpy()
    # the same encoder pass on inputs standardized in float64 either way, then cast to float32 (one step)
    operations = network_operations(dim=16, mlp_dim=32, rows=16, nodes=data.num_nodes, blocks=2 + 1)
    assert_close(got / std, expected / std, dtype=torch.float32, operations=operations, what="encoder noise")


def test_decoder_noise_is_inverted_by_generate(fitted) -> None:
    _, scm, data, names = fitted
    query = pd.DataFrame(data.query_data, columns=names)
    noise = scm.noise(query, method="decoder")
    np.testing.assert_allclose(scm.generate(noise).to_numpy(), data.query_data, atol=1e-9)


def test_default_noise_weighs_encoder_and_adapted_abduction(fitted) -> None:
    _, scm, data, names = fitted
    query = pd.DataFrame(data.query_data, columns=names)
    weight = scm.adaptation["encoder_noise_weight"].to_numpy()  # [d]
    expected = weight * scm.noise(query, method="encoder") + (1 - weight) * scm.noise(query, method="decoder")
    # the same float64 arithmetic, in user units scaled per column
    pd.testing.assert_frame_equal(scm.noise(query), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "mechanism", ["linear", "rff"]
)  # rff: three nodes keep the nonlinear basis, with misfit
def test_encoder_weights_are_the_inverse_variance_weights_of_the_estimated_errors(fitted, mechanism) -> None:
    """Per node: adapted error = posterior variance (noise variance x mean leverage), plus the capped
    leave-one-out error beyond noise and posterior variance, shrunk by its standard error, for a node that kept
    the nonlinear basis;
    encoder error = the rest of the two abductions' mean squared disagreement on the context, at least its floor
    times the adapted error; weight = adapted / (adapted + encoder)."""
    model, scm, data, names = fitted
    if mechanism != "linear":
        data = make_benchmark_dataset(
            "in", mechanism, 5, num_context=40, num_query=10, num_interventional=1, seed=2
        )
        scm = CondFiP(model, device="cpu").infer(
            pd.DataFrame(data.context_data, columns=names), data.adjacency
        )
    adaptation = scm._runner.adaptation
    assert bool(adaptation.full_basis.any()) == (mechanism == "rff")
    context = pd.DataFrame(data.context_data, columns=names)
    std = scm.std.to_numpy()
    disagreement = (
        ((scm.noise(context, method="encoder") - scm.noise(context, method="decoder")).to_numpy() / std) ** 2
    ).mean(axis=0)  # [d]
    variance = adaptation.noise_scale.numpy() ** 2
    posterior = variance * adaptation.mean_leverage.numpy()
    misfit = adaptation.capped_held_out_errors.numpy() - variance - posterior
    nonlinear = adaptation.full_basis.numpy()
    shrunk = shrunk_misfit(misfit, adaptation.capped_held_out_standard_errors.numpy())
    adapted = np.where(nonlinear, posterior + shrunk, posterior)
    floor = np.where(nonlinear, ENCODER_ERROR_FLOOR, linear_encoder_error_floor(len(context)))
    encoder = np.maximum(disagreement - adapted, floor * adapted)
    expected = adapted / (adapted + encoder)
    # float64 throughout; the disagreement goes through user units and back (a few roundings)
    np.testing.assert_allclose(scm.adaptation["encoder_noise_weight"].to_numpy(), expected, rtol=1e-9)
    assert (expected > 0).all() and (expected <= 1 / (1 + floor) + 1e-12).all()


def test_the_linear_floor_grows_with_the_rows_beyond_its_threshold() -> None:
    """The linear nodes' floor is LINEAR_ENCODER_ERROR_FLOOR up to LINEAR_FLOOR_ROWS rows, then proportional to
    the rows (a linear fit's error falls as 1 / rows)."""
    assert linear_encoder_error_floor(2) == LINEAR_ENCODER_ERROR_FLOOR
    assert linear_encoder_error_floor(LINEAR_FLOOR_ROWS) == LINEAR_ENCODER_ERROR_FLOOR
    assert linear_encoder_error_floor(4 * LINEAR_FLOOR_ROWS) == 4 * LINEAR_ENCODER_ERROR_FLOOR


def test_a_linear_node_with_many_rows_weighs_the_encoder_at_most_by_its_grown_floor() -> None:
    """On 400 rows of a linear SCM every linear node's encoder weight (roots too) is at most 1 / (1 + the floor)
    (12 at 400 rows), below the 1 / (1 + 3) it would be allowed with fewer rows."""
    data = make_benchmark_dataset(
        "in", "linear", 5, num_context=400, num_query=10, num_interventional=1, seed=4
    )
    scm = CondFiP.from_pretrained("small").infer(data.context_data, data.adjacency)
    adaptation = scm._runner.adaptation
    linear = ~adaptation.full_basis.numpy()
    assert linear.any()
    bound = 1 / (1 + linear_encoder_error_floor(400))
    assert bound < 1 / (1 + LINEAR_ENCODER_ERROR_FLOOR)
    assert (scm.adaptation["encoder_noise_weight"].to_numpy()[linear] <= bound + 1e-12).all()


def test_shrunk_misfit() -> None:
    """misfit * max(0, 1 - se^2 / misfit^2): whole without error, half at se^2 = misfit^2 / 2, 0 within one
    standard error and for a negative misfit."""
    misfit = np.array([0.04, 0.04, 0.04, 0.04, -0.01, 0.0])
    standard_error = np.array([0.0, np.sqrt(0.0008), 0.04, 0.05, 0.001, 0.0])
    expected = np.array([0.04, 0.02, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(shrunk_misfit(misfit, standard_error), expected, rtol=1e-12, atol=1e-15)


def test_unknown_noise_method(fitted) -> None:
    _, scm, _, _ = fitted
    with pytest.raises(ValueError, match="method must be 'best', 'encoder' or 'decoder'"):
        scm.noise(method="exact")


def test_the_leave_one_out_statistics_wait_for_their_first_reader(monkeypatch) -> None:
    """The fit's leave-one-out pass runs when noise() (its encoder weighting) or the adaptation table first
    reads it, not in infer: sampling, interventions and effects never run it. Deferred or not, the statistics
    and the noise are the same, bit for bit, also through a merge of node groups (roots apart) and a selection."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=120), rng.normal(size=120)
    c = np.sin(a) + 0.5 * b + 0.2 * rng.normal(size=120)
    table = pd.DataFrame({"a": a, "b": b, "c": c, "d": np.tanh(c) + 0.2 * rng.normal(size=120)})
    edges = [("a", "c"), ("b", "c"), ("c", "d")]
    model = CondFiP.from_pretrained("small")
    scm = model.infer(table, edges)
    held_out = scm._runner.adaptation.held_out
    scm.sample(50, seed=0)
    scm.interventional_samples({"a": 1.0}, 50, seed=0)
    scm.average_causal_effect("d", {"a": 1.0}, {"a": 0.0}, n=1000, seed=0)
    scm.counterfactual_samples({"a": 1.0}, table.iloc[:5])
    assert not held_out.computed
    noise = scm.noise(table).to_numpy()
    assert held_out.computed
    deferred = scm.adaptation

    monkeypatch.setattr(adaptation_module, "DEFERRED_HELD_OUT_BYTES", 0)  # every pass runs in the fit
    eager = model.infer(table, edges)
    assert eager._runner.adaptation.held_out.computed
    np.testing.assert_array_equal(eager.noise(table).to_numpy(), noise)
    pd.testing.assert_frame_equal(eager.adaptation, deferred, check_exact=True)
    fit = scm._runner.adaptation
    nodes = torch.tensor([3, 0])
    selected = fit.select(nodes)
    for name in (
        "mean_leverage",
        "held_out_errors",
        "capped_held_out_errors",
        "capped_held_out_standard_errors",
    ):
        assert torch.equal(getattr(selected, name), getattr(fit, name)[nodes])
        assert torch.equal(getattr(fit, name), getattr(eager._runner.adaptation, name))
    assert float(fit.held_out_errors[2]) > 0 and float(fit.mean_leverage[2]) > 0


def test_the_encoder_runs_once_on_the_context_for_its_noise_and_its_weight(fitted) -> None:
    """noise() of the context reads the encoder's noise of the context rows twice (its weight's disagreement and
    the blend): one encoder pass, kept; the result is noise() of the same rows given as data, bit for bit."""
    model, _, data, names = fitted
    scm = CondFiP(model, device="cpu").infer(pd.DataFrame(data.context_data, columns=names), data.adjacency)
    calls: list[int] = []
    encoder_noise = scm._encoder.noise

    def counted(rows: np.ndarray) -> np.ndarray:
        calls.append(rows.shape[0])
        return encoder_noise(rows)

    scm._encoder.noise = counted
    best, encoder = scm.noise(), scm.noise(method="encoder")
    assert calls == [data.context_data.shape[0]]
    rows = pd.DataFrame(data.context_data, columns=names)
    pd.testing.assert_frame_equal(best, scm.noise(rows), check_exact=True)
    pd.testing.assert_frame_equal(encoder, scm.noise(rows, method="encoder"), check_exact=True)
