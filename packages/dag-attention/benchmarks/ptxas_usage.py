"""Compile the Triton kernels for a GPU architecture on a machine without a GPU and report what ptxas says.

    python packages/dag-attention/benchmarks/ptxas_usage.py            # sm_90 (H100 / H200)
    python packages/dag-attention/benchmarks/ptxas_usage.py --arch 80  # sm_80 (A100)

For every tile shape the heuristic picks on the benchmark grid (d in {10, 20, 50, 100, 200}, e in {32, 64},
float32 and bfloat16), prints registers per thread and stack (spill) bytes of each kernel. It proves the
kernels compile for that target and shows register pressure before any GPU time is spent; it says nothing
about speed. Needs Triton's bundled ptxas and cuobjdump (shipped in the triton wheel).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from dag_attention import _triton_kernels as kernels
from dag_attention._triton_op import choose_config

KERNELS = ("_forward_kernel", "_backward_single_block_kernel", "_backward_dq_kernel", "_backward_dkdv_kernel")
STAT_POINTERS = ("lse_ptr", "delta_ptr")


def _signature(fn, dtype: str, constants: dict) -> tuple[dict, dict]:
    signature, constexprs = {}, {}
    for index, name in enumerate(fn.arg_names):
        if name in constants:
            signature[name] = "constexpr"
            constexprs[(index,)] = constants[name]
        elif name == "parents_ptr":
            signature[name] = "*u8"
        elif name in STAT_POINTERS:
            signature[name] = "*fp32"
        elif name.endswith("_ptr"):
            signature[name] = f"*{dtype}"
        elif name in ("qk_scale", "scale"):
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
    return signature, constexprs


def _resource_usage(cubin: bytes) -> tuple[int, int]:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "kernel.cubin")
        with open(path, "wb") as handle:
            handle.write(cubin)
        report = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    match = re.search(r"REG:(\d+).*?STACK:(\d+)", report, re.S)
    if match is None:
        raise RuntimeError(f"unexpected cuobjdump output: {report[:200]}")
    return int(match.group(1)), int(match.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability as an integer, e.g. 90")
    parser.add_argument("--rows", type=int, default=3200, help="S * H rows per dataset (B=4, S=400, H=8)")
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    args = parser.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    print(f"triton {triton.__version__}, target sm_{args.arch}; registers per thread / stack bytes (spills)")
    print(
        "| dtype | d | e | pack | block_nodes | warps | forward | backward (one block) | backward dQ | backward dK dV |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    seen = set()
    torch_dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    for dtype in args.dtypes:
        for head_dim in (32, 64):
            for num_nodes in (10, 20, 50, 100, 200):
                config = choose_config(args.rows, num_nodes, head_dim, dtype=torch_dtypes[dtype])
                multi_block = num_nodes > config.block_nodes
                key = (dtype, config, multi_block)
                if key in seen:
                    continue
                seen.add(key)
                cells = []
                for name in KERNELS:
                    single_block_kernel = name == "_backward_single_block_kernel"
                    backward_kernel = name != "_forward_kernel"
                    if backward_kernel and single_block_kernel == multi_block:
                        cells.append("-")  # this backward path is not used for this d
                        continue
                    fn = getattr(kernels, name)
                    constants = dict(
                        PACK=config.pack, BLOCK_M=config.block_nodes, BLOCK_N=config.block_nodes,
                        BLOCK_D=config.block_nodes, BLOCK_E=config.block_e,
                        PRECISION="ieee" if dtype == "fp32" else None,
                    )  # fmt: skip
                    signature, constexprs = _signature(fn, dtype, constants)
                    compiled = triton.compile(
                        ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                        target=target,
                        options={"num_warps": config.num_warps},
                    )
                    registers, stack = _resource_usage(compiled.asm["cubin"])
                    cells.append(f"{registers} / {stack}")
                print(
                    f"| {dtype} | {num_nodes} | {head_dim} | {config.pack} | {config.block_nodes} | "
                    f"{config.num_warps} | " + " | ".join(cells) + " |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
