"""The training loop shared by every stage, in one process or under torch.distributed.

What differs between stages sits behind the small ``Stage`` interface (``condfip.training.stages``); the loop,
schedule, EMA, checkpoints, resume, DDP and logs are shared. A run writes into ``--out``: the training state
(``state/``, for ``--resume``), the EMA model as a checkpoint, and the logs ``validation.jsonl`` and
``train_log.jsonl``, at every ``--checkpoint-every`` steps and at the end.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from condfip.io.checkpoint import json_ready, load_weights, read_config
from condfip.io.registry import MODEL_TYPES, check_model_memory
from condfip.training.data import StreamSpec, training_loader
from condfip.training.distributed import (
    Distributed,
    joined_ranks,
    max_across_ranks,
    pick_device,
    weight_spread_across_ranks,
)
from condfip.training.ema import WeightAverage
from condfip.training.options import TrainingOptions
from condfip.training.schedule import learning_rate, learning_rate_by_time
from condfip.training.stages import Stage, stage_for
from condfip.training.state import load_training_state, save_training_state


@dataclass
class Run:
    """What a run holds while it trains."""

    options: TrainingOptions
    stage: Stage
    ranks: Distributed
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    ema: WeightAverage
    start: int  # the first step this process runs

    @property
    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]


def train(options: TrainingOptions) -> dict[str, float]:
    """Run (or resume) one stage; returns the last validation figures (rank 0) or {}."""
    options.validate()
    device_kind = "cuda" if (options.device == "auto" and torch.cuda.is_available()) else options.device
    with joined_ranks("cuda" if str(device_kind).startswith("cuda") else "cpu") as ranks:
        # the run and its DistributedDataParallel wrapper live in _train only: gone (and collected, by
        # joined_ranks) before the process group is left, so no gloo work of theirs outlives it
        return _train(options, ranks)


def _train(options: TrainingOptions, ranks: Distributed) -> dict[str, float]:
    run = _start(options, ranks)
    loss_module: nn.Module = run.stage.loss_module(run.model, options)
    if ranks.world_size > 1:
        device_ids = [run.device.index] if run.device.type == "cuda" else None
        loss_module = nn.parallel.DistributedDataParallel(loss_module, device_ids=device_ids)
    cells = run.stage.validation_set(options) if ranks.is_main else []
    last = options.steps if options.stop_at is None else min(options.stop_at, options.steps)
    if run.start >= options.steps:
        return {}
    figures = _loop(run, loss_module, cells, last)
    if ranks.world_size > 1:
        torch.distributed.barrier()
    return figures


def _start(options: TrainingOptions, ranks: Distributed) -> Run:
    """Check the options against the ranks, build (or restore) the model, its optimizer and its average."""
    if options.batch_size % ranks.world_size:
        raise ValueError(f"--batch-size {options.batch_size} must be divisible by {ranks.world_size} ranks")
    device = pick_device(options.device, ranks.local_rank)
    out = Path(options.out)
    state_dir = out / "state"
    if not options.resume and (state_dir.exists() or state_dir.with_name("state.old").exists()):
        raise ValueError(f"{out} already holds a training run; pass --resume or choose another --out")
    if not options.resume and out.is_dir() and any(out.iterdir()):
        held = ", ".join(sorted(path.name for path in out.iterdir())[:3])
        raise ValueError(
            f"--out {out} already holds files ({held}, ...) and no training run; a run writes its checkpoint "
            "there, which would overwrite them: choose a new or empty --out"
        )
    if ranks.is_main:
        _check_writable(out)
    stage = stage_for(options)
    check_model_memory(MODEL_TYPES[options.stage.model_type], options.config, "the network of this --config")
    model = stage.build_model(options).to(device)
    if options.init_from is not None and not options.resume:  # a resumed run's state holds its weights
        initialize_from(model, options)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=options.lr, betas=options.betas
    )
    ema = WeightAverage(model, options.ema_decay)
    start = 0
    if options.resume:
        recipe = run_recipe(options, stage)  # after build_model, which the stage's part records

        def check_meta(meta: dict[str, Any]) -> None:
            stage = meta.get("stage")
            if stage != options.stage.name:
                raise ValueError(
                    f"cannot resume {out}: it holds a run of the {stage!r} stage, not of the "
                    f"{options.stage.name!r} stage; resume it as 'condfip train {stage} --resume', or choose "
                    "another --out"
                )
            if not _same_architecture(meta.get("architecture"), options.config):
                raise ValueError(
                    f"cannot resume {out}: its run has the architecture {meta.get('architecture')}, not the "
                    f"--config given now ({options.config.to_dict()}); pass the --config it was started with"
                )
            _check_same_recipe(out, meta.get("recipe"), recipe)

        meta = load_training_state(
            state_dir, model=model, optimizer=optimizer, ema_shadow=ema.shadow, check_meta=check_meta
        )
        start = int(meta["step"])
        if options.stop_at is not None and options.stop_at <= start:
            raise ValueError(
                f"--stop-at {options.stop_at} is not after the step the run in {out} reached ({start}); "
                "give a later step, or leave --stop-at out to run to --steps"
            )
    return Run(options, stage, ranks, device, model, optimizer, ema, start)


def _loop(run: Run, loss_module: nn.Module, cells: list, last: int) -> dict[str, float]:
    """Steps ``run.start`` .. ``last - 1``, checkpointed; returns the last validation figures."""
    options, ranks, device = run.options, run.ranks, run.device
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
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    batches = iter(training_loader(spec, run.start, options.workers))
    bar = tqdm(
        total=options.steps,
        initial=run.start,
        desc=f"train {options.stage.name}",
        disable=not (options.progress and ranks.is_main and sys.stderr.isatty()),
        dynamic_ncols=True,
    )
    figures: dict[str, float] = {}
    waited = computed = 0.0
    run_started = time.perf_counter()
    for step in range(run.start, last):
        tick = time.perf_counter()
        data, noise, parents = (t.to(device, non_blocking=True) for t in next(batches))
        got_data = time.perf_counter()
        for group in run.optimizer.param_groups:
            group["lr"] = _rate(options, step, got_data - run_started, ranks, device)
        with autocast:
            loss = loss_module(data, noise, parents, step)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(run.trainable, options.grad_clip)
        loss_value = _check_finite(run, step, loss, grad_norm)
        run.optimizer.step()
        run.ema.update(run.model)
        done = time.perf_counter()
        waited += got_data - tick
        computed += done - got_data
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        finished = step + 1
        out_of_time = options.time_limit_s is not None and done - run_started > options.time_limit_s
        at_checkpoint = (
            finished % options.checkpoint_every == 0 or finished in (options.steps, last) or out_of_time
        )
        if ranks.world_size > 1:  # every rank stops at the same step
            out_of_time = bool(max_across_ranks(float(out_of_time), device))
            at_checkpoint = at_checkpoint or out_of_time
        if at_checkpoint and not all(bool(torch.isfinite(p).all()) for p in run.model.parameters()):
            _diverged(run, step, "non-finite weights")  # the same on every rank: their weights agree
        spread = weight_spread_across_ranks(run.model) if at_checkpoint and ranks.world_size > 1 else 0.0
        if ranks.is_main and at_checkpoint:
            elapsed = time.perf_counter() - run_started
            log = {
                "rank_weight_spread": spread,
                "step": finished,
                "loss": loss.item(),
                "grad_norm": float(grad_norm),
                "lr": run.optimizer.param_groups[0]["lr"],
                "data_wait_fraction": waited / max(waited + computed, 1e-9),
                "datasets_per_second": (finished - run.start) * options.batch_size / max(elapsed, 1e-9),
                "elapsed_s": elapsed,
            }
            figures = checkpoint(run, finished, cells, log)
            message = f"step {finished}/{options.steps} loss {loss.item():.4f} {_summary(figures)}"
            if not bar.disable:
                bar.write(message)
            else:
                print(f"[{options.stage.name}] {message}", file=sys.stderr, flush=True)
        if out_of_time:
            break
    bar.close()
    return figures


def _check_finite(run: Run, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> float:
    """The step's loss as a number; the run stops at a non-finite loss or gradient (on any rank), before the
    optimizer takes it in: the last checkpoint and its state stay as they are."""
    loss_value, norm = loss.item(), float(grad_norm)  # one read of each: the step's only host syncs
    broken = not (math.isfinite(loss_value) and math.isfinite(norm))
    if run.ranks.world_size > 1:
        broken = bool(max_across_ranks(float(broken), run.device))
    if broken:
        _diverged(
            run, step, f"loss {loss_value}" if not math.isfinite(loss_value) else f"gradient norm {norm}"
        )
    return loss_value


def _diverged(run: Run, step: int, what: str) -> None:
    raise ValueError(
        f"the training diverged at step {step + 1} ({what}); {run.options.out} keeps its last checkpoint "
        "and state: start a new run with a lower --lr or more --warmup-steps (--init DIR starts it from that "
        "checkpoint)"
    )


def _rate(
    options: TrainingOptions, step: int, elapsed: float, ranks: Distributed, device: torch.device
) -> float:
    """The learning rate of ``step``: by steps, or by the wall time ``elapsed`` (the same on every rank)."""
    if not options.schedule_by_time:
        return learning_rate(
            step,
            peak=options.lr,
            warmup_steps=options.warmup_steps,
            total_steps=options.steps,
            floor=options.min_lr,
        )
    if ranks.world_size > 1:  # every rank must take the same rate: rank clocks differ
        elapsed = max_across_ranks(elapsed, device)
    return learning_rate_by_time(
        step,
        elapsed,
        peak=options.lr,
        warmup_steps=options.warmup_steps,
        time_limit_s=options.time_limit_s,
        floor=options.min_lr,
    )


def initialize_from(model: nn.Module, options: TrainingOptions) -> None:
    """Load the weights of the checkpoint ``options.init_from`` into ``model``: a new run (fresh optimizer and
    schedule) that starts where another one ended. The checkpoint must have this run's architecture."""
    directory = Path(options.init_from)
    stored = read_config(directory, model_type=options.stage.model_type)
    if not _same_architecture(stored["architecture"], options.config):
        raise ValueError(
            f"--init {directory} has the architecture {stored['architecture']}, but this run asks for "
            f"{options.config.to_dict()}; pass the --config it was trained with"
        )
    load_weights(model, directory)


RESUMED_OPTIONS = ("batch_size", "seed", "num_samples", "node_counts", "preset", "mechanisms", "lr", "betas")
RESUMED_OPTIONS += ("warmup_steps", "min_lr", "ema_decay", "grad_clip")
"""The recipe entries a resumed run must keep (its data stream, optimizer and average); --steps may change
(the schedule follows the current one), as may the time limit, --stop-at, workers and checkpoint spacing."""
RESUMED_STAGE_OPTIONS = {"pairs_only": False, "encoder_weight": 0.0}
"""Stage options that choose which weights train (the optimizer state holds those), with their defaults."""


def run_recipe(options: TrainingOptions, stage: Stage) -> dict[str, Any]:
    """What the run records as its recipe: its options' and its stage's (after ``build_model``)."""
    return {**options.recipe(), **stage.recipe()}


def _check_same_recipe(out: Path, stored: Any, current: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` with other options than its recorded ``stored`` recipe."""
    if not isinstance(stored, dict):
        return  # a state written before the recipe was recorded
    _check_same_encoder(out, stored, current)
    changed = [(key, stored[key], current.get(key)) for key in RESUMED_OPTIONS if key in stored]
    changed += [
        (key, stored.get(key, default), current.get(key, default))
        for key, default in RESUMED_STAGE_OPTIONS.items()
    ]
    for key, before, now in changed:
        if before != now:
            flag = "--" + {"node_counts": "nodes"}.get(key, key).replace("_", "-")
            raise ValueError(
                f"cannot resume {out}: its run has {key} {before!r}, not {now!r} as given now; resume with the "
                f"options it was started with ({flag}), or start a new run in another --out"
            )


def _check_same_encoder(out: Path, stored: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a decoder run with an ``--encoder`` of other encoder weights than those it started from
    (compared by digest: the folder may have moved); a state recorded before the digest is not checked."""
    before = stored.get("encoder_digest")
    if before is None or before == current.get("encoder_digest"):
        return
    raise ValueError(
        f"cannot resume {out}: its run started from the encoder weights of --encoder "
        f"{stored.get('encoder', '?')!r}, and --encoder {current.get('encoder')!r} given now holds other ones; "
        "resume with the --encoder it was started with, or start a new run in another --out"
    )


def _same_architecture(stored: Any, config: Any) -> bool:
    """Whether a run's stored architecture is ``config``; fields added since it was written take defaults."""
    try:
        return type(config).from_dict(stored) == config
    except (TypeError, ValueError):
        return False


def _summary(figures: dict[str, float]) -> str:
    return " ".join(f"{key}={value:.3f}" for key, value in figures.items() if key.startswith("in/"))


def checkpoint(run: Run, step: int, cells: list, log: dict[str, Any]) -> dict[str, float]:
    """Save the training state and the EMA model, validate the EMA model, and append both logs."""
    options = run.options
    out = Path(options.out)
    info = {
        "step": step,
        "stage": options.stage.name,
        "architecture": options.config.to_dict(),
        "recipe": run_recipe(options, run.stage),
    }
    save_training_state(
        out / "state", model=run.model, optimizer=run.optimizer, ema_shadow=run.ema.shadow, info=info
    )
    averaged = copy.deepcopy(run.model)
    averaged.load_state_dict(run.ema.averaged_state_dict(run.model))
    averaged.eval()
    figures = run.stage.evaluate(averaged, cells)
    averaged.save_pretrained(
        out, training={**run_recipe(options, run.stage), "step": step, "validation": figures}
    )
    _append_jsonl(out / "validation.jsonl", {"step": step, "stage": options.stage.name, **figures})
    _append_jsonl(out / "train_log.jsonl", log)
    return figures


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (NaN and infinities as null, which JSON holds); a failed write (a full disk) is cut back, so the log never holds half a line."""
    data = (json.dumps(json_ready(record), sort_keys=True, allow_nan=False) + "\n").encode()
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.lseek(handle, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(data):
                written += os.write(handle, data[written:])
        except OSError:
            os.ftruncate(handle, end)
            raise
    finally:
        os.close(handle)


def _check_writable(out: Path) -> None:
    """Create the run folder and write a probe file into it, so that a read-only or missing place is refused
    before any step (an OSError, which the command reports in one line)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out):
        pass
