"""ecoli70: the linear-Gaussian gene network of Opgen-Rhein and Strimmer (2007), 46 nodes, 70 edges.

Parameters as shipped by ``pgmpy`` (optional extra ``ecoli70``) in
``pgmpy/utils/example_models/ecoli70.json`` (bnlearn's network repository), located through package metadata and
read as plain JSON without importing pgmpy; a user may pass a file of the same format. Each node is
``x_j = intercept_j + sum_i w_ij x_i + N(0, variance_j)``.

Datasets are sampled from these parameters, so the true noise is known and the four tasks of the paper's
protocol are scored exactly as on the synthetic grid (standardized RMSE), plus MMD^2 and energy distance of
rows generated from resampled abducted noise against the query rows. Replicate ``r`` of a run seeded ``seed``
draws from ``SeedSequence(seed, spawn_key=(r,))``; the intervened node is drawn uniformly and its value from
``U(q10, q90)`` of its observational rows, as in scm-gen.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from condfip_eval.distribution import GENERATED_ROWS, distribution_scores, sample_from_context_noise
from condfip_eval.methods import Method
from condfip_eval.methods.base import generate_in_order
from condfip_eval.metrics import Standardizer, mean_and_standard_error
from condfip_eval.paper import inferred_graph_sentence
from condfip_eval.results import ResultsDirectory, finished_records, read_json, write_text
from condfip_eval.runs import graph_for, progress_bar, record_failure, resolve_graph_inferrer
from condfip_eval.scoring import TASKS, score_fitted
from condfip_eval.settings import MethodSettings
from condfip_eval.tables import display_name, format_mean_error, markdown_table, ordered_methods
from scm_gen import BenchmarkDataset
from scm_gen.benchmark import dataset_rng
from scm_gen.scm import draw_between_deciles

__all__ = ["Ecoli70Settings", "LinearGaussianNetwork", "load_linear_gaussian_network", "run_ecoli70"]

PGMPY_FILE = "pgmpy/utils/example_models/ecoli70.json"


@dataclass(frozen=True)
class LinearGaussianNetwork:
    """``x_j = intercept_j + sum_i weights[i, j] x_i + noise_std_j * N(0, 1)``; ``adjacency = weights != 0``."""

    nodes: tuple[str, ...]
    adjacency: np.ndarray  # [d, d] int8, adjacency[i, j] = 1 for i -> j
    weights: np.ndarray  # [d, d]
    intercepts: np.ndarray  # [d]
    noise_std: np.ndarray  # [d]

    def generate(self, noise: np.ndarray, interventions: dict[int, float] | None = None) -> np.ndarray:
        """Rows [n, d] from noise [n, d] (in the units of x) under optional hard interventions."""
        return generate_in_order(
            self.adjacency, noise, lambda j, x: self.intercepts[j] + x @ self.weights[:, j], interventions
        )

    def sample(
        self, num_rows: int, rng: np.random.Generator, interventions=None
    ) -> tuple[np.ndarray, np.ndarray]:
        noise = rng.standard_normal((num_rows, len(self.nodes))) * self.noise_std
        return self.generate(noise, interventions), noise


def pgmpy_ecoli70_file() -> Path:
    """pgmpy's ecoli70 parameter file, found through the installed distribution's metadata (pgmpy not imported)."""
    try:
        distribution = metadata.distribution("pgmpy")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the ecoli70 parameters are read from the 'pgmpy' package: pip install pgmpy (or pip install "
            "'./packages/eval[ecoli70]' in a clone of the repository), or pass --model FILE.json"
        ) from None
    path = Path(distribution.locate_file(PGMPY_FILE))
    if not path.is_file():
        raise FileNotFoundError(
            f"the installed pgmpy {distribution.version} has no {PGMPY_FILE}; pass --model FILE.json"
        )
    return path


MAX_FILE_BYTES = 64 * 2**20  # a larger "network file" is refused before it is read


def _not_a_network(source: Path, reason: str) -> ValueError:
    reason = " ".join(reason.split())
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    return ValueError(f"{source} is not a linear-Gaussian network in pgmpy's JSON format: {reason}")


def _read_document(source: Path) -> Any:
    if not source.exists():
        raise FileNotFoundError(f"network file {source} does not exist")
    if not source.is_file():
        raise _not_a_network(source, "it is not a file")
    if source.stat().st_size > MAX_FILE_BYTES:
        raise _not_a_network(
            source, f"it is {source.stat().st_size / 2**20:.0f} MiB (at most {MAX_FILE_BYTES // 2**20})"
        )
    try:
        return json.loads(source.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise _not_a_network(source, "it is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise _not_a_network(
            source, f"it is not JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None


def load_linear_gaussian_network(path: str | Path | None = None) -> LinearGaussianNetwork:
    """Parse a linear-Gaussian network in pgmpy's JSON format (``nodes``, ``arcs``, ``cpds``).

    Every error names the file and says what is wrong in one short line (never the file's content).
    """
    source = pgmpy_ecoli70_file() if path is None else Path(path)
    document = _read_document(source)
    try:
        nodes = tuple(str(node) for node in document["nodes"])
        cpds = document["cpds"]
        index = {name: position for position, name in enumerate(nodes)}
        d = len(nodes)
        weights, intercepts, noise_std = np.zeros((d, d)), np.zeros(d), np.zeros(d)
        for name in nodes:
            cpd, j = cpds[name], index[name]
            coefficients = cpd["coefficients"]
            intercepts[j] = float(coefficients["(Intercept)"][0])
            for parent in cpd["parents"]:
                weights[index[parent], j] = float(coefficients[parent][0])
            noise_std[j] = math.sqrt(float(cpd["variance"][0]))
        arcs = {(index[a], index[b]) for a, b in document["arcs"]}
    except KeyError as error:
        raise _not_a_network(source, f"missing entry {str(error.args[0])[:60]!r}") from None
    except (TypeError, ValueError, IndexError, AttributeError) as error:
        raise _not_a_network(source, f"malformed entry ({type(error).__name__}: {error})") from None
    if d == 0:
        raise _not_a_network(source, "it has no nodes")
    if not (np.isfinite(weights).all() and np.isfinite(intercepts).all() and np.isfinite(noise_std).all()):
        raise _not_a_network(source, "a coefficient or variance is not a finite number")
    adjacency = np.zeros((d, d), dtype=np.int8)
    for parent, child in arcs:
        adjacency[parent, child] = 1
    if not np.array_equal(adjacency != 0, weights != 0):
        raise ValueError(f"{source}: the arcs and the parents of the cpds disagree")
    return LinearGaussianNetwork(nodes, adjacency, weights, intercepts, noise_std)


def make_network_dataset(
    network: LinearGaussianNetwork,
    *,
    num_context: int,
    num_query: int = 400,
    num_interventional: int = 400,
    seed: int = 0,
    replicate: int = 0,
) -> BenchmarkDataset:
    """One dataset of the network, laid out like scm-gen's benchmark datasets."""
    rng = dataset_rng(seed, replicate)
    data, noise = network.sample(num_context + num_query, rng)
    node = int(rng.integers(len(network.nodes)))
    value = draw_between_deciles(data[:, node], rng)
    interventional_data, interventional_noise = network.sample(num_interventional, rng, {node: value})
    counterfactual = network.generate(noise[num_context:], {node: value})
    return BenchmarkDataset(
        adjacency=network.adjacency,
        data=data,
        noise=noise,
        num_context=num_context,
        intervention_node=node,
        intervention_value=value,
        interventional_data=interventional_data,
        interventional_noise=interventional_noise,
        counterfactual_data=counterfactual,
        metadata={
            "network": "ecoli70",
            "seed": seed,
            "replicate": replicate,
            "intervened": network.nodes[node],
        },
    )


@dataclass
class Ecoli70Settings(MethodSettings):
    model_path: str | None = None
    num_context: int = 400
    replicates: int = 3
    graph_source: str = "true"  # "true": the network's graph; "inferred": the graph model's DAG per dataset
    generated_rows: int = GENERATED_ROWS  # rows each method generates, scored against the query rows

    def protocol(self) -> dict[str, Any]:  # the context size and the graph name the run's folder
        return {
            **self.method_protocol(),
            "replicates": self.replicates,
            "generated_rows": self.generated_rows,
        }


def run_ecoli70(
    settings: Ecoli70Settings,
    out: str | Path,
    *,
    methods: dict[str, Method] | None = None,
    progress: bool = True,
    graph_inferrer: Any = None,
) -> Path:
    """Run (or resume) every method on ``replicates`` ecoli70 datasets; returns the path of the tables file.

    ``graph_source="inferred"``: every method gets the DAG that condfip's graph model (or ``graph_inferrer``,
    data -> (probabilities, dag)) infers from each dataset's context rows, in its own folder.
    """
    if settings.graph_source not in ("true", "inferred"):
        raise ValueError(f"graph_source must be 'true' or 'inferred', got {settings.graph_source!r}")
    network = load_linear_gaussian_network(settings.model_path)
    out = Path(out)
    directory = ResultsDirectory(out)
    directory.check_run("ecoli70", settings.protocol())  # nothing is written before every check passed
    suffix = "" if settings.graph_source == "true" else "-inferred-graph"
    folder = out / "ecoli70" / f"context-{settings.num_context}{suffix}"
    graph_inferrer, default_graph_model = resolve_graph_inferrer(settings.graph_source, graph_inferrer)
    records = {name: finished_records(folder / f"{name}.json", "replicates") for name in settings.methods}
    remaining = sum(settings.replicates - len(found) for found in records.values())
    built = settings.start_run(
        directory,
        "ecoli70",
        settings.protocol(),
        methods,
        needed=remaining > 0,
        graph_model=default_graph_model,
    )
    bar = progress_bar("ecoli70", remaining, progress=progress)
    for replicate in range(settings.replicates):
        waiting = [n for n in settings.methods if not any(r["replicate"] == replicate for r in records[n])]
        if not waiting:
            continue
        dataset = make_network_dataset(
            network, num_context=settings.num_context, seed=settings.seed, replicate=replicate
        )
        standardizer = Standardizer.fit(dataset.context_data)
        adjacency, inferred = graph_for(dataset.adjacency, dataset.context_data, graph_inferrer)
        for name in waiting:
            bar.set_postfix_str(f"{name} replicate {replicate}")
            record: dict[str, Any] = {"replicate": replicate}
            try:
                fitted = built[name].fit(dataset.context_data, adjacency)
                record.update(score_fitted(fitted, dataset))
                rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(replicate, 1)))
                generated = sample_from_context_noise(
                    fitted, dataset.context_data, settings.generated_rows, rng
                )
                record.update(distribution_scores(generated, dataset.query_data, standardizer))
            except Exception as error:  # recorded, the run goes on
                record_failure(record, error, f"{name} failed on ecoli70 replicate {replicate}")
            if inferred is not None:
                record["graph_scores"] = inferred
            records[name].append(record)
            document = {"method": name, "graph_source": settings.graph_source, "replicates": records[name]}
            directory.write_result(folder / f"{name}.json", document)
            bar.update(1)
    bar.close()
    return write_ecoli70_tables(folder)


def write_ecoli70_tables(folder: Path) -> Path:
    by_method = {document["method"]: document for document in map(read_json, folder.glob("*.json"))}
    documents = [by_method[name] for name in ordered_methods(by_method)]
    rows = []
    for document in documents:
        ok = [r for r in document["replicates"] if "error" not in r]
        mark = "*" if len(ok) < len(document["replicates"]) else ""
        cells = []
        for task in TASKS:
            values = [r["rmse"][task] for r in ok]
            cells.append((format_mean_error(*mean_and_standard_error(values)) if values else "—") + mark)
        for key in ("mmd2", "energy"):
            values = [r[key] for r in ok]
            cells.append(
                (format_mean_error(*mean_and_standard_error(values), digits=4) if values else "—") + mark
            )
        seconds = [r["fit_seconds"] + r["sample_seconds"] for r in ok]
        rows.append([display_name(document["method"]), *cells, f"{np.mean(seconds):.3g}" if seconds else "—"])
    header = [
        "method",
        "noise",
        "generation",
        "interventional",
        "counterfactual",
        "MMD^2",
        "energy",
        "seconds",
    ]
    inferred = bool(documents) and documents[0].get("graph_source", "true") == "inferred"
    graph = (
        inferred_graph_sentence(documents, "the network's 70-edge graph")
        if inferred
        else "Every method gets the network's true graph."
    )
    text = "\n".join(
        [
            "# ecoli70 (linear-Gaussian, 46 nodes, 70 edges; pgmpy's parameters)"
            + (", inferred graph" if inferred else ""),
            "",
            "RMSE of the four tasks in standardized units (as in the paper tables), and MMD^2 / energy distance "
            "of rows generated from resampled abducted noise vs the query rows, mean (s.e.) over replicates. "
            f"Seconds: fitting plus the four tasks, per dataset. {graph}",
            "",
            markdown_table(header, rows),
        ]
    )
    path = folder / "tables.md"
    write_text(path, text + "\n")
    return path
