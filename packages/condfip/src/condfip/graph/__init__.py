"""The amortized graph network (AVICI-style): a table in, the probability of every edge out.

``GraphModel`` builds on the shared stack of ``condfip.nn`` with plain attention over nodes and adds a channel of
pairwise statistics. It is trained with ``condfip train graph`` (``condfip.training.graph_stage``); the user
function is ``condfip.infer_graph`` (``condfip.api.graph_inference``), which also turns the probabilities into
a DAG. The shipped ``graph-small`` loads with ``GraphModel.from_pretrained()``.
"""

from condfip.graph.config import NAMED_GRAPH_CONFIGS, GraphModelConfig
from condfip.graph.model import DEFAULT_GRAPH_MODEL, GraphModel, allowed_pairs

__all__ = ["DEFAULT_GRAPH_MODEL", "NAMED_GRAPH_CONFIGS", "GraphModel", "GraphModelConfig", "allowed_pairs"]
