"""Zero-shot inference of structural causal models (Cond-FiP).

>>> from condfip import CondFiP
>>> scm = CondFiP.from_pretrained("small").infer(data, graph)   # adjacency[i, j] = 1 means i -> j
>>> scm.interventional_samples({"x3": 1.0}, n=1000)
"""

from condfip.api import CondFiP, InferredSCM

__version__ = "0.1.0"
__all__ = ["CondFiP", "InferredSCM", "__version__"]
