#!/usr/bin/env bash
# The GPU figures of dag-attention in one command: installs what is missing, runs the GPU test suite and the
# benchmark (with a short tile-shape sweep), and writes every output under $OUT when it is set (else under
# packages/dag-attention/benchmarks/results/). Each part stops at its time limit (below).
#
#   bash packages/dag-attention/benchmarks/gpu_check.sh                  # a CUDA machine
#   bash packages/dag-attention/benchmarks/gpu_check.sh --cpu-interpret  # no GPU: the same kernels in Triton's
#                                                                        # CPU interpreter, small shapes
# Exit status: 0 when the tests pass (the benchmark only reports), 1 otherwise, 2 for a bad argument.
# Settings (scripts/gpu_check.sh at the repository root sets them from its budget): PARTS ("tests bench": run
# one or both), time limits in seconds TESTS_LIMIT_S (210 on a GPU, 1200 in the interpreter), BENCH_LIMIT_S (250;
# 600), BENCH_BUDGET_S (200: later benchmark cases are skipped past it), SWEEP (1: also time the tile shapes; GPU
# only), BENCH_ARGS (more options for bench_dag_attention.py, e.g. the order of the cases).
set -uo pipefail
PARTS=${PARTS:-tests bench}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-200}
SWEEP=${SWEEP:-1}

mode=gpu
case "${1:-}" in
  "") ;;
  --cpu-interpret) mode=cpu ;;
  *) echo "usage: gpu_check.sh [--cpu-interpret]" >&2; exit 2 ;;
esac
if [ "$mode" = gpu ]; then
  TESTS_LIMIT_S=${TESTS_LIMIT_S:-210}; BENCH_LIMIT_S=${BENCH_LIMIT_S:-250}
else
  TESTS_LIMIT_S=${TESTS_LIMIT_S:-1200}; BENCH_LIMIT_S=${BENCH_LIMIT_S:-600}; SWEEP=0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
package="$(dirname "$here")"
repo="$(cd "$package/../.." && pwd)"
out="${OUT:-$here/results}"
mkdir -p "$out"
python="${PYTHON:-python}"
started=$SECONDS

log() { echo "[gpu_check +$((SECONDS - started))s] $*" | tee -a "$out/gpu_check.log"; }

ensure() {  # ensure IMPORT_NAME PIP_SPEC: install only what is missing
  if ! "$python" -c "import $1" >/dev/null 2>&1; then
    log "installing $2"
    "$python" -m pip install -q "$2" >>"$out/gpu_check.log" 2>&1
    "$python" -c "import $1" >/dev/null 2>&1 || { log "could not install $2 (no network?): install it, then rerun"; exit 1; }
  fi
}

log "mode: $mode; output: $out"
ensure torch "torch==2.13.0"
if [ "$mode" = gpu ]; then
  if ! "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    log "torch $("$python" -c 'import torch; print(torch.__version__, torch.version.cuda)') sees no CUDA device:"
    log "install a CUDA build of torch==2.13.0 on a GPU machine, or run with --cpu-interpret"
    exit 1
  fi
fi
ensure triton "triton==3.7.1"
ensure einops "einops>=0.7"
ensure pytest "pytest>=8"
ensure numpy "numpy>=1.24"
export PYTHONPATH="$package/src${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's dag_attention, no install needed
"$python" - <<'PY' 2>&1 | tee -a "$out/gpu_check.log"
import platform, torch, triton, dag_attention
print("python", platform.python_version(), "| torch", torch.__version__, "cuda", torch.version.cuda,
      "| triton", triton.__version__, "| dag_attention", dag_attention.__version__, "from", dag_attention.__file__)
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(), "| capability", torch.cuda.get_device_capability())
PY
cd "$repo" || exit 1

tests_status=0
bench_status=0
if [ "$mode" = gpu ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1 | tee "$out/nvidia_smi.txt"
  tests=(-m gpu); tests_file=gpu_tests.txt; bench=()
else  # the same kernels in Triton's interpreter on the CPU, small shapes
  export TRITON_INTERPRET=1
  tests=(-m triton_interpret); tests_file=interpret_tests.txt; bench=(--quick --device cpu --threads 1)
fi
if [[ " $PARTS " == *" tests "* ]]; then
  log "test suite, mode $mode (limit $TESTS_LIMIT_S s)"
  timeout "$TESTS_LIMIT_S" "$python" -m pytest packages/dag-attention/tests "${tests[@]}" -q -p no:cacheprovider 2>&1 \
    | tee "$out/$tests_file"
  tests_status=${PIPESTATUS[0]}
fi
if [[ " $PARTS " == *" bench "* ]]; then
  sweep=(); [ "$SWEEP" = 1 ] && sweep=(--sweep)
  if [ "$mode" = gpu ]; then
    log "benchmark: B=4 S=400 H=8, d in {10,20,50,100,200}, e in {32,64}, fp32 and bf16, sweep $SWEEP (limit $BENCH_LIMIT_S s)"
  else
    log "quick benchmark in the interpreter: B=2 S=4 H=2, d in {10,20}, e=32, fp32 (limit $BENCH_LIMIT_S s)"
  fi
  read -r -a extra <<<"${BENCH_ARGS:-}"
  timeout "$BENCH_LIMIT_S" "$python" "$here/bench_dag_attention.py" "${bench[@]}" "${sweep[@]}" "${extra[@]}" \
    --time-budget "$BENCH_BUDGET_S" --json "$out/bench.json" --markdown "$out/bench.md" 2>&1 | tee "$out/bench.txt"
  bench_status=${PIPESTATUS[0]}
fi

log "tests exit status $tests_status; benchmark exit status $bench_status; total $((SECONDS - started)) s"
[ "$tests_status" -eq 0 ] && exit 0 || exit 1
