"""Sachs protein signalling: the observational CD3/CD28 condition (853 rows, 11 proteins) and its consensus DAG.

    from condfip_eval.sachs import consensus_graph, load_sachs
    data = load_sachs()                  # DataFrame [853, 11], raw concentrations
    graph = consensus_graph()            # networkx DiGraph over the 11 columns, 17 edges

Data: K. Sachs, O. Perez, D. Pe'er, D. A. Lauffenburger, G. P. Nolan, "Causal protein-signaling networks
derived from multiparameter single-cell data", Science 308(5721):523-529 (2005), condition 1 ("CD3, CD28").
The rows ship with this package (``condfip_eval/data/sachs_cd3cd28.csv``, see ``data/SOURCES.md`` there); a
user may pass their own CSV with the same 11 columns instead.

Graph: the 17-edge consensus network of Sachs et al. (2005) as in bnlearn's ``sachs`` network (cdt's own
18-edge target file has a cycle and is not used).

Protocol (the paper's Table 24): each replicate splits the rows at random into 400 context rows and the rest
held out; every method fits on the context rows with the consensus graph and generates ``generated_rows`` rows
(4,000; see :mod:`condfip_eval.distribution`); MMD^2 and energy distance to the held-out rows, with the
distance of the context rows themselves to the held-out rows as the floor. The raw values are heavy-tailed;
``log_transform`` applies ``log`` (all values are positive) before anything else, and the tables say which.

``graph_source="inferred"`` replaces the consensus graph by the DAG that the amortized graph model of the
condfip package infers from each split's context rows (the same DAG for every method); the records keep that
DAG's SHD, F1, AUROC and AUPRC against the consensus graph, and the run has its own folder.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from condfip_eval.distribution import (
    GENERATED_ROWS,
    check_generated_rows,
    distribution_scores,
    sample_from_context_noise,
)
from condfip_eval.methods import Method
from condfip_eval.metrics import Standardizer, mean_and_standard_error
from condfip_eval.paper import inferred_graph_sentence
from condfip_eval.reference import PAPER_SACHS_MMD
from condfip_eval.results import (
    ResultsDirectory,
    finished_records,
    read_result_file,
    result_file_error,
    write_text,
)
from condfip_eval.runs import graph_for, progress_bar, record_failure, resolve_graph_inferrer
from condfip_eval.settings import MethodSettings, check_integer
from condfip_eval.tables import display_name, format_mean_error, markdown_table, ordered_methods

__all__ = [
    "SACHS_COLUMNS",
    "SACHS_CONSENSUS_EDGES",
    "SachsSettings",
    "consensus_graph",
    "load_sachs",
    "read_sachs_documents",
    "run_sachs",
    "sachs_adjacency",
    "shipped_data_file",
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
SHIPPED_FILE = "sachs_cd3cd28.csv"
MAX_FILE_BYTES = 256 * 2**20  # a larger "Sachs file" is refused before it is read


def sachs_adjacency() -> np.ndarray:
    """The consensus DAG over ``SACHS_COLUMNS`` (``adjacency[i, j] = 1`` for ``i -> j``), [11, 11] int8."""
    adjacency = np.zeros((len(SACHS_COLUMNS), len(SACHS_COLUMNS)), dtype=np.int8)
    for source, target in SACHS_CONSENSUS_EDGES:
        adjacency[SACHS_COLUMNS.index(source), SACHS_COLUMNS.index(target)] = 1
    return adjacency


def consensus_graph() -> nx.DiGraph:
    """The 17-edge consensus DAG of Sachs et al. (2005) as a networkx DiGraph whose nodes are the 11 columns of
    :func:`load_sachs` (in that order), ready for ``CondFiP.infer(load_sachs(), consensus_graph())``."""
    graph = nx.DiGraph()
    graph.add_nodes_from(SACHS_COLUMNS)
    graph.add_edges_from(SACHS_CONSENSUS_EDGES)
    return graph


def shipped_data_file() -> Path:
    """The CSV of the 853 CD3/CD28 rows shipped inside this package."""
    return Path(str(resources.files("condfip_eval") / "data" / SHIPPED_FILE))


def _read_csv(source: Path) -> pd.DataFrame:
    """A CSV as a DataFrame; a file that is not one is a ValueError naming it."""
    if not source.exists():
        raise FileNotFoundError(f"Sachs data file {source} does not exist")
    if not source.is_file():
        raise ValueError(
            f"Sachs data file {source} is not a file; pass a CSV with the columns {','.join(SACHS_COLUMNS)}"
        )
    if source.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(
            f"Sachs data file {source} is {source.stat().st_size / 2**20:.0f} MiB, more than a table of 11 "
            f"columns needs ({MAX_FILE_BYTES // 2**20} MiB at most); is it the right file?"
        )
    with open(source, "rb") as file:
        head = file.read(1 << 16)
    try:
        # a character cut at the end of the first 64 KiB is fine
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        if b"\0" in head:
            raise UnicodeDecodeError("utf-8", head, head.index(b"\0"), head.index(b"\0") + 1, "NUL byte")
        return pd.read_csv(source)
    except UnicodeDecodeError:
        reason = "it is not UTF-8 text"
    except pd.errors.EmptyDataError:
        reason = "it is empty"
    except (pd.errors.ParserError, ValueError) as error:
        reason = " ".join(str(error).split())[:200]
    raise ValueError(
        f"Sachs data file {source} is not a CSV with the columns {','.join(SACHS_COLUMNS)}: {reason}"
    ) from None


def load_sachs(path: str | Path | None = None) -> pd.DataFrame:
    """The observational CD3/CD28 rows as a DataFrame [853, 11] with columns ``SACHS_COLUMNS`` (in that order),
    raw concentrations in float64.

    ``path=None`` reads the copy shipped with this package; a user's CSV is read whole and must hold exactly
    the 11 columns (any order; other columns are an error so that a wrong file cannot pass unnoticed) and
    finite numbers only. Every error names the file.
    """
    source = shipped_data_file() if path is None else Path(path)
    frame = _read_csv(source)
    missing = [name for name in SACHS_COLUMNS if name not in frame.columns]
    extra = [str(name)[:40] for name in frame.columns if name not in SACHS_COLUMNS]
    if missing or extra:
        raise ValueError(
            f"Sachs file {source} must have exactly the columns {','.join(SACHS_COLUMNS)}; "
            f"missing {missing or 'none'}, unexpected {extra[:5] or 'none'}{' ...' if len(extra) > 5 else ''}"
        )
    frame = frame[list(SACHS_COLUMNS)]
    if len(frame) == 0:
        raise ValueError(f"Sachs file {source} has no rows")
    for name in SACHS_COLUMNS:
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce") if column.dtype.kind in "biufO" else None
        if column.dtype.kind == "b" or numbers is None:
            bad = 0
        else:
            finite = np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
            if finite.all():
                continue
            bad = int(np.flatnonzero(~finite)[0])
        value = column.iloc[bad]
        shown = "a missing value" if pd.isna(value) else repr(str(value)[:20])
        raise ValueError(
            f"Sachs file {source} must hold finite numbers only; column {name} has {shown} in data row {bad + 1} "
            "after the header"
        )
    return frame.astype(np.float64).reset_index(drop=True)


@dataclass
class SachsSettings(MethodSettings):
    """A Sachs run: ``replicates`` random context/held-out splits (seeded), optional log transform."""

    data_path: str | None = None
    log_transform: bool = False
    num_context: int = 400
    replicates: int = 5
    graph_source: str = "true"  # "true": the consensus graph; "inferred": the graph model's DAG per split
    generated_rows: int = (
        GENERATED_ROWS  # rows each method generates per split, scored against the held-out ones
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.replicates = check_integer("replicates", self.replicates, 1)
        self.num_context = check_integer("num_context", self.num_context, 2)
        self.generated_rows = check_generated_rows(self.generated_rows, held_out=2)
        if self.graph_source not in ("true", "inferred"):
            raise ValueError(f"graph_source must be 'true' or 'inferred', got {self.graph_source!r}")
        if not isinstance(self.log_transform, bool):
            raise ValueError(f"log_transform must be True or False; got {self.log_transform!r}")

    def protocol(self) -> dict[str, Any]:  # the transform, context size and graph name the run's folder
        return {
            **self.method_protocol(),
            "replicates": self.replicates,
            "generated_rows": self.generated_rows,
        }


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
    if values.shape[0] < 4:
        raise ValueError(
            f"the Sachs data have {values.shape[0]} rows; a run needs at least 4 (2 context and 2 held-out rows)"
        )
    if not 2 <= settings.num_context <= values.shape[0] - 2:
        raise ValueError(
            f"context must be between 2 and {values.shape[0] - 2} rows; got {settings.num_context}"
        )
    check_generated_rows(settings.generated_rows, held_out=values.shape[0] - settings.num_context)
    for replicate in range(settings.replicates):  # every split's standardization exists (nothing written yet)
        context_rows, _ = _split(values.shape[0], settings.num_context, settings.seed, replicate)
        constant = np.flatnonzero(np.ptp(values[context_rows], axis=0) == 0)
        if constant.size:
            raise ValueError(
                f"the context rows of split {replicate} have a constant column ({frame.columns[constant[0]]}), "
                "which has no standardized units; use a file whose columns vary, or more context rows"
            )
    out = Path(out)
    directory = ResultsDirectory(out)
    directory.check_run("sachs", settings.protocol())  # nothing is written before every check passed
    folder = _folder(out, settings)
    consensus = sachs_adjacency()
    graph_inferrer, default_graph_model = resolve_graph_inferrer(settings.graph_source, graph_inferrer)

    names = ["floor", *settings.methods]
    records = {name: finished_records(folder / f"{name}.json", "replicates") for name in names}
    remaining = sum(settings.replicates - len(found) for found in records.values())
    built = settings.start_run(
        directory,
        "sachs",
        settings.protocol(),
        methods,
        needed=remaining > 0,
        graph_model=default_graph_model,
    )
    bar = progress_bar("sachs", remaining, progress=progress)
    for replicate in range(settings.replicates):
        context_rows, held_out_rows = _split(values.shape[0], settings.num_context, settings.seed, replicate)
        context, held_out = values[context_rows], values[held_out_rows]
        standardizer = Standardizer.fit(context)
        waiting = [n for n in names if not any(r["replicate"] == replicate for r in records[n])]
        if not waiting:
            continue
        adjacency, inferred = graph_for(consensus, context, graph_inferrer)
        for name in waiting:
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
                    generated = sample_from_context_noise(fitted, context, settings.generated_rows, rng)
                    record.update(distribution_scores(generated, held_out, standardizer))
                    record.update(fit_seconds=fitted.fit_seconds, sample_seconds=fitted.sample_seconds)
                    if inferred is not None:
                        record["graph_scores"] = inferred
                except Exception as error:  # recorded, the run goes on
                    record_failure(record, error, f"{name} failed on Sachs split {replicate}")
            records[name].append(record)
            document = {
                "method": name,
                "log_transform": settings.log_transform,
                "graph_source": settings.graph_source,
                "replicates": records[name],
            }
            directory.write_result(folder / f"{name}.json", document)
            bar.update(1)
    bar.close()
    return write_sachs_tables(folder)


SACHS_RUN_FOLDER = re.compile(r"(raw|log)-context-([1-9][0-9]*)(-inferred-graph)?")


def read_sachs_documents(folder: Path) -> list[dict[str, Any]]:
    """The method files of one Sachs run folder (the floor first, then the methods in table order), each checked
    against its name and its folder's (transform, graph): a ``ResultsDirError`` naming the file otherwise."""
    folder = Path(folder)
    match = SACHS_RUN_FOLDER.fullmatch(folder.name)
    if match is None:
        raise ValueError(f"{folder} is not a Sachs run folder (<raw|log>-context-<n>[-inferred-graph])")
    log_transform, graph_source = match.group(1) == "log", "inferred" if match.group(3) else "true"
    by_method = {}
    for path in folder.glob("*.json"):
        timings = () if path.stem == "floor" else ("fit_seconds", "sample_seconds")
        document = read_result_file(
            path, "replicates", numbers=("mmd2", "energy", *timings), method=path.stem
        )
        if document.get("log_transform") is not log_transform or document.get("graph_source") != graph_source:
            raise result_file_error(path, f"its transform or graph is not the {folder.name!r} of its folder")
        by_method[path.stem] = document
    floor = [by_method.pop("floor")] if "floor" in by_method else []
    return floor + [by_method[name] for name in ordered_methods(by_method)]


def write_sachs_tables(folder: Path) -> Path:
    """``tables.md`` of one Sachs run folder from its method files."""
    documents = read_sachs_documents(folder)
    match = SACHS_RUN_FOLDER.fullmatch(Path(folder).name)
    log_transform, inferred = match.group(1) == "log", match.group(3) is not None
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
