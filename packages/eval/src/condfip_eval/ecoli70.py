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
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from condfip_eval.distribution import (
    GENERATED_ROWS,
    check_generated_rows,
    distribution_scores,
    sample_from_context_noise,
)
from condfip_eval.methods import Method
from condfip_eval.methods.base import generate_in_order
from condfip_eval.metrics import Standardizer, mean_and_standard_error
from condfip_eval.paper import inferred_graph_sentence
from condfip_eval.results import (
    ResultsDirectory,
    finished_records,
    read_result_file,
    result_file_error,
    write_text,
)
from condfip_eval.runs import graph_for, progress_bar, record_failure, resolve_graph_inferrer
from condfip_eval.scoring import TASKS, score_fitted
from condfip_eval.settings import MethodSettings, check_integer
from condfip_eval.tables import display_name, format_mean_error, markdown_table, ordered_methods
from scm_gen import BenchmarkDataset
from scm_gen.benchmark import dataset_rng
from scm_gen.scm import draw_between_deciles

__all__ = [
    "Ecoli70Settings",
    "LinearGaussianNetwork",
    "load_linear_gaussian_network",
    "read_ecoli70_documents",
    "run_ecoli70",
]

PGMPY_FILE = "pgmpy/utils/example_models/ecoli70.json"
QUERY_ROWS = 400  # query rows per dataset: the four tasks' rows, and the held-out rows of the distances


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


class _NotANetwork(ValueError):
    """A network file that is not one (already names the file and the reason)."""


def _not_a_network(source: Path, reason: str) -> ValueError:
    reason = " ".join(reason.split())
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    return _NotANetwork(f"{source} is not a linear-Gaussian network in pgmpy's JSON format: {reason}")


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


def _number(source: Path, what: str, value: Any) -> float:
    """A JSON number (not a bool, not a string) as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _not_a_network(source, f"{what} is {repr(value)[:30]}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _not_a_network(source, f"{what} is {number}, not a finite number")
    return number


def _first_number(source: Path, what: str, value: Any) -> float:
    """pgmpy writes each coefficient and variance as a one-element list."""
    if not isinstance(value, list) or len(value) != 1:
        raise _not_a_network(source, f"{what} must be a list of one number; got {repr(value)[:30]}")
    return _number(source, what, value[0])


def load_linear_gaussian_network(path: str | Path | None = None) -> LinearGaussianNetwork:
    """Parse a linear-Gaussian network in pgmpy's JSON format (``nodes``, ``arcs``, ``cpds``).

    Every error names the file and says what is wrong in one short line (never the file's content): nodes
    must be distinct names, every coefficient a finite number, every variance positive, and the arcs a DAG
    that agrees with the parents of the cpds.
    """
    source = pgmpy_ecoli70_file() if path is None else Path(path)
    document = _read_document(source)
    if not isinstance(document, dict):
        raise _not_a_network(source, f"it holds a JSON {type(document).__name__}, not an object")
    try:
        if not isinstance(document["nodes"], list) or not all(isinstance(n, str) for n in document["nodes"]):
            raise _not_a_network(source, "'nodes' must be a list of node names")
        nodes = tuple(document["nodes"])
        repeated = sorted({node for node in nodes if nodes.count(node) > 1})
        if repeated:
            raise _not_a_network(source, f"node {repeated[0][:40]!r} is listed more than once")
        cpds = document["cpds"]
        index = {name: position for position, name in enumerate(nodes)}
        d = len(nodes)
        weights, intercepts, noise_std = np.zeros((d, d)), np.zeros(d), np.zeros(d)
        for name in nodes:
            cpd, j = cpds[name], index[name]
            coefficients = cpd["coefficients"]
            intercepts[j] = _first_number(
                source, f"the intercept of {name[:40]!r}", coefficients["(Intercept)"]
            )
            for parent in cpd["parents"]:
                if parent == name:
                    raise _not_a_network(source, f"node {name[:40]!r} is its own parent")
                weights[index[parent], j] = _first_number(
                    source, f"the coefficient of {parent[:40]!r} in {name[:40]!r}", coefficients[parent]
                )
            variance = _first_number(source, f"the variance of {name[:40]!r}", cpd["variance"])
            if variance <= 0:
                raise _not_a_network(
                    source, f"the variance of {name[:40]!r} is {variance}; every variance must be positive"
                )
            noise_std[j] = math.sqrt(variance)
        arcs = {(index[a], index[b]) for a, b in document["arcs"]}
    except _NotANetwork:
        raise
    except KeyError as error:
        raise _not_a_network(source, f"missing entry {str(error.args[0])[:60]!r}") from None
    except (TypeError, ValueError, IndexError, AttributeError) as error:
        raise _not_a_network(source, f"malformed entry ({type(error).__name__}: {error})") from None
    if d == 0:
        raise _not_a_network(source, "it has no nodes")
    adjacency = np.zeros((d, d), dtype=np.int8)
    for parent, child in arcs:
        adjacency[parent, child] = 1
    if not np.array_equal(adjacency != 0, weights != 0):
        raise ValueError(f"{source}: the arcs and the parents of the cpds disagree")
    graph = nx.DiGraph(adjacency)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [nodes[i][:20] for i, _ in nx.find_cycle(graph)]
        raise _not_a_network(source, f"its arcs have a cycle ({' -> '.join([*cycle, cycle[0]])})")
    return LinearGaussianNetwork(nodes, adjacency, weights, intercepts, noise_std)


def make_network_dataset(
    network: LinearGaussianNetwork,
    *,
    num_context: int,
    num_query: int = QUERY_ROWS,
    num_interventional: int = 400,
    seed: int = 0,
    replicate: int = 0,
) -> BenchmarkDataset:
    """One dataset of the network, laid out like scm-gen's benchmark datasets."""

    def finite(rows: np.ndarray) -> np.ndarray:
        if not np.isfinite(rows).all():
            raise ValueError(
                "sampling the network gives values beyond float64's range: its coefficients or variances are "
                "too large"
            )
        return rows

    rng = dataset_rng(seed, replicate)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by finite()
        data, noise = network.sample(num_context + num_query, rng)
        finite(data)
        node = int(rng.integers(len(network.nodes)))
        value = draw_between_deciles(data[:, node], rng)
        interventional_data, interventional_noise = network.sample(num_interventional, rng, {node: value})
        counterfactual = finite(network.generate(noise[num_context:], {node: value}))
        finite(interventional_data)
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

    def __post_init__(self) -> None:
        super().__post_init__()
        self.replicates = check_integer("replicates", self.replicates, 1)
        self.num_context = check_integer("num_context", self.num_context, 2)
        self.generated_rows = check_generated_rows(self.generated_rows, held_out=QUERY_ROWS)
        if self.graph_source not in ("true", "inferred"):
            raise ValueError(f"graph_source must be 'true' or 'inferred', got {self.graph_source!r}")

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


ECOLI70_RUN_FOLDER = re.compile(r"context-([1-9][0-9]*)(-inferred-graph)?")


def read_ecoli70_documents(folder: Path) -> list[dict[str, Any]]:
    """The method files of one ecoli70 run folder in table order, each checked against its name and its
    folder's graph: a ``ResultsDirError`` naming the file otherwise."""
    folder = Path(folder)
    match = ECOLI70_RUN_FOLDER.fullmatch(folder.name)
    if match is None:
        raise ValueError(f"{folder} is not an ecoli70 run folder (context-<n>[-inferred-graph])")
    graph_source = "inferred" if match.group(2) else "true"
    by_method = {}
    for path in folder.glob("*.json"):
        document = read_result_file(
            path,
            "replicates",
            numbers=("mmd2", "energy", "fit_seconds", "sample_seconds"),
            tasks=TASKS,
            method=path.stem,
        )
        if document.get("graph_source") != graph_source:
            raise result_file_error(path, f"its graph is not the {folder.name!r} of its folder")
        by_method[path.stem] = document
    return [by_method[name] for name in ordered_methods(by_method)]


def write_ecoli70_tables(folder: Path) -> Path:
    documents = read_ecoli70_documents(folder)
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
    inferred = ECOLI70_RUN_FOLDER.fullmatch(Path(folder).name).group(2) is not None
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
