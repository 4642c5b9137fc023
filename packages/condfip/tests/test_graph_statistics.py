"""The pairwise statistics of the graph model against explicit regressions, and their invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from condfip.graph.statistics import LOG_SCALE, NUM_PAIR_FEATURES, node_basis, pair_statistics


def correlated_table(generator: torch.Generator, rows: int = 300, nodes: int = 5) -> torch.Tensor:
    """[1, rows, nodes] float64 with dependence between columns, some of it nonlinear."""
    x = torch.randn(rows, nodes, generator=generator, dtype=torch.float64)
    x[:, 1] += 0.8 * x[:, 0]
    x[:, 2] += torch.sin(2 * x[:, 1]) + 0.3 * x[:, 0] ** 2
    x[:, 4] += 0.5 * x[:, 2] - 0.4 * x[:, 3]
    return ((x - x.mean(0)) / x.std(0))[None]


def least_squares_residual(target: np.ndarray, regressors: np.ndarray) -> float:
    """Residual variance of ``target`` (centred) on ``regressors`` plus an intercept, as a share of its variance."""
    design = np.column_stack([np.ones(len(target)), regressors])
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coefficients
    return float(residual.var() / target.var())


def test_features_equal_explicit_regressions(generator: torch.Generator) -> None:
    data = correlated_table(generator)
    features = pair_statistics(data)[0].double().numpy()  # [d, d, F]
    x = data[0].numpy()
    basis = node_basis(data[0]).numpy()  # [n, d, k]
    d = x.shape[1]
    assert features.shape == (d, d, NUM_PAIR_FEATURES)
    for j in range(d):
        others = [i for i in range(d) if i != j]
        nonlinear_residual = least_squares_residual(x[:, j], basis[:, others].reshape(len(x), -1))
        linear_residual = least_squares_residual(x[:, j], x[:, others])
        for i in others:
            assert features[i, j, 0] == pytest.approx(np.corrcoef(x[:, i], x[:, j])[0, 1], abs=1e-5)
            rest = [k for k in others if k != i]
            # partial correlation: correlation of the residuals of i and j on every other node
            design = np.column_stack([np.ones(len(x)), x[:, rest]])
            residual_i = x[:, i] - design @ np.linalg.lstsq(design, x[:, i], rcond=None)[0]
            residual_j = x[:, j] - design @ np.linalg.lstsq(design, x[:, j], rcond=None)[0]
            assert features[i, j, 2] == pytest.approx(np.corrcoef(residual_i, residual_j)[0, 1], abs=1e-4)
            assert features[i, j, 3] == pytest.approx(abs(features[i, j, 2]), abs=1e-7)
            dropped = least_squares_residual(x[:, j], basis[:, rest].reshape(len(x), -1))
            evidence = np.log1p((dropped - nonlinear_residual) / nonlinear_residual)
            assert features[i, j, 4] == pytest.approx(LOG_SCALE * evidence, rel=1e-2, abs=1e-3)
            assert features[j, i, 5] == pytest.approx(features[i, j, 4], abs=1e-7)
            assert features[i, j, 7] == pytest.approx(-LOG_SCALE * np.log(linear_residual), rel=1e-3)
            assert features[i, j, 9] == pytest.approx(-LOG_SCALE * np.log(nonlinear_residual), rel=1e-2)
    assert (features[np.arange(d), np.arange(d)] == 0).all()


def test_nonlinear_evidence_sees_what_correlation_misses(generator: torch.Generator) -> None:
    x = torch.randn(2000, 2, generator=generator, dtype=torch.float64)
    x[:, 1] = x[:, 0] ** 2 + 0.3 * x[:, 1]  # uncorrelated but strongly dependent
    features = pair_statistics(((x - x.mean(0)) / x.std(0))[None])[0]
    assert abs(features[0, 1, 0]) < 0.1
    assert features[0, 1, 4] > LOG_SCALE * 1.0  # dropping x0 multiplies the residual by more than e


def test_chunks_permutations_and_padding_change_nothing(generator: torch.Generator) -> None:
    data = correlated_table(generator).float()
    features = pair_statistics(data)
    torch.testing.assert_close(pair_statistics(data, chunk_size=37), features, rtol=1e-5, atol=1e-5)
    permutation = torch.randperm(5, generator=generator)
    permuted = pair_statistics(data[:, :, permutation])
    torch.testing.assert_close(permuted, features[:, permutation][:, :, permutation], rtol=1e-4, atol=1e-4)
    padded = torch.full((1, 320, 7), 3.0)
    padded[:, :300, :5] = data
    sample_mask = torch.arange(320)[None] < 300
    node_mask = torch.arange(7)[None] < 5
    padded_features = pair_statistics(padded, sample_mask=sample_mask, node_mask=node_mask, chunk_size=64)
    torch.testing.assert_close(padded_features[:, :5, :5], features, rtol=1e-4, atol=1e-4)
    assert (padded_features[:, 5:] == 0).all() and (padded_features[:, :, 5:] == 0).all()
    assert torch.isfinite(features).all() and features.dtype == torch.float32


def test_a_deterministic_copy_stays_finite(generator: torch.Generator) -> None:
    x = torch.randn(100, 3, generator=generator)
    x[:, 2] = x[:, 0]  # an exact duplicate: the ridge keeps every regression finite
    features = pair_statistics(x[None])
    assert torch.isfinite(features).all()
    assert features[0, 0, 2, 7] > 2.0 > 0.1 > features[0, 2, 1, 7]  # x2 is explained far better than x1


def test_collider_and_connectedness_features_equal_a_loop(generator: torch.Generator) -> None:
    data = correlated_table(generator, nodes=6)
    features = pair_statistics(data)[0].double().numpy()
    correlation, partial = np.abs(features[..., 0]), np.abs(features[..., 2])
    d = correlation.shape[0]
    for i in range(d):
        for j in range(d):
            if i == j:
                continue
            expected = max(
                min(partial[i, j], partial[k, j]) * (1 - correlation[i, k])
                for k in range(d)
                if k not in (i, j)
            )
            assert features[i, j, 10] == pytest.approx(expected, abs=1e-6)
            assert features[j, i, 11] == pytest.approx(expected, abs=1e-6)
            assert features[i, j, 12] == pytest.approx((partial[i] ** 2).sum(), rel=1e-5)
            assert features[i, j, 13] == pytest.approx((partial[j] ** 2).sum(), rel=1e-5)


def test_collider_evidence_points_into_a_v_structure(generator: torch.Generator) -> None:
    x = torch.randn(3000, 3, generator=generator, dtype=torch.float64)
    x[:, 2] += x[:, 0] + x[:, 1]  # 0 -> 2 <- 1, with 0 and 1 independent
    features = pair_statistics(((x - x.mean(0)) / x.std(0))[None])[0]
    assert features[0, 2, 10] > 0.4 and features[1, 2, 10] > 0.4  # into the collider
    assert features[2, 0, 10] < 0.3 and features[2, 1, 10] < 0.3  # out of it: far weaker
