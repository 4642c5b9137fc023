"""Random structural causal models (SCMs) and the Cond-FiP benchmark datasets."""

__version__ = "0.1.0"
