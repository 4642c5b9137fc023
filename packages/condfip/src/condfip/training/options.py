"""The options of a training run: the loop's (``TrainingOptions``) and one dataclass per stage.

Stages: ``encoder`` and ``decoder`` train the Cond-FiP network (``condfip.training.condfip_stage``), ``graph``
the graph network (``condfip.training.graph_stage``). Messages name the ``condfip train`` flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from condfip.api.engine import resolve_device
from condfip.graph import NAMED_GRAPH_CONFIGS, GraphModelConfig
from condfip.model import CondFiPConfig

STAGES = ("encoder", "decoder", "graph")


def _check_config(stage: str, config: object, expected: type) -> None:
    if not isinstance(config, expected):
        if expected is GraphModelConfig:
            raise ValueError(
                f"the graph stage trains the graph model and needs a GraphModelConfig "
                f"(--config {'|'.join(sorted(NAMED_GRAPH_CONFIGS))}|FILE.json), got {type(config).__name__}"
            )
        raise ValueError(
            f"the {stage} stage trains a Cond-FiP network and needs a CondFiPConfig, got {type(config).__name__}"
        )


@dataclass(frozen=True)
class EncoderOptions:
    """Stage ``encoder``: the dataset encoder learns to predict ``X - N`` of every row."""

    config: CondFiPConfig
    name: ClassVar[str] = "encoder"
    model_type: ClassVar[str] = "condfip"

    def validate(self) -> None:
        _check_config(self.name, self.config, CondFiPConfig)

    def recipe(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class DecoderOptions:
    """Stage ``decoder``: the trained ``encoder`` (a checkpoint folder) frozen, the embedding head and the
    decoder learn ``X - N`` of query rows given the context rows; optional extra losses (weights 0: off)."""

    config: CondFiPConfig
    encoder: Path  # checkpoint of the trained encoder
    rollout_weight: float = 0.0  # generation (rollout) loss
    rollout_rows: int = 64  # query rows per dataset that the rollout loss generates
    refit_weight: float = 0.0  # loss with the readout refitted on the context
    encoder_weight: float = 0.0  # > 0 trains the encoder too, with this weight on its own loss
    name: ClassVar[str] = "decoder"
    model_type: ClassVar[str] = "condfip"

    def validate(self) -> None:
        _check_config(self.name, self.config, CondFiPConfig)
        _check_weight("--refit-weight", self.refit_weight)
        _check_weight("--encoder-weight", self.encoder_weight)
        _check_weight("--rollout-weight", self.rollout_weight)
        _check_int("rollout_rows", self.rollout_rows, minimum=1)

    def recipe(self) -> dict[str, Any]:
        keys = ("rollout_weight", "rollout_rows") if self.rollout_weight > 0 else ()
        keys += ("refit_weight",) if self.refit_weight > 0 else ()
        keys += ("encoder_weight",) if self.encoder_weight > 0 else ()
        return {"encoder": str(self.encoder), **{key: getattr(self, key) for key in keys}}


@dataclass(frozen=True)
class GraphOptions:
    """Stage ``graph``: the graph network learns the adjacency (cross-entropy plus a growing acyclicity
    penalty); ``pairs_only`` trains only the pair-statistics head and the edge bias (a cheap first phase)."""

    config: GraphModelConfig
    acyclicity_weight: float = 1.0  # final weight of the acyclicity penalty
    pairs_only: bool = False
    name: ClassVar[str] = "graph"
    model_type: ClassVar[str] = "graph"

    def validate(self) -> None:
        _check_config(self.name, self.config, GraphModelConfig)
        if self.pairs_only and not self.config.pair_statistics:
            raise ValueError(
                "--pairs-only needs a config with pair_statistics on (both named configs have it)"
            )
        _check_weight("--acyclicity-weight", self.acyclicity_weight)

    def recipe(self) -> dict[str, Any]:
        return {
            "acyclicity_weight": self.acyclicity_weight,
            **({"pairs_only": True} if self.pairs_only else {}),
        }


StageOptions = EncoderOptions | DecoderOptions | GraphOptions


def _check_int(name: str, value: object, *, minimum: int, why: str = "") -> None:
    """An option that must be an int >= ``minimum``; the message names its ``condfip train`` flag."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        meaning = f" ({why})" if why else ""
        raise ValueError(
            f"--{name.replace('_', '-')} must be an integer >= {minimum}{meaning}, got {value!r}"
        )


def _check_weight(flag: str, value: object) -> None:
    """A loss weight: a finite number >= 0 (NaN and infinities are refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise ValueError(f"{flag} must be >= 0, got {value!r}; give a finite number >= 0")


@dataclass
class TrainingOptions:
    """One run of one stage: where it writes, how long it runs, its data and its optimizer."""

    stage: StageOptions
    out: Path
    steps: int
    batch_size: int = 8  # datasets per step, over all ranks
    seed: int = 0
    resume: bool = False
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
    init_from: Path | None = None  # start from this checkpoint's weights (same architecture); not on --resume
    extra: dict[str, Any] = field(default_factory=dict)  # further recipe entries, stored as given

    @property
    def config(self) -> Any:
        return self.stage.config

    def validate(self) -> None:
        if not isinstance(self.stage, EncoderOptions | DecoderOptions | GraphOptions):
            raise ValueError(
                f"stage must be EncoderOptions, DecoderOptions or GraphOptions, got {type(self.stage).__name__}"
            )
        for name in ("steps", "batch_size", "num_samples", "checkpoint_every", "validation_datasets"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("seed", "warmup_steps", "workers"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.stop_at is not None:
            _check_int("stop_at", self.stop_at, minimum=1, why="the step after which this process ends")
            if self.stop_at > self.steps:
                raise ValueError(
                    f"--stop-at {self.stop_at} is beyond --steps {self.steps}, where the run ends; give a step "
                    "up to --steps, or raise --steps"
                )
        if self.time_limit_s is not None and not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise ValueError(
                f"--time-limit must be a positive number of minutes, got {self.time_limit_s / 60:g}"
            )
        for name in ("lr", "min_lr", "ema_decay", "grad_clip"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"--out {str(self.out)!r} is a file; give a folder for the run")
        resolve_device(self.device)
        if isinstance(self.stage, DecoderOptions) and self.num_samples < 4:
            raise ValueError(f"--num-samples must be >= 4 to split context and query, got {self.num_samples}")
        if self.schedule_by_time and (self.time_limit_s is None or self.time_limit_s <= 0):
            raise ValueError(
                "--schedule-by-time decays the rate over --time-limit; give --time-limit MINUTES"
            )
        if self.schedule_by_time and self.resume:
            raise ValueError(
                "--schedule-by-time follows wall time, which a resumed run cannot replay; drop one of them"
            )
        self.stage.validate()

    def recipe(self) -> dict[str, Any]:
        """What the checkpoint's ``training`` section records about the run."""
        keys = ("steps", "batch_size", "seed", "num_samples", "node_counts", "preset", "mechanisms")
        keys += ("lr", "betas", "warmup_steps", "min_lr", "ema_decay", "grad_clip")
        keys += ("schedule_by_time", "time_limit_s") if self.schedule_by_time else ()
        values = {
            "stage": self.stage.name,
            **{key: getattr(self, key) for key in keys},
            **self.stage.recipe(),
        }
        if self.init_from is not None:
            values["init_from"] = str(self.init_from)
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return {**values, **self.extra}
