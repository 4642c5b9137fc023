"""The SCM inferred zero-shot for one dataset: abduction, generation, interventions, counterfactuals.

Inside, everything is in standardized units (``x_std = (x - mean) / std`` per context column, noise scaled by
``std`` but not centred); every method takes and returns the user's units, as DataFrames with the context's
column names and order.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import networkx as nx
import numpy as np
import pandas as pd

from condfip.api.engine import DecoderRunner, EncoderAbduction
from condfip.api.graphs import digraph_from_adjacency
from condfip.api.interventions import InterventionValue, check_interventions, resolve_interventions
from condfip.api.sampling import check_num_samples, make_generator, sample_noise
from condfip.api.tables import rows_like_context
from condfip.core.dags import longest_path_length
from condfip.core.standardization import Standardization

Interventions = Mapping[Hashable, InterventionValue]
DEFAULT_EFFECT_SAMPLES = 10_000  # fresh rows of average_causal_effect when neither n nor data is given


class InferredSCM:
    """An additive-noise SCM ``X = F_hat(X) + N`` over the columns of a dataset, inferred without training.

    Built by ``CondFiP.infer``; not meant to be constructed directly.
    """

    def __init__(
        self,
        *,
        runner: DecoderRunner,
        encoder: EncoderAbduction | None = None,
        columns: list[Hashable],
        adjacency: np.ndarray,
        standardization: Standardization,
        context: np.ndarray,
        context_index: pd.Index,
    ) -> None:
        self._runner = runner
        self._encoder = encoder  # amortized abduction; None for models without an encoder
        self._columns = list(columns)
        self._adjacency = adjacency  # [d, d] int8, adjacency[i, j] = 1 for i -> j
        self._standardization = standardization
        self._context = context  # [n, d] float64, user units
        self._context_index = context_index
        self._context_noise: np.ndarray | None = None  # [n, d] standardized, computed on first use
        self._encoder_weight: np.ndarray | None = None  # [d], computed on first use
        self._graph = digraph_from_adjacency(adjacency, self._columns)
        self.num_iterations = longest_path_length(adjacency) + 1
        """Fixed-point iterations a generation needs: the longest path plus one, exact for a DAG. Generation runs
        them as one sweep over as many topological levels, each evaluating only its own nodes."""

    # ----------------------------------------------------------------------------------------- description
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
        """Per-column mean of the context (the standardization's shift)."""
        return pd.Series(self._standardization.mean, index=self._columns)

    @property
    def std(self) -> pd.Series:
        """Per-column standard deviation of the context (the standardization's scale)."""
        return pd.Series(self._standardization.std, index=self._columns)

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
        """Per column, what the adaptation found (None when zero-shot): ``full_basis`` (the nonlinear basis was
        kept; False: a linear regression on the parents won the evidence), ``noise_scale`` (the fitted noise
        standard deviation, standardized units), ``held_out_error`` (mean squared exact leave-one-out residual,
        standardized), the prior scale of each group of the basis, and ``encoder_noise_weight`` (the weight of the
        encoder's amortized noise in ``noise()``)."""
        adaptation = getattr(self._runner, "adaptation", None)
        if adaptation is None:
            return None
        table = {
            "full_basis": adaptation.full_basis.cpu().numpy(),
            "noise_scale": adaptation.noise_scale.cpu().numpy(),
            "held_out_error": adaptation.held_out_errors.cpu().numpy(),
        }
        for position, group in enumerate(adaptation.GROUPS):
            table[f"scale_{group}"] = adaptation.group_scales[:, position].cpu().numpy()
        table["encoder_noise_weight"] = self._encoder_noise_weight()
        return pd.DataFrame(table, index=self._columns)

    @property
    def readout_penalty(self) -> pd.Series | None:
        """Deprecated (``refit_readout``): the ridge penalty of each column's refitted readout, or None."""
        readout = getattr(self._runner, "readout", None)
        if readout is None:
            return None
        return pd.Series(readout.penalty.cpu().numpy(), index=self._columns)

    def __repr__(self) -> str:
        refit = ", adapted" if self.adapted else ", zero_shot"
        return (
            f"InferredSCM(num_nodes={len(self._columns)}, num_edges={int(self._adjacency.sum())}, "
            f"context_rows={self._context.shape[0]}{refit}, columns={self._columns[:6]!r}"
            f"{'...' if len(self._columns) > 6 else ''})"
        )

    # ------------------------------------------------------------------------------------------ internals
    def _frame(self, values: np.ndarray, index: pd.Index | None = None) -> pd.DataFrame:
        return pd.DataFrame(values, columns=self._columns, index=index)

    def _rows(self, data: object, parameter: str) -> tuple[np.ndarray, pd.Index | None]:
        values = rows_like_context(data, self._columns, parameter=parameter)
        index = data.index if isinstance(data, pd.DataFrame) else None
        return values, index

    def _abduct_standard(self, data_std: np.ndarray) -> np.ndarray:
        return data_std - self._runner.mechanisms(data_std)

    def _encoder_noise_weight(self) -> np.ndarray:
        """Per node, the weight [d] of the encoder's amortized noise beside the adapted abduction in ``noise()``:
        inverse-variance weights of the two estimates' errors. The adapted error variance is the posterior
        variance of the fit at the rows (noise variance times mean leverage); the encoder's is what remains of
        the two estimates' mean squared disagreement on the context rows (the true noise cancels in it)."""
        if self._encoder_weight is None:
            adaptation = self._runner.adaptation
            if self._encoder is None or adaptation is None:
                self._encoder_weight = np.zeros(len(self._columns))
                return self._encoder_weight
            context = self._standardization.data_to_standard(self._context)
            disagreement = ((self._encoder.noise(context) - self._context_noise_standard()) ** 2).mean(axis=0)
            adapted = (adaptation.noise_scale**2 * adaptation.mean_leverage).cpu().numpy()  # [d]
            encoder = np.maximum(disagreement - adapted, 0.0)
            total = adapted + encoder
            self._encoder_weight = np.where(total > 0, adapted / np.where(total > 0, total, 1.0), 0.5)
        return self._encoder_weight

    def _context_noise_standard(self) -> np.ndarray:
        if self._context_noise is None:
            self._context_noise = self._abduct_standard(self._standardization.data_to_standard(self._context))
        return self._context_noise

    def _generate_standard(
        self,
        noise_std: np.ndarray,
        interventions: dict[int, InterventionValue],
        factual: np.ndarray | None = None,
    ) -> np.ndarray:
        """Push standardized noise [m, d] through the clamped fixed point; returns user units [m, d].

        ``factual`` (user units) gives callables the rows' current values; by default the rows generated
        from the same noise without intervention.
        """
        standard = self._standardization
        if not interventions:
            return standard.data_from_standard(self._runner.generate(noise_std))

        def current() -> np.ndarray:
            if factual is not None:
                return factual
            return standard.data_from_standard(self._runner.generate(noise_std))

        nodes, values = resolve_interventions(interventions, noise_std.shape[0], current, self._columns)
        values_std = (values - standard.mean[nodes]) / standard.std[nodes]  # [m, k]
        generated = standard.data_from_standard(self._runner.generate(noise_std, nodes, values_std))
        generated[:, nodes] = values  # exactly the requested values, free of standardization rounding
        return generated

    def _fresh_noise(
        self, num_samples: int, seed: int | np.random.Generator | None, noise_model: str
    ) -> np.ndarray:
        rng = make_generator(seed)
        return sample_noise(self._context_noise_standard(), num_samples, rng, noise_model)

    # ------------------------------------------------------------------------------------------- queries
    def noise(self, data: object | None = None, *, method: str = "best") -> pd.DataFrame:
        """Estimated noise per row, in user units (scaled by the std, not centred).

        ``method="best"`` (default): the most accurate estimate the model has. Adapted: per column, the
        adapted abduction and the encoder's amortized noise weighted by their estimated errors (the encoder's
        weighs most with few rows; ``adaptation["encoder_noise_weight"]``). Zero-shot: the encoder's prediction
        (the paper's noise prediction). ``method="decoder"``: ``X - F_hat(X)``, the noise that ``generate`` maps
        back to exactly ``X`` (what counterfactuals use). ``method="encoder"``: the encoder's amortized
        prediction ``X - f_hat(X_pa)``. Models without an encoder fall back to the decoder. ``data=None`` gives
        the noise of the context rows; otherwise a DataFrame with the same columns (any order) or an array
        [m, d] in column order.
        """
        if method not in ("best", "encoder", "decoder"):
            raise ValueError(f"method must be 'best', 'encoder' or 'decoder', got {method!r}")
        if data is None:
            values, index = self._context, self._context_index
        else:
            values, index = self._rows(data, "data")
        if method == "decoder" or self._encoder is None:
            if data is None:
                noise_std = self._context_noise_standard()
            else:
                noise_std = self._abduct_standard(self._standardization.data_to_standard(values))
        elif method == "encoder" or not self.adapted:
            noise_std = self._encoder.noise(self._standardization.data_to_standard(values))
        else:
            standard = self._standardization.data_to_standard(values)
            decoder = self._context_noise_standard() if data is None else self._abduct_standard(standard)
            weight = self._encoder_noise_weight()  # [d]
            noise_std = weight * self._encoder.noise(standard) + (1.0 - weight) * decoder
        return self._frame(self._standardization.noise_from_standard(noise_std), index)

    def predict(self, data: object) -> pd.DataFrame:
        """The inferred mechanisms ``F_hat`` applied to the given rows: each node predicted from its parents."""
        values, index = self._rows(data, "data")
        standard = self._standardization
        predicted = self._runner.mechanisms(standard.data_to_standard(values))
        return self._frame(standard.data_from_standard(predicted), index)

    def generate(self, noise: object, interventions: Interventions | None = None) -> pd.DataFrame:
        """Rows generated from GIVEN noise (user units, e.g. from ``noise()``), optionally under interventions.

        Computes the fixed point of ``z = F_hat(z) + n`` with intervened nodes clamped: what ``num_iterations``
        = longest path + 1 iterations of ``z <- F_hat(z) + n`` from ``z = n`` reach (exact for a DAG), run as
        one sweep over the graph's topological levels, each level evaluated from its final parents.
        """
        checked = check_interventions(interventions, self._columns)
        values, index = self._rows(noise, "noise")
        generated = self._generate_standard(self._standardization.noise_to_standard(values), checked)
        return self._frame(generated, index)

    def sample(
        self, n: int, seed: int | np.random.Generator | None = None, *, noise_model: str = "empirical"
    ) -> pd.DataFrame:
        """``n`` new observational rows from fresh noise.

        Fresh noise is drawn independently per node from that node's abducted context noise: by inverting
        its empirical CDF (``noise_model="empirical"``, default) or from a fitted normal (``"gaussian"``).
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
        ``sample``) or ``data`` (the given rows' abducted noise, i.e. counterfactuals of those rows).
        """
        checked = check_interventions(interventions, self._columns)
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
    ) -> float:
        """``E[target | do(alternative)] - E[target | do(reference)]``, as DoWhy-GCM's ``average_causal_effect``.

        Interventions are given as in ``interventional_samples``; ``{}`` as an arm means no intervention (the
        observational mean). Both arms are pushed through the same noise: ``n`` fresh rows (default
        ``DEFAULT_EFFECT_SAMPLES``, drawn as in ``sample``, the same for the same ``seed``) or the abducted noise
        of the given ``data`` rows (the mean of their counterfactual differences). So the difference carries no
        sampling noise of its own: equal arms give exactly 0, and so does a target that is not a descendant of
        the intervened nodes.
        """
        if target not in self._columns:
            raise ValueError(f"unknown target {target!r}; choose one of the columns {self._columns!r}")
        arms = [
            check_interventions(arm, self._columns)
            for arm in (interventions_alternative, interventions_reference)
        ]
        if n is not None and data is not None:
            raise ValueError(
                "average_causal_effect takes n (number of fresh rows) or data (rows whose noise to reuse), not both"
            )
        factual = None
        if data is not None:
            factual, _ = self._rows(data, "data")
            noise_std = self._abduct_standard(self._standardization.data_to_standard(factual))
        else:
            num_samples = DEFAULT_EFFECT_SAMPLES if n is None else check_num_samples(n)
            noise_std = self._fresh_noise(num_samples, seed, noise_model)
        column = self._columns.index(target)
        alternative, reference = (
            self._generate_standard(noise_std, arm, factual=factual)[:, column].mean() for arm in arms
        )
        return float(alternative - reference)

    def counterfactual_samples(self, interventions: Interventions, data: object) -> pd.DataFrame:
        """What each given row would have been under the interventions, from the row's abducted noise.

        With no intervention this returns the rows themselves (to float rounding). Callables receive the
        rows' observed values.
        """
        checked = check_interventions(interventions, self._columns)
        values, index = self._rows(data, "data")
        noise_std = self._abduct_standard(self._standardization.data_to_standard(values))
        return self._frame(self._generate_standard(noise_std, checked, factual=values), index)
