"""One dataclass describing the Cond-FiP architecture, with the named configurations."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUMMARY_STATISTICS = {"max": ("max",), "mean": ("mean",), "max+mean": ("max", "mean")}


@dataclass(frozen=True)
class CondFiPConfig:
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
    decoder_value_norm: bool = (
        True  # LayerNorm on the value embedding z * C + P (the first small model had it)
    )
    # Extra statistics of the dataset embedding (``condfip.model.pooling``): a feature map of this width per row
    # and node, pooled over rows by ``summary_statistics`` and added to the max-pooled embedding through a
    # projection that starts at zero. 0: the paper's max-pool alone.
    summary_width: int = 0
    summary_statistics: str = "max+mean"

    def __post_init__(self) -> None:
        for name in ("dim", "num_heads", "mlp_dim", "decoder_blocks", "num_anchor_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"CondFiPConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_pairs", "embedding_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"CondFiPConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.summary_width < 0:
            raise ValueError(f"CondFiPConfig.summary_width must be >= 0, got {self.summary_width}")
        if self.summary_statistics not in SUMMARY_STATISTICS:
            raise ValueError(
                f"CondFiPConfig.summary_statistics must be one of {sorted(SUMMARY_STATISTICS)}, "
                f"got {self.summary_statistics!r}"
            )
        if self.decoder_mlp_dim is not None and self.decoder_mlp_dim < 1:
            raise ValueError(
                f"CondFiPConfig.decoder_mlp_dim must be >= 1 or None, got {self.decoder_mlp_dim}"
            )
        if self.dim % self.num_heads:
            raise ValueError(
                f"CondFiPConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads})"
            )

    @classmethod
    def named(cls, name: str) -> CondFiPConfig:
        """The named configurations: ``base`` (the paper's size) and ``small`` (trains on 2 CPU cores)."""
        if name not in NAMED_CONFIGS:
            raise ValueError(f"unknown config name {name!r}; expected one of {sorted(NAMED_CONFIGS)}")
        return NAMED_CONFIGS[name]

    def encoder_fields(self) -> dict[str, Any]:
        """The fields that shape the encoder: a trained encoder fits any config that agrees on these."""
        return {name: getattr(self, name) for name in ("dim", "num_heads", "mlp_dim", "encoder_pairs")}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CondFiPConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown CondFiPConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> CondFiPConfig:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read a CondFiPConfig from {path}: {error}") from error
        return cls.from_dict(values.get("architecture", values))


NAMED_CONFIGS: dict[str, CondFiPConfig] = {
    # The reference size of the paper (DESIGN section 4.3-4.4), with the paper's value embedding z * C + P (no
    # LayerNorm on it: in a 400-step comparison at the small size it learned slightly faster, TRAINING.md).
    "base": CondFiPConfig(decoder_value_norm=False),
    # Small enough for about two hours of training on two CPU cores (see TRAINING.md for the reasoning).
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
