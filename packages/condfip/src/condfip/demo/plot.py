"""``condfip demo --plot``: true vs inferred interventional marginals (needs the ``condfip[plot]`` extra)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np

from condfip.core.dags import as_digraph
from condfip.io.atomic import atomic_file


def plot_interventional_marginals(
    dataset, scm, path: str | Path, *, seed: int = 0, max_nodes: int = 6
) -> Path:
    """Histograms of the true interventional rows beside rows sampled from the inferred SCM, for the intervened
    node's descendants first (up to ``max_nodes`` panels). Written atomically as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib; install it with: pip install 'condfip[plot]'") from None
    node, value = dataset.intervention_node, dataset.intervention_value
    graph = as_digraph(dataset.adjacency)
    below = sorted(nx.descendants(graph, node))
    others = [j for j in range(dataset.num_nodes) if j != node and j not in below]
    shown = (below + others)[:max_nodes]
    columns = scm.columns
    sampled = scm.interventional_samples(
        {columns[node]: value}, n=len(dataset.interventional_data), seed=seed
    ).to_numpy()
    num_columns = min(3, len(shown))
    num_rows = -(-len(shown) // num_columns)
    figure, axes = plt.subplots(
        num_rows, num_columns, figsize=(3.2 * num_columns, 2.6 * num_rows), squeeze=False
    )
    for axis in axes.flat[len(shown) :]:
        axis.set_visible(False)
    for axis, j in zip(axes.flat, shown, strict=False):
        truth, inferred = dataset.interventional_data[:, j], sampled[:, j]
        bins = np.histogram_bin_edges(np.concatenate([truth, inferred]), bins=30)
        axis.hist(truth, bins=bins, alpha=0.5, density=True, label="true SCM")
        label = "Cond-FiP (default)" if getattr(scm, "adapted", False) else "Cond-FiP (zero-shot)"
        axis.hist(inferred, bins=bins, alpha=0.5, density=True, label=label)
        axis.set_title(f"{columns[j]}{' (descendant)' if j in below else ''}", fontsize=9)
        axis.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"Interventional marginals under do({columns[node]} = {value:.3g})", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    with atomic_file(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return path
