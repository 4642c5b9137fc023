"""Metrics, baselines and benchmark runs for Cond-FiP."""

__version__ = "0.1.0"
