import inspect
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from condfip import CondFiP
from condfip.model import CondFiPConfig, CondFiPModel
from condfip_eval.methods import make_method
from condfip_eval.methods.condfip_method import CondFiPMethod, CondFiPZeroShotMethod

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


def test_adapter_round_trip_and_counterfactual_invariants(toy, tiny_condfip):
    context, _ = toy.sample(120, nonlinear=True, seed=2)
    query, _ = toy.sample(25, nonlinear=True, seed=3)
    fitted = CondFiPZeroShotMethod(tiny_condfip, chunk_size=64).fit(context, toy.ADJACENCY)
    # the zero-shot adapter scores the encoder's noise; the decoder's noise is what generation inverts exactly
    decoder_noise = fitted.scm.noise(fitted._frame(query), method="decoder").to_numpy()
    np.testing.assert_allclose(fitted.generate(decoder_noise), query, rtol=1e-4, atol=1e-4)
    # the noise real-data sampling draws from is that one (InferredSCM.sample's), not the scored estimate
    np.testing.assert_array_equal(fitted.abducted_noise(query), decoder_noise)
    assert not np.allclose(fitted.noise(query), decoder_noise)
    default = CondFiPMethod(tiny_condfip, chunk_size=64).fit(context, toy.ADJACENCY)
    np.testing.assert_allclose(default.generate(default.abducted_noise(query)), query, rtol=1e-9, atol=1e-9)
    values = np.linspace(-1.0, 1.0, 25)
    counterfactual = fitted.counterfactual(query, {1: values})
    np.testing.assert_allclose(counterfactual[:, 1], values, atol=1e-6)
    np.testing.assert_allclose(counterfactual[:, [0, 3]], query[:, [0, 3]], rtol=1e-4, atol=1e-4)


def test_real_data_sampling_draws_from_the_noise_the_sampler_draws_from(toy, tiny_condfip):
    """``sampling_noise`` of the context is ``InferredSCM.sampling_noise``: on the default path the abducted noise
    widened about its mean for every node with parents (a root's column unchanged), zero-shot the abducted noise
    itself."""
    context, _ = toy.sample(120, nonlinear=True, seed=2)
    has_parents = toy.ADJACENCY.any(axis=0)
    assert has_parents.any() and not has_parents.all()
    zero_shot = CondFiPZeroShotMethod(tiny_condfip, chunk_size=64).fit(context, toy.ADJACENCY)
    np.testing.assert_array_equal(zero_shot.sampling_noise(context), zero_shot.abducted_noise(context))
    default = CondFiPMethod(tiny_condfip, chunk_size=64).fit(context, toy.ADJACENCY)
    drawn, abducted = default.sampling_noise(context), default.abducted_noise(context)
    np.testing.assert_array_equal(drawn, default.scm.sampling_noise().to_numpy())
    np.testing.assert_array_equal(drawn[:, ~has_parents], abducted[:, ~has_parents])
    ratio = drawn[:, has_parents].std(axis=0) / abducted[:, has_parents].std(axis=0)
    assert bool((ratio > 1.0).all()) and bool((ratio <= np.sqrt(2.0) + 1e-12).all())
    np.testing.assert_allclose(drawn.mean(axis=0), abducted.mean(axis=0), rtol=0, atol=1e-12)


def test_zero_shot_adapter_agrees_with_the_user_api(toy, tiny_condfip):
    context, _ = toy.sample(120, nonlinear=True, seed=4)
    query, true_noise = toy.sample(25, nonlinear=True, seed=5)
    fitted = make_method("condfip-zero-shot", model=tiny_condfip).fit(context, toy.ADJACENCY)
    columns = [f"x{node}" for node in range(4)]
    options = {"zero_shot": True} if "zero_shot" in inspect.signature(CondFiP.infer).parameters else {}
    scm = tiny_condfip.infer(pd.DataFrame(context, columns=columns), toy.ADJACENCY, **options)
    frame = pd.DataFrame(query, columns=columns)
    np.testing.assert_allclose(fitted.noise(query), scm.noise(frame, method="encoder").to_numpy())
    expected = scm.generate(pd.DataFrame(true_noise, columns=columns), interventions={"x1": 0.5}).to_numpy()
    np.testing.assert_allclose(fitted.generate(true_noise, {1: 0.5}), expected)


def test_default_adapter_uses_the_default_path_and_noise(toy, tiny_condfip):
    context, _ = toy.sample(120, nonlinear=True, seed=6)
    query, true_noise = toy.sample(25, nonlinear=True, seed=7)
    fitted = make_method("condfip", model=tiny_condfip).fit(context, toy.ADJACENCY)
    columns = [f"x{node}" for node in range(4)]
    scm = tiny_condfip.infer(pd.DataFrame(context, columns=columns), toy.ADJACENCY)
    frame = pd.DataFrame(query, columns=columns)
    np.testing.assert_allclose(fitted.noise(query), scm.noise(frame).to_numpy())
    expected = scm.generate(pd.DataFrame(true_noise, columns=columns), interventions={"x1": 0.5}).to_numpy()
    np.testing.assert_allclose(fitted.generate(true_noise, {1: 0.5}), expected)
    assert fitted.fit_seconds > 0 and fitted.sample_seconds > 0


class _RecordingModel:
    """Stands for a CondFiP: records the keywords of ``infer`` (with or without ``zero_shot``)."""

    def __init__(self, with_zero_shot: bool) -> None:
        self.calls: list[dict] = []
        if with_zero_shot:
            self.infer = self._infer_zero_shot
        else:
            self.infer = self._infer_plain

    def _infer_zero_shot(self, data, graph, *, chunk_size=None, zero_shot=False):
        self.calls.append({"zero_shot": zero_shot, "chunk_size": chunk_size})
        return SimpleNamespace(noise=lambda data, *, method="decoder": data)

    def _infer_plain(self, data, graph, *, chunk_size=None, refit_readout=False):
        self.calls.append({"refit_readout": refit_readout, "chunk_size": chunk_size})
        return SimpleNamespace(noise=lambda data, *, method="decoder": data)


@pytest.mark.parametrize("with_zero_shot", [True, False])
def test_zero_shot_keyword_is_passed_only_where_the_api_has_it(toy, with_zero_shot):
    context, _ = toy.sample(20, nonlinear=False, seed=8)
    model = _RecordingModel(with_zero_shot)
    CondFiPZeroShotMethod(model).fit(context, toy.ADJACENCY)
    CondFiPMethod(model, chunk_size=8).fit(context, toy.ADJACENCY)
    if with_zero_shot:
        assert model.calls == [{"zero_shot": True, "chunk_size": None}, {"zero_shot": False, "chunk_size": 8}]
    else:  # today's API: infer() without refitting is the zero-shot path, and also the default one
        assert model.calls == [
            {"refit_readout": False, "chunk_size": None},
            {"refit_readout": False, "chunk_size": 8},
        ]


def test_the_two_condfip_methods_share_one_loaded_model(tiny_condfip):
    from condfip_eval.settings import MethodSettings

    settings = MethodSettings(methods=("condfip", "condfip-zero-shot"))
    built = settings.build_methods({"condfip": CondFiPMethod(tiny_condfip)})
    assert built["condfip-zero-shot"].model is tiny_condfip


def test_bad_weights_are_a_value_error_naming_them(tmp_path):
    (tmp_path / "config.json").write_text('{"dim": 16}')
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=f"cannot load the Cond-FiP weights '{tmp_path}': "):
        make_method("condfip-zero-shot", model=str(tmp_path))
