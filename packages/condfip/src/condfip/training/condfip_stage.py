"""Stages ``encoder`` and ``decoder`` of the Cond-FiP network, with their loss.

Stage ``encoder`` trains the dataset encoder to predict ``X - N`` of every row. Stage ``decoder`` freezes the
encoder (read from its checkpoint), splits each dataset into context and query rows, embeds the context and
trains the embedding head and the decoder to predict ``X - N`` of the query rows from the query rows
(teacher-forced single step). Loss: per-row RMSE over nodes, averaged; the decoder stage can add a rollout
loss, a loss with the readout refitted on the context, and the encoder's own loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from condfip.io.checkpoint import tensors_digest
from condfip.model import CondFiPModel, fixed_point_generate
from condfip.model.readout import fit_readout_with_penalty
from condfip.training.options import DecoderOptions, EncoderOptions, TrainingOptions
from condfip.training.validation import build_validation_set, evaluate

TRAINABLE = {"encoder": ("encoder",), "decoder": ("embedding_head", "decoder")}
REFIT_TRAINING_PENALTY = 0.1  # ridge penalty of the training loss with a refitted readout (--refit-weight)


def rmse_per_row(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[b, n, d] -> scalar: mean over rows of sqrt(mean over nodes of squared error)."""
    return ((prediction.float() - target.float()) ** 2).mean(dim=-1).add(1e-12).sqrt().mean()


class CondFiPLoss(nn.Module):
    """The loss of the encoder or decoder stage as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(
        self,
        model: CondFiPModel,
        stage: str,
        *,
        rollout_weight: float = 0.0,
        rollout_rows: int = 64,
        refit_weight: float = 0.0,
        encoder_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.stage = stage
        self.rollout_weight = rollout_weight
        self.rollout_rows = rollout_rows
        self.refit_weight = refit_weight
        self.encoder_weight = encoder_weight

    def forward(
        self, data: torch.Tensor, noise: torch.Tensor, parents: torch.Tensor, step: int = 0
    ) -> torch.Tensor:
        """data, noise: [b, n, d]; parents: [b, d, d]; step: the optimizer step (unused by these stages)."""
        target = data - noise  # the mechanisms' values f(x_pa), standardized
        if self.stage == "encoder":
            return rmse_per_row(self.model.predict_mechanisms_encoder(data, parents), target)
        half = data.shape[1] // 2
        embedding = self.model.embed(data[:, :half], parents, chunk_size=None)
        query = data[:, half:]
        if self.refit_weight > 0:
            loss = self._with_refit_loss(data[:, :half], query, target[:, half:], parents, embedding)
        else:
            loss = rmse_per_row(self.model.mechanisms(query, parents, embedding), target[:, half:])
        if self.rollout_weight > 0:
            # generation from the true noise through F_hat itself: trains F_hat on its own outputs upstream
            rows = slice(half, half + self.rollout_rows)

            def mechanisms(z: torch.Tensor) -> torch.Tensor:
                return self.model.mechanisms(z, parents, embedding)

            generated = fixed_point_generate(mechanisms, noise[:, rows], parents)  # [b, rollout_rows, d]
            loss = loss + self.rollout_weight * rmse_per_row(generated, data[:, rows])
        if self.encoder_weight > 0:
            # the unfrozen encoder keeps its own task (its noise is the API's amortized abduction)
            predicted = self.model.predict_mechanisms_encoder(data[:, :half], parents)
            loss = loss + self.encoder_weight * rmse_per_row(predicted, target[:, :half])
        return loss

    def _with_refit_loss(
        self,
        context: torch.Tensor,
        query: torch.Tensor,
        query_target: torch.Tensor,
        parents: torch.Tensor,
        embedding: Any,
    ) -> torch.Tensor:
        """The one-step loss plus ``refit_weight`` times the one-step loss of the readout refitted on the
        context rows (a ridge with penalty ``REFIT_TRAINING_PENALTY``, as ``refit_readout`` at inference fits
        it), so that the decoder's block states learn to be good features for a per-dataset readout."""
        decoder = self.model.decoder
        _, context_features = decoder(context, parents, embedding, return_features=True)
        prediction, query_features = decoder(query, parents, embedding, return_features=True)
        e = decoder.out.weight.shape[1]
        prior = torch.cat([decoder.out.weight.new_zeros(query_features.shape[-1] - e), decoder.out.weight[0]])
        weights, bias = fit_readout_with_penalty(
            context_features, context, prior, decoder.out.bias[0], REFIT_TRAINING_PENALTY
        )
        refitted = torch.einsum("bndf,bdf->bnd", query_features.double(), weights) + bias[:, None]
        return rmse_per_row(prediction, query_target) + self.refit_weight * rmse_per_row(
            refitted, query_target
        )


class CondFiPStage:
    """Stages ``encoder`` and ``decoder`` of the Cond-FiP network."""

    def __init__(self, options: EncoderOptions | DecoderOptions) -> None:
        self.options = options
        self.name = options.name
        self.encoder_digest: str | None = None  # the decoder stage: of the encoder weights it started from

    def build_model(self, options: TrainingOptions) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # the initialization depends on the seed only
            torch.manual_seed(options.seed)
            model = CondFiPModel(options.config)
        stage = self.options
        trainable = TRAINABLE[self.name]
        if isinstance(stage, DecoderOptions):
            encoder = CondFiPModel.from_pretrained(stage.encoder)
            if encoder.config.encoder_fields() != options.config.encoder_fields():
                raise ValueError(
                    f"the encoder checkpoint {stage.encoder} has encoder sizes {encoder.config.encoder_fields()}, "
                    f"but this run asks for {options.config.encoder_fields()}; pass a --config with the same "
                    "encoder sizes"
                )
            model.encoder.load_state_dict(encoder.encoder.state_dict())
            self.encoder_digest = tensors_digest(encoder.encoder.state_dict())
            if stage.encoder_weight > 0:
                trainable += ("encoder",)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.split(".")[0] in trainable)
        return model

    def loss_module(self, model: nn.Module, options: TrainingOptions) -> nn.Module:
        stage = self.options
        if not isinstance(stage, DecoderOptions):
            return CondFiPLoss(model, self.name)
        return CondFiPLoss(
            model,
            self.name,
            rollout_weight=stage.rollout_weight,
            rollout_rows=stage.rollout_rows,
            refit_weight=stage.refit_weight,
            encoder_weight=stage.encoder_weight,
        )

    def validation_set(self, options: TrainingOptions) -> list:
        return build_validation_set(datasets_per_cell=options.validation_datasets)

    def evaluate(self, model: nn.Module, cells: list) -> dict[str, float]:
        # the decoder stage also logs the figures of the default path, adapted to each context (`*_adapted`)
        return evaluate(model, cells, stage=self.name, adapted=self.name == "decoder")

    def recipe(self) -> dict[str, Any]:
        """The decoder stage records which encoder weights it started from (``--encoder``'s, by their digest,
        wherever the folder lies); a resume with other ones is refused."""
        return {} if self.encoder_digest is None else {"encoder_digest": self.encoder_digest}
