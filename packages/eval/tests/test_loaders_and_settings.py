"""The real-data loaders and the settings objects refuse what would give a wrong or non-finite answer, with a
ValueError naming the problem, before anything is written; and the scoring refuses columns without units."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from condfip_eval.csuite import CSuiteSettings
from condfip_eval.distribution import distribution_scores
from condfip_eval.ecoli70 import Ecoli70Settings, load_linear_gaussian_network, make_network_dataset
from condfip_eval.methods import LinearANM
from condfip_eval.metrics import MAX_POOLED_ROWS, Standardizer
from condfip_eval.paper import PaperSettings
from condfip_eval.sachs import SachsSettings, load_sachs, run_sachs
from condfip_eval.scoring import score_dataset

TINY = Path(__file__).parent / "data" / "ecoli70_tiny.json"
NETWORK = json.loads(TINY.read_text())  # a -> b, a -> c, b -> c


def write_network(tmp_path: Path, change) -> Path:
    document = copy.deepcopy(NETWORK)
    change(document)
    path = tmp_path / "network.json"
    path.write_text(json.dumps(document))
    return path


def make_cycle(document: dict) -> None:
    document["arcs"].append(["c", "a"])
    document["cpds"]["a"]["parents"].append("c")
    document["cpds"]["a"]["coefficients"]["c"] = [0.5]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda d: d["cpds"]["a"].update(variance=[0.0]),
            "the variance of 'a' is 0.0; every variance must be positive",
        ),
        (lambda d: d["cpds"]["a"].update(variance=[-1.0]), "the variance of 'a' is -1.0"),
        (lambda d: d["cpds"]["b"].update(variance=["1"]), "the variance of 'b' is '1', not a number"),
        (lambda d: d["cpds"]["b"].update(variance=[True]), "the variance of 'b' is True, not a number"),
        (lambda d: d["cpds"]["b"].update(variance=1.0), "must be a list of one number"),
        (lambda d: d["cpds"]["c"]["coefficients"].update(b=[1e999]), "coefficient of 'b' in 'c' is inf"),
        (lambda d: d["nodes"].append("a"), "node 'a' is listed more than once"),
        (lambda d: d.update(nodes="abc"), "'nodes' must be a list of node names"),
        (make_cycle, "its arcs have a cycle (a -> b -> c -> a)"),
        (
            lambda d: (d["cpds"]["b"]["parents"].append("b"), d["cpds"]["b"]["coefficients"].update(b=[1.0])),
            "node 'b' is its own parent",
        ),
    ],
)
def test_bad_networks_are_refused_by_name(tmp_path, change, reason):
    path = write_network(tmp_path, change)
    with pytest.raises(ValueError) as caught:
        load_linear_gaussian_network(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a linear-Gaussian network") and reason in message, message


def test_a_network_whose_samples_overflow_is_refused(tmp_path):
    def huge(document: dict) -> None:  # b ~ 1e200 a, c ~ 1e200 b: c overflows
        document["cpds"]["b"]["coefficients"]["a"] = [1e200]
        document["cpds"]["c"]["coefficients"]["b"] = [1e200]

    network = load_linear_gaussian_network(write_network(tmp_path, huge))
    with pytest.raises(
        ValueError, match="beyond float64's range: its coefficients or variances are too large"
    ):
        make_network_dataset(network, num_context=50, num_query=10, num_interventional=10)


def test_sachs_values_that_are_not_numbers_are_named_with_their_place(tmp_path):
    frame = load_sachs().astype(object)
    frame.iloc[5, 3] = "high"
    frame.iloc[7, 0] = ""
    path = tmp_path / "sachs.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column praf has a missing value in data row 8 after the header"):
        load_sachs(path)
    frame.iloc[7, 0] = 1.0
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column PIP2 has 'high' in data row 6 after the header"):
        load_sachs(path)


def test_sachs_with_a_constant_column_is_refused_before_writing(tmp_path):
    frame = load_sachs()
    frame["PKA"] = 5.0
    path = tmp_path / "sachs.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    settings = SachsSettings(data_path=str(path), methods=("linear",), replicates=1, generated_rows=100)
    with pytest.raises(ValueError, match=r"split 0 have a constant column \(PKA\)"):
        run_sachs(settings, out, progress=False)
    assert not out.exists()
    tiny = tmp_path / "tiny.csv"
    load_sachs().iloc[:3].to_csv(tiny, index=False)
    with pytest.raises(ValueError, match="have 3 rows; a run needs at least 4"):
        run_sachs(SachsSettings(data_path=str(tiny), methods=("linear",), num_context=2), out, progress=False)


def test_scoring_refuses_a_constant_observational_column():
    network = load_linear_gaussian_network(TINY)
    dataset = make_network_dataset(network, num_context=60, num_query=20, num_interventional=20)
    dataset.data[:, 0] = 0.3  # a column with no spread has no standardized units
    with pytest.raises(ValueError, match="observational column 0 is constant"):
        score_dataset(LinearANM(), dataset)


def test_distribution_scores_refuse_non_finite_rows():
    rows = np.random.default_rng(0).normal(size=(20, 2))
    generated = rows.copy()
    generated[3, 1] = np.nan
    with pytest.raises(ValueError, match="the generated rows hold NaN or infinite values"):
        distribution_scores(generated, rows, Standardizer.fit(rows))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SachsSettings(methods=("linear",), replicates=0), "replicates must be >= 1; got 0"),
        (
            lambda: SachsSettings(methods=("linear",), num_context=2.5),
            "num_context must be an integer; got float",
        ),
        (lambda: SachsSettings(methods=("linear",), generated_rows=1), "generated_rows must be >= 2; got 1"),
        (
            lambda: SachsSettings(methods=("linear",), generated_rows=10**9),
            f"the {MAX_POOLED_ROWS:,} rows the median-heuristic bandwidth pools",
        ),
        (
            lambda: SachsSettings(methods=("linear",), graph_source="x"),
            "graph_source must be 'true' or 'inferred'",
        ),
        (
            lambda: SachsSettings(methods=("linear",), log_transform="yes"),
            "log_transform must be True or False",
        ),
        (lambda: SachsSettings(methods=("linear",), seed=-1), "seed must be between 0 and"),
        (lambda: SachsSettings(methods="linear"), "methods must be a sequence such as ('linear',)"),
        (lambda: SachsSettings(methods=("linear",), fip_steps=0), "fip_steps must be >= 1; got 0"),
        (
            lambda: SachsSettings(methods=("linear",), dowhy_quality="GREAT"),
            "dowhy_quality must be one of GOOD",
        ),
        (
            lambda: Ecoli70Settings(methods=("linear",), generated_rows=MAX_POOLED_ROWS),
            "with 400 held-out rows is more than",
        ),
        (lambda: Ecoli70Settings(methods=("linear",), num_context=1), "num_context must be >= 2; got 1"),
        (lambda: PaperSettings(methods=("linear",), num_query=0), "num_query must be >= 1; got 0"),
        (
            lambda: PaperSettings(methods=("linear",), scms_per_graph=0),
            "scms_per_graph must be between 1 and 99",
        ),
        (lambda: PaperSettings(methods=("linear",), node_counts=5), "node_counts must be a sequence such as"),
        (lambda: CSuiteSettings(methods=("linear",), names="lingauss"), "names must be a sequence such as"),
        (
            lambda: CSuiteSettings(methods=("linear",), replicates=True),
            "replicates must be an integer; got bool",
        ),
    ],
)
def test_settings_refuse_what_a_run_cannot_do(make, message):
    with pytest.raises(ValueError) as caught:
        make()
    assert message in str(caught.value)
