import numpy as np
import pytest

from scm_gen import make_benchmark_dataset, make_training_batch, standardize, training_batches


def test_training_batch_shapes_and_standardization():
    batch = make_training_batch(0, batch_size=4, num_samples=300, node_counts=(7,))
    assert batch.data.shape == batch.noise.shape == (4, 300, 7)
    assert batch.data.dtype == batch.noise.dtype == np.float32
    assert batch.adjacency.shape == (4, 7, 7) and batch.adjacency.dtype == np.int8
    np.testing.assert_allclose(batch.data.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(batch.data.std(axis=1), 1, atol=1e-4)


def test_training_batch_is_a_pure_function_of_its_arguments():
    first = make_training_batch(3, batch_size=3, num_samples=50, seed=11)
    second = make_training_batch(3, batch_size=3, num_samples=50, seed=11)
    np.testing.assert_array_equal(first.data, second.data)
    np.testing.assert_array_equal(first.noise, second.noise)
    np.testing.assert_array_equal(first.adjacency, second.adjacency)
    other = make_training_batch(4, batch_size=3, num_samples=50, seed=11)
    assert not np.array_equal(first.data, other.data)


def test_shards_together_reproduce_the_single_process_batch():
    kwargs = {"batch_size": 5, "num_samples": 40, "node_counts": (5, 9), "seed": 3}
    whole = make_training_batch(2, **kwargs)
    shards = [make_training_batch(2, shard=(rank, 2), **kwargs) for rank in range(2)]
    assert shards[0].data.shape[0] == 3 and shards[1].data.shape[0] == 2
    for field in ("data", "noise", "adjacency"):
        interleaved = np.empty_like(getattr(whole, field))
        interleaved[0::2], interleaved[1::2] = getattr(shards[0], field), getattr(shards[1], field)
        np.testing.assert_array_equal(interleaved, getattr(whole, field))


def test_node_counts_are_mixed_across_batches():
    sizes = {
        batch.data.shape[2]
        for batch, _ in zip(
            training_batches(batch_size=1, num_samples=10, node_counts=(3, 6, 9)), range(30), strict=False
        )
    }
    assert sizes == {3, 6, 9}


def test_training_batches_start_where_asked():
    stream = training_batches(start=5, batch_size=2, num_samples=20, seed=1)
    np.testing.assert_array_equal(
        next(stream).data, make_training_batch(5, batch_size=2, num_samples=20, seed=1).data
    )
    np.testing.assert_array_equal(
        next(stream).data, make_training_batch(6, batch_size=2, num_samples=20, seed=1).data
    )


def test_target_is_the_standardized_mechanism_output():
    # Dataset j of batch b is rebuilt from SeedSequence(seed, spawn_key=(b, j)) and compared.
    from scm_gen import sample_scm

    batch = make_training_batch(
        1, batch_size=2, num_samples=64, node_counts=(6,), mechanisms=("rff",), seed=5
    )
    rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(1, 1)))
    rng.integers(1)  # the mechanism draw
    scm = sample_scm("in", "rff", 6, rng=rng)
    x, _ = scm.sample(64, rng)
    _, _, mean, std = standardize(x)
    np.testing.assert_array_equal(batch.adjacency[1], scm.adjacency)
    np.testing.assert_allclose(batch.target[1], (scm.mechanisms(x) - mean) / std, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"batch_size": 2, "num_samples": 1}, "num_samples=1"),
        ({"batch_size": 2, "node_counts": ()}, "node_counts"),
        ({"batch_size": 2, "node_counts": (0,)}, "node_counts entry=0"),
        ({"batch_size": 2, "preset": "mid"}, "preset='mid'"),
        ({"batch_size": 2, "mechanisms": ("mlp",)}, "mechanism='mlp'"),
        ({"batch_size": 2, "node_counts": 5}, r"node_counts=5 must be a list, e.g. node_counts=\[20\]"),
        ({"batch_size": 2, "mechanisms": "linear"}, "mechanisms='linear' must be a list"),
        ({"batch_size": 2, "shard": (2, 2)}, "shard rank=2"),
        ({"batch_size": 2, "shard": (0, 0)}, "shard world=0"),
    ],
)
def test_training_batch_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_training_batch(0, **kwargs)


def test_standardize_guards_constant_columns_and_scales_noise():
    data = np.array([[1.0, 5.0], [3.0, 5.0]])
    noise = np.array([[2.0, 1.0], [4.0, 1.0]])
    data_std, noise_std, mean, std = standardize(data, noise)
    np.testing.assert_array_equal(mean, [[2.0, 5.0]])
    np.testing.assert_array_equal(std, [[1.0, 1.0]])
    np.testing.assert_array_equal(data_std, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(noise_std, noise)
    batched = np.random.default_rng(0).normal(3, 2, size=(2, 100, 3))
    batched_std, _, _, _ = standardize(batched)
    np.testing.assert_allclose(batched_std.std(axis=1), 1.0)


def test_benchmark_dataset_contents():
    dataset = make_benchmark_dataset(
        "in", "rff", 8, num_context=30, num_query=20, num_interventional=15, seed=4, index=2
    )
    scm = dataset.scm
    assert dataset.data.shape == dataset.noise.shape == (50, 8)
    assert dataset.context_data.shape == (30, 8) and dataset.query_noise.shape == (20, 8)
    assert dataset.interventional_data.shape == dataset.interventional_noise.shape == (15, 8)
    assert dataset.counterfactual_data.shape == (20, 8)
    node, value = dataset.intervention_node, dataset.intervention_value
    low, high = np.quantile(dataset.data[:, node], [0.1, 0.9])
    assert low <= value <= high
    np.testing.assert_array_equal(dataset.data, scm.generate(dataset.noise))
    np.testing.assert_array_equal(
        dataset.interventional_data, scm.generate(dataset.interventional_noise, {node: value})
    )
    # Abducted noise differs from the true one by float64 rounding, which the float32 RFF features amplify.
    np.testing.assert_allclose(
        dataset.counterfactual_data, scm.counterfactual(dataset.query_data, {node: value}), rtol=1e-5
    )
    assert dataset.metadata["seed"] == 4 and dataset.metadata["index"] == 2
    assert dataset.metadata["preset"] == "in" and dataset.metadata["mechanism"] == "rff"
    assert dataset.metadata["scm_gen_version"] == "0.1.0" and dataset.metadata["num_nodes"] == 8


def test_benchmark_dataset_is_regenerated_alone_from_seed_and_index():
    first = make_benchmark_dataset("out", "linear", 6, seed=1, index=7, num_context=20, num_query=10)
    again = make_benchmark_dataset("out", "linear", 6, seed=1, index=7, num_context=20, num_query=10)
    for field in ("adjacency", "data", "noise", "interventional_data", "counterfactual_data"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert first.intervention_value == again.intervention_value


def test_standardize_gets_the_spread_of_huge_columns_and_refuses_non_finite_values():
    data_std, noise_std, mean, std = standardize(np.array([[1e200], [0.0], [-1e200]]), np.zeros((3, 1)))
    np.testing.assert_allclose(std, [[np.sqrt(2 / 3) * 1e200]], rtol=1e-15)
    np.testing.assert_array_equal(mean, [[0.0]])
    np.testing.assert_allclose(data_std, [[np.sqrt(1.5)], [0.0], [-np.sqrt(1.5)]], rtol=1e-15)
    np.testing.assert_array_equal(noise_std, np.zeros((3, 1)))
    np.testing.assert_array_equal(standardize(np.array([[1.7e308], [-1.7e308]]))[3], [[1.7e308]])
    with pytest.raises(ValueError, match="data holds 1 NaN or infinite value"):
        standardize(np.array([[np.nan], [0.0]]))
    with pytest.raises(ValueError, match="noise holds 1 NaN or infinite value"):
        standardize(np.zeros((2, 1)), np.array([[np.inf], [0.0]]))
    with pytest.raises(ValueError, match="at least one row"):
        standardize(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="noise divided by the spread of data overflows float64"):
        standardize(np.array([[1e-300], [0.0]]), np.array([[1e10], [0.0]]))
