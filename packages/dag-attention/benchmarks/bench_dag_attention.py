"""Speed and memory of DAG attention: the reference in eager mode, the reference under torch.compile,
scaled_dot_product_attention with a boolean mask (a speed yardstick only: its softmax is not clipped), and
the fused Triton kernels.

    python packages/dag-attention/benchmarks/bench_dag_attention.py                 # CUDA, the full grid
    python packages/dag-attention/benchmarks/bench_dag_attention.py --sweep         # plus a tile-shape sweep
    TRITON_INTERPRET=1 python packages/dag-attention/benchmarks/bench_dag_attention.py --quick   # CPU smoke run

Figures per (implementation, dtype, d, e): forward ms (no autograd), forward+backward ms, the achieved
bandwidth (the op's minimal traffic / time; forward: q, k, v, out and the float32 row statistics;
forward+backward: 12 such tensors and the statistics) against the device's peak, and on CUDA the peak memory
allocated beyond the inputs during forward+backward. This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from dag_attention import dag_attention, dag_attention_reference
from dag_attention._dispatch import interpreter_enabled, load_triton_op
from dag_attention._testing import make_parents

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
IMPLEMENTATIONS = ("reference", "compiled", "sdpa", "triton")
# HBM bandwidth in GB/s by a substring of torch.cuda.get_device_name(); the first match wins
PEAK_BANDWIDTH_GBS = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("A10G", 600.0),
    ("RTX 4090", 1008.0),
)


def _device_peak_gbs(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BANDWIDTH_GBS if key in name), None)


class Timer:
    """Median wall time of a callable; on CUDA with events, flushing the L2 cache before every repetition."""

    def __init__(self, device: torch.device, *, warmup: int, min_reps: int, min_seconds: float) -> None:
        self.device = device
        self.warmup = warmup
        self.min_reps = min_reps
        self.min_seconds = min_seconds
        self.flush = (
            torch.empty(256 * 2**20, dtype=torch.int8, device=device) if device.type == "cuda" else None
        )

    def __call__(self, fn: Callable[[], object]) -> float:
        for _ in range(self.warmup):
            fn()
        self._sync()
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < self.min_reps or time.perf_counter() - started < self.min_seconds:
            if self.flush is not None:
                self.flush.zero_()
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                fn()
                end.record()
                end.synchronize()
                times.append(begin.elapsed_time(end))
            else:
                begin_s = time.perf_counter()
                fn()
                times.append(1e3 * (time.perf_counter() - begin_s))
            if len(times) >= 1000:
                break
        return statistics.median(times)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _implementations(names: list[str]) -> dict[str, Callable]:
    """name -> fn(q, k, v, parents, scale); 'compiled' compiles the reference once (dynamic shapes)."""
    compiled_reference = None
    table: dict[str, Callable] = {}
    for name in names:
        if name == "reference":
            table[name] = lambda q, k, v, parents, scale: dag_attention(
                q, k, v, parents, scale=scale, backend="reference"
            )
        elif name == "compiled":
            compiled_reference = compiled_reference or torch.compile(dag_attention_reference, dynamic=True)
            table[name] = compiled_reference
        elif name == "sdpa":
            table[name] = _sdpa
        elif name == "triton":
            table[name] = lambda q, k, v, parents, scale: dag_attention(
                q, k, v, parents, scale=scale, backend="triton"
            )
    return table


def _sdpa(q, k, v, parents, scale):
    """scaled_dot_product_attention over nodes with the parent mask plus the diagonal (so that no row is
    empty: an all-False row would give NaN). A yardstick for speed; the result is not DAG attention."""
    batch, rows, heads, num_nodes, head_dim = q.shape
    eye = torch.eye(num_nodes, dtype=torch.bool, device=q.device)
    mask = (parents | eye)[:, None]  # [B, 1, d, d], broadcast over the S * H "heads"
    out = torch.nn.functional.scaled_dot_product_attention(
        *(t.reshape(batch, rows * heads, num_nodes, head_dim) for t in (q, k, v)), attn_mask=mask, scale=scale
    )
    return out.view(q.shape)


def _traffic_bytes(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[int, int]:
    """Minimal bytes moved by (forward, forward+backward): whole tensors and float32 row statistics."""
    elements = math.prod(shape)
    tensor = elements * torch.finfo(dtype).bits // 8
    stats = elements // shape[-1] * 4
    return 4 * tensor + stats, 12 * tensor + 3 * stats


def run_case(fn, q, k, v, parents, scale, timer: Timer) -> dict[str, float | None]:
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    grad_out = torch.randn_like(q)

    def forward():
        with torch.no_grad():
            fn(q, k, v, parents, scale)

    def forward_backward():
        for t in leaves:
            t.grad = None
        fn(*leaves, parents, scale).backward(grad_out)

    forward_ms = timer(forward)
    train_ms = timer(forward_backward)
    peak_mb = None
    if q.device.type == "cuda":
        for t in leaves:
            t.grad = None
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        forward_backward()
        torch.cuda.synchronize()
        peak_mb = (torch.cuda.max_memory_allocated() - baseline) / 2**20
    return {"forward_ms": forward_ms, "train_ms": train_ms, "peak_extra_mb": peak_mb}


def _inputs(shape, dtype, device, seed):
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(shape, generator=generator).to(device=device, dtype=dtype) for _ in range(3))
    num_nodes = shape[3]
    # Erdos-Renyi DAG with two edges per node on average, as in the training data
    probability = min(1.0, 4.0 / max(1, num_nodes - 1))
    parents = make_parents("random", shape[0], num_nodes, generator=generator, edge_probability=probability)
    return q, k, v, parents.to(device)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        return f"{names[0]} x {len(names)}" if names else platform.processor() or "cpu"
    except OSError:
        return platform.processor() or "cpu"


def _format_row(row: dict, peak_gbs: float | None) -> str:
    def ms(x):
        return "n/a" if x is None else f"{x:.3f}"

    def bandwidth(key):
        if row[key] is None:
            return "n/a"
        gbs = row["bytes_" + key.split("_")[0]] / (row[key] * 1e-3) / 1e9
        return (f"{gbs:.0f}" if gbs >= 10 else f"{gbs:.2g}") + (
            f" ({100 * gbs / peak_gbs:.0f}%)" if peak_gbs else ""
        )

    mem = "n/a" if row.get("peak_extra_mb") is None else f"{row['peak_extra_mb']:.1f}"
    return (
        f"| {row['impl']} | {row['dtype']} | {row['d']} | {row['e']} | {ms(row['forward_ms'])} | "
        f"{bandwidth('forward_ms')} | {ms(row['train_ms'])} | {bandwidth('train_ms')} | {mem} | "
        f"{row.get('note', '')} |"
    )


TABLE_HEADER = (
    "| impl | dtype | d | e | fwd ms | fwd GB/s (% peak) | fwd+bwd ms | fwd+bwd GB/s (% peak) | "
    "fwd+bwd peak extra MiB | note |\n|---|---|---|---|---|---|---|---|---|---|"
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rows", type=int, default=400, help="samples S per dataset")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    parser.add_argument("--head-dims", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--impls", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS))
    parser.add_argument("--quick", action="store_true", help="tiny shapes for a CPU / interpreter smoke run")
    parser.add_argument("--sweep", action="store_true", help="also time Triton tile shapes at d = 20, 100")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-reps", type=int, default=10)
    parser.add_argument("--min-seconds", type=float, default=0.2)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds; later cases are skipped")
    parser.add_argument("--json", default=None, help="write the rows as JSON here")
    parser.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rows, args.heads = 2, 4, 2
        args.nodes, args.head_dims, args.dtypes = [10, 20], [32], ["fp32"]
        args.warmup, args.min_reps, args.min_seconds = 1, 2, 0.0
        if "--impls" not in (argv if argv is not None else sys.argv[1:]):
            args.impls = ["reference", "sdpa", "triton"]
    return args


def _sweep(args, timer: Timer, device: torch.device, started: float) -> list[dict]:
    """Forward+backward time of Triton tile shapes (pack, block_nodes, num_warps) at d = 20 and d = 100."""
    op = load_triton_op()
    rows = []
    candidates = {
        20: [(1, 32, 4), (2, 32, 4), (4, 32, 4), (4, 32, 8), (8, 32, 8)],
        100: [(1, 32, 4), (1, 64, 4), (1, 64, 8), (1, 128, 8), (2, 64, 8)],
    }
    for num_nodes, configs in candidates.items():
        shape = (args.batch, args.rows, args.heads, num_nodes, 32)
        q, k, v, parents = _inputs(shape, torch.bfloat16, device, seed=num_nodes)
        for pack, block_nodes, num_warps in configs:
            if args.time_budget is not None and time.perf_counter() - started > args.time_budget:
                print(f"sweep: time budget of {args.time_budget:.0f} s spent, stopping", flush=True)
                return rows

            def fn(q, k, v, parents, scale, pack=pack, block_nodes=block_nodes, num_warps=num_warps):
                return op.dag_attention_triton(
                    q, k, v, parents, scale, pack=pack, block_nodes=block_nodes, num_warps=num_warps
                )

            result = run_case(fn, q, k, v, parents, 1 / math.sqrt(32), timer)
            row = {"d": num_nodes, "pack": pack, "block_nodes": block_nodes, "num_warps": num_warps, **result}
            rows.append(row)
            print(f"sweep d={num_nodes} pack={pack} block_nodes={block_nodes} warps={num_warps}: "
                  f"fwd {result['forward_ms']:.3f} ms, fwd+bwd {result['train_ms']:.3f} ms", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.perf_counter()
    if "triton" in args.impls and device.type == "cpu" and not interpreter_enabled():
        print("triton on CPU needs TRITON_INTERPRET=1 (set before starting); dropping it", file=sys.stderr)
        args.impls = [name for name in args.impls if name != "triton"]
    if "triton" in args.impls and load_triton_op() is None:
        print("triton cannot be imported; dropping it", file=sys.stderr)
        args.impls = [name for name in args.impls if name != "triton"]
    peak = _device_peak_gbs(device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    triton_version = getattr(sys.modules.get("triton"), "__version__", "not imported")
    header = (
        f"device: {device_name} ({device}); peak bandwidth: {peak or 'unknown'} GB/s; torch {torch.__version__}; "
        f"triton {triton_version}; interpreter: {interpreter_enabled()}; "
        f"B={args.batch} S={args.rows} H={args.heads}; CPU threads: {torch.get_num_threads()}"
    )
    print(header, flush=True)
    timer = Timer(device, warmup=args.warmup, min_reps=args.min_reps, min_seconds=args.min_seconds)
    implementations = _implementations(args.impls)
    rows: list[dict] = []
    print(TABLE_HEADER, flush=True)
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for head_dim in args.head_dims:
            for num_nodes in args.nodes:
                shape = (args.batch, args.rows, args.heads, num_nodes, head_dim)
                q, k, v, parents = _inputs(shape, dtype, device, seed=num_nodes)
                bytes_forward, bytes_train = _traffic_bytes(shape, dtype)
                for name, fn in implementations.items():
                    row = {"impl": name, "dtype": dtype_name, "d": num_nodes, "e": head_dim,
                           "bytes_forward": bytes_forward, "bytes_train": bytes_train}  # fmt: skip
                    if args.time_budget is not None and time.perf_counter() - started > args.time_budget:
                        row.update(
                            forward_ms=None, train_ms=None, peak_extra_mb=None, note="skipped: time budget"
                        )
                    else:
                        try:
                            row.update(run_case(fn, q, k, v, parents, 1 / math.sqrt(head_dim), timer))
                        except Exception as error:  # a benchmark reports a failing case and goes on
                            row.update(forward_ms=None, train_ms=None, peak_extra_mb=None,
                                       note=f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")  # fmt: skip
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                    rows.append(row)
                    print(_format_row(row, peak), flush=True)
    sweep_rows = _sweep(args, timer, device, started) if args.sweep and "triton" in args.impls else []
    print(f"total {time.perf_counter() - started:.1f} s", flush=True)

    if args.json:
        _write_atomically(
            args.json, json.dumps({"header": header, "rows": rows, "sweep": sweep_rows}, indent=1)
        )
    if args.markdown:
        lines = [header, "", TABLE_HEADER, *(_format_row(row, peak) for row in rows)]
        if sweep_rows:
            lines += [
                "",
                "| d | pack | block_nodes | num_warps | fwd ms | fwd+bwd ms |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {r['d']} | {r['pack']} | {r['block_nodes']} | {r['num_warps']} | {r['forward_ms']:.3f} | "
                f"{r['train_ms']:.3f} |"
                for r in sweep_rows
            ]
        _write_atomically(args.markdown, "\n".join(lines) + "\n")
    return 0


def _write_atomically(path: str, text: str) -> None:
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main())
