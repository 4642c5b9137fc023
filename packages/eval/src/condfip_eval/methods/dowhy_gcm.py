"""DoWhy-GCM (optional extra ``dowhy``): an invertible SCM with automatically assigned mechanisms.

``gcm.auto.assign_causal_mechanisms`` picks, per non-root node, the additive-noise regression with the
smallest error among its candidates (quality ``GOOD`` by default); ``gcm.fit`` fits them on the context rows.
Noise and generation go node by node in topological order through each mechanism's ``estimate_noise`` and
``evaluate``, so a hard intervention may give one value per row.

DoWhy models a root node by its empirical distribution, whose "noise" is the value itself. To keep the noise
comparable across methods (additive noise around the mechanism, centred), a root's noise here is its value
minus its context mean, and generation adds that mean back.

DoWhy picks a discrete additive-noise model for a column whose context values are all integers, which then
refuses non-integer rows; the benchmark's data are continuous, so such a node gets the continuous additive-noise
model around the same selected regression.

DoWhy's assignment draws its model selection's splits (and some regressions their randomness) from numpy's and
Python's global generators. Each fit seeds both from a hash of its context rows and restores them afterwards, so
the same rows give the same fit in any run and the caller's random state is left as it was.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from condfip_eval.methods.base import FittedSCM, Method, topological_order

__all__ = ["DoWhyGCM", "dowhy_available"]

_QUALITIES = ("GOOD", "BETTER", "BEST")
# Context rows DoWhy's automatic assignment needs: GOOD selects models by 5-fold cross-validation; BETTER also
# cross-validates inside each training fold (5 folds of at least 5 rows each).
_MIN_ROWS = {"GOOD": 5, "BETTER": 7, "BEST": 7}


def dowhy_available() -> bool:
    """True when the optional ``dowhy`` package can be imported."""
    try:
        import dowhy.gcm  # noqa: F401
    except ImportError:
        return False
    return True


def _import_gcm():
    try:
        from dowhy import gcm
    except ImportError as error:
        raise ImportError(
            "the 'dowhy' method needs DoWhy: pip install dowhy (or pip install './packages/eval[dowhy]' in a "
            "clone of the repository), best in its own environment: DoWhy pins older scipy releases"
        ) from error
    return gcm


@contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """numpy's and Python's global generators seeded with ``seed`` inside, restored to their state on exit (the
    legacy global API on purpose: it is what DoWhy draws from)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


class _FittedDoWhy(FittedSCM):
    def __init__(self, adjacency: np.ndarray, causal_model, root_means: np.ndarray) -> None:
        super().__init__(adjacency)
        self.causal_model = causal_model
        self.root_means = root_means
        self.order = topological_order(adjacency).tolist()
        self.parents = [np.flatnonzero(self.adjacency[:, node]) for node in range(self.num_nodes)]

    def _is_root(self, node: int) -> bool:
        return self.parents[node].size == 0

    def _noise(self, x: np.ndarray) -> np.ndarray:
        import pandas as pd

        from condfip.dowhy import mechanism_noise

        rows = pd.DataFrame(x, columns=list(range(self.num_nodes)))
        return mechanism_noise(self.causal_model, rows, dict(enumerate(self.root_means))).to_numpy()

    def _generate(self, noise: np.ndarray, interventions: dict[int, np.ndarray]) -> np.ndarray:
        x = np.empty_like(noise)
        for node in self.order:
            if node in interventions:
                x[:, node] = interventions[node]
            elif self._is_root(node):
                x[:, node] = noise[:, node] + self.root_means[node]
            else:
                mechanism = self.causal_model.causal_mechanism(node)
                values = mechanism.evaluate(x[:, self.parents[node]], noise[:, node])
                x[:, node] = np.asarray(values, dtype=np.float64).reshape(-1)
        return x


class DoWhyGCM(Method):
    """DoWhy-GCM with automatic mechanism assignment (``quality`` one of GOOD, BETTER, BEST)."""

    name = "dowhy"

    def __init__(self, *, quality: str = "GOOD") -> None:
        if quality not in _QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(_QUALITIES)}; got {quality!r}")
        self.quality = quality
        self.min_rows = _MIN_ROWS[quality]
        self._gcm = _import_gcm()

    def _fit(self, context: np.ndarray, adjacency: np.ndarray) -> FittedSCM:
        import networkx as nx
        import pandas as pd

        gcm = self._gcm
        gcm.config.disable_progress_bars()  # the benchmark shows its own
        num_nodes = adjacency.shape[0]
        graph = nx.DiGraph()
        graph.add_nodes_from(range(num_nodes))
        graph.add_edges_from(zip(*np.nonzero(adjacency), strict=True))
        graph = nx.relabel_nodes(graph, int)  # plain ints, not numpy integers, as node names
        causal_model = gcm.InvertibleStructuralCausalModel(graph)
        data = pd.DataFrame(context, columns=list(range(num_nodes)))
        quality = getattr(gcm.auto.AssignmentQuality, self.quality)
        with seeded_global_random(zlib.crc32(np.ascontiguousarray(context, dtype=np.float64).tobytes())):
            gcm.auto.assign_causal_mechanisms(causal_model, data, quality=quality)
            for node in graph.nodes:
                mechanism = causal_model.causal_mechanism(node)
                if isinstance(mechanism, gcm.DiscreteAdditiveNoiseModel):  # integer-valued context column
                    causal_model.set_causal_mechanism(
                        node, gcm.AdditiveNoiseModel(mechanism.prediction_model)
                    )
            gcm.fit(causal_model, data)
        return _FittedDoWhy(adjacency, causal_model, context.mean(axis=0))
