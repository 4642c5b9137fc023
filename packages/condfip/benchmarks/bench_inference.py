"""Inference speed and memory of the condfip API (figures go to packages/condfip/BENCHMARKS.md, "Inference").

    python packages/condfip/benchmarks/bench_inference.py [--model small|random:base] [--dowhy-python PATH]
        [--device auto|cpu|cuda] [--json out.json]

1. For d in {10, 20, 50, 100} with 400 context rows (scm-gen P_IN, RFF): seconds to ``infer`` (the default path,
   adapted to the rows, and ``zero_shot=True``) and then draw 1,000 observational plus 1,000 interventional rows
   (median of --repeats runs); DoWhy-GCM side by side on the
   same data (automatic mechanism assignment, fit, the same samples) when it can be imported, or through
   ``--dowhy-python``, a Python that has DoWhy (DoWhy pins old scipy releases, so it often lives in its own venv).
2. ``infer_batch`` throughput: datasets per second for 64 datasets (d = 20, 400 rows), against one-by-one ``infer``.
3. Peak memory (peak RSS of a fresh process, reset after loading) for ``infer`` plus the context noise with 1,000 / 10,000 / 100,000
   context rows at d = 20: flat in the context size when chunking works.

Both methods run with --threads threads (default 1) and report wall-clock and process-CPU seconds; on a shared
machine the CPU seconds are the figures to compare. On CUDA (``--device cuda``; ``auto`` takes it when present)
the wall-clock is the figure (every call returns DataFrames, so the GPU work is finished when it returns), and
the memory figures add the peak of CUDA memory allocated by torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

NUM_SAMPLES = 1000


def dataset(num_nodes: int, num_context: int = 400, seed: int = 0):
    import scm_gen

    return scm_gen.make_benchmark_dataset(
        "in", "rff", num_nodes, num_context=num_context, num_query=0, num_interventional=0, seed=seed
    )


def median_seconds(run, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds of ``run()`` over ``repeats`` runs, after one warm-up run.

    CPU seconds (all threads) are what to compare on a shared machine: wall time there depends on the load.
    """
    run()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def condfip_seconds(
    model, data, adjacency: np.ndarray, node: int, value: float, repeats: int, zero_shot: bool = False
) -> tuple[float, float]:
    def run() -> None:
        scm = model.infer(data, adjacency, zero_shot=zero_shot)
        scm.sample(NUM_SAMPLES, seed=0)
        scm.interventional_samples({scm.columns[node]: value}, n=NUM_SAMPLES, seed=1)

    return median_seconds(run, repeats)


# ---------------------------------------------------------------------------------------------------- DoWhy-GCM
DOWHY_CHILD = """
import json, sys, time
import networkx as nx, numpy as np, pandas as pd
from dowhy import gcm
gcm.config.disable_progress_bars()
payload = json.loads(sys.stdin.read())
gcm.config.set_default_n_jobs(payload["jobs"])  # 1 (the default): its CPU seconds are all counted
data = pd.DataFrame(np.array(payload["data"]), columns=[f"x{j}" for j in range(len(payload["data"][0]))])
adjacency = np.array(payload["adjacency"])
graph = nx.DiGraph([(f"x{i}", f"x{j}") for i, j in zip(*np.nonzero(adjacency))])
graph.add_nodes_from(data.columns)
walls, cpus = [], []
for _ in range(payload["repeats"]):
    wall, cpu = time.perf_counter(), time.process_time()
    model = gcm.InvertibleStructuralCausalModel(graph)
    gcm.auto.assign_causal_mechanisms(model, data)
    gcm.fit(model, data)
    gcm.draw_samples(model, num_samples=payload["num_samples"])
    gcm.interventional_samples(
        model, {f"x{payload['node']}": lambda x: payload["value"]}, num_samples_to_draw=payload["num_samples"]
    )
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
print(json.dumps([sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]]))
"""


def dowhy_seconds(
    python: str, data: np.ndarray, adjacency: np.ndarray, node: int, value: float, repeats: int
):
    payload = {
        "data": data.tolist(),
        "adjacency": adjacency.tolist(),
        "node": node,
        "value": value,
        "repeats": repeats,
        "num_samples": NUM_SAMPLES,
        "jobs": int(thread_environment()["OMP_NUM_THREADS"]),
    }
    finished = subprocess.run(
        [python, "-c", DOWHY_CHILD],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
        env=thread_environment(),
    )
    if finished.returncode != 0:
        tail = finished.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"failed: {tail[0]}"
    wall, cpu = json.loads(finished.stdout.strip().splitlines()[-1])
    return wall, cpu


def thread_environment() -> dict[str, str]:
    """The environment with BLAS / OpenMP limited to the threads torch uses here, for child processes."""
    import torch

    threads = str(torch.get_num_threads())
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    return {**os.environ, **dict.fromkeys(names, threads)}


def find_dowhy_python(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    try:
        import dowhy.gcm  # noqa: F401
    except ImportError:
        return None
    return sys.executable


# ------------------------------------------------------------------------------------------------------- memory
def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now; VmHWM: peak since exec or the last reset), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def load_model(name: str, device: str):
    """A shipped name or checkpoint folder, or ``random:CONFIG`` (a named configuration with random weights:
    speed does not depend on the weights, so this times e.g. ``base`` before its weights exist)."""
    import torch

    from condfip import CondFiP
    from condfip.model import CondFiPConfig, CondFiPModel

    if name.startswith("random:"):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            network = CondFiPModel(CondFiPConfig.named(name.removeprefix("random:")))
        return CondFiP(network, device=device)
    return CondFiP.from_pretrained(name, device=device)


def memory_child(model_name: str, num_context: int, device: str) -> None:
    import torch

    model = load_model(model_name, device)
    data = dataset(20, num_context=num_context)
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        cuda_before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak (VmHWM) to the current RSS
    before = _status_mib("VmRSS")
    scm = model.infer(data.context_data, data.adjacency)
    scm.noise()  # one decoder pass over every context row
    scm.sample(NUM_SAMPLES, seed=0)
    figures = {"before_mib": before, "peak_mib": _status_mib("VmHWM")}
    if cuda:
        figures["cuda_peak_above_mib"] = (torch.cuda.max_memory_allocated() - cuda_before) / 2**20
    print(json.dumps(figures))


def peak_memory(model_name: str, num_context: int, device: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--model",
        model_name,
        "--device",
        device,
        "--memory-child",
        str(num_context),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=True, env=thread_environment())
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default="small",
        help="shipped name, checkpoint folder, or random:CONFIG (e.g. random:base, random weights)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-datasets", type=int, default=64)
    parser.add_argument("--memory-rows", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--dowhy-python", help="a Python interpreter with DoWhy installed")
    parser.add_argument("--dowhy-max-nodes", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch / BLAS threads for both methods (default 1: CPU seconds stay honest on a shared machine, "
        "where idle OpenMP threads spin and inflate them)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.model, args.memory_child, args.device)
        return

    model = load_model(args.model, args.device)
    device_name = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "cpu"
    results: dict = {"model": args.model, "device": device_name, "torch": torch.__version__, "generate": {}}
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {model.device}, model {args.model!r}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    dowhy_python = find_dowhy_python(args.dowhy_python)
    print(f"\n1. infer + {NUM_SAMPLES} observational + {NUM_SAMPLES} interventional rows, 400 context rows")
    print("   median seconds, wall-clock / process CPU (all threads); speed-up = DoWhy-GCM / Cond-FiP")
    print("   (Cond-FiP: the default path; zero-shot: the same with infer(..., zero_shot=True), wall / CPU)")
    print(
        f"{'d':>5} {'Cond-FiP wall':>14} {'CPU':>8} {'DoWhy wall':>11} {'CPU':>8} {'speed-up wall':>14} {'CPU':>6}"
        f" {'zero-shot wall':>15} {'CPU':>8}"
    )
    for num_nodes in args.sizes:
        data = dataset(num_nodes)
        node = int(data.intervention_node)
        ours = condfip_seconds(
            model, data.context_data, data.adjacency, node, data.intervention_value, args.repeats
        )
        zero_shot = condfip_seconds(
            model, data.context_data, data.adjacency, node, data.intervention_value, args.repeats, True
        )
        theirs: tuple[float, float] | str = "not installed"
        if dowhy_python is not None and num_nodes <= args.dowhy_max_nodes:
            theirs = dowhy_seconds(
                dowhy_python, data.context_data, data.adjacency, node, data.intervention_value, args.repeats
            )
        results["generate"][num_nodes] = {"condfip": ours, "condfip_zero_shot": zero_shot, "dowhy": theirs}
        line = f"{num_nodes:>5} {ours[0]:>14.3f} {ours[1]:>8.3f}"
        if isinstance(theirs, tuple):
            line += f" {theirs[0]:>11.3f} {theirs[1]:>8.3f} {theirs[0] / ours[0]:>13.1f}x {theirs[1] / ours[1]:>5.1f}x"
        else:
            line += f" {theirs:>11} {'':>8} {'':>14} {'':>6}"
        line += f" {zero_shot[0]:>15.3f} {zero_shot[1]:>8.3f}"
        print(line, flush=True)

    print(f"\n2. infer_batch, {args.batch_datasets} datasets, d = 20, 400 rows: datasets/s (wall, CPU)")
    datasets = [
        (d.context_data, d.adjacency) for d in (dataset(20, seed=s) for s in range(args.batch_datasets))
    ]
    runs = {
        f"infer_batch(batch_size={b})": (lambda b=b: model.infer_batch(datasets, batch_size=b))
        for b in (1, 4, 16, 64)
    }
    runs["one-by-one infer"] = lambda: [model.infer(x, g) for x, g in datasets]
    results["infer_batch"] = {}
    for name, run in runs.items():
        wall, cpu = median_seconds(run, 1)
        results["infer_batch"][name] = {"datasets_per_second_wall": len(datasets) / wall}
        print(
            f"  {name:<26} {len(datasets) / wall:8.2f} /s wall {len(datasets) / cpu:8.2f} /s CPU", flush=True
        )

    print(
        "\n3. peak memory (peak RSS during the work, fresh process), d = 20: infer + context noise + 1,000 samples"
    )
    results["memory"] = {}
    for num_context in args.memory_rows:
        figures = peak_memory(args.model, num_context, args.device)
        results["memory"][num_context] = figures
        cuda_peak = figures.get("cuda_peak_above_mib")
        if cuda_peak is not None:
            print(
                f"  {num_context:>7} context rows: CUDA memory allocated above the loaded model and data: "
                f"{cuda_peak:7.0f} MiB",
                flush=True,
            )
        print(
            f"  {num_context:>7} context rows: peak {figures['peak_mib']:7.0f} MiB, "
            f"{figures['peak_mib'] - figures['before_mib']:6.0f} MiB above the RSS after imports, model and data "
            f"({figures['before_mib']:.0f} MiB)",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
