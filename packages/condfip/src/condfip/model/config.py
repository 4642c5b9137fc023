"""One dataclass describing the Cond-FiP architecture, with the named configurations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from condfip.io.architecture import Architecture


@dataclass(frozen=True)
class CondFiPConfig(Architecture):
    """Sizes of the dataset encoder, the dataset embedding and the conditional fixed-point decoder.

    ``num_anchor_rows``: attention over samples uses at most this many context rows as keys and values
    (the anchors); every other row attends to them. Up to that many rows this is plain self-attention; beyond
    it, each row depends only on itself and the anchors, so any context is processed in chunks of rows with
    bounded memory, exactly.
    """

    dim: int = 256
    num_heads: int = 8
    mlp_dim: int = 512
    encoder_pairs: int = 4
    embedding_pairs: int = 2
    decoder_blocks: int = 4
    num_anchor_rows: int = 400
    max_nodes: int | None = None
    decoder_mlp_dim: int | None = None  # None: mlp_dim
    decoder_value_norm: bool = True  # LayerNorm on the value embedding z * C + P (the shipped small has it)

    def __post_init__(self) -> None:
        for name in ("dim", "num_heads", "mlp_dim", "decoder_blocks", "num_anchor_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"CondFiPConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_pairs", "embedding_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"CondFiPConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.decoder_mlp_dim is not None and self.decoder_mlp_dim < 1:
            raise ValueError(
                f"CondFiPConfig.decoder_mlp_dim must be >= 1 or None, got {self.decoder_mlp_dim}"
            )
        if self.dim % self.num_heads:
            raise ValueError(
                f"CondFiPConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads})"
            )

    def encoder_fields(self) -> dict[str, Any]:
        """The fields that shape the encoder: a trained encoder fits any config that agrees on these."""
        return {name: getattr(self, name) for name in ("dim", "num_heads", "mlp_dim", "encoder_pairs")}


NAMED_CONFIGS: dict[str, CondFiPConfig] = {
    # The reference size of the paper (docs/ARCHITECTURE.md, "Dataset encoder" and "Conditional decoder"), with
    # the paper's value embedding z * C + P (no LayerNorm on it: in a 400-step comparison at the small size it
    # learned slightly faster, TRAINING.md, "Tried, did not help").
    "base": CondFiPConfig(decoder_value_norm=False),
    # Small enough for about two hours of training on two CPU cores (TRAINING.md, "Configurations").
    "small": CondFiPConfig(
        dim=64,
        num_heads=4,
        mlp_dim=128,
        encoder_pairs=2,
        embedding_pairs=1,
        decoder_blocks=3,
        num_anchor_rows=100,
    ),
}
CondFiPConfig.NAMED = NAMED_CONFIGS
