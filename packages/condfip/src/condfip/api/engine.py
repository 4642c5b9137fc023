"""The torch side of inference: running the decoder ``F_hat`` and the fixed-point loop in chunks of rows.

Everything here works in standardized units. Rows are independent given the dataset embedding, so any number
of rows is processed in chunks with bounded memory. The state of the fixed-point loop and the noise are kept
in float64; only the network runs in its own dtype, so ``x - F_hat(x)`` pushed back through the loop returns
``x`` to float64 rounding (amplified by the adapted kernel basis' conditioning: about 1e-12 relative).

Axis legend: b datasets (always 1 here), m rows, d nodes, k intervened nodes.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch

from condfip.api.arguments import is_integer
from condfip.api.progress import progress_slices
from condfip.core.standardization import STANDARD_LIMIT
from condfip.io.memory import check_memory
from condfip.model.adaptation import Adaptation
from condfip.model.decoder import ConditionalDecoder
from condfip.model.fit_size import fit_bytes, kernel_tiers
from condfip.model.fixed_point import fixed_point_generate
from condfip.model.prepared_decoder import PreparedDecoder, StageCallback, prepare_decoder
from condfip.model.weighted_refit import WeightedRefit

MAX_ADAPTATION_ROWS = (
    10_000  # rows a readout refit uses at most (evenly spaced); beyond, the fit barely changes
)
MIN_ADAPTATION_ROWS = 10  # below this, infer falls back to the zero-shot F_hat with a warning
REFIT_DESIGN_BYTES = 256 * 2**20  # a bootstrap refits weights on the rows' kept design up to this size
DEFAULT_TOKENS_PER_CHUNK = (
    16_384  # CPU: rows per chunk = this // d; activations and sample attention scale with it
)
CUDA_TOKENS_PER_CHUNK = 65_536  # CUDA: fewer, larger chunks (a GPU call costs launches, not arithmetic)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to ``torch.device`` and must
    exist here (a ValueError for CUDA without a CUDA build or device, or a device index beyond the count)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    check_device(resolved)
    return resolved


def check_device(device: torch.device) -> None:
    """Refuse a device this machine lacks, naming what it has."""
    if device.type == "cpu":
        return
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"device {str(device)!r} is not available here ({build}); use 'cpu' or 'auto'")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {str(device)!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
        return
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {str(device)!r}")


def check_standard_range(values: np.ndarray, what: str, nodes: np.ndarray | None = None) -> None:
    """Refuse standardized ``values`` [m, k] beyond ``STANDARD_LIMIT`` (or NaN) before they reach a network: in
    float32 they would overflow, and 0 * inf in a masked product is NaN. ``nodes`` [k]: the column of each
    value column (default: 0..k-1). The public API refuses such values first, in the user's units
    (``Standardization``); this guards every other caller."""
    outside = ~(np.abs(values) <= STANDARD_LIMIT)
    if outside.any():
        row, position = np.argwhere(outside)[0]
        column = int(position if nodes is None else nodes[position])
        raise ValueError(
            f"{what} in column position {column} is {values[row, position]:.6g} standardized units (standard "
            f"deviations of the context column); the network takes values within ±{STANDARD_LIMIT:g}"
        )


def rows_per_chunk(chunk_size: int | None, num_nodes: int, device: torch.device | None = None) -> int:
    """``chunk_size`` checked, or by default ``DEFAULT_TOKENS_PER_CHUNK // num_nodes`` rows
    (``CUDA_TOKENS_PER_CHUNK`` on a CUDA ``device``), at least 64."""
    if chunk_size is None:
        tokens = (
            CUDA_TOKENS_PER_CHUNK
            if device is not None and device.type == "cuda"
            else DEFAULT_TOKENS_PER_CHUNK
        )
        return max(64, tokens // max(num_nodes, 1))
    if not is_integer(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int (rows per chunk) or None, got {chunk_size!r}")
    return int(chunk_size)


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    parameter = next(model.parameters(), None)
    return torch.float32 if parameter is None else parameter.dtype


class DecoderRunner:
    """``F_hat`` of one inferred dataset: its parents mask and embedding, on one device."""

    def __init__(
        self,
        model: Any,
        parents: torch.Tensor,
        embedding: Any,
        device: torch.device,
        chunk_rows: int,
        levels: list[np.ndarray] | None = None,
    ) -> None:
        self.model = model
        self.parents = parents  # [1, d, d] bool on device
        self.embedding = embedding  # DatasetEmbedding, batch of 1, on device
        self.device = device
        self.chunk_rows = chunk_rows
        self.dtype = model_dtype(model)
        # topological levels of the graph (level 0: roots); None: no sweep, full fixed-point iterations
        self.levels = levels
        self.prepared = _prepared_decoder(model, parents, embedding)
        self.adaptation: Adaptation | None = None  # the adapted F_hat, when adapt ran

    def _mechanisms(self, z: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """z: [m, d] float64 on device -> F_hat(z) [m, d] float64 (or [m, k] for the indices ``nodes``)."""
        if self.prepared is not None:
            return self.prepared(z, nodes).to(torch.float64)
        out = self.model.mechanisms(z.to(self.dtype)[None], self.parents, self.embedding, nodes)  # [1, m, .]
        return out[0].to(torch.float64)

    @torch.inference_mode()
    def adapt(self, data: np.ndarray, on_stage: StageCallback | None = None) -> Adaptation | None:
        """Adapt ``F_hat`` per node to standardized rows [n, d] (``condfip.model.adaptation``); every later call
        of this runner uses it. At most ``MAX_ADAPTATION_ROWS`` rows, evenly spaced, enter the fit. With fewer than
        ``MIN_ADAPTATION_ROWS`` rows it warns and keeps the zero-shot ``F_hat`` (returns None). ``on_stage``: as
        in ``PreparedDecoder.adapt``.

        The decoder then runs in float64, so each row's result does not depend on the rows beside it (the
        adapted weights would amplify float32 rounding, which depends on how many rows a call holds)."""
        if self.prepared is None:
            raise ValueError(
                "adapting to the rows needs a Cond-FiP network in float32 or float64; this model runs through its "
                "own mechanisms. Load the checkpoint in float32, or infer with zero_shot=True"
            )
        if data.shape[0] < MIN_ADAPTATION_ROWS:
            warnings.warn(
                f"{data.shape[0]} rows are too few to adapt to (at least {MIN_ADAPTATION_ROWS}): using the "
                "zero-shot model, as with zero_shot=True",
                stacklevel=4,
            )
            return None
        rows = data
        if data.shape[0] > MAX_ADAPTATION_ROWS:
            rows = data[np.linspace(0, data.shape[0] - 1, MAX_ADAPTATION_ROWS).round().astype(np.int64)]
        d = data.shape[1]
        counts = self.parents.reshape(d, d).sum(dim=-1).cpu()  # [d] parents per node
        tiers = kernel_tiers(rows.shape[0], counts)  # node groups fitted apart, by the landmarks they need
        check_memory(
            sum(fit_bytes(nodes.numel(), int(counts[nodes].max()), num_kernel=size) for nodes, size in tiers),
            f"adapting to the rows of {d} columns",
            hint="infer with zero_shot=True, or with fewer columns",
        )
        self.prepared = prepare_decoder(self.model.decoder, self.parents, self.embedding, dtype=torch.float64)
        self.adaptation = self.prepared.adapt(
            torch.as_tensor(rows, device=self.device), self.chunk_rows, tiers=tiers, on_stage=on_stage
        )
        return self.adaptation

    @torch.inference_mode()
    def weighted_refit(self, data: np.ndarray) -> WeightedRefit | None:
        """A ``WeightedRefit`` of this runner's adaptation on its standardized rows [n, d] (the rows ``adapt``
        saw, all of them fitted): None when it did not adapt, fitted a subset of the rows, or the rows' design
        would take more than ``REFIT_DESIGN_BYTES``."""
        if self.adaptation is None or data.shape[0] > MAX_ADAPTATION_ROWS:
            return None
        return self.prepared.weighted_refit(torch.as_tensor(data, device=self.device), REFIT_DESIGN_BYTES)

    def with_adaptation(self, adaptation: Adaptation) -> DecoderRunner:
        """This runner with another adaptation over the same basis (a refit of its own)."""
        other = copy.copy(self)
        other.prepared = self.prepared.with_adaptation(adaptation)
        other.adaptation = adaptation
        return other

    @torch.inference_mode()
    def generate(
        self,
        noise: np.ndarray,
        clamp_nodes: np.ndarray | None = None,
        clamp_values: np.ndarray | None = None,
        nodes: np.ndarray | None = None,
    ) -> np.ndarray:
        """The fixed point of ``z = F_hat(z) + noise`` with ``z[:, clamp_nodes] = clamp_values``, in one sweep.

        Node ``i`` of ``F_hat`` reads only its parents, so the nodes are evaluated one topological level at a
        time, each level from parents that are already final: the result equals ``fixed_point`` with the
        longest path + 1 iterations (and with any more), at the cost of about one decoder pass instead of
        longest path + 1. Without ``levels`` it runs ``fixed_point`` with d iterations.
        noise: [m, d]; clamp_nodes: [k] int; clamp_values: [m, k]; returns [m, d].
        ``nodes`` ([d] bool): generate only these nodes, which must hold the ancestors of each of them that is not
        clamped (the other columns keep their noise); a sweep then costs only their evaluations.
        """
        check_standard_range(noise, "noise")
        if clamp_values is not None:
            check_standard_range(clamp_values, "an intervention value", clamp_nodes)
        if self.levels is None:
            return self.fixed_point(noise, noise.shape[1], clamp_nodes, clamp_values)
        clamped = np.zeros(noise.shape[1], dtype=bool)
        if clamp_nodes is not None:
            clamped[clamp_nodes] = True
        # clamped nodes are evaluated with their level and then overwritten, so every other node is computed in
        # the same batch as without the intervention: a non-descendant keeps its value to the last bit
        levels = self._level_tensors(None if nodes is None else ~nodes)
        clamp_index = None if not clamped.any() else torch.as_tensor(clamp_nodes, device=self.device)
        out = np.empty_like(noise)
        for rows in progress_slices(noise.shape[0], self.chunk_rows, "generating", "row"):
            z = torch.as_tensor(noise[rows], device=self.device).clone()  # [m, d]
            values = None if clamp_index is None else torch.as_tensor(clamp_values[rows], device=self.device)
            if values is not None:
                z[:, clamp_index] = values
            n = torch.as_tensor(noise[rows], device=self.device)  # [m, d]
            for level, roots in levels:
                z[:, level] = self._level_mechanisms(z, level, roots) + n[:, level]
                if values is not None:
                    z[:, clamp_index] = values
            out[rows] = z.cpu().numpy()
        return out

    def _level_tensors(self, clamped: np.ndarray | None = None) -> list[tuple[torch.Tensor, bool]]:
        """The topological levels as (index tensor on the device, is the roots' level), without the clamped
        nodes."""
        levels = self.levels if clamped is None else [level[~clamped[level]] for level in self.levels]
        return [
            (torch.as_tensor(level, device=self.device), depth == 0)
            for depth, level in enumerate(levels)
            if level.size
        ]

    def _level_mechanisms(self, z: torch.Tensor, nodes: torch.Tensor, roots: bool) -> torch.Tensor:
        """F_hat of the nodes of one level: [m, d] -> [m, k]. A root reads no value, so its F_hat is one
        number per node: computed on one row and broadcast."""
        if roots:
            return self._mechanisms(z[:1], nodes).expand(z.shape[0], -1)
        return self._mechanisms(z, nodes)

    @torch.inference_mode()
    def mechanisms(self, data: np.ndarray, nodes: np.ndarray | None = None) -> np.ndarray:
        """F_hat applied to standardized rows [m, d] -> [m, d].

        With ``levels`` it is evaluated level by level, the same computation as ``generate``'s sweep, so that
        noise abducted here and pushed back through ``generate`` returns the rows to float64 rounding (about
        1e-12 relative with the adapted kernel basis).
        ``nodes`` ([d] bool): evaluate only these nodes, each from its parents' columns of ``data``; the other
        columns of the result are NaN (with ``levels``; without, every node is evaluated).
        """
        check_standard_range(data, "a data value")
        out = np.empty_like(data)
        levels = None
        if self.levels is not None:
            levels = self._level_tensors(None if nodes is None else ~nodes)
            if nodes is not None:
                out[:, ~nodes] = np.nan
        for rows in progress_slices(data.shape[0], self.chunk_rows, "evaluating the mechanisms", "row"):
            z = torch.as_tensor(data[rows], device=self.device)
            if levels is None:
                out[rows] = self._mechanisms(z).cpu().numpy()
                continue
            for nodes, roots in levels:
                out[rows, nodes.cpu().numpy()] = self._level_mechanisms(z, nodes, roots).cpu().numpy()
        return out

    @torch.inference_mode()
    def fixed_point(
        self,
        noise: np.ndarray,
        num_iterations: int,
        clamp_nodes: np.ndarray | None = None,
        clamp_values: np.ndarray | None = None,
    ) -> np.ndarray:
        """Iterate ``z <- F_hat(z) + noise`` from ``z = noise``, clamping ``z[:, clamp_nodes] = clamp_values``.

        noise: [m, d]; clamp_nodes: [k] int; clamp_values: [m, k]; returns z [m, d] after ``num_iterations``.
        """
        check_standard_range(noise, "noise")
        if clamp_values is not None:
            check_standard_range(clamp_values, "an intervention value", clamp_nodes)
        nodes = None if clamp_nodes is None or clamp_nodes.size == 0 else torch.as_tensor(clamp_nodes)
        intervened = None
        if nodes is not None:
            intervened = torch.zeros(1, noise.shape[1], dtype=torch.bool, device=self.device)  # [1, d]
            intervened[0, nodes] = True

        def mechanisms(z: torch.Tensor) -> torch.Tensor:
            return self._mechanisms(z[0])[None]  # [1, m, d]

        out = np.empty_like(noise)
        for rows in progress_slices(noise.shape[0], self.chunk_rows, "generating", "row"):
            n = torch.as_tensor(noise[rows], device=self.device)[None]  # [1, m, d]
            values = None
            if nodes is not None:
                values = torch.zeros_like(n)  # [1, m, d], the clamped values in their columns
                values[0, :, nodes] = torch.as_tensor(clamp_values[rows], device=self.device)
            z = fixed_point_generate(
                mechanisms,
                n,
                self.parents,
                intervened=intervened,
                values=values,
                num_iterations=num_iterations,
            )
            out[rows] = z[0].cpu().numpy()
        return out


def _prepared_decoder(model: Any, parents: torch.Tensor, embedding: Any) -> PreparedDecoder | None:
    """The decoder prepared for this dataset (``condfip.model.prepared_decoder``) when the model is a Cond-FiP
    network in float32 or float64; None otherwise (any other model runs through its own ``mechanisms``)."""
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, ConditionalDecoder) or model_dtype(model) not in (
        torch.float32,
        torch.float64,
    ):
        return None
    return prepare_decoder(decoder, parents, embedding)


class EncoderAbduction:
    """The encoder's amortized noise prediction ``N_hat = x - f_hat(x_pa)`` for rows of one dataset; the rows
    attend to the context's anchor rows, so any number of rows is processed in chunks."""

    def __init__(
        self, model: Any, parents: torch.Tensor, context: np.ndarray, device: torch.device, chunk_rows: int
    ) -> None:
        self.model = model
        self.parents = parents  # [1, d, d] bool on device
        self.dtype = model_dtype(model)
        self.context = torch.as_tensor(context, dtype=self.dtype, device=device)[
            None
        ]  # [1, n, d] standardized
        self.device = device
        self.chunk_rows = chunk_rows

    @staticmethod
    def available(model: Any) -> bool:
        return callable(getattr(model, "predict_noise", None))

    @torch.inference_mode()
    def noise(self, data: np.ndarray) -> np.ndarray:
        """Standardized rows [m, d] -> their predicted standardized noise [m, d]."""
        check_standard_range(data, "a data value")
        if data.shape[0] == 0:  # no rows, no noise (the network's passes need one chunk at least)
            return np.zeros(data.shape, dtype=np.float64)
        rows = torch.as_tensor(data, dtype=self.dtype, device=self.device)[None]  # [1, m, d]
        noise = self.model.predict_noise(rows, self.parents, context=self.context, chunk_size=self.chunk_rows)
        return noise[0].to(torch.float64).cpu().numpy()
