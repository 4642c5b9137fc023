"""Generation speed and streaming memory of scm-gen.

Prints:
1. datasets/s generating benchmark datasets (d = 20, 400 context + 400 query rows, 20 interventional rows),
   for each mechanism of `--mechanisms`, in this process (generation only);
2. datasets/s for a full export to Parquet with --num-proc 1 and 2 (process start-up included);
3. ms per dataset of the training stream (`make_training_batch`, d = 20, n = 400);
4. peak resident memory of an export streaming N datasets to disk, for growing N (it must stay flat).

Usage: python packages/scm-gen/benchmarks/bench_generate.py [--datasets 400] [--stream 2000,20000]
       [--mechanisms linear,rff,nn_tanh,...]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from scm_gen import make_benchmark_dataset, make_training_batch
from scm_gen.specs import generate_specs

NODES, CONTEXT, QUERY, INTERVENTIONAL = 20, 400, 400, 20


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the export's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def generation_rate(mechanism: str, count: int) -> tuple[float, float]:
    """(datasets per wall second, datasets per CPU second), generation only."""
    make_benchmark_dataset("in", mechanism, NODES, num_interventional=INTERVENTIONAL, index=10**6)  # warm-up
    start, cpu = time.perf_counter(), _cpu_seconds()
    for index in range(count):
        make_benchmark_dataset(
            "in",
            mechanism,
            NODES,
            num_context=CONTEXT,
            num_query=QUERY,
            num_interventional=INTERVENTIONAL,
            index=index,
        )
    return count / (time.perf_counter() - start), count / (_cpu_seconds() - cpu)


def _specs(mechanism: str, count: int):
    return generate_specs(
        preset="in",
        mechanism=mechanism,
        num_nodes=NODES,
        num_datasets=count,
        num_context=CONTEXT,
        num_query=QUERY,
        num_interventional=INTERVENTIONAL,
    )


def export_rate(mechanism: str, count: int, num_proc: int, workdir: str) -> tuple[float, float]:
    """(datasets per wall second, datasets per CPU second of all processes), worker start-up included."""
    from scm_gen.export import export_benchmark  # not at the top: spawned workers re-import this module

    out = os.path.join(workdir, f"{mechanism}-{num_proc}")
    start, cpu = time.perf_counter(), _cpu_seconds()
    export_benchmark(
        _specs(mechanism, count), out, generator={}, num_proc=num_proc, shard_size=max(1, count // 8)
    )
    rates = count / (time.perf_counter() - start), count / (_cpu_seconds() - cpu)
    shutil.rmtree(out)
    return rates


def training_ms_per_dataset(batches: int = 20, batch_size: int = 8) -> tuple[float, float]:
    """(wall ms, CPU ms) per dataset of the training stream."""
    make_training_batch(10**6, batch_size=batch_size)
    start, cpu = time.perf_counter(), _cpu_seconds()
    for index in range(batches):
        make_training_batch(index, batch_size=batch_size)
    count = batches * batch_size
    return (time.perf_counter() - start) / count * 1e3, (_cpu_seconds() - cpu) / count * 1e3


def stream_child(count: int, out: str) -> None:
    """Runs in a fresh process: export `count` RFF datasets, print peak RSS in MiB and the rate."""
    from scm_gen.export import export_benchmark

    start = time.perf_counter()
    export_benchmark(_specs("rff", count), out, generator={}, num_proc=1, shard_size=1000)
    elapsed = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak:.1f} {count / elapsed:.1f} {size / 2**30:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=400, help="datasets per rate measurement")
    parser.add_argument(
        "--stream", default="2000,20000", help="dataset counts for the memory run ('' to skip)"
    )
    parser.add_argument(
        "--mechanisms",
        default="linear,rff,rff_hetero,nn_tanh,nn_sigmoid,nn_relu,polynomial,multiplicative,mixed",
        help="mechanisms of the in-process generation rates (comma-separated)",
    )
    parser.add_argument("--stream-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_child:
        stream_child(int(args.stream_child[0]), args.stream_child[1])
        return

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"d = {NODES}, {CONTEXT} context + {QUERY} query rows, {INTERVENTIONAL} interventional rows, "
        f"{QUERY} counterfactual rows per dataset"
    )
    for mechanism in [m for m in args.mechanisms.split(",") if m]:
        wall, cpu = generation_rate(mechanism, args.datasets)
        print(f"generate {mechanism:14s} in-process    : {wall:7.1f} datasets/s, {cpu:7.1f} per CPU second")
    with tempfile.TemporaryDirectory() as workdir:
        for mechanism in ("linear", "rff"):
            for num_proc in (1, 2):
                wall, cpu = export_rate(mechanism, args.datasets, num_proc, workdir)
                print(
                    f"export   {mechanism:6s} to Parquet, --num-proc {num_proc}: {wall:7.1f} datasets/s, "
                    f"{cpu:7.1f} per CPU second"
                )
    wall_ms, cpu_ms = training_ms_per_dataset()
    print(f"training stream (d = 20, n = 400)         : {wall_ms:7.2f} ms per dataset, {cpu_ms:5.2f} CPU ms")
    for count in [int(c) for c in args.stream.split(",") if c]:
        with tempfile.TemporaryDirectory() as workdir:
            out = os.path.join(workdir, "stream")
            result = subprocess.run(
                [sys.executable, __file__, "--stream-child", str(count), out],
                check=True,
                capture_output=True,
                text=True,
            )
            peak, rate, size = result.stdout.split()
            print(
                f"stream {count:6d} RFF datasets to disk     : peak RSS {peak} MiB, {rate} datasets/s, {size} GiB"
            )


if __name__ == "__main__":
    main()
