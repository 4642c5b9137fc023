"""The training loop shared by every stage, in one process or under torch.distributed.

Stage ``encoder`` trains the dataset encoder to predict ``X - N`` of every row. Stage ``decoder`` freezes the
encoder (read from its checkpoint), splits each dataset into context and query rows, embeds the context and
trains the embedding head and the decoder to predict ``X - N`` of the query rows from the query rows
(teacher-forced single step). Loss: per-row RMSE over nodes, averaged. Stage ``graph`` trains the amortized
graph model (``condfip.graph``) to predict the adjacency. What differs between stages sits behind the small
``Stage`` interface (``condfip.training.stages``); the loop, schedule, EMA, checkpoints, resume, DDP and logs
are shared.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from condfip.checkpoint import (
    MODEL_TYPE,
    check_tensors,
    load_model,
    read_checkpoint_weights,
    read_config,
    write_json,
)
from condfip.model import CondFiPConfig, CondFiPModel, fixed_point_generate
from condfip.model.readout import fit_readout_with_penalty
from condfip.training.data import StreamSpec, training_loader
from condfip.training.ema import WeightAverage
from condfip.training.schedule import learning_rate, learning_rate_by_time
from condfip.training.stages import Stage, stage_for
from condfip.training.state import load_training_state, save_training_state
from condfip.training.validation import build_validation_set, evaluate

STAGES = ("encoder", "decoder", "graph")
TRAINABLE = {"encoder": ("encoder",), "decoder": ("embedding_head", "decoder")}


@dataclass
class TrainingOptions:
    stage: str
    config: Any  # CondFiPConfig (encoder, decoder) or condfip.graph.GraphModelConfig (graph)
    out: Path
    steps: int
    batch_size: int = 8  # datasets per step, over all ranks
    seed: int = 0
    resume: bool = False
    encoder_checkpoint: Path | None = None  # decoder stage: the trained encoder
    num_samples: int = 400  # rows per dataset (decoder: half context, half query)
    node_counts: tuple[int, ...] = (20,)
    preset: str = "in"
    mechanisms: tuple[str, ...] = ("linear", "rff")
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 1000
    min_lr: float = 1e-5
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    validation_datasets: int = 4  # per cell (P_IN/P_OUT x linear/RFF)
    workers: int = 1
    device: str = "auto"
    progress: bool = True
    time_limit_s: float | None = None  # end (checkpointed) once this much wall time has passed
    schedule_by_time: bool = False  # cosine decay over the time limit instead of --steps (time-boxed runs)
    stop_at: int | None = (
        None  # end this process after this step, with the schedule of --steps (resume later)
    )
    extra: dict[str, Any] = field(default_factory=dict)
    acyclicity_weight: float = 1.0  # graph stage: final weight of the acyclicity penalty
    rollout_weight: float = 0.0  # decoder stage: weight of the generation (rollout) loss, 0 = off
    rollout_rows: int = 64  # decoder stage: query rows per dataset the rollout loss generates
    refit_weight: float = 0.0  # decoder stage: weight of the loss with the readout refitted on the context
    encoder_weight: float = 0.0  # decoder stage: > 0 trains the encoder too, with this weight on its own loss
    init_from: Path | None = None  # start from this checkpoint's weights (same architecture); not on --resume
    pairs_only: bool = False  # graph stage: train only the pair-statistics head and the edge bias

    def validate(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        for name in ("steps", "batch_size", "num_samples", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.stage == "decoder" and self.encoder_checkpoint is None:
            raise ValueError("the decoder stage needs --encoder DIR, the checkpoint of a trained encoder")
        if self.stage == "decoder" and self.num_samples < 4:
            raise ValueError(f"--num-samples must be >= 4 to split context and query, got {self.num_samples}")
        if self.schedule_by_time and (self.time_limit_s is None or self.time_limit_s <= 0):
            raise ValueError(
                "--schedule-by-time decays the rate over --time-limit; give --time-limit MINUTES"
            )
        if self.schedule_by_time and self.resume:
            raise ValueError(
                "--schedule-by-time follows wall time, which a resumed run cannot replay; drop one of them"
            )
        if self.pairs_only and self.stage != "graph":
            raise ValueError("--pairs-only applies to the graph stage only; drop it")
        if self.refit_weight < 0:
            raise ValueError(f"--refit-weight must be >= 0, got {self.refit_weight}")
        if self.encoder_weight < 0:
            raise ValueError(f"--encoder-weight must be >= 0, got {self.encoder_weight}")
        if self.encoder_weight > 0 and self.stage != "decoder":
            raise ValueError("--encoder-weight applies to the decoder stage only; drop it")
        if self.rollout_weight < 0 or self.rollout_rows < 1:
            raise ValueError(
                f"--rollout-weight must be >= 0 and --rollout-rows >= 1, got {self.rollout_weight} and "
                f"{self.rollout_rows}"
            )
        stage_for(self.stage).check_options(self)

    def recipe(self) -> dict[str, Any]:
        keys = ("stage", "steps", "batch_size", "seed", "num_samples", "node_counts", "preset", "mechanisms")
        keys += ("lr", "betas", "warmup_steps", "min_lr", "ema_decay", "grad_clip")
        if self.stage == "graph":
            keys += ("acyclicity_weight",)
        if self.stage == "decoder" and self.rollout_weight > 0:
            keys += ("rollout_weight", "rollout_rows")
        if self.stage == "decoder" and self.refit_weight > 0:
            keys += ("refit_weight",)
        if self.stage == "decoder" and self.encoder_weight > 0:
            keys += ("encoder_weight",)
        if self.pairs_only:
            keys += ("pairs_only",)
        if self.schedule_by_time:
            keys += ("schedule_by_time", "time_limit_s")
        values = {key: getattr(self, key) for key in keys}
        if self.init_from is not None:
            values["init_from"] = str(self.init_from)
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return {**values, **self.extra}


REFIT_TRAINING_PENALTY = 0.1  # ridge penalty of the training loss with a refitted readout (--refit-weight)


def rmse_per_row(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[b, n, d] -> scalar: mean over rows of sqrt(mean over nodes of squared error)."""
    return ((prediction.float() - target.float()) ** 2).mean(dim=-1).add(1e-12).sqrt().mean()


class StageLoss(nn.Module):
    """The loss of one stage as a module's forward, so DistributedDataParallel can wrap it."""

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

    def __init__(self, name: str) -> None:
        self.name = name

    def check_options(self, options: TrainingOptions) -> None:
        if not isinstance(options.config, CondFiPConfig):
            raise ValueError(
                f"the {self.name} stage trains a Cond-FiP network and needs a CondFiPConfig, "
                f"got {type(options.config).__name__}"
            )

    def build_model(self, options: TrainingOptions) -> nn.Module:
        return build_model(options, torch.device("cpu"))

    def loss_module(self, model: nn.Module, options: TrainingOptions) -> nn.Module:
        return StageLoss(
            model,
            self.name,
            rollout_weight=options.rollout_weight,
            rollout_rows=options.rollout_rows,
            refit_weight=options.refit_weight,
            encoder_weight=options.encoder_weight,
        )

    def validation_set(self, options: TrainingOptions) -> list:
        return build_validation_set(datasets_per_cell=options.validation_datasets)

    def evaluate(self, model: nn.Module, cells: list) -> dict[str, float]:
        # the decoder stage also logs the figures with the readout refitted on each context (`*_refit`)
        return evaluate(model, cells, stage=self.name, refit_readout=self.name == "decoder")


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(options: TrainingOptions, device: torch.device) -> CondFiPModel:
    with torch.random.fork_rng(devices=[]):  # the initialization depends on the seed only
        torch.manual_seed(options.seed)
        model = CondFiPModel(options.config)
    if options.stage == "decoder":
        encoder = load_model(options.encoder_checkpoint)
        if encoder.config.encoder_fields() != options.config.encoder_fields():
            raise ValueError(
                f"the encoder checkpoint {options.encoder_checkpoint} has encoder sizes "
                f"{encoder.config.encoder_fields()}, but this run asks for {options.config.encoder_fields()}; "
                "pass a --config with the same encoder sizes"
            )
        model.encoder.load_state_dict(encoder.encoder.state_dict())
    trainable = TRAINABLE[options.stage]
    if options.stage == "decoder" and options.encoder_weight > 0:
        trainable += ("encoder",)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in trainable)
    return model.to(device)


def train(options: TrainingOptions) -> dict[str, float]:
    """Run (or resume) one stage; returns the last validation figures (rank 0) or {}."""
    options.validate()
    device_kind = "cuda" if (options.device == "auto" and torch.cuda.is_available()) else options.device
    ranks = setup_distributed("cuda" if str(device_kind).startswith("cuda") else "cpu")
    if options.batch_size % ranks.world_size:
        raise ValueError(f"--batch-size {options.batch_size} must be divisible by {ranks.world_size} ranks")
    device = pick_device(options.device, ranks.local_rank)
    out = Path(options.out)
    state_dir = out / "state"
    if not options.resume and (state_dir.exists() or state_dir.with_name("state.old").exists()):
        raise ValueError(f"{out} already holds a training run; pass --resume or choose another --out")

    stage = stage_for(options.stage)
    model = stage.build_model(options).to(device)
    if options.init_from is not None and not options.resume:  # a resumed run's state holds its weights
        initialize_from(model, options)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=options.lr, betas=options.betas)
    ema = WeightAverage(model, options.ema_decay)
    start = 0
    if options.resume:

        def check_meta(meta: dict[str, Any]) -> None:
            if meta.get("stage") != options.stage or not _same_architecture(
                meta.get("architecture"), options.config
            ):
                raise ValueError(f"cannot resume {out}: it was a {meta.get('stage')} run with another config")

        meta = load_training_state(
            state_dir, model=model, optimizer=optimizer, ema_shadow=ema.shadow, check_meta=check_meta
        )
        start = int(meta["step"])

    loss_module: nn.Module = stage.loss_module(model, options)
    if ranks.world_size > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None
        )
    spec = StreamSpec(
        batch_size=options.batch_size // ranks.world_size,
        num_samples=options.num_samples,
        node_counts=tuple(options.node_counts),
        preset=options.preset,
        mechanisms=tuple(options.mechanisms),
        seed=options.seed,
        rank=ranks.rank,
        world_size=ranks.world_size,
    )
    cells = stage.validation_set(options) if ranks.is_main else []
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    figures: dict[str, float] = {}
    if start >= options.steps:
        return figures
    batches = iter(training_loader(spec, start, options.workers))
    bar = tqdm(
        total=options.steps,
        initial=start,
        desc=f"train {options.stage}",
        disable=not (options.progress and ranks.is_main and sys.stderr.isatty()),
        dynamic_ncols=True,
    )
    waited = computed = 0.0
    run_started = time.perf_counter()
    last = options.steps if options.stop_at is None else min(options.stop_at, options.steps)
    for step in range(start, last):
        tick = time.perf_counter()
        data, noise, parents = (t.to(device, non_blocking=True) for t in next(batches))
        got_data = time.perf_counter()
        if options.schedule_by_time:
            elapsed = got_data - run_started
            if ranks.world_size > 1:  # every rank must take the same rate: rank clocks differ
                clock = torch.tensor([elapsed], dtype=torch.float64, device=device)
                dist.all_reduce(clock, op=dist.ReduceOp.MAX)
                elapsed = float(clock.item())
            rate = learning_rate_by_time(
                step,
                elapsed,
                peak=options.lr,
                warmup_steps=options.warmup_steps,
                time_limit_s=options.time_limit_s,
                floor=options.min_lr,
            )
        else:
            rate = learning_rate(
                step,
                peak=options.lr,
                warmup_steps=options.warmup_steps,
                total_steps=options.steps,
                floor=options.min_lr,
            )
        for group in optimizer.param_groups:
            group["lr"] = rate
        with autocast:
            loss = loss_module(data, noise, parents, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, options.grad_clip)
        optimizer.step()
        ema.update(model)
        done = time.perf_counter()
        waited += got_data - tick
        computed += done - got_data
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        finished = step + 1
        out_of_time = options.time_limit_s is not None and done - run_started > options.time_limit_s
        at_checkpoint = (
            finished % options.checkpoint_every == 0 or finished in (options.steps, last) or out_of_time
        )
        if ranks.world_size > 1:  # every rank stops at the same step
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            out_of_time = bool(flag.item())
            at_checkpoint = at_checkpoint or out_of_time
        spread = weight_spread_across_ranks(model) if at_checkpoint and ranks.world_size > 1 else 0.0
        if ranks.is_main and at_checkpoint:
            elapsed = time.perf_counter() - run_started
            log = {
                "rank_weight_spread": spread,
                "step": finished,
                "loss": loss.item(),
                "grad_norm": float(grad_norm),
                "lr": optimizer.param_groups[0]["lr"],
                "data_wait_fraction": waited / max(waited + computed, 1e-9),
                "datasets_per_second": (finished - start) * options.batch_size / max(elapsed, 1e-9),
                "elapsed_s": elapsed,
            }
            figures = checkpoint(options, model, optimizer, ema, finished, cells, log, stage=stage)
            if not bar.disable:
                bar.write(f"step {finished}: loss {loss.item():.4f} " + _summary(figures))
            else:
                print(
                    f"[{options.stage}] step {finished}/{options.steps} loss {loss.item():.4f} "
                    f"{_summary(figures)}",
                    file=sys.stderr,
                    flush=True,
                )
        if out_of_time:
            break
    bar.close()
    if ranks.world_size > 1:
        dist.barrier()
    return figures


def initialize_from(model: nn.Module, options: TrainingOptions) -> None:
    """Load the weights of the checkpoint ``options.init_from`` into ``model``: a new run (fresh optimizer and
    schedule) that starts where another one ended. The checkpoint must have this run's architecture, or this
    run's without the embedding's row summary (``summary_width`` 0): a summary then grows from zero, so the
    run starts with the checkpoint's outputs."""
    from condfip.graph.checkpoint import GRAPH_MODEL_TYPE

    directory = Path(options.init_from)
    model_type = GRAPH_MODEL_TYPE if options.stage == "graph" else MODEL_TYPE
    stored = read_config(directory, model_type=model_type)
    grows_summary = _grows_summary(stored["architecture"], options.config)
    if not (grows_summary or _same_architecture(stored["architecture"], options.config)):
        raise ValueError(
            f"--init {directory} has the architecture {stored['architecture']}, but this run asks for "
            f"{options.config.to_dict()}; pass the --config it was trained with (or that config with a "
            "summary_width added)"
        )
    tensors, weights_path = read_checkpoint_weights(directory)
    expected = model.state_dict()
    if grows_summary:  # the summary's tensors keep their initialization (a zero projection)
        expected = {name: t for name, t in expected.items() if not name.startswith(SUMMARY_PREFIX)}
    check_tensors(expected, tensors, weights_path)
    model.load_state_dict(
        {name: tensor.to(expected[name].dtype) for name, tensor in tensors.items()}, strict=not grows_summary
    )


SUMMARY_PREFIX = "embedding_head.summary."


def _grows_summary(stored: Any, config: Any) -> bool:
    """Whether ``config`` is the stored architecture with a row summary added to the dataset embedding."""
    if not isinstance(config, CondFiPConfig) or config.summary_width == 0:
        return False
    without = replace(config, summary_width=0, summary_statistics="max+mean")
    return _same_architecture(stored, without)


def _same_architecture(stored: Any, config: Any) -> bool:
    """Whether a run's stored architecture is ``config``; fields added since it was written take defaults."""
    try:
        return type(config).from_dict(stored) == config
    except (TypeError, ValueError):
        return False


def weight_spread_across_ranks(model: nn.Module) -> float:
    """Largest difference of any weight between ranks (0 when DistributedDataParallel keeps them in sync)."""
    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return float((high - low).max())


def _summary(figures: dict[str, float]) -> str:
    return " ".join(f"{key}={value:.3f}" for key, value in figures.items() if key.startswith("in/"))


def checkpoint(
    options: TrainingOptions,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: WeightAverage,
    step: int,
    cells: list,
    log: dict[str, Any],
    *,
    stage: Stage,
) -> dict[str, float]:
    """Save the training state and the EMA model, validate the EMA model, and append both logs."""
    out = Path(options.out)
    info = {
        "step": step,
        "stage": options.stage,
        "architecture": options.config.to_dict(),
        "recipe": options.recipe(),
    }
    save_training_state(out / "state", model=model, optimizer=optimizer, ema_shadow=ema.shadow, info=info)
    averaged = copy.deepcopy(model)
    averaged.load_state_dict(ema.averaged_state_dict(model))
    averaged.eval()
    figures = stage.evaluate(averaged, cells)
    averaged.save_pretrained(out, training={**options.recipe(), "step": step, "validation": figures})
    _append_jsonl(out / "validation.jsonl", {"step": step, "stage": options.stage, **figures})
    _append_jsonl(out / "train_log.jsonl", log)
    return figures


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def options_as_dict(options: TrainingOptions) -> dict[str, Any]:
    values = asdict(options)
    values["config"] = options.config.to_dict()
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


__all__ = ["STAGES", "TrainingOptions", "train", "read_config", "write_json", "options_as_dict"]
