import numpy as np
import pytest
import torch

from condfip_eval.methods.fip import FiPNetwork, PerDatasetFiP, longest_path_length
from condfip_eval.metrics import rmse


def test_longest_path_length():
    assert longest_path_length(np.zeros((3, 3), dtype=int)) == 0
    chain = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert longest_path_length(chain) == 3
    assert longest_path_length(chain[[3, 2, 1, 0]][:, [3, 2, 1, 0]]) == 3  # node order does not matter


def test_network_output_of_a_node_depends_only_on_its_parents(toy):
    network = FiPNetwork(4, dim=16, num_heads=2)
    parents = torch.as_tensor(toy.ADJACENCY.T != 0)[None]  # [1, d, d]
    x = torch.randn(1, 5, 4, requires_grad=True)
    out = network(x, parents)
    assert out.shape == (1, 5, 4)
    for node in range(4):
        (gradient,) = torch.autograd.grad(out[0, :, node].sum(), x, retain_graph=True)
        touched = gradient.abs().sum(dim=(0, 1)) > 0  # [d]
        np.testing.assert_array_equal(touched.numpy(), toy.ADJACENCY[:, node] != 0)


def test_training_lowers_the_loss_and_generation_inverts_abduction(toy):
    context, _ = toy.sample(200, nonlinear=False, seed=0)
    method = PerDatasetFiP(steps=30, learning_rate=1e-3, dim=32, num_heads=4, device="cpu", seed=0)
    fitted = method.fit(context, toy.ADJACENCY)
    assert len(method.last_losses) == 30
    assert method.last_losses[-1] < 0.8 * method.last_losses[0]
    query, _ = toy.sample(20, nonlinear=False, seed=1)
    noise = fitted.noise(query)
    # the fixed-point iteration from the abducted noise gives back the rows (float32 network)
    np.testing.assert_allclose(fitted.generate(noise), query, rtol=1e-4, atol=1e-4)
    counterfactual = fitted.counterfactual(query, {0: 0.5})
    np.testing.assert_array_equal(counterfactual[:, 0], 0.5)
    np.testing.assert_allclose(counterfactual[:, 3], query[:, 3], atol=1e-4)  # node 3 is unrelated to node 0
    assert fitted.fit_seconds > 0


def test_same_seed_same_model(toy):
    context, _ = toy.sample(50, nonlinear=False, seed=0)
    make = lambda: PerDatasetFiP(steps=3, dim=16, num_heads=2, device="cpu", seed=7)  # noqa: E731
    first = make().fit(context, toy.ADJACENCY).noise(context)
    second = make().fit(context, toy.ADJACENCY).noise(context)
    np.testing.assert_array_equal(first, second)


def test_fip_learns_a_linear_scm(toy):
    context, _ = toy.sample(400, nonlinear=False, seed=2)
    query, true_noise = toy.sample(200, nonlinear=False, seed=3)
    fitted = PerDatasetFiP(steps=300, learning_rate=3e-3, dim=32, num_heads=4, device="cpu").fit(
        context, toy.ADJACENCY
    )
    # far better than predicting each node by its mean (noise = centred x)
    assert rmse(fitted.noise(query), true_noise) < 0.5 * rmse(query - context.mean(0), true_noise)


def test_bad_options():
    with pytest.raises(ValueError, match="steps"):
        PerDatasetFiP(steps=-1)
    with pytest.raises(ValueError, match="learning_rate"):
        PerDatasetFiP(learning_rate=0.0)


def test_values_beyond_the_standard_limit_are_refused_by_node(toy):
    context, _ = toy.sample(50, nonlinear=False, seed=0)
    fitted = PerDatasetFiP(steps=2, dim=16, num_heads=2, device="cpu").fit(context, toy.ADJACENCY)
    far = context[:3] * 1e25
    with pytest.raises(
        ValueError,
        match=r"x column 0: .* outside the range the network takes, .* \(1e\+06 standard deviations",
    ):
        fitted.noise(far)
    with pytest.raises(ValueError, match="noise column 0: .* outside the range the network takes"):
        fitted.generate(far)
    with pytest.raises(ValueError, match="intervention on column 0: 1e\\+25 is outside the range"):
        fitted.counterfactual(context[:3], {0: 1e25})
    low, high = fitted.standardization.allowed_range(0)
    inside = fitted.counterfactual(context[:3], {0: 0.9 * high})
    assert np.isfinite(inside).all() and np.all(inside[:, 0] == 0.9 * high)
    assert fitted.noise(context[:0]).shape == (0, 4)
