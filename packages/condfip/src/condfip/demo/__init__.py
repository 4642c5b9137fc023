"""``condfip demo``: a fresh SCM from scm-gen, inferred zero-shot and by the default (adapted) path, scored
against the truth beside linear and kernel regressions fitted on the same rows."""

from condfip.demo.baseline import KernelANM, KernelRegression, LinearANM
from condfip.demo.run import DemoReport, MethodScores, run_demo, standardized_rmse

__all__ = [
    "DemoReport",
    "KernelANM",
    "KernelRegression",
    "LinearANM",
    "MethodScores",
    "run_demo",
    "standardized_rmse",
]
