"""Metrics, baselines and benchmark runs for Cond-FiP.

Modules: ``metrics`` (scores), ``methods`` (Cond-FiP and the baselines behind one interface), ``scoring``
(the four tasks on one dataset), ``grid`` and ``paper`` (the paper's test grid and tables), ``csuite``,
``sachs``, ``ecoli70``, ``report`` and ``cli`` (``condfip-eval``).
"""

__version__ = "0.1.0"
