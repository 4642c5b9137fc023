"""The whole Cond-FiP network: encoder, dataset embedding and conditional decoder.

Axis legend: b datasets, n rows, m anchor rows, d nodes, e embedding.
All inputs are standardized per dataset; ``parents[b, i, j]`` is true when ``j -> i``; ``sample_mask[b, n]`` is
true for real rows (padding rows come last and are ignored).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from condfip.io.registry import PretrainedModel
from condfip.model.config import CondFiPConfig
from condfip.model.decoder import ConditionalDecoder
from condfip.model.embedding import DatasetEmbedding, EmbeddingHead
from condfip.model.encoder import DatasetEncoder
from condfip.nn.anchors import anchor_indices, gather_rows
from condfip.nn.pooling import max_over_rows, row_chunks

DEFAULT_CHUNK_ROWS = 1024


class CondFiPModel(nn.Module, PretrainedModel, model_type="condfip"):
    """The Cond-FiP network; ``save_pretrained`` / ``from_pretrained`` (default: the shipped ``small``) come
    from ``condfip.io.registry.PretrainedModel``."""

    config_class = CondFiPConfig
    default_name = "small"

    def __init__(self, config: CondFiPConfig) -> None:
        super().__init__()
        self.config = config
        self.training_recipe: dict[str, Any] = {}
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
            for _, part in row_chunks(x, chunk_size)
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

        Every row attends only to the anchor rows, so the result does not depend on ``chunk_size``
        (``condfip.nn.pooling``).
        """
        encoder, head = self.encoder, self.embedding_head

        def anchor_pass(anchors: torch.Tensor, anchor_mask: torch.Tensor | None) -> tuple[Any, torch.Tensor]:
            encoder_states, anchor_tokens = encoder.anchor_states(anchors, parents, anchor_mask)
            head_states, anchor_features = head.anchor_states(anchor_tokens, parents, anchor_mask)
            return (encoder_states, head_states), anchor_features

        def row_pass(rows: torch.Tensor, states: Any, anchor_mask: torch.Tensor | None) -> torch.Tensor:
            encoder_states, head_states = states
            tokens = encoder.tokens(rows, parents, encoder_states, anchor_mask)
            return head.row_features(tokens, parents, head_states, anchor_mask)

        pooled = max_over_rows(
            context,
            num_anchor_rows=self.config.num_anchor_rows,
            sample_mask=sample_mask,
            chunk_size=chunk_size,
            anchor_pass=anchor_pass,
            row_pass=row_pass,
        )
        return head.finish(pooled)

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
