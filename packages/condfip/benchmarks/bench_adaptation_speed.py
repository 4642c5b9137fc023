"""CPU seconds of ``CondFiP.infer``: the default (adapted) path against zero-shot, on one table.

The table is the sine SCM of ``unseen_families.py`` (``UnseenSCM(nodes, "sine", "gauss", default_rng(seed))``),
with ``--rows`` rows and its true graph. Each variant runs ``--repeats`` times after one warm-up call, on one
thread; the script prints every time (``time.process_time``, sorted) and the ratio of the medians. The third
variant is ``infer`` followed by ``noise()``, whose first call computes the exact leave-one-out statistics that
``infer`` defers (``condfip.model.held_out``).

    OMP_NUM_THREADS=1 python packages/condfip/benchmarks/bench_adaptation_speed.py --nodes 20 --rows 400
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import networkx as nx
import numpy as np
import pandas as pd
import torch
from unseen_families import UnseenSCM

from condfip import CondFiP


def sine_table(nodes: int, rows: int, seed: int) -> tuple[pd.DataFrame, nx.DiGraph]:
    """The rows of the sine SCM and its graph over columns ``x0 ... x{nodes - 1}``."""
    scm = UnseenSCM(nodes, "sine", "gauss", np.random.default_rng(seed))
    values = scm.generate(scm.noise(rows, np.random.default_rng(seed + 1)))  # [rows, nodes]
    columns = [f"x{i}" for i in range(nodes)]
    graph = nx.relabel_nodes(nx.DiGraph(scm.adjacency), dict(enumerate(columns)))
    graph.add_nodes_from(columns)
    return pd.DataFrame(values, columns=columns), graph


def cpu_seconds(call: Callable[[], object], repeats: int) -> list[float]:
    """Sorted process CPU seconds of ``repeats`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--weights", default="small")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = CondFiP.from_pretrained(args.weights)
    table, graph = sine_table(args.nodes, args.rows, args.seed)
    variants = {
        "adapted infer": lambda: model.infer(table, graph),
        "zero-shot infer": lambda: model.infer(table, graph, zero_shot=True),
        "adapted infer + noise()": lambda: model.infer(table, graph).noise(),
    }
    medians = {}
    for name, call in variants.items():
        times = cpu_seconds(call, args.repeats)
        medians[name] = statistics.median(times)
        print(f"{name:24s} " + " ".join(f"{t:.3f}" for t in times))
    ratio = medians["adapted infer"] / medians["zero-shot infer"]
    print(f"adapted / zero-shot (medians): {ratio:.1f}x")


if __name__ == "__main__":
    main()
