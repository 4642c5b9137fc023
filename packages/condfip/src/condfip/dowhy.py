"""Cond-FiP mechanisms inside DoWhy-GCM (optional extra ``condfip[dowhy]``).

>>> from dowhy import gcm
>>> from condfip.dowhy import assign_causal_mechanisms
>>> causal_model = gcm.InvertibleStructuralCausalModel(graph)
>>> assign_causal_mechanisms(causal_model, data)   # every node gets a fitted mechanism, in one inference
>>> gcm.counterfactual_samples(causal_model, {"X": lambda x: 2.0}, observed_data=data)

``assign_causal_mechanisms`` has the call shape of ``gcm.auto.assign_causal_mechanisms``, but it also fits:
Cond-FiP infers the whole SCM from ``data`` and the causal model's graph at once, and each node gets

- a root node: DoWhy's ``EmpiricalDistribution`` of its column (what DoWhy's automatic assignment gives);
- any other node: DoWhy's ``AdditiveNoiseModel`` ``X_i = F_hat_i(PA_i) + N_i`` whose prediction model is the
  inferred ``F_hat_i`` (:class:`CondFiPPredictionModel`) and whose noise model is the ``EmpiricalDistribution``
  of the abducted noise ``X_i - F_hat_i(PA_i)``.

So DoWhy's noise of a node is Cond-FiP's abduction (``InferredSCM.noise(method="decoder")``); for a root,
DoWhy's noise is the value itself. DoWhy draws fresh noise (``gcm.draw_samples``, ``interventional_samples``
without observed data) from those empirical distributions as they are, while ``InferredSCM.sample`` widens each
adapted node's by its fit's leverage (``InferredSCM.sampling_noise``): with few rows DoWhy's draws are a little
narrower.
Every DoWhy tool then runs on Cond-FiP's mechanisms, and for the same noise DoWhy's counterfactual and
interventional samples equal ``InferredSCM.generate``'s to float rounding.

``gcm.fit(causal_model, data)`` afterwards keeps working. On the rows the mechanisms were inferred from it
changes nothing. On other rows (a bootstrap resample, a cross-validation fold, new data), each node's
``F_hat_i`` is inferred again by Cond-FiP from the rows ``gcm.fit`` hands it: the node and its parents, with the
edges among them. That is a smaller table than the whole one, so the function can differ a little from what
``assign_causal_mechanisms(causal_model, new_data)`` infers from every column; call that to re-infer with all
of them.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

try:
    from dowhy import gcm
    from dowhy.gcm.fitting_sampling import fit_causal_model_of_target
    from dowhy.gcm.ml import PredictionModel
    from dowhy.graph import get_ordered_predecessors
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "condfip.dowhy needs DoWhy: pip install 'condfip[dowhy]' (best in its own environment: DoWhy pins "
        "its scipy releases)"
    ) from error

from condfip import CondFiP, InferredSCM

__all__ = ["CondFiPPredictionModel", "assign_causal_mechanisms", "mechanism_noise"]


@functools.lru_cache(maxsize=4)
def _pretrained(name: str) -> CondFiP:
    return CondFiP.from_pretrained(name)


def _resolve_model(model: CondFiP | str) -> CondFiP:
    if isinstance(model, CondFiP):
        return model
    if isinstance(model, str):
        return _pretrained(model)
    raise ValueError(
        f"model must be a CondFiP or the name of a checkpoint (e.g. 'small'), got {type(model).__name__}"
    )


class _Inferred:
    """One Cond-FiP inference shared by the prediction models of its nodes: the SCM, the rows it was inferred
    from and ``F_hat`` on those rows, so that queries on these rows (``gcm.fit``, abduction) cost no network pass.
    """

    def __init__(
        self, scm: InferredSCM, context: np.ndarray, model: CondFiP, infer_options: dict[str, Any]
    ) -> None:
        self.scm = scm
        self.model = model
        self.infer_options = infer_options
        self.columns = scm.columns
        self.position = {name: j for j, name in enumerate(self.columns)}
        self.context = context  # [n, d] float64, user units, columns in self.columns order
        self.fill = context.mean(axis=0)  # [d] values for the columns a node does not read
        self._context_predictions: np.ndarray | None = None  # [n, d] F_hat(context), on first use

    def context_predictions(self) -> np.ndarray:
        if self._context_predictions is None:
            self._context_predictions = self.scm.predict(self.context).to_numpy(dtype=np.float64)
        return self._context_predictions

    def is_context(self, values: np.ndarray, positions: list[int]) -> bool:
        """Whether ``values`` [m, k] are exactly the context's columns ``positions``."""
        return values.shape[0] == self.context.shape[0] and np.array_equal(values, self.context[:, positions])

    def predict(self, node: int, parents: list[int], values: np.ndarray) -> np.ndarray:
        """``F_hat`` of column ``node`` on rows whose parent columns ``parents`` hold ``values`` [m, k]: [m].
        Only that node's mechanism is evaluated, so a query over every node costs one pass of the network."""
        if self.is_context(values, parents):
            return self.context_predictions()[:, node].copy()
        rows = np.repeat(self.fill[None], values.shape[0], axis=0)  # [m, d]; node reads only its parents
        rows[:, parents] = values
        predicted = self.scm.predict(rows, nodes=[self.columns[node]])
        return predicted.to_numpy(dtype=np.float64)[:, 0]


class CondFiPPredictionModel(PredictionModel):
    """A DoWhy ``PredictionModel`` that is Cond-FiP's inferred ``F_hat_i`` of one node.

    ``predict(X)`` takes the node's parents in DoWhy's order (``dowhy.graph.get_ordered_predecessors``), [m, k],
    and returns [m, 1]. ``fit(X, Y)`` keeps ``F_hat_i`` when (X, Y) are the rows it was inferred from and
    otherwise infers it again from (X, Y), the node and its parents, with the edges among them (see the module
    docstring). ``clone()`` starts from the same ``F_hat_i``; a ``fit`` on other rows replaces it.
    """

    def __init__(
        self, inferred: _Inferred, node: Hashable, parents: Sequence[Hashable], graph: nx.DiGraph
    ) -> None:
        self._inferred = inferred
        self._node = node
        self._parents = list(parents)
        self._graph = graph  # the causal graph at assignment, for the edges among the parents

    @property
    def node(self) -> Hashable:
        """The node whose mechanism this is."""
        return self._node

    @property
    def parents(self) -> list[Hashable]:
        """The parents, in the order of ``predict``'s columns."""
        return list(self._parents)

    @property
    def inferred_scm(self) -> InferredSCM:
        """The Cond-FiP SCM this ``F_hat_i`` comes from."""
        return self._inferred.scm

    def _positions(self) -> tuple[int, list[int]]:
        position = self._inferred.position
        return position[self._node], [position[p] for p in self._parents]

    def _parent_values(self, X: np.ndarray) -> np.ndarray:
        values = np.asarray(X, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != len(self._parents):
            raise ValueError(
                f"the mechanism of {self._node!r} takes its {len(self._parents)} parents {self._parents!r} as "
                f"columns of an array [rows, {len(self._parents)}], got shape {np.shape(X)}"
            )
        return values

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``F_hat_i`` of the parent rows ``X`` [m, k], in the data's units: [m, 1]."""
        values = self._parent_values(X)
        if not np.isfinite(values).all():  # DoWhy hands over what its samplers made, interventions included
            bad = self._parents[int(np.flatnonzero(~np.isfinite(values).all(axis=0))[0])]
            raise ValueError(
                f"the mechanism of {self._node!r} was given NaN or infinite values of its parent {bad!r}; an "
                "intervention (or a noise or data value) that is not a finite number reached it: give finite values"
            )
        node, parents = self._positions()
        return self._inferred.predict(node, parents, values)[:, None]

    def fit(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Keep ``F_hat_i`` on the rows it was inferred from; otherwise infer it from these rows."""
        values = self._parent_values(X)
        target = np.asarray(Y, dtype=np.float64).reshape(-1)
        if target.shape[0] != values.shape[0]:
            raise ValueError(
                f"fit of {self._node!r}: {values.shape[0]} parent rows but {target.shape[0]} target values"
            )
        node, parents = self._positions()
        if self._inferred.is_context(values, parents) and self._inferred.is_context(target[:, None], [node]):
            return
        columns = [*self._parents, self._node]
        table = pd.DataFrame(np.column_stack([values, target]), columns=columns)
        local_graph = nx.DiGraph(self._graph.subgraph(columns))  # parents -> node and edges among parents
        inferred = self._inferred
        scm = inferred.model.infer(table, local_graph, **inferred.infer_options)
        self._inferred = _Inferred(
            scm, table.to_numpy(dtype=np.float64), inferred.model, inferred.infer_options
        )

    def clone(self) -> CondFiPPredictionModel:
        return CondFiPPredictionModel(self._inferred, self._node, self._parents, self._graph)

    def __repr__(self) -> str:
        return f"CondFiPPredictionModel(node={self._node!r}, parents={self._parents!r})"


def _check_inputs(causal_model: object, data: object) -> tuple[nx.DiGraph, list[Hashable]]:
    if not isinstance(causal_model, gcm.ProbabilisticCausalModel):
        raise ValueError(
            "causal_model must be a DoWhy causal model (e.g. gcm.InvertibleStructuralCausalModel(graph)), "
            f"got {type(causal_model).__name__}"
        )
    graph = causal_model.graph
    nodes = list(graph.nodes)
    if not nodes:
        raise ValueError(
            "causal_model.graph has no nodes; build the causal model from a graph over the columns"
        )
    if not isinstance(data, pd.DataFrame):
        raise ValueError(
            f"data must be a pandas DataFrame with one column per node of the graph, got {type(data).__name__}"
        )
    missing = [node for node in nodes if node not in data.columns]
    if missing:
        raise ValueError(
            f"data has no column for the graph node(s) {missing!r}; give one column per node of "
            f"causal_model.graph (data has {list(data.columns)!r}; extra columns are ignored)"
        )
    return graph, nodes


def assign_causal_mechanisms(
    causal_model: gcm.ProbabilisticCausalModel,
    data: pd.DataFrame,
    *,
    model: CondFiP | str = "small",
    **infer_options: Any,
) -> InferredSCM:
    """Give every node of ``causal_model`` a Cond-FiP mechanism inferred from ``data``, already fitted.

    The call shape of ``gcm.auto.assign_causal_mechanisms(causal_model, data)``; existing mechanisms are
    replaced. ``data``: a DataFrame with a column for every node of ``causal_model.graph`` (other columns are
    ignored). ``model``: a ``CondFiP`` or a checkpoint name for ``CondFiP.from_pretrained`` (loaded once per
    name). ``infer_options`` go to ``model.infer``. Root nodes get an ``EmpiricalDistribution`` of their column,
    the others an ``AdditiveNoiseModel`` around the inferred ``F_hat_i`` (the module docstring says more). No
    ``gcm.fit`` is needed afterwards; one on the same rows changes nothing.

    Returns the ``InferredSCM`` behind the mechanisms, for Cond-FiP's own queries.
    """
    graph, nodes = _check_inputs(causal_model, data)
    positive = infer_options.get("positive")
    if not (positive is None or (isinstance(positive, bool | np.bool_) and not positive)):
        raise ValueError(
            "positive= is not supported in DoWhy mechanisms (DoWhy's AdditiveNoiseModel adds the noise in the "
            "data's units); transform the columns (e.g. np.log) before assigning, or use condfip's own "
            "InferredSCM"
        )
    condfip_model = _resolve_model(model)
    table = data[nodes]
    scm = condfip_model.infer(table, graph, **infer_options)
    inferred = _Inferred(scm, table.to_numpy(dtype=np.float64), condfip_model, dict(infer_options))
    frozen_graph = nx.DiGraph()  # the structure alone: DoWhy keeps its mechanisms on the graph's nodes
    frozen_graph.add_nodes_from(nodes)
    frozen_graph.add_edges_from(graph.edges)
    for node in nodes:
        parents = get_ordered_predecessors(graph, node)
        if not parents:
            mechanism: Any = gcm.EmpiricalDistribution()
        else:
            prediction = CondFiPPredictionModel(inferred, node, parents, frozen_graph)
            mechanism = gcm.AdditiveNoiseModel(prediction, gcm.EmpiricalDistribution())
        causal_model.set_causal_mechanism(node, mechanism)
    for node in nodes:
        # DoWhy's own fit: on these rows F_hat_i stays, the noise models take the abducted noise, and DoWhy
        # records the parents it was fitted with.
        fit_causal_model_of_target(causal_model, node, table)
    return scm


def mechanism_noise(
    causal_model: gcm.InvertibleStructuralCausalModel,
    data: pd.DataFrame,
    root_means: dict[Hashable, float] | None = None,
) -> pd.DataFrame:
    """The noise of every row of ``data`` under a fitted DoWhy causal model, any mechanisms (Cond-FiP's or
    DoWhy's own): a non-root node's is its mechanism's ``estimate_noise`` from its column and its parents' (in
    DoWhy's order of them), a root's its value minus ``root_means[root]`` (the value itself, DoWhy's own
    convention, without ``root_means``). ``data``: a column for every node of the graph. Returns a DataFrame
    with a column per node, in the graph's node order."""
    graph, nodes = _check_inputs(causal_model, data)
    roots = [node for node in nodes if not get_ordered_predecessors(graph, node)]
    missing = [] if root_means is None else [root for root in roots if root not in root_means]
    if missing:
        raise ValueError(
            f"root_means has no mean for the root node(s) {missing!r}; give one for every root (e.g. "
            "scm.mean, the context's means), or leave root_means out"
        )
    noise = pd.DataFrame(index=data.index, columns=nodes, dtype=np.float64)
    for node in nodes:
        values = data[node].to_numpy(dtype=np.float64)
        parents = get_ordered_predecessors(graph, node)
        if not parents:
            noise[node] = values - (0.0 if root_means is None else root_means[node])
            continue
        estimate = causal_model.causal_mechanism(node).estimate_noise(
            values, data[parents].to_numpy(dtype=np.float64)
        )
        noise[node] = np.asarray(estimate, dtype=np.float64).reshape(-1)
    return noise
