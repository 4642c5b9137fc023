"""``condfip demo``: a fresh SCM from scm-gen, inferred zero-shot, scored against the truth and a fitted baseline."""

from condfip.demo.baseline import LinearANM
from condfip.demo.run import DemoReport, MethodScores, run_demo, standardized_rmse

__all__ = ["DemoReport", "LinearANM", "MethodScores", "run_demo", "standardized_rmse"]
