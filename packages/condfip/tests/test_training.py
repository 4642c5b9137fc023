"""Training: schedule, resume equals an uninterrupted run, two-process DDP equals one process, bad options."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from condfip.cli import main
from condfip.graph import GraphModelConfig
from condfip.model import CondFiPConfig, CondFiPModel
from condfip.training.loop import train
from condfip.training.options import DecoderOptions, EncoderOptions, GraphOptions, TrainingOptions
from condfip.training.schedule import learning_rate, learning_rate_by_time

sys.path.insert(0, str(Path(__file__).parent))
from rounding import network_operations, tolerance  # noqa: E402

TINY = CondFiPConfig(
    dim=8, num_heads=2, mlp_dim=16, encoder_pairs=1, embedding_pairs=1, decoder_blocks=1, num_anchor_rows=16
)


STAGE_OPTIONS = {"encoder": EncoderOptions, "decoder": DecoderOptions, "graph": GraphOptions}


def options(out: Path, stage: str = "encoder", config: object = TINY, **changes) -> TrainingOptions:
    """A short run; ``changes`` set fields of the loop's options or of the stage's (``encoder``, ...)."""
    stage_class = STAGE_OPTIONS[stage]
    names = {field.name for field in dataclasses.fields(stage_class)}
    stage_values = {name: changes.pop(name) for name in list(changes) if name in names}
    values = dict(
        out=out,
        steps=4,
        batch_size=2,
        num_samples=24,
        node_counts=(4, 5),
        warmup_steps=2,
        lr=1e-3,
        checkpoint_every=2,
        validation_datasets=1,
        workers=0,
        progress=False,
    )
    values.update(changes)
    return TrainingOptions(stage=stage_class(config, **stage_values), **values)


def raw_weights(run: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(str(run / "state" / "training_state.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "ema.", "optimizer."))}


def test_schedule_warms_up_decays_and_stays_at_floor() -> None:
    rates = [learning_rate(s, peak=1.0, warmup_steps=10, total_steps=100, floor=0.1) for s in range(150)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:100], rates[11:100], strict=False))
    assert rates[100:] == [pytest.approx(0.1)] * 50  # clamped: no second cycle


def test_schedule_by_time_decays_over_the_time_limit() -> None:
    def rate(step: int, elapsed: float) -> float:
        return learning_rate_by_time(step, elapsed, peak=1.0, warmup_steps=4, time_limit_s=100.0, floor=0.1)

    assert rate(0, 0.0) == pytest.approx(0.25) and rate(3, 0.0) == pytest.approx(1.0)  # warm-up by steps
    assert rate(10, 50.0) == pytest.approx(0.55)  # half the time: half-way down the cosine
    decay = [rate(10, t) for t in range(0, 101, 5)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert rate(10, 100.0) == rate(10, 1e6) == pytest.approx(0.1)  # the floor once the time has passed
    assert rate(1, 1e6) == pytest.approx(0.05)  # warm-up still scales it


def test_training_with_the_schedule_by_time(tmp_path: Path) -> None:
    # a limit far beyond the run: all steps, the rate still near its peak
    train(options(tmp_path / "long", steps=4, time_limit_s=3600.0, schedule_by_time=True, min_lr=1e-5))
    logs = [json.loads(line) for line in (tmp_path / "long" / "train_log.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 4 and 0.99e-3 < logs[-1]["lr"] <= 1e-3
    recipe = json.loads((tmp_path / "long" / "config.json").read_text())["training"]
    assert recipe["schedule_by_time"] is True and recipe["time_limit_s"] == 3600.0
    # a limit already spent after the first step: it ends there, at the floor times the warm-up's first factor
    train(options(tmp_path / "short", steps=4, time_limit_s=1e-6, schedule_by_time=True, min_lr=1e-5))
    logs = [json.loads(line) for line in (tmp_path / "short" / "train_log.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 1 and logs[-1]["lr"] == pytest.approx(0.5e-5)
    with pytest.raises(ValueError, match="--schedule-by-time decays the rate over --time-limit"):
        train(options(tmp_path / "none", schedule_by_time=True))
    with pytest.raises(ValueError, match="a resumed run cannot replay"):
        train(options(tmp_path / "long", time_limit_s=60.0, schedule_by_time=True, resume=True))


def test_encoder_then_decoder_writes_checkpoints_and_logs(tmp_path: Path) -> None:
    figures = train(options(tmp_path / "enc"))
    assert set(figures) == {f"{c}/noise" for c in ("in/linear", "in/rff", "out/linear", "out/rff")}
    # the decoder run may size its decoder differently: only the encoder's sizes must match
    decoder_config = dataclasses.replace(TINY, decoder_blocks=2, decoder_mlp_dim=24, decoder_value_norm=False)
    figures = train(
        options(tmp_path / "dec", stage="decoder", config=decoder_config, encoder=tmp_path / "enc")
    )
    assert "in/rff/interventional" in figures and "out/linear/generation" in figures
    assert "in/rff/generation_adapted" in figures and "out/linear/interventional_adapted" in figures
    refit_run = options(
        tmp_path / "dec-refit",
        stage="decoder",
        config=decoder_config,
        encoder=tmp_path / "enc",
        refit_weight=1.0,
    )
    assert math.isfinite(train(refit_run)["in/linear/generation"])
    recipe = json.loads((tmp_path / "dec-refit" / "config.json").read_text())["training"]
    assert recipe["refit_weight"] == 1.0
    lines = (tmp_path / "dec" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    config = json.loads((tmp_path / "dec" / "config.json").read_text())
    assert config["training"]["stage"] == "decoder" and config["training"]["step"] == 4
    # the decoder stage keeps the frozen encoder exactly
    enc = load_file(str(tmp_path / "enc" / "model.safetensors"))
    dec = load_file(str(tmp_path / "dec" / "model.safetensors"))
    for name, tensor in enc.items():
        if name.startswith("encoder."):
            assert torch.equal(tensor, dec[name]), name


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    train(options(tmp_path / "straight", steps=6))
    train(options(tmp_path / "resumed", steps=6, stop_at=3))  # checkpointed at 2 and 3, then "killed"
    train(options(tmp_path / "resumed", steps=6, resume=True))
    straight, resumed = raw_weights(tmp_path / "straight"), raw_weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0, msg=name)


def test_existing_run_needs_resume(tmp_path: Path) -> None:
    train(options(tmp_path, steps=2))
    with pytest.raises(ValueError, match="pass --resume"):
        train(options(tmp_path, steps=2))


def test_resume_without_state(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training state"):
        train(options(tmp_path, resume=True))


def test_decoder_refuses_an_encoder_of_other_sizes(tmp_path: Path) -> None:
    train(options(tmp_path / "enc", steps=2))
    wider = dataclasses.replace(TINY, mlp_dim=32)
    with pytest.raises(ValueError, match=r"has encoder sizes .*'mlp_dim': 16.* asks for .*'mlp_dim': 32"):
        train(options(tmp_path / "dec", stage="decoder", config=wider, encoder=tmp_path / "enc"))


def test_flags_of_another_stage_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--steps", "2", "--out", str(tmp_path)]
    for argv, message in (
        (["decoder"], "the decoder stage needs --encoder DIR"),
        (["encoder", "--encoder-weight", "1"], "--encoder-weight applies to the decoder stage only"),
        (["encoder", "--pairs-only"], "--pairs-only applies to the graph stage only"),
        (["graph", "--encoder", str(tmp_path)], "--encoder does not apply to the graph stage"),
    ):
        assert main(["train", *argv, *common]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "encoder", "--steps", "2", "--out", str(tmp_path), "--config", "huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config must be one of" in err[0]
    assert main(["train", "encoder", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert main(["train", "encoder", "--steps", "2", "--out", str(tmp_path), "--nodes", "x"]) == 2
    assert main(["train", "decoder", "--steps", "2", "--out", str(tmp_path)]) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# what torchrun prints when the port picked by _free_port was taken before its store bound it, or the ranks could
# not meet on it: a race of the test's port choice, not of the code under test
RENDEZVOUS_ERRORS = (
    "Address already in use",
    "EADDRINUSE",
    "failed to listen",
    "DistNetworkError",
    "timed out",
)


def _torchrun(arguments: list[str], env: dict[str, str], attempts: int = 3) -> None:
    """Run ``torch.distributed.run`` with two processes on a free local port; a failure to meet on the port is
    retried on another one (up to ``attempts``), any other failure fails the test with torchrun's stderr."""
    for attempt in range(attempts):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            *arguments,
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode == 0:
            return
        rendezvous = any(marker in result.stderr for marker in RENDEZVOUS_ERRORS)
        if not rendezvous or attempt == attempts - 1:
            pytest.fail(f"torchrun exited {result.returncode}:\n{result.stderr[-4000:]}")


# one rank of two: joins the group, sums its rank with the other's, and leaves the block by returning or by an
# error; the group must be gone either way (a gloo group left to the interpreter's exit can abort the rank)
RANK_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from condfip.training.distributed import joined_ranks

try:
    with joined_ranks("cpu") as ranks:
        total = torch.tensor([float(ranks.rank)])
        dist.all_reduce(total)
        assert total.item() == 1.0 and ranks.world_size == 2, (total, ranks)
        if sys.argv[1] == "raise":
            raise RuntimeError("leaving by an error")
except RuntimeError as error:
    assert str(error) == "leaving by an error"
sys.exit(3 if dist.is_initialized() else 0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("leaving", ["return", "raise"])
def test_joined_ranks_leave_the_process_group(leaving: str) -> None:
    attempts = 3
    for attempt in range(attempts):  # a port taken before the store bound it is retried, as in _torchrun
        port = str(_free_port())
        ranks = []
        for rank in range(2):
            env = {
                **os.environ,
                "OMP_NUM_THREADS": "1",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "WORLD_SIZE": "2",
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
            }
            command = [sys.executable, "-c", RANK_SCRIPT, leaving]
            ranks.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
        results = [(process.communicate(timeout=120)[1], process.returncode) for process in ranks]
        if all(code == 0 for _, code in results):
            return
        rendezvous = any(marker in stderr for stderr, _ in results for marker in RENDEZVOUS_ERRORS)
        if not rendezvous or attempt == attempts - 1:
            failed = [(stderr, code) for stderr, code in results if code != 0]
            pytest.fail(f"a rank exited {failed[0][1]}:\n{failed[0][0][-2000:]}")


@pytest.mark.slow
def test_two_process_ddp_equals_single_process(tmp_path: Path) -> None:
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(TINY.to_dict()))
    common = [
        "encoder",
        "--config",
        str(config_path),
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--num-samples",
        "24",
        "--nodes",
        "5",
        "--warmup-steps",
        "2",
        "--lr",
        "1e-3",
        "--checkpoint-every",
        "3",
        "--validation-datasets",
        "1",
        "--workers",
        "0",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _torchrun(["-m", "condfip.train", *common, "--out", str(tmp_path / "ddp")], env)
    single_run = options(tmp_path / "single", steps=3, batch_size=4, node_counts=(5,), checkpoint_every=3)
    train(single_run)
    ddp, single = raw_weights(tmp_path / "ddp"), raw_weights(tmp_path / "single")
    # What DDP promises: the gradient averaged over the ranks is the one-process gradient, up to the order in
    # which float32 sums over the batch (4 datasets x 24 rows x 5 nodes). Adam divides each gradient by its
    # own running scale, so a gradient that agrees to a relative 1e-3 (30 times the float32 bound of those
    # sums) moves a weight by the same steps to within 1e-3 of each step (<= 2 lr): the tolerance below.
    steps = [
        learning_rate(s, peak=1e-3, warmup_steps=2, total_steps=3, floor=single_run.min_lr) for s in range(3)
    ]
    weight_tolerance = 2 * sum(steps) * 1e-3
    compared = 0
    for name, tensor in single.items():
        if not name.startswith(("model.", "ema.")):
            continue
        got, want = ddp[name], tensor
        if name.endswith("attention.to_kv.bias"):
            # The key half of a key/value bias adds the same number to every score of a query, which softmax
            # ignores: its true gradient is exactly zero, so Adam turns pure rounding noise into steps of up
            # to lr. Only the value half is trained; the key half is checked by the outputs below.
            got, want = got.chunk(2)[1], want.chunk(2)[1]
        difference = (got.double() - want.double()).abs().max().item()
        assert difference <= weight_tolerance, (
            f"{name}: DDP and one process differ by {difference:.3g} (tolerance {weight_tolerance:.3g}); "
            f"max |weight| {want.abs().max().item():.3g}"
        )
        compared += 1
    assert compared > 0 and any(name.startswith("ema.") for name in single)
    # the two trained networks compute the same function: weights within weight_tolerance move the float32
    # outputs of this small network by about ten times that, plus its own rounding
    trained = {}
    for run, weights in (("ddp", ddp), ("single", single)):
        model = CondFiPModel(TINY)
        model.load_state_dict(
            {name[len("model.") :]: t for name, t in weights.items() if name.startswith("model.")}
        )
        trained[run] = model.eval()
    generator = torch.Generator().manual_seed(3)
    data = torch.randn(2, 24, 5, generator=generator)
    parents = torch.zeros(2, 5, 5, dtype=torch.bool)
    parents[:, 1, 0] = parents[:, 3, 1] = parents[:, 4, 2] = True
    with torch.no_grad():
        outputs = {run: model.predict_noise(data, parents) for run, model in trained.items()}
    operations = network_operations(dim=8, mlp_dim=16, rows=16, nodes=5, blocks=4)
    bound = 10 * weight_tolerance + tolerance(torch.float32, operations)
    difference = (outputs["ddp"] - outputs["single"]).abs().max().item()
    assert difference <= bound, f"predicted noise differs by {difference:.3g} (tolerance {bound:.3g})"
    log = json.loads((tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()[-1])
    assert log["rank_weight_spread"] == 0.0


def test_rollout_loss_adds_the_generation_error() -> None:
    from condfip.model import CondFiPModel, fixed_point_generate
    from condfip.training.condfip_stage import CondFiPLoss, rmse_per_row

    torch.manual_seed(0)
    model = CondFiPModel(TINY)
    generator = torch.Generator().manual_seed(1)
    data, noise = torch.randn(2, 12, 4, generator=generator), torch.randn(2, 12, 4, generator=generator)
    parents = torch.zeros(2, 4, 4, dtype=torch.bool)
    parents[:, 1, 0] = parents[:, 2, 1] = parents[:, 3, 0] = True
    plain = CondFiPLoss(model, "decoder")(data, noise, parents)
    with_rollout = CondFiPLoss(model, "decoder", rollout_weight=0.5, rollout_rows=3)(data, noise, parents)
    embedding = model.embed(data[:, :6], parents, chunk_size=None)
    generated = fixed_point_generate(
        lambda z: model.mechanisms(z, parents, embedding), noise[:, 6:9], parents
    )
    expected = plain + 0.5 * rmse_per_row(generated, data[:, 6:9])
    torch.testing.assert_close(with_rollout, expected)
    assert with_rollout > plain
    with pytest.raises(ValueError, match="--rollout-weight must be >= 0"):
        options(Path("unused"), stage="decoder", encoder=Path("unused"), rollout_weight=-1.0).validate()
    with pytest.raises(ValueError, match="--refit-weight must be >= 0, got -0.5"):
        options(Path("unused"), stage="decoder", encoder=Path("unused"), refit_weight=-0.5).validate()


def test_resume_a_run_written_before_config_fields_were_added(tmp_path: Path) -> None:
    train(options(tmp_path, steps=4, stop_at=2))
    meta_path = tmp_path / "state" / "training_state.json"
    meta = json.loads(meta_path.read_text())
    for field in ("decoder_mlp_dim", "decoder_value_norm"):  # absent from configs written before they existed
        del meta["architecture"][field]
    meta_path.write_text(json.dumps(meta))
    train(options(tmp_path, steps=4, resume=True))
    assert json.loads((tmp_path / "config.json").read_text())["training"]["step"] == 4
    with pytest.raises(ValueError, match="its run has the architecture .* not the --config given now"):
        train(options(tmp_path, steps=6, resume=True, config=dataclasses.replace(TINY, decoder_blocks=2)))


def test_init_continues_an_encoder_from_its_checkpoint(tmp_path: Path) -> None:
    train(options(tmp_path / "first"))
    # learning rate 0 (peak and floor): the new run's weights and their average stay where they started
    train(options(tmp_path / "second", init_from=tmp_path / "first", lr=0.0, min_lr=0.0))
    first = load_file(str(tmp_path / "first" / "model.safetensors"))
    second = load_file(str(tmp_path / "second" / "model.safetensors"))
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(second[name], first[name], rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="describes model_type 'condfip', expected 'graph'"):
        train(
            options(
                tmp_path / "third",
                stage="graph",
                config=GraphModelConfig(dim=8, num_heads=2, mlp_dim=16, num_layers=1, num_anchor_rows=16),
                init_from=tmp_path / "first",
            )
        )


def test_init_refuses_another_architecture(tmp_path: Path) -> None:
    train(options(tmp_path / "first", steps=2))
    other = dataclasses.replace(TINY, decoder_blocks=2)
    with pytest.raises(ValueError, match="pass the --config it was trained with"):
        train(options(tmp_path / "second", config=other, init_from=tmp_path / "first"))


def test_encoder_weight_trains_the_encoder_with_its_own_loss(tmp_path: Path) -> None:
    from condfip.model import CondFiPModel
    from condfip.training.condfip_stage import CondFiPLoss, rmse_per_row

    torch.manual_seed(0)
    model = CondFiPModel(TINY)
    generator = torch.Generator().manual_seed(2)
    data, noise = torch.randn(2, 12, 4, generator=generator), torch.randn(2, 12, 4, generator=generator)
    parents = torch.zeros(2, 4, 4, dtype=torch.bool)
    parents[:, 2, 0] = parents[:, 3, 2] = True
    plain = CondFiPLoss(model, "decoder")(data, noise, parents)
    with_encoder = CondFiPLoss(model, "decoder", encoder_weight=0.25)(data, noise, parents)
    encoder_loss = rmse_per_row(model.predict_mechanisms_encoder(data[:, :6], parents), (data - noise)[:, :6])
    torch.testing.assert_close(with_encoder, plain + 0.25 * encoder_loss)

    train(options(tmp_path / "enc"))
    train(options(tmp_path / "dec", stage="decoder", encoder=tmp_path / "enc", encoder_weight=1.0))
    enc = load_file(str(tmp_path / "enc" / "model.safetensors"))
    dec = load_file(str(tmp_path / "dec" / "model.safetensors"))
    moved = [name for name in enc if name.startswith("encoder.") and not torch.equal(enc[name], dec[name])]
    assert moved, "the encoder stayed frozen"
    recipe = json.loads((tmp_path / "dec" / "config.json").read_text())["training"]
    assert recipe["encoder_weight"] == 1.0
    with pytest.raises(ValueError, match="--encoder-weight must be >= 0, got -1.0"):
        options(Path("unused"), stage="decoder", encoder=tmp_path, encoder_weight=-1.0).validate()


def test_out_holding_other_files_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    CondFiPModel(TINY).save_pretrained(tmp_path / "plain")
    before = {path.name: path.read_bytes() for path in (tmp_path / "plain").iterdir()}
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_dict()))
    common = ["--config", str(tmp_path / "config.json"), "--steps", "1", "--quiet"]
    argv = ["train", "encoder", *common, "--init", str(tmp_path / "plain"), "--out", str(tmp_path / "plain")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds files" in err[0], err
    assert {path.name: path.read_bytes() for path in (tmp_path / "plain").iterdir()} == before


def test_stop_at_beyond_steps_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["train", "encoder", "--steps", "2", "--stop-at", "3", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stop-at 3 is beyond --steps 2" in err[0], err
    assert not (tmp_path / "r").exists()


def test_resume_refuses_changed_options(tmp_path: Path) -> None:
    train(options(tmp_path, steps=3, stop_at=1))
    for change, message in (
        ({"seed": 1}, "seed 0, not 1"),
        ({"lr": 2e-3}, "lr 0.001, not 0.002"),
        ({"batch_size": 4}, "batch_size 2, not 4"),
        ({"node_counts": (4,)}, r"node_counts \[4, 5\], not \[4\].*--nodes"),
        ({"mechanisms": ("linear",)}, "mechanisms"),
        ({"warmup_steps": 1}, "warmup_steps 2, not 1"),
        ({"num_samples": 30}, "num_samples 24, not 30"),
    ):
        with pytest.raises(ValueError, match=message):
            train(options(tmp_path, steps=3, resume=True, **change))
    # what may change on resume: the steps (the schedule follows them), stop-at, workers, checkpoint spacing
    train(options(tmp_path, steps=4, stop_at=2, resume=True, workers=1, checkpoint_every=1))
    assert json.loads((tmp_path / "state" / "training_state.json").read_text())["step"] == 2


def test_a_decoder_resume_refuses_another_encoder(tmp_path: Path, capsys) -> None:
    train(options(tmp_path / "enc", steps=2))
    other = CondFiPModel.from_pretrained(tmp_path / "enc")
    with torch.no_grad():
        next(other.encoder.parameters()).add_(1.0)  # the same sizes, other encoder weights
    other.save_pretrained(tmp_path / "other")
    shutil.copytree(tmp_path / "enc", tmp_path / "moved")  # the same weights in another folder
    run = tmp_path / "dec"
    train(options(run, stage="decoder", encoder=tmp_path / "enc", steps=3, stop_at=1))
    recipe = json.loads((run / "config.json").read_text())["training"]
    assert recipe["encoder"] == str(tmp_path / "enc") and len(recipe["encoder_digest"]) == 32
    with pytest.raises(ValueError, match=r"cannot resume .*encoder weights of --encoder '.*enc'.*'.*other'"):
        train(options(run, stage="decoder", encoder=tmp_path / "other", steps=3, resume=True))
    # the command line: one line, exit code 2 (the other options as the run was started with)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY.to_dict()))
    argv = ["train", "decoder", "--config", str(tmp_path / "tiny.json"), "--out", str(run), "--resume"]
    argv += ["--encoder", str(tmp_path / "other"), "--steps", "3", "--batch-size", "2", "--num-samples", "24"]
    argv += ["--nodes", "4", "5", "--warmup-steps", "2", "--lr", "1e-3", "--workers", "0", "--quiet"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds other ones; resume with the --encoder it was started with" in err[0], err
    # the encoder folder may move: the same weights resume
    train(options(run, stage="decoder", encoder=tmp_path / "moved", steps=3, stop_at=2, resume=True))
    assert json.loads((run / "state" / "training_state.json").read_text())["step"] == 2


def test_a_diverging_run_stops_and_keeps_its_last_checkpoint(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_dict()))
    argv = ["train", "encoder", "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "r")]
    argv += ["--steps", "3", "--checkpoint-every", "1", "--batch-size", "2", "--num-samples", "24"]
    argv += ["--nodes", "4", "--workers", "0", "--validation-datasets", "1", "--warmup-steps", "1", "--quiet"]
    assert main([*argv, "--lr", "1e30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "the training diverged at step" in err[-1] and "keeps its last checkpoint" in err[-1], err
    for line in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the log"))
    step = json.loads((tmp_path / "r" / "state" / "training_state.json").read_text())["step"]
    assert CondFiPModel.from_pretrained(tmp_path / "r").training_recipe["step"] == step


def _edit_state(run: Path, edit) -> None:
    path = run / "state" / "training_state.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta.update(step=-3), r"training_state.json is not a valid .*'step' must be"),
        (lambda meta: meta.pop("step"), r"training_state.json is not a valid .*'step' must be"),
        (
            lambda meta: meta.update(optimizer_groups=[]),
            r"training_state.json is not a valid .*optimizer_groups",
        ),
        ("tensor", r"training_state.safetensors is not a valid .*ema\..* has shape \(1,\)"),
        ("missing", r"training_state.safetensors is not a valid .*model\..* is missing"),
    ],
)
def test_a_corrupt_state_is_refused_in_one_message(tmp_path: Path, edit, message) -> None:
    from safetensors.torch import save_file

    train(options(tmp_path, steps=2, stop_at=1))
    if callable(edit):
        _edit_state(tmp_path, edit)
    else:
        path = tmp_path / "state" / "training_state.safetensors"
        tensors = load_file(str(path))
        if edit == "tensor":
            name = next(name for name in tensors if name.startswith("ema."))
            tensors[name] = tensors[name].flatten()[:1].clone()
        else:
            del tensors[next(name for name in tensors if name.startswith("model."))]
        save_file(tensors, str(path))
    with pytest.raises(ValueError, match=message) as error:
        train(options(tmp_path, steps=2, resume=True))
    assert "start a new run" in str(error.value)
