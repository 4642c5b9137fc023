"""The SCM inferred for one dataset: abduction, generation, interventions, counterfactuals, effects.

Inside, everything is in standardized units (``x_std = (x - mean) / std`` per context column, noise scaled by
``std`` but not centred; a positive column is logged first, ``condfip.api.positive``); every method takes and
returns the user's units, as DataFrames with the context's column names and order.

Queries about some nodes evaluate only what they need: ``predict(nodes=...)`` only those nodes, and
``average_causal_effect`` only the target's ancestors (with the intervened nodes cut from their parents).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd

from condfip.api.arguments import is_real
from condfip.api.engine import DecoderRunner, EncoderAbduction
from condfip.api.graphs import digraph_from_adjacency
from condfip.api.interventions import InterventionValue, check_interventions, resolve_interventions
from condfip.api.positive import ModelUnits, check_positive, check_positive_values
from condfip.api.sampling import (
    check_noise_model,
    check_num_samples,
    make_generator,
    sample_noise,
    stratified_noise,
)
from condfip.api.tables import rows_like_context
from condfip.core.dags import longest_path_length
from condfip.core.standardization import column_scale

Interventions = Mapping[Hashable, InterventionValue]
# average_causal_effect without n or data draws fresh rows in rounds until the Monte Carlo standard error of the
# effect reaches its target, from MIN_EFFECT_SAMPLES up to DEFAULT_EFFECT_SAMPLES rows
DEFAULT_EFFECT_SAMPLES = 10_000
# noise(): the encoder noise's error variance is taken as at least this share of the adapted one, for a node
# whose adapted fit kept the nonlinear basis, and for one whose fit is linear
ENCODER_ERROR_FLOOR = 0.25
LINEAR_ENCODER_ERROR_FLOOR = 3.0
# ... the linear one times the context rows over LINEAR_FLOOR_ROWS (at least 1): a linear fit's error falls as 1 /
# rows and the encoder's amortized error does not, so with many rows the encoder's agreement with least squares is
# mostly an error the two share (CSuite's linear Gaussian model at 400 rows: noise 6 % -> 2 % above least squares)
LINEAR_FLOOR_ROWS = 100
MIN_EFFECT_SAMPLES = 1_000
DEFAULT_EFFECT_ERROR = 0.01  # the default target standard error, times the target column's standard deviation
# ... its rows come in blocks of this many Latin hypercube rows (``stratified_noise``); the standard error is that
# of the mean of the blocks' means, so a round of MIN_EFFECT_SAMPLES rows gives it from 5 blocks. Larger blocks
# remove more of the variance, fewer give a noisier standard error: on four Sachs effects, blocks of 200 ended
# with the estimates' spread at 0.03-0.88 times the target after 1,000-3,650 rows, blocks of 100 at 0.03-1.03
# after 1,000-4,240, blocks of 50 at 0.03-1.16 after 1,000-5,430
EFFECT_BLOCK_ROWS = 200
# fresh noise widens a node's abducted noise by 1 / sqrt(1 - mean leverage), the leverage taken at most this (a fit
# with as many effective parameters as half its rows has residuals too unreliable to widen further)
MAX_SAMPLING_LEVERAGE = 0.5


def linear_encoder_error_floor(num_rows: int) -> float:
    """The least share of a linear node's adapted error that ``noise()`` takes as the encoder noise's error, for a
    fit on ``num_rows`` context rows: ``LINEAR_ENCODER_ERROR_FLOOR`` up to ``LINEAR_FLOOR_ROWS`` rows, then growing
    with the rows."""
    return LINEAR_ENCODER_ERROR_FLOOR * max(1.0, num_rows / LINEAR_FLOOR_ROWS)


def shrunk_misfit(misfit: np.ndarray, standard_error: np.ndarray) -> np.ndarray:
    """A nonlinear fit's estimated misfit [d] shrunk by its standard error [d] (positive-part James-Stein:
    ``misfit * max(0, 1 - se^2 / misfit^2)``): kept nearly whole where it stands many standard errors above 0, to
    0 where it is within one."""
    positive = np.maximum(misfit, 0.0)
    ratio = np.divide(standard_error**2, positive**2, out=np.full_like(positive, np.inf), where=positive > 0)
    return positive * np.maximum(0.0, 1.0 - ratio)


class InferredSCM:
    """An additive-noise SCM ``X = F_hat(X) + N`` over the columns of a dataset, inferred without training.

    Positive columns (``infer(..., positive=...)``) are additive on the log scale, ``log X = F_hat(X) + N``.
    Built by ``CondFiP.infer``; not meant to be constructed directly.
    """

    def __init__(
        self,
        *,
        runner: DecoderRunner,
        encoder: EncoderAbduction | None = None,
        columns: list[Hashable],
        adjacency: np.ndarray,
        units: ModelUnits,
        context: np.ndarray,
        context_index: pd.Index,
        context_standard: np.ndarray | None = None,
        row_order: np.ndarray | None = None,
    ) -> None:
        self._runner = runner
        self._encoder = encoder  # amortized abduction; None for models without an encoder
        self._columns = list(columns)
        self._adjacency = adjacency  # [d, d] int8, adjacency[i, j] = 1 for i -> j
        self._units = units  # user units <-> standardized (log of the positive columns first)
        self._context = context  # [n, d] float64, user units
        self._context_index = context_index
        self._context_standard = context_standard  # [n, d] standardized context, computed on first use
        # [n] the order the network and the fit read the context rows in
        self._row_order = np.arange(context.shape[0]) if row_order is None else np.asarray(row_order)
        # [n, d] standardized abducted noise of the context: of every node in one pass, on first use; and, for
        # queries that need a few nodes, of those nodes alone (0 where not computed)
        self._context_noise: np.ndarray | None = None
        self._some_context_noise = np.zeros_like(context)
        self._some_context_noise_known = np.zeros(context.shape[1], dtype=bool)  # [d]
        self._encoder_weight: np.ndarray | None = None  # [d], computed on first use
        # [n, d] the encoder's amortized noise of the context, on first use
        self._encoder_context_noise: np.ndarray | None = None
        self._parent_lists = [np.flatnonzero(adjacency[:, j]) for j in range(adjacency.shape[1])]
        self._graph = digraph_from_adjacency(adjacency, self._columns)
        self.num_iterations = longest_path_length(adjacency) + 1
        """Fixed-point iterations a generation needs: the longest path plus one, exact for a DAG. Generation runs
        them as one sweep over as many topological levels, each evaluating only its own nodes."""

    # ----------------------------------------------------------------------------------------- description
    @property
    def row_order(self) -> np.ndarray:
        """[n] the order in which the network and the fit read the context rows (indices into ``data``): the
        rows' canonical order on the adapted path (``condfip.core.row_order``: the same rows in any order give the
        same SCM), the rows as given on the zero-shot path."""
        return self._row_order.copy()

    @property
    def columns(self) -> list[Hashable]:
        """The column names, in the order of the context."""
        return list(self._columns)

    @property
    def graph(self) -> nx.DiGraph:
        """The causal graph, nodes named like the columns (a copy: editing it changes nothing here)."""
        return self._graph.copy()

    def to_networkx(self) -> nx.DiGraph:
        """The causal graph as a networkx DiGraph over the column names."""
        return self._graph.copy()

    @property
    def adjacency(self) -> np.ndarray:
        """[d, d] int8 adjacency in column order, ``adjacency[i, j] = 1`` for the edge ``i -> j``."""
        return self._adjacency.copy()

    @property
    def mean(self) -> pd.Series:
        """Per-column mean of the context (the standardization's shift); of ``log x`` for a positive column."""
        return pd.Series(self._units.mean, index=self._columns)

    @property
    def std(self) -> pd.Series:
        """Per-column standard deviation of the context (the standardization's scale, and the unit of ``noise``);
        of ``log x`` for a positive column."""
        return pd.Series(self._units.std, index=self._columns)

    @property
    def positive(self) -> list[Hashable]:
        """The columns modelled on the log scale (``infer(..., positive=...)``); empty by default."""
        return [name for name, flag in zip(self._columns, self._units.positive, strict=True) if flag]

    @property
    def data(self) -> pd.DataFrame:
        """The rows this SCM was inferred from (a copy), with their index."""
        return self._frame(self._context.copy(), self._context_index)

    @property
    def adapted(self) -> bool:
        """Whether ``F_hat`` was adapted to the rows (the default of ``infer``); False for ``zero_shot=True``."""
        return getattr(self._runner, "adaptation", None) is not None

    @property
    def adaptation(self) -> pd.DataFrame | None:
        """Per column, what the adaptation found (None when zero-shot): ``full_basis`` (the nonlinear model is
        in the fit; False: a linear regression on the parents alone), ``nonlinear_weight`` (its weight in the
        node's average of the two models: its posterior probability where the evidence is near the prior odds,
        else 0 or 1), ``prior_log_odds`` (those odds of the linear model, shared by the table's nodes: lower
        where many nodes are clearly nonlinear), ``evidence_gain`` (log evidence of the nonlinear model, its
        kernels averaged, over the linear one, nats), ``network_gain`` (log evidence of the best nonlinear fit
        with the network's groups over the best with the parents and kernel alone, nats: the network's groups
        are kept above ``NETWORK_EVIDENCE_MARGIN``), ``noise_scale`` (the fitted noise standard deviation,
        standardized units), ``held_out_error`` (mean squared exact leave-one-out residual, standardized),
        ``degrees_of_freedom`` (the fit's effective number of parameters, the trace of its hat matrix: fresh noise
        is widened by ``1 / sqrt(1 - degrees_of_freedom / rows)``, ``sample``), the
        prior scale of each group of the basis (``scale_products`` above 0: the node's more probable model is
        the quadratic model alone, its parents' values and their products of degree two), ``quadratic_share``
        (the quadratic model's share of the nonlinear model: 1 the quadratic model alone, 0 the kernel model
        alone, between them their average, weighted by their posterior probabilities), the kernel the evidence
        chose (``kernel_length``, on the standardized parents, and ``kernel_additive``: a mean of one Gaussian
        kernel per parent rather than one in all parents jointly, the same for one parent; ``kernel_step``: the
        step kernel, one threshold per parent, its length 0; read only where ``full_basis``), ``continued`` (the mechanism continues up to a length scale, at most two standard
        deviations, beyond the rows' range before it is held flat, rather than at the range: the rows at the
        edge of the range said so, ``condfip.model.edge_check``), and ``encoder_noise_weight`` (the weight of
        the encoder's amortized noise in ``noise()``)."""
        adaptation = getattr(self._runner, "adaptation", None)
        if adaptation is None:
            return None
        table = {
            "full_basis": adaptation.full_basis.cpu().numpy(),
            "nonlinear_weight": adaptation.nonlinear_weight.cpu().numpy(),
            "prior_log_odds": adaptation.prior_log_odds.cpu().numpy(),
            "evidence_gain": adaptation.evidence_gain.cpu().numpy(),
            "network_gain": adaptation.network_gain.cpu().numpy(),
            "noise_scale": adaptation.noise_scale.cpu().numpy(),
            "held_out_error": adaptation.held_out_errors.cpu().numpy(),
            "degrees_of_freedom": adaptation.degrees_of_freedom.cpu().numpy(),
        }
        for position, group in enumerate(adaptation.GROUPS):
            table[f"scale_{group}"] = adaptation.group_scales[:, position].cpu().numpy()
        table["quadratic_share"] = adaptation.quadratic_share.cpu().numpy()
        basis = self._runner.prepared.adaptation[1]
        table["kernel_length"] = basis.lengths[:, 0].numpy()
        # with one parent the additive kernel is the joint one at the same length: reported as joint
        table["kernel_additive"] = (basis.additive[:, 0] & (basis.parent_counts > 1)).numpy()
        table["kernel_step"] = basis.steps[:, 0].numpy()
        table["continued"] = basis.continued.numpy()
        table["encoder_noise_weight"] = self._encoder_noise_weight()
        return pd.DataFrame(table, index=self._columns)

    def _refitted(self, rows: np.ndarray, runner: DecoderRunner) -> InferredSCM:
        """The SCM of the context rows ``rows`` (indices, repeats allowed) with ``runner``'s ``F_hat`` (this SCM's
        adaptation refitted on those rows): the same columns, graph, units and encoder."""
        return InferredSCM(
            runner=runner,
            encoder=self._encoder,
            columns=self._columns,
            adjacency=self._adjacency,
            units=self._units,
            context=self._context[rows],
            context_index=self._context_index[rows],
            context_standard=self._standard_context()[rows],
        )

    def __repr__(self) -> str:
        refit = ", adapted" if self.adapted else ", zero_shot"
        positive = f", positive={len(self.positive)}" if self._units.positive.any() else ""
        return (
            f"InferredSCM(num_nodes={len(self._columns)}, num_edges={int(self._adjacency.sum())}, "
            f"context_rows={self._context.shape[0]}{refit}{positive}, columns={self._columns[:6]!r}"
            f"{'...' if len(self._columns) > 6 else ''})"
        )

    # ------------------------------------------------------------------------------------------ internals
    def _frame(self, values: np.ndarray, index: pd.Index | None = None) -> pd.DataFrame:
        return pd.DataFrame(values, columns=self._columns, index=index)

    def _rows(
        self, data: object, parameter: str, *, values: bool = True
    ) -> tuple[np.ndarray, pd.Index | None]:
        """User rows [m, d] in column order and their index; ``values``: they are values (not noise), so a
        positive column must be positive in them."""
        rows = rows_like_context(data, self._columns, parameter=parameter)
        if values:
            check_positive(rows, self._units.positive, self._columns, parameter)
        index = data.index if isinstance(data, pd.DataFrame) else None
        return rows, index

    def _node_mask(self, nodes: object, parameter: str) -> np.ndarray:
        """Column names -> a mask [d]."""
        if isinstance(nodes, str) or not isinstance(nodes, Iterable):
            raise ValueError(f"{parameter} must be a list of column names, got {nodes!r}")
        names = list(nodes)
        unknown = [name for name in names if name not in self._columns]
        if unknown:
            raise ValueError(
                f"{parameter} names unknown column(s) {unknown!r}; choose among {self._columns!r}"
            )
        return np.array([name in names for name in self._columns], dtype=bool)

    def _required(self, targets: Iterable[int], clamped: Iterable[int] = ()) -> np.ndarray:
        """The nodes [d] bool whose values the ``targets`` need: themselves and their ancestors, where the
        ``clamped`` nodes are held fixed (their own ancestors are not needed through them)."""
        needed = np.zeros(len(self._columns), dtype=bool)
        stop = set(clamped)
        stack = list(targets)
        while stack:
            node = stack.pop()
            if needed[node]:
                continue
            needed[node] = True
            if node not in stop:
                stack.extend(int(p) for p in self._parent_lists[node] if not needed[p])
        return needed

    def _required_by(self, sources: Iterable[int]) -> np.ndarray:
        """The ``sources`` and their descendants [d] bool: the nodes whose values an intervention on them moves."""
        reached = np.zeros(len(self._columns), dtype=bool)
        stack = list(sources)
        while stack:
            node = stack.pop()
            if not reached[node]:
                reached[node] = True
                stack.extend(int(c) for c in np.flatnonzero(self._adjacency[node]) if not reached[c])
        return reached

    def _arm_nodes(self, targets: Sequence[int], interventions: dict[int, InterventionValue]) -> np.ndarray:
        """What generating ``targets`` under ``interventions`` needs [d]: the targets' ancestors in the intervened
        graph, and, for a callable, the ancestors of its node without intervention (its current value)."""
        needed = self._required(targets, interventions)
        callables = [node for node, value in interventions.items() if callable(value)]
        if callables:
            needed |= self._required(callables)
        return needed

    def _standard_context(self) -> np.ndarray:
        if self._context_standard is None:
            self._context_standard = self._units.data_to_standard(self._context)
        return self._context_standard

    def _abduct_standard(self, data_std: np.ndarray, nodes: np.ndarray | None = None) -> np.ndarray:
        """Standardized rows [m, d] -> their noise ``x - F_hat(x)`` [m, d]; with ``nodes`` ([d] bool) only those
        columns are computed and the others are 0."""
        noise = data_std - self._runner.mechanisms(data_std, nodes)
        return noise if nodes is None else np.where(nodes, noise, 0.0)

    def _encoder_noise_weight(self) -> np.ndarray:
        """Per node, the weight [d] of the encoder's amortized noise beside the adapted abduction in ``noise()``:
        inverse-variance weights of the two estimates' errors. The adapted error variance is, for a node whose fit
        is linear, the fit's posterior variance at the rows (noise variance times mean leverage: honest for a
        well-specified linear fit); for a nonlinear one, that posterior variance plus the misfit beyond it, what
        the leave-one-out error adds to the fitted noise variance and the posterior variance, with each row's
        leverage capped (``leverage_caps``: a few rows of leverage near 1 would otherwise inflate it, and the
        encoder would get weight it does not deserve; a fit whose rows mostly have high leverage keeps its honest
        leave-one-out error), shrunk by its own standard error (``shrunk_misfit``: a small difference of large
        sums, counted in full it handed the encoder weight on families the encoder knows badly). The
        encoder's is what remains of the two estimates' mean squared disagreement on the context rows (the true
        noise cancels in it), at least ``ENCODER_ERROR_FLOOR`` times the adapted one for a nonlinear node and
        ``linear_encoder_error_floor`` times for a linear one (the two errors can be correlated, which the
        disagreement cannot tell apart from a small encoder error)."""
        if self._encoder_weight is None:
            adaptation = self._runner.adaptation
            if self._encoder is None or adaptation is None:
                self._encoder_weight = np.zeros(len(self._columns))
                return self._encoder_weight
            context = self._standard_context()
            # [d]: the mean over the rows in the fit's order (any order of the same rows, the same weight)
            disagreement = (
                (self._encoder_context_noise_standard() - self._context_noise_standard())[self._row_order]
                ** 2
            ).mean(axis=0)
            variance = (adaptation.noise_scale**2).cpu().numpy()  # [d]
            posterior = variance * adaptation.mean_leverage.cpu().numpy()
            nonlinear = adaptation.full_basis.cpu().numpy()
            misfit = shrunk_misfit(
                adaptation.capped_held_out_errors.cpu().numpy() - variance - posterior,
                adaptation.capped_held_out_standard_errors.cpu().numpy(),
            )
            adapted = np.where(nonlinear, posterior + misfit, posterior)
            floor = np.where(nonlinear, ENCODER_ERROR_FLOOR, linear_encoder_error_floor(context.shape[0]))
            encoder = np.maximum(disagreement - adapted, floor * adapted)
            total = adapted + encoder
            self._encoder_weight = np.where(total > 0, adapted / np.where(total > 0, total, 1.0), 0.5)
        return self._encoder_weight

    def _encoder_context_noise_standard(self) -> np.ndarray:
        """The encoder's amortized noise of the context rows [n, d] (standardized), computed once: ``noise()`` of the
        context and the encoder's weight both read it."""
        if self._encoder_context_noise is None:
            self._encoder_context_noise = self._encoder.noise(self._standard_context())
        return self._encoder_context_noise

    def _context_noise_standard(self, nodes: np.ndarray | None = None) -> np.ndarray:
        """The abducted noise of the context [n, d] (standardized), computed once. With ``nodes`` ([d] bool),
        unless every node's is known, only those columns are computed (once per node; the others may be 0).
        Every node's comes from one pass, the same node sets per call as ``generate``'s, so that it maps back
        to the rows exactly, whatever the network's dtype."""
        if self._context_noise is not None:
            return self._context_noise
        if nodes is None:
            self._context_noise = self._abduct_standard(self._standard_context())
            return self._context_noise
        missing = nodes & ~self._some_context_noise_known
        if missing.any():
            noise = self._abduct_standard(self._standard_context(), missing)
            self._some_context_noise[:, missing] = noise[:, missing]
            self._some_context_noise_known |= missing
        return self._some_context_noise

    def _generate_standard(
        self,
        noise_std: np.ndarray,
        interventions: dict[int, InterventionValue],
        factual: np.ndarray | None = None,
        targets: Sequence[int] | None = None,
        fixed: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Push standardized noise [m, d] through the clamped fixed point; returns user units [m, d].

        ``factual`` (user units) gives callables the rows' current values; by default the rows generated
        from the same noise without intervention. ``targets``: only these columns are wanted, so only their
        ancestors are generated (the other columns of the result are meaningless). ``fixed``: nodes [j] whose
        standardized values [m, j] are already known from the same noise (none of them descends from an
        intervened node); they are held at those values instead of being generated again.
        """
        units = self._units
        fixed_nodes, fixed_values = fixed if fixed is not None else (np.zeros(0, np.int64), None)
        nodes = None
        if targets is not None:
            nodes = self._required(targets, [*interventions, *fixed_nodes.tolist()])
        if not interventions:
            if fixed is None:
                return units.data_from_standard(self._runner.generate(noise_std, nodes=nodes))
            return units.data_from_standard(
                self._runner.generate(noise_std, fixed_nodes, fixed_values, nodes)
            )

        def current() -> np.ndarray:
            if factual is not None:
                return factual
            needed = None
            if targets is not None:
                needed = self._required(node for node, value in interventions.items() if callable(value))
            return units.data_from_standard(self._runner.generate(noise_std, nodes=needed))

        clamped, values = resolve_interventions(interventions, noise_std.shape[0], current, self._columns)
        for position, node in enumerate(clamped):
            if units.positive[node]:
                check_positive_values(values[:, position], self._columns[node])
        values_std = units.values_to_standard(values, clamped)  # [m, k]
        if fixed is not None:
            clamped_std = np.concatenate([clamped, fixed_nodes])
            values_std = np.concatenate([values_std, fixed_values], axis=1)  # [m, k + j]
        else:
            clamped_std = clamped
        generated = units.data_from_standard(
            self._runner.generate(noise_std, clamped_std, values_std, nodes=nodes)
        )
        generated[:, clamped] = values  # exactly the requested values, free of standardization rounding
        return generated

    def _fresh_noise(
        self,
        num_samples: int,
        seed: int | np.random.Generator | None,
        noise_model: str,
        nodes: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fresh standardized noise [num_samples, d]; with ``nodes`` ([d] bool) only those columns are drawn
        from the context's noise (the others are 0), with the same random numbers as a full draw."""
        rng = make_generator(seed)
        return sample_noise(self._sampling_noise_standard(nodes), num_samples, rng, noise_model)

    def _sampling_noise_standard(self, nodes: np.ndarray | None = None) -> np.ndarray:
        """The context's abducted noise [n, d] (standardized; ``nodes`` as in ``_context_noise_standard``) as fresh
        noise draws it. An adapted node with parents has its deviations from their mean widened by
        ``1 / sqrt(1 - leverage)``, its fit's mean leverage over the fitted rows (``Adaptation.fitted_leverage``, at
        most ``MAX_SAMPLING_LEVERAGE``): a fit's in-sample residuals hold about ``1 - leverage`` of the noise
        variance (exactly, for least squares: the residual sum of squares over ``n - p - 1``), so without it a fit
        of many effective parameters on few rows would sample too narrow a noise. A root's (its column's own
        values) and a zero-shot model's are returned unchanged."""
        noise = self._context_noise_standard(nodes)
        adaptation = self._runner.adaptation
        if adaptation is None:
            return noise
        leverage = np.minimum(adaptation.fitted_leverage.cpu().numpy(), MAX_SAMPLING_LEVERAGE)  # [d]
        widened = np.array([parents.size > 0 for parents in self._parent_lists])  # [d]
        if nodes is not None:
            widened &= nodes
        if not widened.any():
            return noise
        columns = noise[:, widened]  # [n, k]
        mean = columns[self._row_order].mean(axis=0)  # in the fit's order, as the encoder's weight
        out = noise.copy()
        out[:, widened] = mean + (columns - mean) / np.sqrt(1.0 - leverage[widened])
        return out

    # ------------------------------------------------------------------------------------------- queries
    def noise(self, data: object | None = None, *, method: str = "best") -> pd.DataFrame:
        """Estimated noise per row, in user units (scaled by the std, not centred; on the log scale for a
        positive column, where ``log x = F_hat + noise``).

        ``method="best"`` (default): the most accurate estimate the model has. Adapted: per column, the
        adapted abduction and the encoder's amortized noise weighted by their estimated errors (the encoder's
        weighs most with few rows; ``adaptation["encoder_noise_weight"]``). Zero-shot: the encoder's prediction
        (the paper's noise prediction). ``method="decoder"``: ``X - F_hat(X)``, the noise that ``generate`` maps
        back to exactly ``X`` (what counterfactuals use). ``method="encoder"``: the encoder's amortized
        prediction ``X - f_hat(X_pa)``. Models without an encoder fall back to the decoder. ``data=None`` gives
        the noise of the context rows; otherwise a DataFrame with the same columns (any order) or an array
        [m, d] in column order.
        """
        if not isinstance(method, str) or method not in ("best", "encoder", "decoder"):
            raise ValueError(f"method must be 'best', 'encoder' or 'decoder', got {method!r}")
        if data is None:
            values, index = self._context, self._context_index
            standard = self._standard_context()
        else:
            values, index = self._rows(data, "data")
            standard = self._units.data_to_standard(values)
        if method == "decoder" or self._encoder is None:
            noise_std = self._context_noise_standard() if data is None else self._abduct_standard(standard)
        elif method == "encoder" or not self.adapted:
            noise_std = (
                self._encoder_context_noise_standard() if data is None else self._encoder.noise(standard)
            )
        else:
            decoder = self._context_noise_standard() if data is None else self._abduct_standard(standard)
            weight = self._encoder_noise_weight()  # [d]
            encoder = (
                self._encoder_context_noise_standard() if data is None else self._encoder.noise(standard)
            )
            noise_std = weight * encoder + (1.0 - weight) * decoder
        return self._frame(self._units.noise_from_standard(noise_std), index)

    def sampling_noise(self) -> pd.DataFrame:
        """The context rows' noise as ``sample`` draws fresh noise from it (user units, as ``noise``): per column,
        ``noise(method="decoder")`` of the context, widened about its mean by ``1 / sqrt(1 - leverage)`` for an
        adapted node with parents (``sample``); a root's column and a zero-shot model's are that noise unchanged."""
        noise = self._units.noise_from_standard(self._sampling_noise_standard())
        return self._frame(noise, self._context_index)

    def predict(self, data: object, nodes: Sequence[Hashable] | None = None) -> pd.DataFrame:
        """The inferred mechanisms ``F_hat`` applied to the given rows: each node predicted from its parents.

        ``nodes`` (column names): evaluate only these nodes, at the cost of their own mechanisms (what a
        per-node query such as DoWhy's needs); the result then has only their columns. The rows still hold
        every column (a node reads only its parents', the others may be any valid value). A positive column's
        prediction is ``exp(F_hat)``: its value at zero noise on the log scale.
        """
        values, index = self._rows(data, "data")
        units = self._units
        mask = None if nodes is None else self._node_mask(nodes, "nodes")
        predicted = units.data_from_standard(self._runner.mechanisms(units.data_to_standard(values), mask))
        frame = self._frame(predicted, index)
        return (
            frame
            if mask is None
            else frame.loc[:, [c for c, keep in zip(self._columns, mask, strict=True) if keep]]
        )

    def generate(self, noise: object, interventions: Interventions | None = None) -> pd.DataFrame:
        """Rows generated from GIVEN noise (user units, e.g. from ``noise()``; on the log scale for a positive
        column), optionally under interventions.

        Computes the fixed point of ``z = F_hat(z) + n`` with intervened nodes clamped: what ``num_iterations``
        = longest path + 1 iterations of ``z <- F_hat(z) + n`` from ``z = n`` reach (exact for a DAG), run as
        one sweep over the graph's topological levels, each level evaluated from its final parents.
        """
        values, index = self._rows(noise, "noise", values=False)
        checked = check_interventions(interventions, self._columns, index)
        generated = self._generate_standard(self._units.noise_to_standard(values), checked)
        return self._frame(generated, index)

    def sample(
        self, n: int, seed: int | np.random.Generator | None = None, *, noise_model: str = "empirical"
    ) -> pd.DataFrame:
        """``n`` new observational rows from fresh noise.

        Fresh noise is drawn independently per node from that node's abducted context noise: by inverting
        its empirical CDF (``noise_model="empirical"``, default) or from a fitted normal (``"gaussian"``). An
        adapted node with parents has that noise widened about its mean by ``1 / sqrt(1 - leverage)``, its fit's
        mean leverage over the fitted rows: in-sample residuals are narrower than the noise by about that factor
        (exactly so for least squares), most with few rows and a flexible fit.
        The same ``seed`` gives the same rows.
        """
        n = check_num_samples(n)
        return self._frame(self._generate_standard(self._fresh_noise(n, seed, noise_model), {}))

    def interventional_samples(
        self,
        interventions: Interventions,
        n: int | None = None,
        data: object | None = None,
        seed: int | np.random.Generator | None = None,
        *,
        noise_model: str = "empirical",
    ) -> pd.DataFrame:
        """Rows under hard interventions ``do(X_i = a)`` on one or several nodes.

        ``interventions`` maps column names to a constant, an array (one value per row) or a callable of the
        row's current value (its value without intervention). Give either ``n`` (fresh noise, drawn as in
        ``sample``) or ``data`` (the given rows' abducted noise, i.e. counterfactuals of those rows). On a
        positive column an intervention value must be > 0.
        """
        checked = check_interventions(interventions, self._columns)
        make_generator(seed)  # checked here too: with data it is not used
        check_noise_model(noise_model)
        if (n is None) == (data is None):
            raise ValueError(
                "interventional_samples needs exactly one of n (number of fresh rows) or data (rows whose "
                f"noise to reuse); got n={n!r} and data {'given' if data is not None else 'None'}"
            )
        if data is not None:
            return self.counterfactual_samples(interventions, data)
        noise_std = self._fresh_noise(check_num_samples(n), seed, noise_model)
        return self._frame(self._generate_standard(noise_std, checked))

    def average_causal_effect(
        self,
        target: Hashable,
        interventions_alternative: Interventions,
        interventions_reference: Interventions,
        n: int | None = None,
        data: object | None = None,
        seed: int | np.random.Generator | None = None,
        *,
        noise_model: str = "empirical",
        standard_error: float | None = None,
    ) -> float:
        """``E[target | do(alternative)] - E[target | do(reference)]``, as DoWhy-GCM's ``average_causal_effect``.

        Interventions are given as in ``interventional_samples``; ``{}`` as an arm means no intervention (the
        observational mean). Both arms are pushed through the same noise: ``n`` fresh rows (drawn as in
        ``sample``, the same for the same ``seed``) or the abducted noise of the given ``data`` rows (the mean of
        their counterfactual differences). So the difference carries no sampling noise of its own: equal arms
        give exactly 0, and so does a target that is not a descendant of the intervened nodes.

        Without ``n`` or ``data``, fresh rows are drawn in rounds until the Monte Carlo standard error of the
        effect is at most ``standard_error`` (target units; default ``DEFAULT_EFFECT_ERROR`` = 1 % of the target
        column's standard deviation in the data), from ``MIN_EFFECT_SAMPLES`` (1,000) up to
        ``DEFAULT_EFFECT_SAMPLES`` (10,000) rows. These rows come in independent blocks of ``EFFECT_BLOCK_ROWS``
        Latin hypercube rows (``condfip.api.sampling.stratified_noise``: the same noise distribution, each node's
        draws spread over its quantiles within a block), and the standard error is that of the mean of the
        blocks' means: an effect that is close to a sum of one function per node's noise is estimated many times
        more precisely than from as many independent rows (on Sachs, variances 2 to 1,000 times lower), so a
        round of 1,000 rows usually suffices. Only the target's ancestors are generated.
        """
        if target not in self._columns:
            raise ValueError(f"unknown target {target!r}; choose one of the columns {self._columns!r}")
        make_generator(seed)  # checked here too: with data it is not used
        check_noise_model(noise_model)
        arms = [
            check_interventions(arm, self._columns)
            for arm in (interventions_alternative, interventions_reference)
        ]
        if n is not None and data is not None:
            raise ValueError(
                "average_causal_effect takes n (number of fresh rows) or data (rows whose noise to reuse), not both"
            )
        if standard_error is not None and (n is not None or data is not None):
            raise ValueError(
                "standard_error chooses the number of fresh rows; it does not apply with n or data"
            )
        column = self._columns.index(target)
        needed = self._arm_nodes([column], arms[0]) | self._arm_nodes([column], arms[1])  # [d]
        # the needed nodes that no intervention reaches take the same values in both arms: generated once
        shared = needed & ~self._required_by([*arms[0], *arms[1]])

        def arm_values(noise_std: np.ndarray, factual: np.ndarray | None = None) -> list[np.ndarray]:
            """The target's values [m] in each arm."""
            fixed = None
            if shared.any():
                fixed_nodes = np.flatnonzero(shared)
                fixed = (fixed_nodes, self._runner.generate(noise_std, nodes=shared)[:, fixed_nodes])
            return [
                self._generate_standard(noise_std, arm, factual=factual, targets=[column], fixed=fixed)[
                    :, column
                ]
                for arm in arms
            ]

        if data is not None:
            factual, index = self._rows(data, "data")
            if factual.shape[0] == 0:
                raise ValueError(
                    "data has no rows; an effect is a mean over rows: give at least one row, or n"
                )
            if index is not None:  # a Series of values per row matched to the rows' labels
                arms = [
                    check_interventions(arm, self._columns, index)
                    for arm in (interventions_alternative, interventions_reference)
                ]
            if factual.shape == self._context.shape and np.array_equal(factual, self._context):
                noise_std = self._context_noise_standard(needed)  # the context's own rows: known noise
            else:
                noise_std = self._abduct_standard(self._units.data_to_standard(factual), needed)
            alternative, reference = arm_values(noise_std, factual)
            return float(alternative.mean() - reference.mean())
        if n is not None:
            noise_std = self._fresh_noise(check_num_samples(n), seed, noise_model, needed)
            alternative, reference = arm_values(noise_std)
            return float(alternative.mean() - reference.mean())
        if any(isinstance(value, np.ndarray) for arm in arms for value in arm.values()):
            raise ValueError(
                "an intervention given as an array (one value per row) needs n (that many fresh rows) or data; "
                "without them the number of fresh rows follows the standard error"
            )
        tolerance = self._effect_tolerance(standard_error, column)
        rng = make_generator(seed)
        abducted = self._sampling_noise_standard(needed)
        fewest, most = MIN_EFFECT_SAMPLES // EFFECT_BLOCK_ROWS, DEFAULT_EFFECT_SAMPLES // EFFECT_BLOCK_ROWS
        round_blocks = fewest
        rounds: list[np.ndarray] = []  # per round, each block's mean difference of the arms [round_blocks]
        while True:
            noise_std = stratified_noise(abducted, round_blocks, EFFECT_BLOCK_ROWS, rng, noise_model)
            alternative, reference = arm_values(noise_std)
            rounds.append((alternative - reference).reshape(round_blocks, EFFECT_BLOCK_ROWS).mean(axis=1))
            means = np.concatenate(rounds)  # [blocks so far]
            scale = float(column_scale(means[:, None])[0])  # a power of two: no overflow in the squares
            error = float((means / scale).std(ddof=1)) * scale / math.sqrt(means.size)
            if error <= tolerance or means.size >= most:
                return float(means.mean())
            ratio = min(
                error / tolerance, float(most)
            )  # bounded: the square of a tiny tolerance's ratio overflows
            wanted = math.ceil(means.size * ratio**2)  # blocks for the target error
            round_blocks = min(most - means.size, max(wanted - means.size, fewest))

    def _effect_tolerance(self, standard_error: object, column: int) -> float:
        if standard_error is None:
            values = self._context[:, column]
            scale = float(
                column_scale(values[:, None])[0]
            )  # a power of two: std of values beyond 1e154 is finite
            return DEFAULT_EFFECT_ERROR * float((values / scale).std()) * scale
        if not is_real(standard_error) or not math.isfinite(standard_error) or standard_error <= 0:
            raise ValueError(
                f"standard_error must be a positive number (in the target's units), got {standard_error!r}"
            )
        return float(standard_error)

    def counterfactual_samples(self, interventions: Interventions, data: object) -> pd.DataFrame:
        """What each given row would have been under the interventions, from the row's abducted noise.

        With no intervention this returns the rows themselves (to float rounding). Callables receive the
        rows' observed values.
        """
        values, index = self._rows(data, "data")
        checked = check_interventions(interventions, self._columns, index)
        noise_std = self._abduct_standard(self._units.data_to_standard(values))
        return self._frame(self._generate_standard(noise_std, checked, factual=values), index)
