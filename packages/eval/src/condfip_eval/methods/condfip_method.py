"""Cond-FiP through its user API: zero-shot, so "fitting" is one forward pass that embeds the context rows.

``CondFiP.infer(data, graph)`` returns an ``InferredSCM`` whose ``noise``, ``generate`` and
``counterfactual_samples`` take and return DataFrames in the user's units; this adapter maps our arrays and
integer node indices to and from its column names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from condfip_eval.methods.base import FittedSCM, Method

__all__ = ["CondFiPMethod", "CondFiPRefitMethod"]


def _column_names(num_nodes: int) -> list[str]:
    return [f"x{node}" for node in range(num_nodes)]


class _FittedCondFiP(FittedSCM):
    def __init__(self, adjacency: np.ndarray, scm: Any, noise_method: str = "encoder") -> None:
        super().__init__(adjacency)
        self.scm = scm
        self.columns = _column_names(self.num_nodes)
        self.noise_method = noise_method

    def _frame(self, rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=self.columns)

    def _named(self, interventions: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        return {self.columns[node]: values for node, values in interventions.items()}

    def _array(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.columns].to_numpy(dtype=np.float64)

    def _noise(self, x: np.ndarray) -> np.ndarray:
        return self._array(self.scm.noise(self._frame(x), method=self.noise_method))

    def _generate(self, noise: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        return self._array(
            self.scm.generate(self._frame(noise), interventions=self._named(interventions) or None)
        )

    def _counterfactual(self, x: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        return self._array(self.scm.counterfactual_samples(self._named(interventions), self._frame(x)))


class CondFiPMethod(Method):
    """Cond-FiP with pretrained weights: ``model`` is a ``condfip.CondFiP`` or a name/path for ``from_pretrained``.

    chunk_size: rows per chunk when embedding the context (bounded memory); None lets the API decide.
    Noise is the encoder's amortized prediction, as in the paper.
    """

    name = "condfip"
    refit_readout = False

    def __init__(self, model: Any = "small", *, chunk_size: int | None = None) -> None:
        if isinstance(model, str):
            from condfip import CondFiP

            model = CondFiP.from_pretrained(model)
        self.model = model
        self.chunk_size = chunk_size

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        options = {} if self.chunk_size is None else {"chunk_size": self.chunk_size}
        data = pd.DataFrame(context, columns=_column_names(adjacency.shape[0]))
        scm = self.model.infer(data, adjacency, refit_readout=self.refit_readout, **options)
        return _FittedCondFiP(adjacency, scm, "decoder" if self.refit_readout else "encoder")


class CondFiPRefitMethod(CondFiPMethod):
    """Cond-FiP with its readout refitted per node on the context rows (``infer(..., refit_readout=True)``).

    Noise is the refitted decoder's, ``X - F_hat(X)``, which the refit makes the more accurate estimate.
    """

    name = "condfip-refit"
    refit_readout = True
