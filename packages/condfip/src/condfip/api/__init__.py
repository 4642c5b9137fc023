"""The user-facing API: ``CondFiP`` (a pretrained network), ``InferredSCM`` (what it infers for a dataset) and
``infer_graph`` (a DAG for a table, from the graph network). One parser of user tables (``tables``) and of user
graphs (``graphs``) serves them all."""

from condfip.api.bootstrap import BootstrapResult
from condfip.api.graph_inference import infer_graph
from condfip.api.inference import CondFiP
from condfip.api.inferred_scm import InferredSCM

__all__ = ["BootstrapResult", "CondFiP", "InferredSCM", "infer_graph"]
