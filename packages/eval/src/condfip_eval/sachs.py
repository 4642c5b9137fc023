"""Sachs protein signalling: the observational CD3/CD28 condition (853 rows, 11 proteins) and its consensus DAG.

Data: K. Sachs, O. Perez, D. Pe'er, D. A. Lauffenburger, G. P. Nolan, "Causal protein-signaling networks
derived from multiparameter single-cell data", Science 308(5721):523-529 (2005), condition 1 ("CD3, CD28").
By default the rows are read from the file shipped in the ``cdt`` wheel (optional extra
``condfip-eval[sachs]``), ``cdt/data/resources/cyto_full_data.csv``, located through package metadata and read
as a plain CSV without importing cdt; its rows 0-852 are this condition (later rows are eight intervention
conditions). A user may pass their own CSV with the same 11 columns instead.

Graph: the 17-edge consensus network of Sachs et al. (2005) as in bnlearn's ``sachs`` network (cdt's own
18-edge target file has a cycle and is not used).

Protocol (the paper's Table 24): each replicate splits the rows at random into 400 context rows and the rest
held out; every method fits on the context rows with the consensus graph and generates as many rows as are
held out (see :mod:`condfip_eval.distribution`); MMD^2 and energy distance to the held-out rows, with the
distance of the context rows themselves to the held-out rows as the floor. The raw values are heavy-tailed;
``log_transform`` applies ``log`` (all values are positive) before anything else, and the tables say which.

``graph_source="inferred"`` replaces the consensus graph by the DAG that the amortized graph model of the
condfip package infers from each split's context rows (the same DAG for every method); the records keep that
DAG's SHD, F1, AUROC and AUPRC against the consensus graph, and the run has its own folder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from condfip_eval.distribution import distribution_scores, sample_from_abducted_noise
from condfip_eval.methods import METHOD_NAMES, Method
from condfip_eval.metrics import Standardizer, mean_and_standard_error
from condfip_eval.paper import graph_scores, inferred_graph_sentence, load_graph_inferrer
from condfip_eval.reference import PAPER_SACHS_MMD
from condfip_eval.results import ResultsDirectory, finished_records, read_json, write_json, write_text
from condfip_eval.settings import MethodSettings
from condfip_eval.tables import display_name, format_mean_error, markdown_table

__all__ = [
    "SACHS_COLUMNS",
    "SACHS_CONSENSUS_EDGES",
    "SachsSettings",
    "load_sachs",
    "run_sachs",
    "sachs_adjacency",
]

SACHS_COLUMNS = ("praf", "pmek", "plcg", "PIP2", "PIP3", "p44/42", "pakts473", "PKA", "PKC", "P38", "pjnk")
# Sachs et al. (2005) consensus network, 17 edges, as in bnlearn's "sachs" (Raf=praf, Mek=pmek, Erk=p44/42, Akt=pakts473)
SACHS_CONSENSUS_EDGES = (
    ("PKC", "PKA"),
    ("PKC", "praf"),
    ("PKA", "praf"),
    ("PKC", "pmek"),
    ("PKA", "pmek"),
    ("praf", "pmek"),
    ("pmek", "p44/42"),
    ("PKA", "p44/42"),
    ("p44/42", "pakts473"),
    ("PKA", "pakts473"),
    ("PKC", "P38"),
    ("PKA", "P38"),
    ("PKC", "pjnk"),
    ("PKA", "pjnk"),
    ("plcg", "PIP3"),
    ("plcg", "PIP2"),
    ("PIP3", "PIP2"),
)
CDT_FILE = "cdt/data/resources/cyto_full_data.csv"
CD3CD28_ROWS = 853


def sachs_adjacency() -> np.ndarray:
    """The consensus DAG over ``SACHS_COLUMNS`` (``adjacency[i, j] = 1`` for ``i -> j``), [11, 11] int8."""
    adjacency = np.zeros((len(SACHS_COLUMNS), len(SACHS_COLUMNS)), dtype=np.int8)
    for source, target in SACHS_CONSENSUS_EDGES:
        adjacency[SACHS_COLUMNS.index(source), SACHS_COLUMNS.index(target)] = 1
    return adjacency


def cdt_data_file() -> Path:
    """The Sachs file inside the installed ``cdt`` distribution (found through its metadata, not imported)."""
    try:
        distribution = metadata.distribution("cdt")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the Sachs data are read from the 'cdt' package: pip install 'condfip-eval[sachs]', or pass --data FILE.csv"
        ) from None
    path = Path(distribution.locate_file(CDT_FILE))
    if not path.is_file():
        raise FileNotFoundError(
            f"the installed cdt {distribution.version} has no {CDT_FILE}; pass --data FILE.csv"
        )
    return path


def load_sachs(path: str | Path | None = None) -> pd.DataFrame:
    """The observational CD3/CD28 rows as a DataFrame with columns ``SACHS_COLUMNS`` (in that order).

    ``path=None`` reads rows 0-852 of cdt's file; a user's CSV is read whole and must hold the 11 columns
    (any order; other columns are an error so that a wrong file cannot pass unnoticed).
    """
    source = cdt_data_file() if path is None else Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"Sachs data file {source} does not exist")
    frame = pd.read_csv(source)
    missing = [name for name in SACHS_COLUMNS if name not in frame.columns]
    extra = [str(name) for name in frame.columns if name not in SACHS_COLUMNS]
    if missing or extra:
        raise ValueError(
            f"Sachs file {source} must have exactly the columns {','.join(SACHS_COLUMNS)}; "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    frame = frame[list(SACHS_COLUMNS)]
    if path is None:
        frame = frame.iloc[:CD3CD28_ROWS]
    values = frame.to_numpy()
    if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values.astype(float)).all():
        raise ValueError(f"Sachs file {source} must hold finite numbers only")
    return frame.astype(np.float64).reset_index(drop=True)


@dataclass
class SachsSettings(MethodSettings):
    """A Sachs run: ``replicates`` random context/held-out splits (seeded), optional log transform."""

    data_path: str | None = None
    log_transform: bool = False
    num_context: int = 400
    replicates: int = 5
    graph_source: str = "true"  # "true": the consensus graph; "inferred": the graph model's DAG per split

    def protocol(self) -> dict[str, Any]:  # the transform, context size and graph name the run's folder
        return {**self.method_protocol(), "replicates": self.replicates}


def _folder(out: Path, settings: SachsSettings) -> Path:
    transform = "log" if settings.log_transform else "raw"
    suffix = "" if settings.graph_source == "true" else "-inferred-graph"
    return out / "sachs" / f"{transform}-context-{settings.num_context}{suffix}"


def _split(num_rows: int, num_context: int, seed: int, replicate: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replicate,))).permutation(num_rows)
    return order[:num_context], order[num_context:]


def run_sachs(
    settings: SachsSettings,
    out: str | Path,
    *,
    methods: dict[str, Method] | None = None,
    progress: bool = True,
    graph_inferrer: Any = None,
) -> Path:
    """Run (or resume) the Sachs comparison; returns the path of its tables file.

    ``graph_inferrer`` (data -> (probabilities, dag)) replaces condfip's ``infer_graph`` with
    ``graph_source="inferred"`` (tests pass a stub).
    """
    if settings.graph_source not in ("true", "inferred"):
        raise ValueError(f"graph_source must be 'true' or 'inferred', got {settings.graph_source!r}")
    frame = load_sachs(settings.data_path)
    values = frame.to_numpy()
    if settings.log_transform:
        if (values <= 0).any():
            raise ValueError("--log needs positive values; the Sachs file has values <= 0")
        values = np.log(values)
    if not 2 <= settings.num_context <= values.shape[0] - 2:
        raise ValueError(
            f"context must be between 2 and {values.shape[0] - 2} rows; got {settings.num_context}"
        )
    out = Path(out)
    ResultsDirectory(out).open_run("sachs", settings.protocol())
    folder = _folder(out, settings)
    consensus = sachs_adjacency()
    if settings.graph_source == "inferred" and graph_inferrer is None:
        graph_inferrer = load_graph_inferrer()

    names = ["floor", *settings.methods]
    records = {name: finished_records(folder / f"{name}.json", "replicates") for name in names}
    remaining = sum(settings.replicates - len(found) for found in records.values())
    built = settings.build_methods(methods, needed=remaining > 0)
    bar = tqdm(
        total=max(remaining, 0),
        desc="sachs",
        unit="fit",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for replicate in range(settings.replicates):
        context_rows, held_out_rows = _split(values.shape[0], settings.num_context, settings.seed, replicate)
        context, held_out = values[context_rows], values[held_out_rows]
        standardizer = Standardizer.fit(context)
        adjacency, inferred = consensus, None
        waiting = [n for n in names if not any(r["replicate"] == replicate for r in records[n])]
        if graph_inferrer is not None and waiting:
            probabilities, dag = graph_inferrer(context)
            adjacency = np.asarray(dag)
            inferred = graph_scores(consensus, np.asarray(probabilities), adjacency)
        for name in names:
            if name not in waiting:
                continue
            bar.set_postfix_str(f"{name} split {replicate}")
            record: dict[str, Any] = {"replicate": replicate}
            if name == "floor":
                record.update(distribution_scores(context, held_out, standardizer))
            else:
                try:
                    fitted = built[name].fit(context, adjacency)
                    rng = np.random.default_rng(
                        np.random.SeedSequence(settings.seed, spawn_key=(replicate, 1))
                    )
                    generated = sample_from_abducted_noise(fitted, context, held_out.shape[0], rng)
                    record.update(distribution_scores(generated, held_out, standardizer))
                    record.update(fit_seconds=fitted.fit_seconds, sample_seconds=fitted.sample_seconds)
                    if inferred is not None:
                        record["graph_scores"] = inferred
                except Exception as error:  # recorded, the run goes on
                    record["error"] = f"{type(error).__name__}: {error}"
                    tqdm.write(
                        f"{name} failed on Sachs split {replicate}: {record['error']}", file=sys.stderr
                    )
            records[name].append(record)
            document = {
                "method": name,
                "log_transform": settings.log_transform,
                "graph_source": settings.graph_source,
                "replicates": records[name],
            }
            write_json(folder / f"{name}.json", document)
            bar.update(1)
    bar.close()
    return write_sachs_tables(folder)


def write_sachs_tables(folder: Path) -> Path:
    """``tables.md`` of one Sachs run folder from its method files."""
    order = {name: position for position, name in enumerate(("floor", *METHOD_NAMES))}
    documents = sorted(
        (read_json(p) for p in folder.glob("*.json")), key=lambda d: order.get(d["method"], 99)
    )
    log_transform = documents[0]["log_transform"] if documents else False
    inferred = bool(documents) and documents[0].get("graph_source", "true") == "inferred"
    rows = []
    for document in documents:
        ok = [r for r in document["replicates"] if "error" not in r]
        failed = "*" if len(ok) < len(document["replicates"]) else ""
        cells = []
        for key in ("mmd2", "energy"):
            values = [r[key] for r in ok]
            cells.append(
                (format_mean_error(*mean_and_standard_error(values), digits=4) if values else "—") + failed
            )
        seconds = [r["fit_seconds"] + r["sample_seconds"] for r in ok if "fit_seconds" in r]
        label = "context rows (floor)" if document["method"] == "floor" else display_name(document["method"])
        rows.append([label, *cells, f"{np.mean(seconds):.3g}" if seconds else "—", str(len(ok))])
    if not inferred:
        for method, value in PAPER_SACHS_MMD.items():
            rows.append([f"{method} (paper)", f"{value:.4f}", "—", "—", "—"])
    transform = "log-transformed values" if log_transform else "raw values (no log transform)"
    graph = "Consensus graph of Sachs et al. (2005), 17 edges."
    if inferred:
        graph = inferred_graph_sentence(
            documents, "the 17-edge consensus graph of Sachs et al. (2005)", unit="split"
        )
    text = "\n".join(
        [
            f"# Sachs (CD3/CD28, {transform}{', inferred graph' if inferred else ''}), generated vs held-out rows",
            "",
            "Unbiased MMD^2 (Gaussian kernel, median-heuristic bandwidth) and energy distance in the context rows' "
            "standardized units, mean (s.e.) over random context/held-out splits; the floor is the distance of "
            f"the context rows themselves to the held-out rows. {graph} "
            + (
                ""
                if inferred
                else "The paper's row reports its MMD (its estimator and units may differ from ours)."
            ),
            "",
            markdown_table(["method", "MMD^2", "energy distance", "seconds / split", "splits"], rows),
        ]
    )
    path = folder / "tables.md"
    write_text(path, text + "\n")
    return path
