"""Cond-FiP through its user API, on two paths.

- ``condfip``: the API's default path, ``model.infer(table, graph)``; noise is ``scm.noise(rows)`` with the
  API's default estimate.
- ``condfip-zero-shot``: the paper's method, ``model.infer(table, graph, zero_shot=True)`` (on a condfip whose
  ``infer`` has no ``zero_shot`` keyword, ``infer`` without refitting is the zero-shot path); noise is the
  encoder's amortized prediction (``scm.noise(rows, method="encoder")``), the paper's noise prediction.

``infer`` returns an ``InferredSCM`` whose ``noise``, ``generate`` and ``counterfactual_samples`` take and
return DataFrames in the user's units; the adapter maps our arrays and integer node indices to and from its
column names.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

from condfip_eval.methods.base import FittedSCM, Method

__all__ = ["CondFiPMethod", "CondFiPZeroShotMethod", "load_condfip"]


def _column_names(num_nodes: int) -> list[str]:
    return [f"x{node}" for node in range(num_nodes)]


def load_condfip(weights: str) -> Any:
    """``CondFiP.from_pretrained(weights)``; any failure to load is a ``ValueError`` that names the weights."""
    from condfip import CondFiP

    try:
        return CondFiP.from_pretrained(weights)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # a bad checkpoint can fail in many ways; all are bad input here
        message = " ".join(str(error).split())
        raise ValueError(f"cannot load the Cond-FiP weights {weights!r}: {message}") from None


def _accepts(function: Any, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


class _FittedCondFiP(FittedSCM):
    def __init__(self, adjacency: np.ndarray, scm: Any, noise_options: dict[str, Any]) -> None:
        super().__init__(adjacency)
        self.scm = scm
        self.columns = _column_names(self.num_nodes)
        self.noise_options = noise_options

    def _frame(self, rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=self.columns)

    def _named(self, interventions: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        return {self.columns[node]: values for node, values in interventions.items()}

    def _array(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.columns].to_numpy(dtype=np.float64)

    def _noise(self, x: np.ndarray) -> np.ndarray:
        return self._array(self.scm.noise(self._frame(x), **self.noise_options))

    def _abducted_noise(self, x: np.ndarray) -> np.ndarray:
        # x - F_hat(x): what generate maps back to the rows (sample draws from it widened: _sampling_noise)
        if _accepts(self.scm.noise, "method"):
            return self._array(self.scm.noise(self._frame(x), method="decoder"))
        return self._noise(x)

    def _sampling_noise(self, context: np.ndarray) -> np.ndarray:
        # what InferredSCM.sample draws from: the context's abducted noise, widened by each fit's leverage
        if hasattr(self.scm, "sampling_noise"):
            return self._array(self.scm.sampling_noise())
        return self._abducted_noise(context)

    def _generate(self, noise: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        return self._array(
            self.scm.generate(self._frame(noise), interventions=self._named(interventions) or None)
        )

    def _counterfactual(self, x: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        return self._array(self.scm.counterfactual_samples(self._named(interventions), self._frame(x)))


class CondFiPMethod(Method):
    """Cond-FiP on the API's default path: ``model`` is a ``condfip.CondFiP`` or a name/path for
    ``from_pretrained``.

    chunk_size: rows per chunk when embedding the context (bounded memory); None lets the API decide.
    """

    name = "condfip"

    def __init__(self, model: Any = "small", *, chunk_size: int | None = None) -> None:
        self.model = load_condfip(model) if isinstance(model, str) else model
        self.chunk_size = chunk_size

    def _infer_options(self) -> dict[str, Any]:
        return {}

    def _noise_options(self, scm: Any) -> dict[str, Any]:
        return {}

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        options = self._infer_options()
        if self.chunk_size is not None:
            options["chunk_size"] = self.chunk_size
        data = pd.DataFrame(context, columns=_column_names(adjacency.shape[0]))
        scm = self.model.infer(data, adjacency, **options)
        return _FittedCondFiP(adjacency, scm, self._noise_options(scm))


class CondFiPZeroShotMethod(CondFiPMethod):
    """The paper's zero-shot Cond-FiP: ``infer(..., zero_shot=True)`` where the API has that keyword, else
    ``infer(...)`` (whose default is then zero-shot); noise from the encoder, as in the paper."""

    name = "condfip-zero-shot"

    def _infer_options(self) -> dict[str, Any]:
        return {"zero_shot": True} if _accepts(self.model.infer, "zero_shot") else {}

    def _noise_options(self, scm: Any) -> dict[str, Any]:
        return {"method": "encoder"} if _accepts(scm.noise, "method") else {}
