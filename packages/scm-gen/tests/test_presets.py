import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scm_gen import PRESETS, sample_scm
from scm_gen.noise import NoiseModel


def test_presets_hold_exactly_the_design_ranges():
    p_in, p_out = PRESETS["in"], PRESETS["out"]
    assert p_in.graphs == ("er", "sf_in", "sf_out") and p_out.graphs == ("ws", "sbm")
    assert p_in.noise == "gaussian" and p_out.noise == "laplace"
    assert p_in.linear_weight == (1.0, 3.0) and p_in.linear_bias == (-3.0, 3.0)
    assert p_out.linear_weight == (0.5, 4.0)
    assert p_in.rff_length_scale == (7.0, 10.0) and p_in.rff_output_scale == (10.0, 20.0)
    assert p_in.rff_bias == (-3.0, 3.0)
    assert p_out.rff_length_scale == (5.0, 12.0) and p_out.rff_output_scale == (8.0, 22.0)
    assert p_in.noise_scale == p_out.noise_scale == (0.2, 2.0)


def _inside(values, bounds):
    low, high = bounds
    return np.all((values >= low) & (values <= high))


@settings(max_examples=40, deadline=None)
@given(
    preset=st.sampled_from(["in", "out"]),
    num_nodes=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampled_parameters_stay_inside_the_preset_ranges(preset, num_nodes, seed):
    config = PRESETS[preset]
    rng = np.random.default_rng(seed)
    linear = sample_scm(preset, "linear", num_nodes, rng=rng)
    assert linear.metadata["graph"] in config.graphs
    assert linear.noise_model.kinds == (config.noise,) * num_nodes
    assert _inside(linear.noise_model.scales, config.noise_scale)
    edges = linear.adjacency != 0
    weights = linear.mechanisms_model.weights
    assert _inside(np.abs(weights[edges]), config.linear_weight)
    assert np.all(weights[~edges] == 0)
    assert _inside(linear.mechanisms_model.bias, config.linear_bias)

    rff = sample_scm(preset, "rff", num_nodes, rng=rng).mechanisms_model
    assert _inside(rff.length_scales, config.rff_length_scale)
    assert _inside(rff.output_scales, config.rff_output_scale)
    assert _inside(rff.bias, config.rff_bias)
    assert rff.phases.shape == (num_nodes, 100) and _inside(rff.phases, (0.0, 2 * np.pi))


def test_both_signs_of_linear_weights_occur():
    weights = sample_scm(
        "in", "linear", 30, rng=np.random.default_rng(0), graph="er"
    ).mechanisms_model.weights
    assert (weights > 0).sum() > 5 and (weights < 0).sum() > 5


def test_graph_families_are_drawn_from_the_preset():
    rng = np.random.default_rng(0)
    for preset in ("in", "out"):
        kinds = {sample_scm(preset, "linear", 10, rng=rng).metadata["graph"] for _ in range(60)}
        assert kinds == set(PRESETS[preset].graphs)


def test_noise_kinds_have_their_standard_spread():
    rng = np.random.default_rng(0)
    for kind, expected_std in [
        ("gaussian", 1.0),
        ("laplace", np.sqrt(2.0)),
        ("gaussian_mixture", np.sqrt(1.25)),
    ]:
        noise = NoiseModel((kind, kind), np.array([1.0, 2.0])).draw(200_000, rng)
        np.testing.assert_allclose(noise.std(axis=0), [expected_std, 2 * expected_std], rtol=0.02)
    cauchy = NoiseModel(("cauchy",), np.array([0.5])).draw(200_000, rng)
    np.testing.assert_allclose(np.quantile(cauchy, 0.75), 0.5, rtol=0.03)  # quartile of Cauchy(0, s) is s
