"""The graph stage of the shared trainer: checkpoints and logs, resume equals an uninterrupted run (the
acyclicity weight depends on the step), bad options."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condfip.cli import main
from condfip.graph import GraphModel, GraphModelConfig
from condfip.model import CondFiPConfig
from condfip.training.loop import train
from condfip.training.options import EncoderOptions, GraphOptions, TrainingOptions

TINY = GraphModelConfig(dim=8, num_heads=2, mlp_dim=16, num_layers=1, num_anchor_rows=16)
PAIRS = dataclasses.replace(TINY, pair_statistics=True, pair_mlp_dim=8)


def options(out: Path, config: object = TINY, stage: str = "graph", **changes) -> TrainingOptions:
    """A short graph run; ``acyclicity_weight`` and ``pairs_only`` go to the stage's options."""
    if stage == "encoder":
        stage_options = EncoderOptions(config)
    else:
        stage_options = GraphOptions(
            config,
            acyclicity_weight=changes.pop("acyclicity_weight", 0.5),
            pairs_only=changes.pop("pairs_only", False),
        )
    values = dict(
        out=out,
        steps=4,
        batch_size=2,
        num_samples=24,
        node_counts=(4, 6),
        warmup_steps=2,
        lr=1e-3,
        checkpoint_every=2,
        validation_datasets=1,
        workers=0,
        progress=False,
    )
    values.update(changes)
    return TrainingOptions(stage=stage_options, **values)


def test_graph_stage_writes_a_loadable_checkpoint_and_logs(tmp_path: Path) -> None:
    figures = train(options(tmp_path))
    cells = ("in/linear", "in/rff", "out/linear", "out/rff")
    assert set(figures) == {f"{c}/{k}" for c in cells for k in ("auroc", "auprc", "shd", "f1", "bce")}
    assert all(0.0 <= figures[f"{c}/auroc"] <= 1.0 for c in cells)
    lines = (tmp_path / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "graph"
    assert config["training"]["stage"] == "graph" and config["training"]["acyclicity_weight"] == 0.5
    model = GraphModel.from_pretrained(tmp_path)
    assert model.config == TINY and model.trained_max_nodes == 6


def test_graph_resume_equals_uninterrupted(tmp_path: Path) -> None:
    train(options(tmp_path / "straight", steps=5))
    train(options(tmp_path / "resumed", steps=5, stop_at=3))
    train(options(tmp_path / "resumed", steps=5, resume=True))
    straight = load_file(str(tmp_path / "straight" / "state" / "training_state.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "state" / "training_state.safetensors"))
    assert straight.keys() == resumed.keys()
    for name in (key for key in straight if key.startswith(("model.", "ema.", "optimizer."))):
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0, msg=name)


def test_graph_stage_bad_options(tmp_path: Path) -> None:
    cond_fip = CondFiPConfig(dim=8, num_heads=2, mlp_dim=16)
    with pytest.raises(
        ValueError, match="the graph stage trains the graph model and needs a GraphModelConfig"
    ):
        train(options(tmp_path, config=cond_fip))
    with pytest.raises(
        ValueError, match="the encoder stage trains a Cond-FiP network and needs a CondFiPConfig"
    ):
        train(options(tmp_path, stage="encoder"))
    with pytest.raises(ValueError, match="--acyclicity-weight must be >= 0, got -1"):
        train(options(tmp_path, acyclicity_weight=-1.0))


def test_graph_stage_cli_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "graph", "--steps", "2", "--out", str(tmp_path), "--config", "huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config must be one of ['base', 'small'] or an existing JSON file" in err[0]
    config = tmp_path / "condfip.json"
    config.write_text(json.dumps({"dim": 8, "num_heads": 2, "encoder_pairs": 1}))
    assert main(["train", "graph", "--steps", "2", "--out", str(tmp_path), "--config", str(config)]) == 2
    assert "unknown GraphModelConfig fields ['encoder_pairs']" in capsys.readouterr().err


def test_pairs_only_trains_the_pair_head_and_the_bias_alone(tmp_path: Path) -> None:
    train(options(tmp_path, config=PAIRS, pairs_only=True))
    trained = GraphModel.from_pretrained(tmp_path).state_dict()
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the run's seed: the same initialization
        initial = GraphModel(PAIRS).state_dict()
    moved = {name for name in initial if not torch.equal(initial[name], trained[name])}
    assert moved == {name for name in initial if name == "edge_bias" or name.startswith("pair_head.")}
    assert json.loads((tmp_path / "config.json").read_text())["training"]["pairs_only"] is True


def test_init_starts_from_a_checkpoint(tmp_path: Path) -> None:
    train(options(tmp_path / "first", config=PAIRS, pairs_only=True))
    # learning rate 0 (peak and floor): the second run's weights and their average stay where they started
    train(options(tmp_path / "second", config=PAIRS, init_from=tmp_path / "first", lr=0.0, min_lr=0.0))
    first = load_file(str(tmp_path / "first" / "model.safetensors"))
    second = load_file(str(tmp_path / "second" / "model.safetensors"))
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(second[name], first[name], rtol=0, atol=0, msg=name)
    recipe = json.loads((tmp_path / "second" / "config.json").read_text())["training"]
    assert recipe["init_from"] == str(tmp_path / "first") and "pairs_only" not in recipe
    with pytest.raises(
        ValueError, match="--init .* has the architecture .* pass the --config it was trained with"
    ):
        train(options(tmp_path / "third", config=TINY, init_from=tmp_path / "first"))
    with pytest.raises(ValueError, match="is not a Cond-FiP checkpoint: config.json is missing"):
        train(options(tmp_path / "fourth", config=PAIRS, init_from=tmp_path))


def test_pairs_only_needs_the_graph_stage_and_the_pair_channel(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--pairs-only needs a config with pair_statistics on"):
        train(options(tmp_path, pairs_only=True))
    argv = ["train", "encoder", "--steps", "2", "--out", str(tmp_path), "--pairs-only"]
    assert main(argv) == 2  # the message: test_training.py, test_flags_of_another_stage_are_refused
