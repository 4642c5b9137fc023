"""The per-node ridge readout (``condfip.model.readout``): exact fits, leave-one-out errors, chunking, shrinkage."""

from __future__ import annotations

import pytest
import torch

from condfip.model.readout import SOLVERS, fit_readout, fit_readout_with_penalty


def chunked(features: torch.Tensor, targets: torch.Tensor, size: int):
    """A ``chunks`` callable over rows of features [n, d, f] and targets [n, d]."""

    def chunks():
        for start in range(0, features.shape[0], size):
            yield features[start : start + size], targets[start : start + size]

    return chunks


@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_an_exact_linear_readout(generator: torch.Generator, solver: str) -> None:
    features = torch.randn(300, 3, 5, generator=generator, dtype=torch.float64)
    weights = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    bias = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    targets = (features * weights).sum(-1) + bias
    readout = fit_readout(chunked(features, targets, 64), torch.zeros(3, 5), torch.zeros(3), solver=solver)
    assert torch.all(readout.penalty == 1e-6)  # no noise: the smallest penalty predicts held-out rows best
    torch.testing.assert_close(readout.weights, weights, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(readout.bias, bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
def test_held_out_errors_equal_refitting_without_each_row(generator: torch.Generator, solver: str) -> None:
    n, d, f = 12, 2, 3
    features = torch.randn(n, d, f, generator=generator, dtype=torch.float64)
    targets = torch.randn(n, d, generator=generator, dtype=torch.float64)
    prior = torch.randn(d, f, generator=generator, dtype=torch.float64)
    prior_bias = torch.randn(d, generator=generator, dtype=torch.float64)
    grid = (0.1, 2.0)
    readout = fit_readout(chunked(features, targets, 5), prior, prior_bias, grid, solver=solver)
    for g, penalty in enumerate(grid):
        for node in range(d):
            # ridge on (features, 1) toward (prior, prior_bias), refitted without each row in turn
            x = torch.cat([features[:, node], torch.ones(n, 1, dtype=torch.float64)], dim=1)
            centre = torch.cat([prior[node], prior_bias[node : node + 1]])
            squared = []
            for left_out in range(n):
                keep = torch.arange(n) != left_out
                w = torch.linalg.solve(
                    x[keep].T @ x[keep] + penalty * torch.eye(f + 1, dtype=torch.float64),
                    x[keep].T @ targets[keep, node] + penalty * centre,
                )
                squared.append((targets[left_out, node] - x[left_out] @ w) ** 2)
            expected = torch.stack(squared).mean()
            torch.testing.assert_close(readout.held_out_errors[g, node], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
def test_chunk_size_does_not_matter(generator: torch.Generator, solver: str) -> None:
    features = torch.randn(50, 4, 6, generator=generator)
    targets = torch.randn(50, 4, generator=generator)
    prior, prior_bias = torch.randn(4, 6, generator=generator), torch.randn(4, generator=generator)
    one, many = (
        fit_readout(chunked(features, targets, size), prior, prior_bias, solver=solver) for size in (50, 7)
    )
    torch.testing.assert_close(one.weights, many.weights, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(one.held_out_errors, many.held_out_errors, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
def test_few_noisy_rows_keep_a_good_prior(generator: torch.Generator, solver: str) -> None:
    """Targets are the prior's prediction plus noise, with more features than rows: moving away from the prior
    only fits the noise, so the largest penalty wins and the readout stays at the prior."""
    features = torch.randn(10, 2, 30, generator=generator, dtype=torch.float64)
    prior = torch.randn(2, 30, generator=generator, dtype=torch.float64)
    prior_bias = torch.tensor([0.3, -0.2], dtype=torch.float64)
    noise = 0.1 * torch.randn(10, 2, generator=generator, dtype=torch.float64)
    targets = (features * prior).sum(-1) + prior_bias + noise
    readout = fit_readout(chunked(features, targets, 10), prior, prior_bias, solver=solver)
    assert torch.all(readout.penalty == 1e4)
    assert (readout.weights - prior).norm() < 0.01 * prior.norm()
    torch.testing.assert_close(readout.bias, prior_bias, rtol=0, atol=0.01)
    assert torch.isinf(readout.held_out_errors[0]).all()  # 1e-6 interpolates 10 rows: undefined, never chosen


@pytest.mark.parametrize("solver", SOLVERS)
def test_features_that_never_vary_move_only_along_themselves(generator: torch.Generator, solver: str) -> None:
    """A root's features are the same in every row: the fit can only move the prediction to the targets' mean,
    along the one direction the rows span; no weight grows along directions without variation."""
    features = torch.randn(1, 2, 4, generator=generator, dtype=torch.float64).expand(30, -1, -1)
    targets = torch.randn(30, 2, generator=generator, dtype=torch.float64)
    prior, prior_bias = torch.randn(2, 4, generator=generator, dtype=torch.float64), torch.zeros(2)
    unpenalized = fit_readout(chunked(features, targets, 7), prior, prior_bias, grid=(1e-6,), solver=solver)
    prediction = (features[0] * unpenalized.weights).sum(-1) + unpenalized.bias
    torch.testing.assert_close(prediction, targets.mean(0), rtol=0, atol=1e-6)
    for readout in (
        unpenalized,
        fit_readout(chunked(features, targets, 7), prior, prior_bias, solver=solver),
    ):
        shift = (
            readout.weights - prior
        )  # [2, 4]: a multiple of the constant features, the bias the same multiple
        torch.testing.assert_close(shift, readout.bias[:, None] * features[0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_too_few_rows(generator: torch.Generator, solver: str) -> None:
    features = torch.randn(1, 2, 3, generator=generator)
    with pytest.raises(ValueError, match="at least 2 rows, got 1"):
        fit_readout(chunked(features, torch.zeros(1, 2), 1), torch.zeros(2, 3), torch.zeros(2), solver=solver)
    with pytest.raises(ValueError, match="at least 2 rows, got 0"):
        fit_readout(
            chunked(features[:0], torch.zeros(0, 2), 1), torch.zeros(2, 3), torch.zeros(2), solver=solver
        )


def test_the_batched_fixed_penalty_fit_equals_the_grid_fit_and_is_differentiable(
    generator: torch.Generator,
) -> None:
    features = torch.randn(2, 40, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(2, 40, 3, generator=generator, dtype=torch.float64)
    prior, prior_bias = torch.randn(4, generator=generator, dtype=torch.float64), torch.tensor(0.3)
    weights, bias = fit_readout_with_penalty(features, targets, prior, prior_bias, 0.5)
    assert weights.shape == (2, 3, 4) and bias.shape == (2, 3)
    for b in range(2):
        one = fit_readout(
            chunked(features[b].detach(), targets[b], 16),
            prior.expand(3, -1),
            prior_bias.expand(3),
            grid=(0.5,),
        )
        torch.testing.assert_close(weights[b].detach(), one.weights, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(bias[b].detach(), one.bias, rtol=1e-9, atol=1e-9)
    (weights.sum() + bias.sum()).backward()
    assert features.grad is not None and torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


@pytest.mark.parametrize("rows", [9, 30, 31, 80])  # fewer rows than features + 1, as many, more
def test_the_primal_and_dual_solvers_give_the_same_readout(generator: torch.Generator, rows: int) -> None:
    features = torch.randn(rows, 3, 30, generator=generator, dtype=torch.float64)
    features[:, 0] = features[:1, 0]  # a root: the same features in every row
    targets = features[..., :4].sum(-1) ** 2 + torch.randn(rows, 3, generator=generator, dtype=torch.float64)
    prior, prior_bias = torch.randn(3, 30, generator=generator, dtype=torch.float64), torch.randn(3)
    fits = {
        solver: fit_readout(chunked(features, targets, 8), prior, prior_bias, solver=solver)
        for solver in SOLVERS
    }
    for solver in ("dual", "auto"):
        torch.testing.assert_close(
            fits[solver].held_out_errors, fits["primal"].held_out_errors, rtol=1e-7, atol=0
        )
        torch.testing.assert_close(fits[solver].penalty, fits["primal"].penalty, rtol=0, atol=0)
        torch.testing.assert_close(fits[solver].weights, fits["primal"].weights, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(fits[solver].bias, fits["primal"].bias, rtol=1e-7, atol=1e-9)


def test_an_unknown_solver(generator: torch.Generator) -> None:
    features = torch.randn(5, 2, 3, generator=generator)
    with pytest.raises(ValueError, match="solver must be one of .* got 'qr'"):
        fit_readout(chunked(features, torch.zeros(5, 2), 5), torch.zeros(2, 3), torch.zeros(2), solver="qr")
