"""Amortized causal-graph inference (AVICI-style): a table in, edge probabilities and a DAG out, zero-shot.

>>> from condfip.graph import infer_graph
>>> probabilities, dag = infer_graph(data)      # probabilities[i, j] and dag[i, j] are about i -> j

The model (``GraphModel``) is trained with ``condfip train graph``; shipped weights are found by name (default
``graph-small``, shipped inside the package), or pass a checkpoint folder as ``model=``.
"""

from condfip.graph.checkpoint import DEFAULT_GRAPH_MODEL, load_graph_model
from condfip.graph.config import NAMED_GRAPH_CONFIGS, GraphModelConfig
from condfip.graph.dag import dag_from_probabilities
from condfip.graph.inference import infer_graph
from condfip.graph.model import GraphModel

__all__ = [
    "DEFAULT_GRAPH_MODEL",
    "NAMED_GRAPH_CONFIGS",
    "GraphModel",
    "GraphModelConfig",
    "dag_from_probabilities",
    "infer_graph",
    "load_graph_model",
]
