import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.model import CondFiPConfig, CondFiPModel
from condfip_eval.methods import make_method
from condfip_eval.methods.condfip_method import CondFiPMethod

TINY = dict(
    dim=16, num_heads=2, mlp_dim=32, encoder_pairs=1, embedding_pairs=1, decoder_blocks=2, num_anchor_rows=32
)


@pytest.fixture(scope="module")
def tiny_condfip() -> CondFiP:
    """Random weights, each parameter perturbed (the default init zeroes gates, so F_hat would ignore parents)."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CondFiPModel(CondFiPConfig(**TINY))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return CondFiP(model, device="cpu")


def test_adapter_agrees_with_the_user_api(toy, tiny_condfip):
    context, _ = toy.sample(120, nonlinear=True, seed=0)
    query, true_noise = toy.sample(25, nonlinear=True, seed=1)
    fitted = make_method("condfip", model=tiny_condfip).fit(context, toy.ADJACENCY)
    columns = [f"x{node}" for node in range(4)]
    scm = tiny_condfip.infer(pd.DataFrame(context, columns=columns), toy.ADJACENCY)
    np.testing.assert_allclose(
        fitted.noise(query), scm.noise(pd.DataFrame(query, columns=columns), method="encoder").to_numpy()
    )
    expected = scm.generate(pd.DataFrame(true_noise, columns=columns), interventions={"x1": 0.5}).to_numpy()
    np.testing.assert_allclose(fitted.generate(true_noise, {1: 0.5}), expected)
    assert fitted.fit_seconds > 0 and fitted.sample_seconds > 0


def test_adapter_round_trip_and_counterfactual_invariants(toy, tiny_condfip):
    context, _ = toy.sample(120, nonlinear=True, seed=2)
    query, _ = toy.sample(25, nonlinear=True, seed=3)
    fitted = CondFiPMethod(tiny_condfip, chunk_size=64).fit(context, toy.ADJACENCY)
    # the adapter scores the encoder's noise; the decoder's noise is what generation inverts exactly
    decoder_noise = fitted.scm.noise(fitted._frame(query), method="decoder").to_numpy()
    np.testing.assert_allclose(fitted.generate(decoder_noise), query, rtol=1e-4, atol=1e-4)
    values = np.linspace(-1.0, 1.0, 25)
    counterfactual = fitted.counterfactual(query, {1: values})
    np.testing.assert_allclose(counterfactual[:, 1], values, atol=1e-6)
    np.testing.assert_allclose(counterfactual[:, [0, 3]], query[:, [0, 3]], rtol=1e-4, atol=1e-4)


def test_refit_adapter_agrees_with_the_user_api(toy, tiny_condfip):
    context, _ = toy.sample(120, nonlinear=True, seed=4)
    query, true_noise = toy.sample(25, nonlinear=True, seed=5)
    fitted = make_method("condfip-refit", model=tiny_condfip).fit(context, toy.ADJACENCY)
    columns = [f"x{node}" for node in range(4)]
    scm = tiny_condfip.infer(pd.DataFrame(context, columns=columns), toy.ADJACENCY, refit_readout=True)
    frame = pd.DataFrame(query, columns=columns)
    np.testing.assert_allclose(fitted.noise(query), scm.noise(frame, method="decoder").to_numpy())
    expected = scm.generate(pd.DataFrame(true_noise, columns=columns), interventions={"x1": 0.5}).to_numpy()
    np.testing.assert_allclose(fitted.generate(true_noise, {1: 0.5}), expected)
    np.testing.assert_allclose(fitted.generate(fitted.noise(query)), query, rtol=1e-6, atol=1e-6)
    zero_shot = make_method("condfip", model=tiny_condfip).fit(context, toy.ADJACENCY)
    assert not np.allclose(fitted.generate(true_noise), zero_shot.generate(true_noise))
