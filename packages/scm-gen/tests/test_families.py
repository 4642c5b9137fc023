import hashlib

import networkx as nx
import numpy as np
import pytest

from scm_gen import (
    MECHANISM_KINDS,
    PRESETS,
    CalibratedMechanisms,
    make_benchmark_dataset,
    make_training_batch,
    sample_scm,
)
from scm_gen.export import export_benchmark
from scm_gen.mechanisms import CALIBRATED_KINDS, HETERO_CALIBRATED_KINDS
from scm_gen.node_functions import MLPFunction, PolynomialFunction, soft_clip
from scm_gen.specs import generate_specs

ADDITIVE = (*CALIBRATED_KINDS, "mixed")
PRESET_NAMES = ("in", "out")
EPS = np.finfo(np.float64).eps
SMALLEST_HETERO_SCALE = 0.1 + np.log1p(np.exp(-3.0))  # 0.1 + softplus(-3): the soft clip's lower end


def _chain(num_nodes):
    adjacency = np.zeros((num_nodes, num_nodes), dtype=np.int8)
    adjacency[np.arange(num_nodes - 1), np.arange(1, num_nodes)] = 1
    return adjacency


def _scm(preset, mechanism, num_nodes=12, seed=0, **kwargs):
    return sample_scm(preset, mechanism, num_nodes, rng=np.random.default_rng(seed), **kwargs)


def test_every_new_family_is_a_mechanism_kind():
    for name in ("nn_tanh", "nn_sigmoid", "nn_relu", "polynomial", "multiplicative", "mixed"):
        assert name in MECHANISM_KINDS
    for name in CALIBRATED_KINDS:
        assert f"{name}_hetero" in MECHANISM_KINDS
    assert MECHANISM_KINDS[:3] == ("linear", "rff", "rff_hetero")


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("mechanism", ADDITIVE)
def test_data_equals_mechanisms_plus_noise_exactly(preset, mechanism):
    for seed in range(6):
        scm = _scm(preset, mechanism, seed=seed)
        assert not scm.heteroscedastic
        x, noise = scm.sample(150, np.random.default_rng(seed))
        np.testing.assert_array_equal(x, scm.mechanisms(x) + noise)
        np.testing.assert_array_equal(scm.abduct(x), x - scm.mechanisms(x))


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("mechanism", HETERO_CALIBRATED_KINDS)
def test_heteroscedastic_combine_and_invert_round_trip(preset, mechanism):
    for seed in range(4):
        scm = _scm(preset, mechanism, seed=seed)
        assert scm.heteroscedastic
        x, noise = scm.sample(150, np.random.default_rng(seed))
        # x = f + t N in float64: inverting costs a few roundings of |x|, divided by t >= SMALLEST_HETERO_SCALE
        bound = 16 * EPS * np.abs(x).max() / SMALLEST_HETERO_SCALE
        np.testing.assert_allclose(scm.abduct(x), noise, rtol=0, atol=bound)
        np.testing.assert_allclose(scm.generate(scm.abduct(x)), x, rtol=0, atol=16 * bound)
        model = scm.mechanisms_model
        for node in range(scm.num_nodes):
            parents = x[:, scm.parents[node]]
            scale = model.scale(node, parents)
            assert np.all((scale >= SMALLEST_HETERO_SCALE) & (scale <= 0.1 + np.log1p(np.exp(3.0))))
            np.testing.assert_array_equal(x[:, node], model.combine(node, parents, noise[:, node]))


@pytest.mark.parametrize("mechanism", [*ADDITIVE, *HETERO_CALIBRATED_KINDS])
def test_mechanisms_read_only_parents_and_counterfactuals_hold(mechanism):
    scm = _scm("in", mechanism, num_nodes=10, seed=4)
    x, noise = scm.sample(40, np.random.default_rng(4))
    for node in range(10):
        changed = x.copy()
        changed[:, np.flatnonzero(scm.adjacency[:, node] == 0)] += 5.0
        np.testing.assert_array_equal(scm.mechanisms(changed)[:, node], scm.mechanisms(x)[:, node])
    np.testing.assert_array_equal(scm.counterfactual(x, {}), x)
    node = int(scm.topological_order[0])
    np.testing.assert_array_equal(
        scm.counterfactual_from_noise(x, noise, {node: 0.3}), scm.generate(noise, {node: 0.3})
    )


@pytest.mark.parametrize("mechanism", [*ADDITIVE, *HETERO_CALIBRATED_KINDS])
def test_graphs_stay_acyclic_and_values_finite_at_100_nodes(mechanism):
    for preset in PRESET_NAMES:
        for seed in range(3):
            for graph in (None, _chain(100)):
                scm = _scm(preset, mechanism, num_nodes=100, seed=seed, graph=graph)
                assert nx.is_directed_acyclic_graph(
                    nx.from_numpy_array(scm.adjacency, create_using=nx.DiGraph)
                )
                x, _ = scm.sample(200, np.random.default_rng(seed))
                assert np.all(np.isfinite(x))
                # raw values stay in the range of the signal scales (<= 10) and noise: no growth along paths
                assert np.abs(x).max() < 1e4, (preset, seed, np.abs(x).max())


def test_calibration_gives_each_signal_its_mean_and_deviation_on_the_reference_rows():
    scm = _scm("out", "mixed", num_nodes=15, seed=3)
    model = scm.mechanisms_model
    reference = scm.noise_model.draw(256, np.random.default_rng(0))
    model.calibrate(reference)
    x = scm.generate(reference)
    for node in range(15):
        signal = model.location(node, x[:, scm.parents[node]])
        if scm.parents[node].size == 0:
            np.testing.assert_array_equal(signal, model.bias[node])
            continue
        # mean and deviation of 256 float64 values: agreement to a few hundred roundings
        np.testing.assert_allclose(
            signal.mean(), model.bias[node], rtol=0, atol=1e-12 * model.output_scales[node]
        )
        np.testing.assert_allclose(signal.std(), model.output_scales[node], rtol=1e-12)


def test_uncalibrated_mechanisms_refuse_to_run():
    from scm_gen.presets import _sample_calibrated

    adjacency = _chain(4)
    model = _sample_calibrated(PRESETS["in"], "nn_tanh", (), adjacency, np.random.default_rng(0))
    with pytest.raises(ValueError, match="not calibrated"):
        model.location(1, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="shape"):
        model.calibrate(np.zeros((3, 5)))


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_parameters_stay_inside_the_preset_ranges(preset):
    config = PRESETS[preset]
    for seed in range(5):
        tanh = _scm(preset, "nn_tanh", num_nodes=20, seed=seed).mechanisms_model
        assert isinstance(tanh, CalibratedMechanisms)
        assert np.all(
            (tanh.output_scales >= config.signal_scale[0]) & (tanh.output_scales <= config.signal_scale[1])
        )
        assert np.all((tanh.bias >= config.signal_bias[0]) & (tanh.bias <= config.signal_bias[1]))
        for function in tanh.functions:
            if function is not None:
                assert isinstance(function, MLPFunction) and function.activation == "tanh"
                assert config.nn_hidden[0] <= function.weights_out.shape[0] <= config.nn_hidden[1]
        polynomial = _scm(preset, "polynomial", num_nodes=20, seed=seed).mechanisms_model
        for node, function in enumerate(polynomial.functions):
            if function is not None:
                assert isinstance(function, PolynomialFunction)
                low, high = config.polynomial_degree
                assert low <= function.terms.shape[1] <= high
                assert function.terms.shape[0] == polynomial.parents[node].size + 1
        product = _scm(preset, "multiplicative", num_nodes=20, seed=seed).mechanisms_model
        for node, function in enumerate(product.functions):
            if function is not None:
                scaled = np.abs(function.exponents) * np.sqrt(product.parents[node].size)
                low, high = config.multiplicative_exponent
                assert np.all((scaled >= low - 1e-12) & (scaled <= high + 1e-12))


def test_node_functions_compute_their_formulas():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 3))
    net = MLPFunction("sigmoid", rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4))
    expected = (1.0 / (1.0 + np.exp(-(z @ net.weights_in + net.bias_in)))) @ net.weights_out
    np.testing.assert_allclose(net(z), expected, rtol=1e-13, atol=1e-13)
    relu = MLPFunction("relu", net.weights_in, net.bias_in, net.weights_out)
    np.testing.assert_array_equal(relu(z), np.maximum(z @ net.weights_in + net.bias_in, 0) @ net.weights_out)
    # v0 * v1 * 1 + v2^2 + v1 over v = soft_clip(z), index 3 standing for the factor 1
    poly = PolynomialFunction(
        np.array([0.0, 1.0, 0.0]), np.array([[0, 1, 3], [2, 2, 3]]), np.array([1.0, 1.0])
    )
    v = soft_clip(z)
    np.testing.assert_allclose(poly(z), v[:, 0] * v[:, 1] + v[:, 2] ** 2 + v[:, 1], rtol=1e-14, atol=1e-14)


def test_signal_to_noise_is_comparable_to_the_rff_family():
    def median_ratio(mechanism):
        ratios = []
        for seed in range(8):
            scm = _scm("in", mechanism, num_nodes=20, seed=seed)
            x, noise = scm.sample(400, np.random.default_rng(seed))
            signal = scm.mechanisms(x)
            for node in range(20):
                if scm.parents[node].size:
                    ratios.append(signal[:, node].std() / noise[:, node].std())
        return np.median(ratios)

    reference = median_ratio("rff")
    for mechanism in ADDITIVE:
        assert reference / 3 < median_ratio(mechanism) < reference * 3, mechanism


def test_mixed_scms_mix_families_and_follow_them_node_by_node():
    scm = _scm("in", "mixed", num_nodes=60, seed=1, graph="er")
    families = scm.metadata["node_families"]
    assert len(families) == 60 and len(set(families)) >= 5
    assert set(families) <= set(PRESETS["in"].mixed_families)
    model = scm.mechanisms_model
    assert list(model.families) == families
    rng = np.random.default_rng(0)
    for node, family in enumerate(families):
        if scm.parents[node].size == 0:
            continue
        assert model.functions[node].family == family
        if family == "linear":  # a linear node is affine in its parents: zero second differences
            base = rng.normal(size=(1, 60))
            step = np.zeros((1, 60))
            step[0, scm.parents[node]] = rng.normal(size=scm.parents[node].size)
            values = [scm.mechanisms(base + k * step)[0, node] for k in range(3)]
            assert abs(values[2] - 2 * values[1] + values[0]) < 1e-9 * (1 + abs(values[1]))
    different = _scm("in", "mixed", num_nodes=60, seed=2, graph="er").metadata["node_families"]
    assert different != families


def test_mixed_takes_a_list_of_families_including_heteroscedastic_ones():
    only = _scm("out", "mixed", num_nodes=20, seed=0, families=("nn_relu",))
    assert set(only.metadata["node_families"]) == {"nn_relu"}
    hetero = _scm("out", "mixed", num_nodes=30, seed=0, families=("polynomial_hetero", "linear"))
    assert set(hetero.metadata["node_families"]) == {"polynomial_hetero", "linear"}
    assert hetero.heteroscedastic
    x, noise = hetero.sample(50, np.random.default_rng(0))
    for node, family in enumerate(hetero.metadata["node_families"]):
        if family == "linear":  # additive nodes stay exact inside a heteroscedastic SCM
            np.testing.assert_array_equal(x[:, node], hetero.mechanisms(x)[:, node] + noise[:, node])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mechanism": "rff", "families": ("linear",)}, "only for mechanism='mixed'"),
        ({"mechanism": "mixed", "families": ()}, "non-empty"),
        ({"mechanism": "mixed", "families": "linear"}, "non-empty"),
        ({"mechanism": "mixed", "families": ("mixed",)}, "family='mixed'"),
        ({"mechanism": "mixed", "families": ("cubic",)}, "family='cubic'"),
    ],
)
def test_bad_family_lists_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_scm("in", num_nodes=4, rng=np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("mechanism", [*ADDITIVE, *HETERO_CALIBRATED_KINDS])
def test_benchmark_datasets_of_new_families_are_deterministic(mechanism):
    sizes = {"num_context": 20, "num_query": 10, "num_interventional": 5, "seed": 2, "index": 4}
    first = make_benchmark_dataset("out", mechanism, 8, **sizes)
    again = make_benchmark_dataset("out", mechanism, 8, **sizes)
    for name in ("adjacency", "data", "noise", "interventional_data", "counterfactual_data"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.metadata["mechanism"] == mechanism
    scm = first.scm
    np.testing.assert_array_equal(first.data, scm.generate(first.noise))
    node, value = first.intervention_node, first.intervention_value
    np.testing.assert_array_equal(first.counterfactual_data, scm.generate(first.noise[20:], {node: value}))


def test_exports_of_new_families_do_not_depend_on_the_number_of_processes(tmp_path):
    specs = []
    for mechanism in ("nn_relu", "polynomial_hetero", "multiplicative", "mixed"):
        specs += generate_specs(
            preset="in",
            mechanism=mechanism,
            num_nodes=6,
            num_datasets=2,
            num_context=8,
            num_query=4,
            num_interventional=3,
            seed=9,
        )
    one = export_benchmark(specs, tmp_path / "one", generator={}, shard_size=1, num_proc=1)
    two = export_benchmark(specs, tmp_path / "two", generator={}, shard_size=1, num_proc=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 10
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes()
    text = (one / "README.md").read_text()
    assert "## Mechanisms" in text and "`polynomial_hetero`" in text and "calibrated" in text


def test_training_stream_draws_the_new_families():
    kwargs = {"batch_size": 4, "num_samples": 30, "node_counts": (6,), "seed": 1}
    batch = make_training_batch(0, mechanisms=("nn_tanh", "mixed", "polynomial_hetero"), **kwargs)
    assert batch.data.shape == (4, 30, 6) and np.all(np.isfinite(batch.data))
    np.testing.assert_allclose(batch.data.std(axis=1), 1, atol=1e-4)
    shards = [make_training_batch(0, mechanisms=("nn_tanh", "mixed"), shard=(r, 2), **kwargs) for r in (0, 1)]
    whole = make_training_batch(0, mechanisms=("nn_tanh", "mixed"), **kwargs)
    np.testing.assert_array_equal(whole.data[0::2], shards[0].data)
    np.testing.assert_array_equal(whole.data[1::2], shards[1].data)


def test_existing_families_draw_exactly_what_they_drew_before():
    # Graphs, noise, intervention nodes and mechanism parameters of linear / rff / rff_hetero, hashed: the new
    # families must not change what the paper's families draw (these arrays come from the random streams
    # alone, so the hash does not depend on the CPU or BLAS).
    digest = hashlib.sha256()
    for preset in PRESET_NAMES:
        for mechanism in ("linear", "rff", "rff_hetero"):
            dataset = make_benchmark_dataset(
                preset, mechanism, 7, seed=5, index=3, num_context=6, num_query=4, num_interventional=3
            )
            model = dataset.scm.mechanisms_model
            for array in (dataset.adjacency, dataset.noise, dataset.interventional_noise):
                digest.update(array.tobytes())
            digest.update(np.int64(dataset.intervention_node).tobytes())
            if mechanism == "linear":
                digest.update(model.weights.tobytes())
                digest.update(model.bias.tobytes())
            else:
                rff = model if mechanism == "rff" else model.location_mechanisms
                for array in (rff.phases, rff.coefficients, rff.length_scales):
                    digest.update(array.tobytes())
    assert digest.hexdigest() == "269435acdbe5c1b51c96cedfa85f768f4d5cfe96b16392b80d76a5ee5b37a179"
