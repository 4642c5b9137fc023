"""An inferred SCM survives the standard pickle (what multiprocessing, concurrent.futures and joblib send to worker
processes) and answers as before, bit for bit."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from condfip import CondFiP


@pytest.fixture(scope="module")
def model() -> CondFiP:
    return CondFiP.from_pretrained("small")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    a, b = rng.lognormal(size=150), rng.normal(size=150)
    c = np.sin(np.log(a)) + 0.5 * b + 0.2 * rng.normal(size=150)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": np.tanh(c) + 0.2 * rng.normal(size=150)})


EDGES = [("a", "c"), ("b", "c"), ("c", "d")]


def answers(scm, table: pd.DataFrame) -> list[np.ndarray]:
    return [
        scm.sample(40, seed=1).to_numpy(),
        scm.interventional_samples({"b": 1.0}, 40, seed=2).to_numpy(),
        scm.counterfactual_samples({"a": 2.0}, table.iloc[:10]).to_numpy(),
        scm.noise().to_numpy(),
        np.array([scm.average_causal_effect("d", {"b": 1.0}, {"b": 0.0}, n=500, seed=3)]),
    ]


@pytest.mark.parametrize(
    "options", [{}, {"zero_shot": True}, {"positive": ["a"]}], ids=["adapted", "zero-shot", "positive"]
)
def test_a_pickled_scm_answers_as_the_original(model, table, options) -> None:
    scm = model.infer(table, EDGES, **options)
    copy = pickle.loads(pickle.dumps(scm))
    assert copy.columns == scm.columns and copy.adapted == scm.adapted
    for mine, theirs in zip(answers(copy, table), answers(scm, table), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    if scm.adapted:
        pd.testing.assert_frame_equal(copy.adaptation, scm.adaptation, check_exact=True)


def test_the_deferred_leave_one_out_pass_is_pickled_as_its_statistics(model, table) -> None:
    """A fit defers its leave-one-out pass and holds the rows' features until then; a pickled copy holds the
    statistics instead (computed on pickling), so it is a fraction of the size and needs no closure."""
    scm = model.infer(table, EDGES)
    held_out = scm._runner.adaptation.held_out
    assert not held_out.computed
    copy = pickle.loads(pickle.dumps(held_out))
    assert held_out.computed and copy.computed and copy._compute is None
    for name in ("mean_leverage", "errors", "capped_errors", "capped_standard_errors"):
        assert np.array_equal(getattr(copy(), name).numpy(), getattr(held_out(), name).numpy())
