"""One dataclass describing the amortized graph model, with the named configurations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from condfip.io.architecture import Architecture


@dataclass(frozen=True)
class GraphModelConfig(Architecture):
    """Sizes of the amortized structure model (AVICI-style).

    ``num_layers`` pairs of (attention over samples, attention over all nodes) blocks. As in the Cond-FiP
    encoder, attention over samples takes its keys and values from at most ``num_anchor_rows`` evenly spaced
    rows (all rows up to that many), so any number of rows is processed in chunks with bounded memory.
    ``edge_bias_init`` starts every edge logit there (sigmoid(-3) = 0.05: sparse graphs).
    ``pair_statistics`` adds a second channel: an MLP (``pair_mlp_layers`` hidden layers of width
    ``pair_mlp_dim``) over the pairwise statistics of ``condfip.graph.statistics`` (correlations, partial
    correlations, nonlinear regression evidence), whose output is added to every edge logit. Off by default;
    both named configurations turn it on.
    """

    dim: int = 128
    num_heads: int = 8
    mlp_dim: int = 512
    num_layers: int = 4
    num_anchor_rows: int = 400
    edge_bias_init: float = -3.0
    pair_statistics: bool = False
    pair_mlp_dim: int = 64
    pair_mlp_layers: int = 2
    KIND: ClassVar[str] = "graph config"

    def __post_init__(self) -> None:
        for name in (
            "dim",
            "num_heads",
            "mlp_dim",
            "num_layers",
            "num_anchor_rows",
            "pair_mlp_dim",
            "pair_mlp_layers",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GraphModelConfig.{name} must be an integer >= 1, got {value!r}")
        if self.dim % self.num_heads:
            raise ValueError(
                f"GraphModelConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if not isinstance(self.pair_statistics, bool):
            raise ValueError(
                f"GraphModelConfig.pair_statistics must be true or false, got {self.pair_statistics!r}"
            )


NAMED_GRAPH_CONFIGS: dict[str, GraphModelConfig] = {
    # For a GPU: close to AVICI's size (width 128, 8 attention layers).
    "base": GraphModelConfig(pair_statistics=True, pair_mlp_dim=256, pair_mlp_layers=3),
    # Small enough to train on two shared CPU cores (see TRAINING.md, "`graph-small`"). The pair-statistics
    # MLP is the wide part: trained on those features alone, 3 x 256 reached AUROC 0.913 / 0.917 (d = 20, P_IN
    # grid, linear / RFF) after 6,000 steps, and 2 x 64 0.898 / 0.881 after 2,000 (TRAINING.md, "Tried, did not help").
    "small": GraphModelConfig(
        dim=32,
        num_heads=4,
        mlp_dim=64,
        num_layers=2,
        num_anchor_rows=64,
        pair_statistics=True,
        pair_mlp_dim=256,
        pair_mlp_layers=3,
    ),
}
GraphModelConfig.NAMED = NAMED_GRAPH_CONFIGS
