"""Zero-shot inference of structural causal models (Cond-FiP).

>>> from condfip import CondFiP
>>> scm = CondFiP.from_pretrained("small").infer(data, graph)   # adjacency[i, j] = 1 means i -> j
>>> scm.interventional_samples({"x3": 1.0}, n=1000)
>>> probabilities, dag = infer_graph(data)   # no graph? the amortized graph model (or graph="infer")
"""

from condfip._version import __version__
from condfip.api import BootstrapResult, CondFiP, InferredSCM, infer_graph

__all__ = ["BootstrapResult", "CondFiP", "InferredSCM", "__version__", "infer_graph"]
