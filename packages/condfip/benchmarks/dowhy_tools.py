"""DoWhy-GCM's analysis tools on Cond-FiP's mechanisms and on DoWhy's own, on Sachs: seconds per call.

    PYTHONPATH=packages/eval/src python packages/condfip/benchmarks/dowhy_tools.py [--jobs 1] [--repeats 2]

Needs ``condfip[dowhy]`` and ``condfip_eval`` (the Sachs data and its consensus graph). One causal model is
filled by ``condfip.dowhy.assign_causal_mechanisms``, another by ``gcm.auto.assign_causal_mechanisms`` (quality
GOOD) and ``gcm.fit``; then each tool runs ``--repeats`` times on each, with the same global seed before each
call: ``arrow_strength`` and ``intrinsic_causal_influence`` of PIP2 (a node of two parents),
``attribute_anomalies`` of three rows, ``distribution_change`` between the first 400 rows and the others (it fits
the mechanisms on both), ``average_causal_effect`` of ``do(praf = 60)`` against ``do(praf = 30)`` on pmek, and
``anomaly_scores`` of five rows. ``--jobs`` is DoWhy's ``n_jobs`` (``arrow_strength``'s and
``gcm.config.default_n_jobs``; 1: in this process); with -1, the first call of a session also starts DoWhy's
worker processes, which import torch and condfip to run Cond-FiP's mechanisms. Prints each tool's seconds (fastest of the repeats) for both models.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="n_jobs of the tools that take it")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from dowhy import gcm

    from condfip.dowhy import assign_causal_mechanisms
    from condfip_eval.sachs import consensus_graph, load_sachs

    gcm.config.disable_progress_bars()
    data = load_sachs()
    models = {}
    for name in ("Cond-FiP", "DoWhy-GCM"):
        # a graph of its own: DoWhy stores the mechanisms on the graph's nodes
        causal_model = gcm.InvertibleStructuralCausalModel(consensus_graph())
        start = time.perf_counter()
        if name == "Cond-FiP":
            assign_causal_mechanisms(causal_model, data)
        else:
            gcm.auto.assign_causal_mechanisms(causal_model, data, quality=gcm.auto.AssignmentQuality.GOOD)
            gcm.fit(causal_model, data)
        print(f"{name:10s} assign + fit {time.perf_counter() - start:.2f} s")
        models[name] = causal_model

    jobs = args.jobs
    gcm.config.default_n_jobs = jobs  # the Shapley-value tools' (attribution, influence, change)
    tools: dict[str, Callable] = {
        "arrow_strength": lambda m: gcm.arrow_strength(m, "PIP2", n_jobs=jobs),
        "intrinsic_causal_influence": lambda m: gcm.intrinsic_causal_influence(
            m, "PIP2", num_samples_randomization=200, num_samples_baseline=200
        ),
        "attribute_anomalies": lambda m: gcm.attribute_anomalies(m, "PIP2", anomaly_samples=data.iloc[:3]),
        "distribution_change": lambda m: gcm.distribution_change(m, data.iloc[:400], data.iloc[400:], "PIP2"),
        "average_causal_effect": lambda m: gcm.average_causal_effect(
            m, "pmek", {"praf": lambda x: 60.0}, {"praf": lambda x: 30.0}, num_samples_to_draw=1000
        ),
        "anomaly_scores": lambda m: gcm.anomaly_scores(m, data.iloc[:5]),
    }
    print(f"{'tool':28s} " + " ".join(f"{name:>12s}" for name in models))
    for tool, call in tools.items():
        seconds = []
        for causal_model in models.values():
            times = []
            for _ in range(args.repeats):
                np.random.seed(0)  # noqa: NPY002 -- DoWhy draws from the global generator
                start = time.perf_counter()
                call(causal_model)
                times.append(time.perf_counter() - start)
            seconds.append(min(times))
        print(f"{tool:28s} " + " ".join(f"{s:12.2f}" for s in seconds))


if __name__ == "__main__":
    main()
