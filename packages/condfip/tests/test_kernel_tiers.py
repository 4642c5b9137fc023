"""Nodes of many parents get more kernel landmarks: their fit runs apart from the other nodes' and the two
adaptations merge into one (``kernel_tiers``, ``merge_adaptations``, ``ParentBasis.merge``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.api import engine as engine_module
from condfip.model import edge_check
from condfip.model import fit_size as fit_size_module
from condfip.model.fit_size import kernel_tiers
from condfip.model.parent_basis import LANDMARKS_PER_PARENT, NUM_LANDMARKS, landmark_count
from condfip.model.weighted_refit import WeightedRefit
from scm_gen import make_benchmark_dataset

sys.path.insert(0, str(Path(__file__).parent))
from rounding import adapted_round_trip, assert_close  # noqa: E402

ROWS = 400
MANY = 10  # parents of the node "many"


@pytest.fixture(scope="module")
def model() -> CondFiP:
    return CondFiP.from_pretrained("small")


@pytest.fixture(scope="module")
def setup() -> tuple[pd.DataFrame, list[tuple[str, str]], np.ndarray]:
    """Ten roots; "few" <- x0; "many" <- the ten roots (a tanh network); "child" <- few, many. Returns the
    table, its edges and the true noise [n, 13]."""
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(ROWS, MANY + 3)) * np.r_[np.ones(MANY), 0.3, 0.3, 0.3]
    roots = noise[:, :MANY]
    few = np.sin(2 * roots[:, 0]) + noise[:, MANY]
    hidden, readout = np.random.default_rng(5).normal(size=(MANY, 8)), np.random.default_rng(6).normal(size=8)
    many = np.tanh(roots @ hidden) @ readout + noise[:, MANY + 1]  # a random tanh network of the ten roots
    child = np.tanh(few) + 0.2 * many + noise[:, MANY + 2]
    table = pd.DataFrame(roots, columns=[f"x{j}" for j in range(MANY)])
    table["few"], table["many"], table["child"] = few, many, child
    edges = [("x0", "few")] + [(f"x{j}", "many") for j in range(MANY)] + [("few", "child"), ("many", "child")]
    return table, edges, noise


def test_kernel_tiers_group_the_nodes_by_the_landmarks_their_parents_need() -> None:
    counts = torch.tensor([0, 1, 2, 10, 6, 5])
    tiers = kernel_tiers(ROWS, counts)
    # the roots last, on one landmark (a root's fit is a constant)
    assert [nodes.tolist() for nodes, _ in tiers] == [[1, 2, 5], [3, 4], [0]]
    assert [size for _, size in tiers] == [NUM_LANDMARKS, 10 * LANDMARKS_PER_PARENT, 1]
    assert landmark_count(ROWS, 5) == NUM_LANDMARKS < landmark_count(ROWS, 6)
    # few parents, or too few rows for more landmarks: one group beside the roots
    tiers = kernel_tiers(ROWS, torch.tensor([0, 1, 5]))
    assert [(nodes.tolist(), size) for nodes, size in tiers] == [([1, 2], NUM_LANDMARKS), ([0], 1)]
    tiers = kernel_tiers(100, counts)
    assert [(nodes.tolist(), size) for nodes, size in tiers] == [([1, 2, 3, 4, 5], 100), ([0], 1)]
    # a graph without edges: the roots alone; without roots (not a DAG's, but the function's input) no root tier
    ((nodes, size),) = kernel_tiers(ROWS, torch.tensor([0, 0]))
    assert nodes.tolist() == [0, 1] and size == 1
    assert [nodes.tolist() for nodes, _ in kernel_tiers(ROWS, torch.tensor([1, 2]))] == [[0, 1]]


def test_the_roots_fitted_apart_change_no_fit(model, setup, monkeypatch) -> None:
    """The roots' own tier (one landmark) gives every node the fit it gets with the roots among the other nodes:
    each node's fit reads only its own moments, and a root's is its column's mean."""
    table, edges, _ = setup
    apart = model.infer(table, edges)
    original = fit_size_module.kernel_tiers

    calls = []

    def roots_with_the_first_tier(num_rows, parent_counts):
        tiers = original(num_rows, parent_counts)
        (roots, _), (first, size) = tiers[-1], tiers[0]
        calls.append(roots.tolist())
        return [(torch.sort(torch.cat([first, roots])).values, size), *tiers[1:-1]]

    monkeypatch.setattr(engine_module, "kernel_tiers", roots_with_the_first_tier)
    together = model.infer(table, edges)
    assert calls == [list(range(MANY))]
    assert together._runner.prepared.adaptation[1].node_landmarks[:MANY].tolist() == [NUM_LANDMARKS] * MANY
    assert apart._runner.prepared.adaptation[1].node_landmarks[:MANY].tolist() == [1] * MANY
    roots = [f"x{j}" for j in range(MANY)]
    for method in ("decoder", "best"):
        assert_close(
            apart.noise(table, method=method).to_numpy(),
            together.noise(table, method=method).to_numpy(),
            dtype=np.float64,
            operations=10**6,
        )
    fitted = apart.predict(table)[roots].to_numpy()  # F_hat of a root: a constant, its column's mean
    np.testing.assert_allclose(
        fitted, np.broadcast_to(table[roots].mean().to_numpy(), fitted.shape), atol=1e-9
    )
    columns = ["noise_scale", "held_out_error", "encoder_noise_weight", "full_basis", "nonlinear_weight"]
    for column in columns:
        assert_close(
            apart.adaptation[column].to_numpy(dtype=float),
            together.adaptation[column].to_numpy(dtype=float),
            dtype=np.float64,
            operations=10**6,
        )
    assert not apart.adaptation.loc[roots, "full_basis"].any()


def test_only_the_node_of_many_parents_changes_and_it_fits_better(model, setup, monkeypatch) -> None:
    """With tiers the node of ten parents gets 240 landmarks; every other node's fit is the one of a single fit
    over 120 landmarks (each node's fit reads only its own moments), and "many" is closer to its true noise."""
    table, edges, noise = setup
    tiered = model.infer(table, edges)
    _, basis = tiered._runner.prepared.adaptation
    assert basis.num_kernel == MANY * LANDMARKS_PER_PARENT
    monkeypatch.setattr(fit_size_module, "landmark_count", lambda rows, parents=1: landmark_count(rows))
    single = model.infer(table, edges)
    assert single._runner.prepared.adaptation[1].num_kernel == NUM_LANDMARKS
    ours, theirs = tiered.noise(table, method="decoder"), single.noise(table, method="decoder")
    others = [column for column in table.columns if column != "many"]
    # the same float64 fit of each of these nodes, its small block padded by other parent slots (held out at
    # the pruning precision, exp(-25) of the kept columns' weight) and its solves batched with other nodes
    assert_close(ours[others].to_numpy(), theirs[others].to_numpy(), dtype=np.float64, operations=10**6)
    # what the noise weighting reads (the fitted noise, the exact leave-one-out errors), and the weighted noise
    for column in ("noise_scale", "held_out_error"):
        assert_close(
            tiered.adaptation.loc[others, column].to_numpy(),
            single.adaptation.loc[others, column].to_numpy(),
            dtype=np.float64,
            operations=10**6,
        )
    assert_close(
        tiered.noise(table)[others].to_numpy(),
        single.noise(table)[others].to_numpy(),
        dtype=np.float64,
        operations=10**6,
    )
    many = table.columns.get_loc("many")
    error = [np.sqrt(np.mean((n["many"].to_numpy() - noise[:, many]) ** 2)) for n in (ours, theirs)]
    assert error[0] < 0.9 * error[1]


def test_a_tiered_adaptation_keeps_every_guarantee(model, setup) -> None:
    """Round trip, counterfactual without intervention, each node reading only its parents, and the bootstrap's
    weighted refit with every row once reproducing the fit."""
    table, edges, _ = setup
    scm = model.infer(table, edges)
    noise = scm.noise(table, method="decoder")
    np.testing.assert_allclose(
        scm.generate(noise).to_numpy(), table.to_numpy(), rtol=adapted_round_trip(), atol=1e-9
    )
    np.testing.assert_allclose(
        scm.counterfactual_samples({}, table).to_numpy(),
        table.to_numpy(),
        rtol=adapted_round_trip(),
        atol=1e-9,
    )
    prepared = scm._runner.prepared
    z = torch.as_tensor(scm._standard_context())
    moved = z.clone()
    moved[:, table.columns.get_loc("x5")] += 3.0  # a parent of "many" only
    before, after = prepared(z), prepared(moved)
    unmoved = [table.columns.get_loc(c) for c in table.columns if c not in ("many",)]
    assert torch.equal(before[:, unmoved], after[:, unmoved])
    assert not torch.equal(before[:, table.columns.get_loc("many")], after[:, table.columns.get_loc("many")])
    refit = scm._runner.weighted_refit(scm._standard_context())
    again = refit(torch.ones(ROWS, dtype=torch.float64))
    adaptation = scm._runner.adaptation
    active = adaptation.active
    assert again.basis_weights.shape == adaptation.basis_weights.shape
    assert active.shape == adaptation.penalties.shape
    # two float64 solves of one system, its moments summed in another order (condition number up to ~1e10)
    assert_close(
        again.basis_weights.numpy(), adaptation.basis_weights.numpy(), dtype=np.float64, operations=10**10
    )


def test_a_quadratic_node_keeps_its_products_through_the_merge(model, monkeypatch) -> None:
    """A node of two parents whose mechanism is their product takes the quadratic model in the first tier (three
    product slots) and keeps it, in place, in the merged layout beside the node of ten parents (21 product slots,
    none of them its own): its fit is the one of a single fit over the same landmarks."""
    rng = np.random.default_rng(3)
    roots = rng.normal(size=(ROWS, MANY))
    product = 1.5 * roots[:, 0] * roots[:, 1] + 0.2 * rng.normal(size=ROWS)
    many = np.tanh(roots).sum(axis=1) + 0.3 * rng.normal(size=ROWS)
    table = pd.DataFrame(roots, columns=[f"x{j}" for j in range(MANY)])
    table["product"], table["many"] = product, many
    edges = [("x0", "product"), ("x1", "product")] + [(f"x{j}", "many") for j in range(MANY)]
    tiered = model.infer(table, edges)
    adaptation, basis = tiered._runner.prepared.adaptation
    assert (
        adaptation.product_slots == basis.num_products == 21
        and basis.num_kernel == MANY * LANDMARKS_PER_PARENT
    )
    node = table.columns.get_loc("product")
    assert float(tiered.adaptation.loc["product", "scale_products"]) > 0
    assert bool(adaptation.basis_weights[node, MANY + 1].abs() > 0)  # slot pair (0, 1): the product x0 x1
    assert not bool(
        adaptation.basis_weights[node, MANY + 3 :].any()
    )  # no other slot beyond its own, no kernel
    monkeypatch.setattr(fit_size_module, "landmark_count", lambda rows, parents=1: landmark_count(rows))
    single = model.infer(table, edges)
    # the same float64 fit of the node, its small block padded by other slots (held out at the pruning precision)
    assert_close(
        tiered.noise(table, method="decoder")["product"].to_numpy(),
        single.noise(table, method="decoder")["product"].to_numpy(),
        dtype=np.float64,
        operations=10**6,
    )


def test_the_edge_check_of_a_tiered_fit_refits_each_landmark_group_apart(model, monkeypatch) -> None:
    """The edge check refits the candidates of each landmark group on that group's columns only (the merged
    layout's padding left out): its decisions are those of one refit over the padded layout of all of them."""
    dataset = make_benchmark_dataset(
        "in", "rff", 20, seed=0, index=2, num_context=ROWS
    )  # a node of 11 parents
    groups, widths = [], []
    refit_init = WeightedRefit.__init__

    def recording_init(self, adaptation, design, targets):
        refit_init(self, adaptation, design, targets)
        widths.append((design.shape[-1], max(columns.numel() for _, columns, _, _ in self.groups)))

    continues = edge_check._continues

    def recording(adaptation, basis, nodes, *arguments):
        groups.append(sorted(set(basis.node_landmarks[nodes].tolist())))
        return continues(adaptation, basis, nodes, *arguments)

    monkeypatch.setattr(WeightedRefit, "__init__", recording_init)
    monkeypatch.setattr(edge_check, "_continues", recording)
    scm = model.infer(dataset.context_data, dataset.adjacency)
    adaptation, basis = scm._runner.prepared.adaptation
    assert groups == [[NUM_LANDMARKS], [landmark_count(ROWS, 11)]]  # candidates in both groups
    # the group of 120 landmarks leaves out at least the 136 padded kernel columns
    assert widths[0][1] <= widths[0][0] - (landmark_count(ROWS, 11) - NUM_LANDMARKS)
    rows = torch.as_tensor(scm._standard_context())
    grouped = edge_check.continued_nodes(
        adaptation, basis, scm._runner.prepared.parents, rows, scm._runner.prepared.features
    )
    padded = basis.with_bounds(basis.bounds)
    padded.node_landmarks = torch.full_like(
        basis.node_landmarks, basis.num_kernel
    )  # one group: the old refit
    groups.clear()
    together = edge_check.continued_nodes(
        adaptation, padded, scm._runner.prepared.parents, rows, scm._runner.prepared.features
    )
    assert len(groups) == 1 and torch.equal(grouped, together) and bool(grouped.any())
