"""The user-facing API: ``CondFiP`` (a pretrained network) and ``InferredSCM`` (what it infers for a dataset)."""

from condfip.api.bootstrap import BootstrapResult
from condfip.api.inference import CondFiP
from condfip.api.inferred_scm import InferredSCM

__all__ = ["BootstrapResult", "CondFiP", "InferredSCM"]
