"""``CondFiP``: a pretrained Cond-FiP network that infers an SCM from a table and its graph, without training.

Axis legend: b datasets, n rows, d nodes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from condfip.api.arguments import checked_flag, checked_progress, is_integer
from condfip.api.bootstrap import BootstrapResult, Statistic, bootstrap_statistic
from condfip.api.engine import DecoderRunner, EncoderAbduction, model_dtype, resolve_device, rows_per_chunk
from condfip.api.graph_inference import infer_graph
from condfip.api.graphs import adjacency_from_user
from condfip.api.inferred_scm import InferredSCM
from condfip.api.positive import ModelUnits, PositiveColumns, check_positive, positive_mask
from condfip.api.progress import progress_bar
from condfip.api.tables import context_from_user
from condfip.core.dags import topological_levels
from condfip.core.row_order import canonical_row_order
from condfip.graph import DEFAULT_GRAPH_MODEL
from condfip.io.hub import push_checkpoint
from condfip.model import CondFiPModel
from condfip.model.decoder import ConditionalDecoder
from condfip.model.prepared_decoder import StageCallback

INFER_GRAPH = "infer"  # graph="infer": the amortized graph model infers the graph from the data


@dataclasses.dataclass
class _Prepared:
    """One dataset checked and standardized, ready for the network."""

    context: np.ndarray  # [n, d] user units
    columns: list[Hashable]
    index: pd.Index
    adjacency: np.ndarray  # [d, d] int8
    units: ModelUnits  # user units <-> standardized (log of the positive columns first)
    standard: np.ndarray  # [n, d] standardized context

    @functools.cached_property
    def row_order(self) -> np.ndarray:
        """[n] the rows' canonical order (``condfip.core.row_order``), from the standardized rows: a column
        rescaled by a power of two, or a positive column given as its logarithm, keeps it (and every answer).
        Computed on first use: the adapted path's."""
        return canonical_row_order(self.standard)

    @functools.cached_property
    def ordered_standard(self) -> np.ndarray:
        """[n, d] the standardized rows in their canonical order, gathered once for the embedding and the fit."""
        return self.standard[self.row_order]

    def network_rows(self, adapt: bool) -> np.ndarray:
        """The standardized rows [n, d] the network and the fit read: in the canonical order on the adapted path,
        so the same rows in any order give the same fit; as given on the zero-shot path (the paper's method)."""
        return self.ordered_standard if adapt else self.standard


def _slice_embedding(embedding: Any, index: int, num_nodes: int) -> Any:
    """Dataset ``index`` of a batched DatasetEmbedding, without its padded nodes: fields [b, d, e] -> [1, d', e]."""
    fields = {
        f.name: getattr(embedding, f.name)[index : index + 1, :num_nodes]
        for f in dataclasses.fields(embedding)
    }
    return type(embedding)(**fields)


class CondFiP:
    """A Cond-FiP network wrapped for users: tables and graphs in, inferred SCMs (``InferredSCM``) out.

    ``device="auto"`` runs on CUDA when available. ``chunk_size`` (rows per chunk, default: 16,384
    values / d on the CPU, 65,536 / d on CUDA) bounds memory for any context size: the dataset embedding and every decoder pass run on
    chunks of rows. ``graph_model`` infers the graph when ``infer`` is given ``graph="infer"``: a
    ``condfip.graph.GraphModel`` or a shipped name, folder or Hub repo id (loaded on first use).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "auto",
        chunk_size: int | None = None,
        graph_model: Any = DEFAULT_GRAPH_MODEL,
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        rows_per_chunk(chunk_size, 1)  # validates
        self.chunk_size = chunk_size
        self.graph_model = graph_model

    # ----------------------------------------------------------------------------------------- checkpoints
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = "small",
        *,
        device: str | torch.device = "auto",
        chunk_size: int | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        graph_model: Any = DEFAULT_GRAPH_MODEL,
    ) -> CondFiP:
        """Load weights shipped with the package by name (``"small"``, offline), a local folder written by
        ``save_pretrained``, or a Hugging Face Hub repo id (``"owner/name"``, through the standard cache;
        offline only a cached copy loads, otherwise a ValueError says so)."""
        model = CondFiPModel.from_pretrained(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        return cls(
            model,
            device=device,
            chunk_size=chunk_size,
            graph_model=graph_model,
        )

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``directory`` (loadable by ``from_pretrained``)."""
        self.model.save_pretrained(directory)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload Cond-FiP checkpoint",
        api: Any = None,
    ) -> Any:
        """Upload the checkpoint (and a model card) to the Hugging Face Hub repo ``repo_id``, creating it if needed.

        ``api``: a ``huggingface_hub.HfApi`` (default) or any object with ``create_repo`` and ``upload_folder``.
        """
        return push_checkpoint(
            self.save_pretrained,
            repo_id,
            api=api,
            private=private,
            token=token,
            commit_message=commit_message,
        )

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def max_nodes(self) -> int | None:
        """The most nodes the checkpoint supports, or None when it has no limit."""
        return getattr(self.config, "max_nodes", None)

    @property
    def can_adapt(self) -> bool:
        """Whether ``infer`` can adapt to the rows with this model (its default): a Cond-FiP network in float32
        or float64. Other models infer zero-shot, with a warning."""
        decoder = getattr(self.model, "decoder", None)
        dtype = model_dtype(self.model)
        return isinstance(decoder, ConditionalDecoder) and dtype in (torch.float32, torch.float64)

    @property
    def can_refit_readout(self) -> bool:
        """Deprecated name of ``can_adapt``."""
        return self.can_adapt

    def __repr__(self) -> str:
        return f"CondFiP(config={self.config!r}, device={str(self.device)!r})"

    # -------------------------------------------------------------------------------------------- inference
    def _prepare(
        self, data: object, graph: object, columns: Sequence[Hashable] | None, positive: object = False
    ) -> _Prepared:
        context, names, standardization = context_from_user(data, columns)
        if self.max_nodes is not None and len(names) > self.max_nodes:
            raise ValueError(
                f"data has {len(names)} columns but this checkpoint supports at most {self.max_nodes} nodes; "
                "use a checkpoint without that limit or fewer columns"
            )
        mask = positive_mask(positive, names)
        if mask.any():
            check_positive(context, mask, names, "data")
            units = ModelUnits.fit(context, mask, names)
        else:
            units = ModelUnits(standardization, mask)
        if isinstance(graph, str) and graph != INFER_GRAPH:
            raise ValueError(
                f"graph {graph!r} is not understood; pass {INFER_GRAPH!r} (the graph model infers the DAG from the "
                "rows), a networkx DiGraph, an adjacency matrix or a list of (source, target) edges"
            )
        if isinstance(graph, str) and graph == INFER_GRAPH:
            _, graph = infer_graph(
                units.to_model_scale(context),
                model=self.graph_model,
                columns=names,
                device=self.device,
                chunk_size=self.chunk_size,
            )
        adjacency = adjacency_from_user(graph, names)
        index = data.index if isinstance(data, pd.DataFrame) else pd.RangeIndex(context.shape[0])
        return _Prepared(context, names, index, adjacency, units, units.data_to_standard(context))

    def _inferred(
        self,
        prepared: _Prepared,
        parents: torch.Tensor,
        embedding: Any,
        adapt: bool,
        on_stage: StageCallback | None = None,
    ) -> InferredSCM:
        chunk_rows = rows_per_chunk(self.chunk_size, len(prepared.columns), self.device)
        levels = topological_levels(prepared.adjacency) if _evaluates_node_subsets(self.model) else None
        runner = DecoderRunner(self.model, parents, embedding, self.device, chunk_rows, levels)
        rows = prepared.network_rows(adapt)  # [n, d]: the rows ``embedding`` was computed from
        if adapt:
            runner.adapt(rows, on_stage)
        encoder = None
        if EncoderAbduction.available(self.model):
            encoder = EncoderAbduction(self.model, parents, rows, self.device, chunk_rows)
        return InferredSCM(
            runner=runner,
            encoder=encoder,
            columns=prepared.columns,
            adjacency=prepared.adjacency,
            units=prepared.units,
            context=prepared.context,
            context_index=prepared.index,
            context_standard=prepared.standard,
            row_order=prepared.row_order if adapt else None,
        )

    def _parents(self, adjacency: np.ndarray) -> torch.Tensor:
        # parents[b, i, j] is true when j -> i: the transpose of the adjacency
        return torch.as_tensor(adjacency.T != 0, device=self.device)[None]  # [1, d, d]

    @torch.inference_mode()
    def infer(
        self,
        data: object,
        graph: object,
        *,
        columns: Sequence[Hashable] | None = None,
        chunk_size: int | None = None,
        zero_shot: bool = False,
        refit_readout: bool | None = None,
        positive: PositiveColumns = False,
        progress: bool | None = None,
    ) -> InferredSCM:
        """Infer the SCM behind ``data`` given its causal ``graph``, adapted to its rows.

        data: a DataFrame of numeric columns, or an array [n, d] (``columns`` names it; default ``x0..``).
        graph: a networkx DiGraph over the column names, an adjacency array [d, d] or DataFrame
        (``adjacency[i, j] = 1`` for ``i -> j``), or a list of ``(source, target)`` edges; or ``"infer"``: the
        DAG of ``condfip.infer_graph`` at the graph model's default threshold (``graph_model`` of this object; for
        another threshold or known edges, call ``infer_graph`` and pass its DAG). ``scm.graph`` shows it.
        The data are standardized per column inside; all results come back in the user's units. The order of
        the rows does not matter: the adapted path reads them in a canonical order fixed by their values
        (``scm.row_order``; ``condfip.core.row_order``); ``zero_shot=True`` reads them as given.

        By default the network's ``F_hat`` is adapted to these rows in closed form
        (``condfip.model.adaptation``): per node, a regression of the column on the decoder's features of its
        parents, the zero-shot prediction, the parents' values, their products of degree two and Gaussian-kernel
        features of them (a Nyström basis, joint or additive over the parents, its length scale chosen per
        node), each group weighted by its marginal likelihood, so a linear mechanism is fitted as least squares
        fits it and a smooth one as a kernel ridge does, while with few rows the pretrained prediction
        dominates. With fewer
        than ``MIN_ADAPTATION_ROWS`` (10) rows it warns and stays zero-shot. ``zero_shot=True`` is the paper's
        method, unchanged. ``refit_readout`` is a deprecated alias: True is the default path, False is
        ``zero_shot=True``.

        ``positive``: True, or a list of column names, for strictly positive columns (concentrations, prices,
        counts): they are modelled on the log scale, ``log x = F_hat(parents) + noise``, and every answer
        (samples, interventions, counterfactuals, effects, ``predict``) comes back in the user's units, so they
        stay positive; their noise is on the log scale. A value <= 0 in such a column is a ValueError naming
        the column and its minimum, and so is an intervention that sets it to a value <= 0.

        ``progress``: a progress bar of the stages (the embedding, each group of nodes' fit, the edge check) on
        stderr, shown once the call has taken a second (``condfip.api.progress``; None, the default: when stderr
        is a terminal; a large table takes seconds to minutes).
        """
        progress = checked_progress(progress)
        adapt = self._adapts(zero_shot, refit_readout)
        prepared = self._prepare(data, graph, columns, positive)
        chunk = rows_per_chunk(
            chunk_size if chunk_size is not None else self.chunk_size, len(prepared.columns), self.device
        )
        parents = self._parents(prepared.adjacency)
        context = torch.as_tensor(
            prepared.network_rows(adapt), dtype=model_dtype(self.model), device=self.device
        )[None]  # [1, n, d]
        rows, columns_count = prepared.standard.shape
        with progress_bar(
            2 if adapt else 1,
            "infer",
            "stage",
            progress,
            mininterval=0.0,  # every stage drawn: there are a few
            postfix=f"embedding {rows} rows of {columns_count} columns",
        ) as bar:
            embedding = self.model.embed(context, parents, chunk_size=chunk)  # [1, n, d] -> fields [1, d, e]

            def on_stage(done: int, total: int, name: str) -> None:
                bar.total = total + 1  # the embedding, then the adaptation's stages: ``done + 1`` finished
                bar.set_postfix_str(name, refresh=False)
                bar.update(done + 1 - bar.n)

            inferred = self._inferred(prepared, parents, embedding, adapt, on_stage)
            bar.update(bar.total - bar.n)  # done (zero-shot: the embedding was the one stage)
            return inferred

    def _adapts(self, zero_shot: object, refit_readout: object) -> bool:
        """Whether inference adapts to the rows, from ``zero_shot`` and the deprecated ``refit_readout``."""
        zero_shot = checked_flag(zero_shot, "zero_shot")
        if refit_readout is not None:
            refit_readout = checked_flag(refit_readout, "refit_readout")
            warnings.warn(
                "refit_readout is deprecated: inference adapts to the rows by default; pass zero_shot=True for "
                "the paper's zero-shot method",
                DeprecationWarning,
                stacklevel=3,
            )
            if zero_shot and refit_readout:
                raise ValueError(
                    "zero_shot=True and refit_readout=True contradict each other; pass only zero_shot"
                )
            zero_shot = zero_shot or not refit_readout
        if not zero_shot and not self.can_adapt:
            warnings.warn(
                "this model cannot adapt to the rows (it is not a Cond-FiP network in float32 or float64): "
                "inferring zero-shot",
                stacklevel=3,
            )
            return False
        return not zero_shot

    @torch.inference_mode()
    def infer_batch(
        self,
        datasets: Sequence[tuple[object, object]],
        *,
        batch_size: int | None = None,
        chunk_size: int | None = None,
        zero_shot: bool = False,
        refit_readout: bool | None = None,
        positive: PositiveColumns = False,
        progress: bool | None = None,
    ) -> list[InferredSCM]:
        """``infer`` for many ``(data, graph)`` pairs of any sizes and node counts, in padded batches.

        Datasets are grouped by size to limit padding; padded rows are masked out of the embedding and padded
        nodes have no parents and no children. Returns the SCMs in the order given; equal to one-by-one
        ``infer`` up to float rounding. ``batch_size`` (datasets per forward pass) defaults to 16 on CUDA
        and 1 on the CPU, where bigger batches measured slower (BENCHMARKS.md, "Inference").
        ``zero_shot`` (and the deprecated ``refit_readout``) and ``positive``: as in ``infer``, for every dataset.
        ``progress``: a progress bar on stderr (default: for more than one batch, when stderr is a terminal).
        """
        adapt = self._adapts(zero_shot, refit_readout)
        batch_size = self._batch_size(batch_size)
        prepared = []
        for position, item in enumerate(datasets):
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise ValueError(
                    f"datasets[{position}] must be a (data, graph) pair, got {type(item).__name__}; pass a list "
                    "of pairs, [(data, graph), ...], also for one dataset"
                )
            try:
                prepared.append(self._prepare(item[0], item[1], None, positive))
            except ValueError as error:
                raise ValueError(f"datasets[{position}]: {error}") from None
        return self._infer_prepared(prepared, adapt, batch_size, chunk_size, progress)

    def _batch_size(self, batch_size: object) -> int:
        """Datasets per forward pass: ``batch_size``, or by default 16 on CUDA and 1 on the CPU."""
        if batch_size is None:
            return 16 if self.device.type == "cuda" else 1
        if not is_integer(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        return int(batch_size)

    def _infer_prepared(
        self,
        prepared: list[_Prepared],
        adapt: bool,
        batch_size: int,
        chunk_size: int | None,
        progress: bool | None,
    ) -> list[InferredSCM]:
        """``infer_batch`` of tables already checked and standardized (``_prepare``)."""
        order = sorted(
            range(len(prepared)), key=lambda i: (len(prepared[i].columns), prepared[i].context.shape[0])
        )
        results: list[InferredSCM | None] = [None] * len(prepared)
        dtype = model_dtype(self.model)
        if progress is None and len(prepared) <= batch_size:
            progress = False
        bar = tqdm(
            total=len(prepared),
            desc="infer_batch",
            unit="dataset",
            disable=None if progress is None else not progress,
            leave=False,
        )
        for start in range(0, len(order), batch_size):
            group = [prepared[i] for i in order[start : start + batch_size]]
            num_rows = max(p.context.shape[0] for p in group)
            num_nodes = max(len(p.columns) for p in group)
            context = torch.zeros(len(group), num_rows, num_nodes, dtype=dtype)  # [b, n, d], zero padding
            sample_mask = torch.zeros(len(group), num_rows, dtype=torch.bool)  # [b, n]
            parents = torch.zeros(len(group), num_nodes, num_nodes, dtype=torch.bool)  # [b, d, d]
            for b, p in enumerate(group):
                n, d = p.context.shape
                context[b, :n, :d] = torch.as_tensor(p.network_rows(adapt), dtype=dtype)
                sample_mask[b, :n] = True
                parents[b, :d, :d] = torch.as_tensor(p.adjacency.T != 0)
            chunk = rows_per_chunk(
                chunk_size if chunk_size is not None else self.chunk_size, num_nodes, self.device
            )
            embedding = self.model.embed(
                context.to(self.device),
                parents.to(self.device),
                sample_mask=None if bool(sample_mask.all()) else sample_mask.to(self.device),
                chunk_size=chunk,
            )
            for b, (p, original) in enumerate(zip(group, order[start : start + batch_size], strict=True)):
                d = len(p.columns)
                results[original] = self._inferred(
                    p, self._parents(p.adjacency), _slice_embedding(embedding, b, d), adapt
                )
            bar.update(len(group))
        bar.close()
        return results  # type: ignore[return-value]

    def bootstrap(
        self,
        data: object,
        graph: object,
        statistic: Statistic,
        *,
        num_bootstraps: int = 100,
        seed: int | np.random.Generator | None = None,
        columns: Sequence[Hashable] | None = None,
        zero_shot: bool = False,
        refit_readout: bool | None = None,
        batch_size: int | None = None,
        positive: PositiveColumns = False,
        progress: bool | None = None,
        reinfer: bool = False,
    ) -> BootstrapResult:
        """``statistic(scm)`` for the SCM inferred from ``data`` and for ``num_bootstraps`` SCMs inferred from
        rows drawn with replacement (``seed`` fixes the draws), with percentile intervals
        (``condfip.api.bootstrap``). The graph is fixed: ``graph="infer"`` infers it once, from all rows. The
        statistic returns a number, an array or a Series of fixed shape; give it its own seed when it
        samples, so that the resamples differ only by their rows. ``zero_shot`` and ``positive``: as in
        ``infer``. ``progress``: a progress bar on stderr (default: when stderr is a terminal).

        On the adapted path a resample keeps the network's embedding of all rows and the model its fit chose
        (each node's length scale, linear or not, every group's penalty) and refits the adapted weights on the
        resampled rows: one solve per node. ``reinfer=True`` runs the whole inference on every resample instead
        (several times slower; its spread also holds the embedding's and the model choices' variability), as the
        zero-shot path always does."""
        if not is_integer(num_bootstraps) or num_bootstraps < 2:
            raise ValueError(f"num_bootstraps must be an int >= 2, got {num_bootstraps!r}")
        num_bootstraps = int(num_bootstraps)
        if not callable(statistic):
            raise ValueError(
                f"statistic must be a callable of the inferred SCM, got {type(statistic).__name__}"
            )
        progress = checked_progress(progress)
        reinfer = checked_flag(reinfer, "reinfer")
        batch_size = self._batch_size(batch_size)
        zero_shot = not self._adapts(zero_shot, refit_readout)
        full = self.infer(data, graph, columns=columns, zero_shot=zero_shot, positive=positive)
        table = full.data.to_numpy()  # [n, d] in the SCM's column order
        order = full.row_order  # [n]: a resample draws rows by their canonical position, as the fit read them
        refit = None
        if not (zero_shot or reinfer):
            refit = full._runner.weighted_refit(full._standard_context()[order])

        def infer_resamples(samples: list[np.ndarray]) -> list[InferredSCM]:
            if refit is not None:
                return [
                    full._refitted(
                        rows, full._runner.with_adaptation(refit(_counts(rows, len(table))[order]))
                    )
                    for rows in samples
                ]
            prepared = [
                self._prepare(
                    pd.DataFrame(table[rows], columns=full.columns), full.adjacency, None, full.positive
                )
                for rows in samples
            ]  # a column constant in a resample is refused here, in the resample's own words
            return self._infer_prepared(prepared, not zero_shot, batch_size, None, False)

        return bootstrap_statistic(
            full,
            infer_resamples,
            statistic,
            num_bootstraps=num_bootstraps,
            row_order=order,
            seed=seed,
            group_size=batch_size,
            progress=progress,
        )


def _counts(rows: np.ndarray, num_rows: int) -> torch.Tensor:
    """Row indices drawn with replacement [n] -> how often each of the ``num_rows`` rows was drawn [n]."""
    return torch.as_tensor(np.bincount(rows, minlength=num_rows), dtype=torch.float64)


def _evaluates_node_subsets(model: Any) -> bool:
    """Whether ``model.mechanisms`` takes ``nodes`` (evaluate a subset of nodes), which the sweep needs."""
    return "nodes" in inspect.signature(model.mechanisms).parameters
