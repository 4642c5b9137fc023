"""The whole Cond-FiP network: encoder, dataset embedding and conditional decoder.

Axis legend: b datasets, n rows, m anchor rows, d nodes, e embedding.
All inputs are standardized per dataset; ``parents[b, i, j]`` is true when ``j -> i``; ``sample_mask[b, n]`` is
true for real rows (padding rows come last and are ignored).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from condfip.model.anchors import anchor_indices, gather_rows
from condfip.model.config import CondFiPConfig
from condfip.model.decoder import ConditionalDecoder
from condfip.model.embedding import DatasetEmbedding, EmbeddingHead
from condfip.model.encoder import DatasetEncoder

DEFAULT_CHUNK_ROWS = 1024


class CondFiPModel(nn.Module):
    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DatasetEncoder(config)
        self.embedding_head = EmbeddingHead(config)
        self.decoder = ConditionalDecoder(config)

    # ----- encoder: amortized noise prediction -----------------------------------------------------------

    def _encoder_anchors(
        self, context: torch.Tensor, parents: torch.Tensor, sample_mask: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        indices, anchor_mask = anchor_indices(
            context.shape[1], self.config.num_anchor_rows, sample_mask, context.shape[0], context.device
        )
        anchors = gather_rows(context, indices)  # [b, m, d]
        states, anchor_tokens = self.encoder.anchor_states(anchors, parents, anchor_mask)
        return states, anchor_tokens, anchor_mask

    def predict_mechanisms_encoder(
        self,
        x: torch.Tensor,
        parents: torch.Tensor,
        sample_mask: torch.Tensor | None = None,
        *,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """The encoder head's ``f(x_pa)`` for rows x: [b, n, d] -> [b, n, d].

        Rows attend to anchors taken from ``context`` (default: x itself with ``sample_mask``).
        """
        if context is None:
            context, context_mask = x, sample_mask
        states, _, anchor_mask = self._encoder_anchors(context, parents, context_mask)
        chunks = [
            self.encoder.predict(self.encoder.tokens(part, parents, states, anchor_mask))
            for part in _row_chunks(x, chunk_size)
        ]
        return torch.cat(chunks, dim=1)

    def predict_noise(
        self,
        x: torch.Tensor,
        parents: torch.Tensor,
        sample_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Amortized abduction ``N_hat = x - f_hat(x_pa)``: [b, n, d] -> [b, n, d]."""
        return x - self.predict_mechanisms_encoder(x, parents, sample_mask, **kwargs)

    # ----- dataset embedding ---------------------------------------------------------------------------

    def embed(
        self,
        context: torch.Tensor,
        parents: torch.Tensor,
        *,
        sample_mask: torch.Tensor | None = None,
        chunk_size: int | None = DEFAULT_CHUNK_ROWS,
    ) -> DatasetEmbedding:
        """context: [b, n, d] -> embedding, the max over rows computed chunk by chunk (bounded memory).

        Every row attends only to the anchor rows, so the result does not depend on ``chunk_size``. The anchor
        rows' features come out of the anchors' own pass; when every dataset has the same anchors (no padding)
        those rows are not run a second time.
        """
        indices, anchor_mask = anchor_indices(
            context.shape[1], self.config.num_anchor_rows, sample_mask, context.shape[0], context.device
        )
        encoder_states, anchor_tokens = self.encoder.anchor_states(
            gather_rows(context, indices), parents, anchor_mask
        )
        head_states, anchor_features = self.embedding_head.anchor_states(anchor_tokens, parents, anchor_mask)
        pool = self.embedding_head.new_pool()
        # with padding, every row (anchors included) comes again below: the anchors count in the maxima only
        pool.add(anchor_features, anchor_mask, in_mean=sample_mask is None)
        rows, row_mask = context, sample_mask
        if sample_mask is None:  # the same anchor rows in every dataset: pool the other rows only
            others = torch.ones(context.shape[1], dtype=torch.bool, device=context.device)
            others[indices[0]] = False
            rows = context[:, others]
        for start, part in _row_chunks_with_start(rows, chunk_size):
            tokens = self.encoder.tokens(part, parents, encoder_states, anchor_mask)
            features = self.embedding_head.row_features(tokens, parents, head_states, anchor_mask)
            real = None if row_mask is None else row_mask[:, start : start + part.shape[1]]  # [b, n]
            pool.add(features, real)
        return self.embedding_head.finish(pool.result())

    # ----- decoder: the mechanisms -----------------------------------------------------------------------

    def mechanisms(
        self,
        z: torch.Tensor,
        parents: torch.Tensor,
        embedding: DatasetEmbedding,
        nodes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``F_hat(z)``: [b, n, d] -> [b, n, d] (or [b, n, k] for the node indices ``nodes``, shape [k]);
        output i depends only on the values of i's parents."""
        return self.decoder(z, parents, embedding, nodes)

    # ----- checkpoints -----------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, *, training: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``directory`` atomically."""
        from condfip.checkpoint import save_model

        save_model(self, directory, training=training)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, map_location: str | torch.device = "cpu"
    ) -> CondFiPModel:
        """Load a model written by ``save_pretrained``; refuses unknown formats and mismatched tensors."""
        from condfip.checkpoint import load_model

        return load_model(directory, map_location=map_location)


def _row_chunks(x: torch.Tensor, chunk_size: int | None) -> list[torch.Tensor]:
    return [part for _, part in _row_chunks_with_start(x, chunk_size)]


def _row_chunks_with_start(x: torch.Tensor, chunk_size: int | None) -> list[tuple[int, torch.Tensor]]:
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows or None, got {chunk_size}")
    step = x.shape[1] if chunk_size is None else chunk_size
    return [(start, x[:, start : start + step]) for start in range(0, x.shape[1], max(step, 1))]
