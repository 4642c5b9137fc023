"""The graph stage of the shared trainer: checkpoints and logs, resume equals an uninterrupted run (the
acyclicity weight depends on the step), bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condfip.cli import main
from condfip.graph import GraphModelConfig, load_graph_model
from condfip.model import CondFiPConfig
from condfip.training import TrainingOptions, train

TINY = GraphModelConfig(dim=8, num_heads=2, mlp_dim=16, num_layers=1, num_anchor_rows=16)


def options(out: Path, **changes) -> TrainingOptions:
    values = dict(
        stage="graph",
        config=TINY,
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
        acyclicity_weight=0.5,
    )
    values.update(changes)
    return TrainingOptions(**values)


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
    model = load_graph_model(tmp_path)
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
    with pytest.raises(ValueError, match="--encoder does not apply to the graph stage"):
        train(options(tmp_path, encoder_checkpoint=tmp_path))
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
