"""Zero-shot inference of structural causal models (Cond-FiP)."""

__version__ = "0.1.0"
