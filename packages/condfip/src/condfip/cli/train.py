"""``condfip train encoder|decoder|graph`` (also ``python -m condfip.train`` for torchrun): the flags become
``condfip.training.options`` and the run is ``condfip.training.loop.train``. Needs ``condfip[train]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from condfip.cli.inputs import flag_names, one_line_errors, os_errors, output_path, requires_training_extra
from condfip.graph import GraphModelConfig
from condfip.model import CondFiPConfig
from condfip.training.options import (
    STAGES,
    DecoderOptions,
    EncoderOptions,
    GraphOptions,
    StageOptions,
    TrainingOptions,
)


def parse_node_counts(values: list[str]) -> tuple[int, ...]:
    """``20``, ``10 20 30`` or a range ``10-30``."""
    counts: list[int] = []
    for value in values:
        low, _, high = value.partition("-")
        try:
            bounds = (int(low), int(high or low))
        except ValueError:
            raise ValueError(f"--nodes takes integers or ranges like 10-30, got {value!r}") from None
        if bounds[0] < 1 or bounds[1] < bounds[0]:
            raise ValueError(f"--nodes {value!r} is not a range of positive node counts")
        counts.extend(range(bounds[0], bounds[1] + 1))
    return tuple(counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage", choices=STAGES, help="encoder first; decoder needs --encoder; graph: the graph model"
    )
    parser.add_argument(
        "--config",
        default="small",
        help="small, base, or a JSON file of CondFiPConfig (GraphModelConfig for the graph stage)",
    )
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=8, help="datasets per step, over all ranks")
    parser.add_argument("--out", type=output_path, required=True, help="run directory (checkpoints and logs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", type=Path, help="decoder stage: directory of the trained encoder")
    parser.add_argument("--nodes", nargs="+", default=["20"], help="node counts: 20, '10 20 30' or 10-30")
    parser.add_argument(
        "--mechanisms",
        nargs="+",
        default=["linear", "rff"],
        help="mechanism families of the training SCMs, drawn uniformly per SCM (scm-gen's names; default: "
        "linear rff, the paper's)",
    )
    parser.add_argument("--num-samples", type=int, default=400, help="rows per training dataset")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    parser.add_argument("--validation-datasets", type=int, default=4, help="per validation cell")
    parser.add_argument("--workers", type=int, default=1, help="data worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--stop-at", type=int, help="end after this step (checkpointed); --resume continues")
    parser.add_argument("--time-limit", type=float, help="minutes; end (checkpointed) when they have passed")
    parser.add_argument(
        "--schedule-by-time",
        action="store_true",
        help="decay the rate (cosine) over --time-limit instead of --steps: for time-boxed runs whose step "
        "count is not known in advance",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # the options of one stage default to None (not given), so that another stage can refuse them by name
    parser.add_argument(
        "--acyclicity-weight",
        type=float,
        help="graph stage: final weight of the acyclicity penalty (grows linearly from 0; default 1)",
    )
    parser.add_argument(
        "--rollout-weight",
        type=float,
        help="decoder stage: weight of a generation loss (fixed point of F_hat from the true noise); 0 = off "
        "(the default)",
    )
    parser.add_argument(
        "--rollout-rows", type=int, help="decoder stage: query rows per dataset of that loss (default 64)"
    )
    parser.add_argument(
        "--refit-weight",
        type=float,
        help="decoder stage: weight of a loss with the readout refitted on the context rows (a ridge, as "
        "refit_readout at inference); 0 = off (the default)",
    )
    parser.add_argument(
        "--encoder-weight",
        type=float,
        help="decoder stage: also train the encoder, with this weight on its own noise-prediction loss over "
        "the context rows; 0 = the encoder stays frozen (the paper's recipe, the default)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="start from the weights of this checkpoint folder (same architecture; fresh optimizer and "
        "schedule); ignored with --resume",
    )
    parser.add_argument(
        "--pairs-only",
        action="store_true",
        default=None,
        help="graph stage: train only the pair-statistics head and the edge bias (a cheap first phase)",
    )


STAGE_ONLY = {
    "graph": ("acyclicity_weight", "pairs_only"),
    "decoder": ("rollout_weight", "rollout_rows", "refit_weight", "encoder_weight"),
}
"""The options of one stage (their defaults are the stage options' own)."""


def _given(args: argparse.Namespace, stage: str) -> dict:
    """The options of ``stage`` given on the command line, by field name of its options."""
    return {name: getattr(args, name) for name in STAGE_ONLY[stage] if getattr(args, name) is not None}


def stage_options(args: argparse.Namespace) -> StageOptions:
    """The options of the stage ``args.stage``; flags of another stage are refused by name."""
    for stage, names in STAGE_ONLY.items():
        for name in names:
            if stage != args.stage and getattr(args, name) is not None:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} applies to the {stage} stage only; drop it")
    if args.stage == "graph":
        if args.encoder is not None:
            raise ValueError("--encoder does not apply to the graph stage; drop it")
        config = GraphModelConfig.from_name_or_file(args.config)
        return GraphOptions(config, **_given(args, "graph"))
    config = CondFiPConfig.from_name_or_file(args.config)
    if args.stage == "encoder":
        return EncoderOptions(config)
    if args.encoder is None:
        raise ValueError("the decoder stage needs --encoder DIR, the checkpoint of a trained encoder")
    return DecoderOptions(config, encoder=args.encoder, **_given(args, "decoder"))


def check_mechanisms(names: list[str]) -> None:
    """``--mechanisms``: scm-gen's family names (checked here, before a data worker starts or a folder is made)."""
    requires_training_extra("train")
    from scm_gen import MECHANISM_KINDS  # needs the train extra, checked just above

    unknown = [name for name in names if name not in MECHANISM_KINDS]
    if unknown:
        raise ValueError(
            f"--mechanisms: {unknown[0]!r} is not a mechanism family of scm-gen; choose from "
            f"{' '.join(MECHANISM_KINDS)}"
        )


def options_from_args(args: argparse.Namespace) -> TrainingOptions:
    stage = stage_options(args)
    check_mechanisms(args.mechanisms)
    return TrainingOptions(
        stage=stage,
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        resume=args.resume,
        num_samples=args.num_samples,
        node_counts=parse_node_counts(args.nodes),
        mechanisms=tuple(args.mechanisms),
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        checkpoint_every=args.checkpoint_every,
        validation_datasets=args.validation_datasets,
        workers=args.workers,
        device=args.device,
        progress=not args.quiet,
        stop_at=args.stop_at,
        time_limit_s=None if args.time_limit is None else 60.0 * args.time_limit,
        schedule_by_time=args.schedule_by_time,
        init_from=args.init,
    )


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    requires_training_extra("train")
    from condfip.training.loop import train  # needs scm-gen, checked just above

    out = Path(options.out)
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # the folders the run will make
    try:
        with flag_names({"device": "--device"}), os_errors(f"cannot write the training run in {str(out)!r}"):
            train(options)
    except BaseException:
        for folder in made:  # a run that failed before its first checkpoint leaves no empty folder behind
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()
        raise
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train the encoder, the decoder or the graph model")
    add_arguments(parser)
    parser.set_defaults(handler=run)
    one_line_errors(parser)
