#!/usr/bin/env bash
# Every GPU check of the project in one command, on whatever CUDA machine runs it, within a time budget:
#   1. dag-attention: the GPU test suite                     (packages/dag-attention/benchmarks/gpu_check.sh)
#   2. dag-attention: the benchmark grid, bfloat16 e = 32 at d = 20 and 100 first
#   3. condfip: the CUDA tests (the API and the prepared decoder on CUDA against the CPU)
#   4. condfip: inference speed of `small` on the GPU, beside DoWhy-GCM when it is available
#   5. condfip: train `base`, both stages, with the time left (packages/condfip/scripts/gpu_train.sh)
# Parts 1-4 get a share of the budget each (20, 15, 5 and 10 %) and part 5 what remains; every part runs whatever
# the others did. If the Triton tests fail, parts 2, 4 and 5 use DAG_ATTENTION_BACKEND=reference and the report
# says so. Nothing is installed: the packages run from this checkout (PYTHONPATH) on the machine's own torch and
# Triton.
#
#   bash scripts/gpu_check.sh [--budget SECONDS] [--out DIR] [--dowhy-python PATH]
#   bash scripts/gpu_check.sh --dry-run --out DIR    # on a CPU: tiny model, Triton interpreter, tiny limits
#
# --budget: wall-clock seconds for everything (default 1800). --out: output folder (default
# runs/gpu-check-<UTC time>). --dowhy-python: a Python interpreter with DoWhy for part 4 (default: DoWhy in this
# Python, when importable; skipped otherwise). PYTHON selects the interpreter (default python3).
# Output: report.md (every part's status, figures and log tails), one folder of logs per part, train/ (both
# training runs, resumable) and base/ (bfloat16 sharded weights, loadable with CondFiP.from_pretrained).
# Exit status: 0 when every part passed, 1 otherwise, 2 for a bad argument.
set -uo pipefail

usage() { echo "usage: gpu_check.sh [--budget SECONDS] [--out DIR] [--dowhy-python PATH] [--dry-run]" >&2; }
BUDGET_S=1800
OUT=""
DRY_RUN=0
DOWHY_PYTHON=""
value() { [ $# -ge 2 ] || { echo "gpu_check.sh: $1 needs a value" >&2; usage; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
    --budget) value "$@"; BUDGET_S=$2; shift 2 ;;
    --out) value "$@"; OUT=$2; shift 2 ;;
    --dowhy-python) value "$@"; DOWHY_PYTHON=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; usage; exit 2 ;;
  esac
done
if ! [[ "$BUDGET_S" =~ ^[0-9]+$ ]] || [ "$BUDGET_S" -lt 60 ]; then
  echo "gpu_check.sh: --budget must be a whole number of seconds, at least 60, got '$BUDGET_S'" >&2; exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
OUT=${OUT:-runs/gpu-check-$(date -u +%Y%m%dT%H%MZ)}
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
started=$SECONDS
report="$OUT/report.md"
: >"$report"

export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PYTHONPATH="$repo/packages/scm-gen/src:$repo/packages/dag-attention/src:$repo/packages/condfip/src${PYTHONPATH:+:$PYTHONPATH}"

RESERVE_S=$((10 + BUDGET_S / 50))  # for the report at the end
left() { echo $((BUDGET_S - RESERVE_S - (SECONDS - started))); }
share() { local want=$((BUDGET_S * $1 / 100)) remaining; remaining=$(left); [ "$remaining" -lt "$want" ] && want=$remaining; echo $((want > 0 ? want : 0)); }
# run a command for at most $1 seconds; under 5 seconds, do not start it (`timeout 0` would mean no limit)
bounded() { local seconds=$1; shift; [ "$seconds" -ge 5 ] || return 124; timeout --kill-after=10 "$seconds" "$@"; }
note() { echo "$*" | tee -a "$report"; }
status_of() { case $1 in 0) echo passed ;; 124|137) echo "stopped at its time limit" ;; *) echo "failed (exit $1)" ;; esac; }
failures=0
record() { note "status: $(status_of "$1")"; [ "$1" = 0 ] || failures=$((failures + 1)); }

note "# GPU check $(date -u +%Y-%m-%dT%H:%MZ), budget $BUDGET_S s"
note ""
"$PYTHON" - >>"$report" 2>&1 <<'PY'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda})")
try:
    import triton
    print(f"triton {triton.__version__}")
except ImportError as error:
    print(f"triton missing: {error}")
if torch.cuda.is_available():
    print(f"device: {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}")
else:
    print("device: no CUDA")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$report" 2>&1
if [ "$DRY_RUN" != 1 ] && ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  note "torch sees no CUDA device: run this on a CUDA machine, or use --dry-run on a CPU"
  exit 1
fi

dowhy_args=()
if [ -n "$DOWHY_PYTHON" ]; then
  dowhy_args=(--dowhy-python "$DOWHY_PYTHON")
elif ! "$PYTHON" -c "import dowhy" >/dev/null 2>&1; then
  note "dowhy: not importable, part 4 runs without it (--dowhy-python PATH names a Python that has it)"
fi

if [ "$DRY_RUN" = 1 ]; then  # tiny shapes and models, so that the whole script runs on a CPU
  dag_mode=(--cpu-interpret)
  echo '{"dim": 8, "num_heads": 2, "mlp_dim": 16, "encoder_pairs": 1, "embedding_pairs": 1, "decoder_blocks": 1, "num_anchor_rows": 16}' >"$OUT/tiny.json"
  train_env=(CONFIG="$OUT/tiny.json" WORKERS=1 BATCH=2 SAMPLES=64 CHECKPOINT_EVERY=3 SHARD_MIB=0.005)
  infer_args=(--device cpu --threads 1 --sizes 10 --repeats 1 --batch-datasets 2 --memory-rows 1000 --dowhy-max-nodes 10)
  bench_args=""
else
  dag_mode=()
  train_env=()
  infer_args=(--device cuda --threads "$(nproc)" --sizes 20 10 50 100 --repeats 3 --batch-datasets 64
              --memory-rows 1000 100000 --dowhy-max-nodes 50)
  bench_args="--dtypes bf16 fp32 --head-dims 32 64 --nodes 20 100 10 50 200"  # the target cases first
fi

# ----- 1. dag-attention tests ---------------------------------------------------------------------------------
tests_s=$(share 20)
note ""
note "## 1. dag-attention tests (limit $tests_s s)"
mkdir -p "$OUT/dag-tests"
OUT="$OUT/dag-tests" PARTS=tests TESTS_LIMIT_S="$tests_s" PYTHON="$PYTHON" \
  bash packages/dag-attention/benchmarks/gpu_check.sh "${dag_mode[@]}" >"$OUT/dag-tests/run.log" 2>&1
tests_file=$(ls "$OUT"/dag-tests/*tests.txt 2>/dev/null | head -n 1)
tests_status=1
[ -n "$tests_file" ] && grep -Eq "^[0-9]+ passed" "$tests_file" && ! grep -Eq "[0-9]+ (failed|error)" "$tests_file" && tests_status=0
record $tests_status
[ -n "$tests_file" ] && tail -n 15 "$tests_file" | sed 's/^/    /' >>"$report"
if [ $tests_status != 0 ]; then
  export DAG_ATTENTION_BACKEND=reference
  note "The Triton tests did not pass: parts 2, 4 and 5 use DAG_ATTENTION_BACKEND=reference"
fi

# ----- 2. dag-attention benchmark ------------------------------------------------------------------------------
bench_s=$(share 15)
note ""
note "## 2. dag-attention benchmark (limit $bench_s s)"
mkdir -p "$OUT/dag-bench"
OUT="$OUT/dag-bench" PARTS=bench BENCH_LIMIT_S="$bench_s" BENCH_BUDGET_S=$((bench_s > 25 ? bench_s - 20 : 5)) \
  SWEEP=0 BENCH_ARGS="$bench_args" PYTHON="$PYTHON" \
  bash packages/dag-attention/benchmarks/gpu_check.sh "${dag_mode[@]}" >"$OUT/dag-bench/run.log" 2>&1
bench_status=$?
if [ -f "$OUT/dag-bench/bench.md" ]; then
  record 0
  cat "$OUT/dag-bench/bench.md" >>"$report"
else
  record $((bench_status == 0 ? 1 : bench_status))
  tail -n 20 "$OUT/dag-bench/run.log" >>"$report"
fi

# ----- 3. condfip CUDA tests -----------------------------------------------------------------------------------
condfip_tests_s=$(share 5)
[ "$condfip_tests_s" -lt 30 ] && condfip_tests_s=$(( $(left) < 30 ? $(left) : 30 ))
note ""
note "## 3. condfip CUDA tests (limit $condfip_tests_s s)"
mkdir -p "$OUT/condfip-tests"
bounded "$condfip_tests_s" "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider packages/condfip/tests \
  >"$OUT/condfip-tests/tests.txt" 2>&1
condfip_status=$?
[ $condfip_status = 5 ] && condfip_status=0  # no test collected: none selected on this machine
record $condfip_status
tail -n 15 "$OUT/condfip-tests/tests.txt" 2>/dev/null | sed 's/^/    /' >>"$report"

# ----- 4. inference speed --------------------------------------------------------------------------------------
infer_s=$(share 10)
note ""
note "## 4. inference benchmark, small (limit $infer_s s)"
mkdir -p "$OUT/inference"
bounded "$infer_s" "$PYTHON" packages/condfip/benchmarks/bench_inference.py --model small "${infer_args[@]}" \
  "${dowhy_args[@]}" --json "$OUT/inference/inference.json" >"$OUT/inference/inference.txt" 2>&1
record $?
tail -n 40 "$OUT/inference/inference.txt" | sed 's/^/    /' >>"$report"

# ----- 5. train base -------------------------------------------------------------------------------------------
train_s=$(left)
if [ "$DRY_RUN" = 1 ]; then
  encoder_minutes=0.1 decoder_minutes=0.1
else  # each stage gets 40 % of the time left; the rest covers start-up, validation and the bfloat16 copy
  encoder_minutes=$(awk -v s="$train_s" 'BEGIN { printf "%.2f", s * 0.4 / 60 }')
  decoder_minutes=$encoder_minutes
fi
note ""
note "## 5. train base: encoder $encoder_minutes min, decoder $decoder_minutes min (limit $train_s s)"
bounded "$train_s" env "${train_env[@]}" OUT="$OUT/train" PYTHON="$PYTHON" \
  ENCODER_MINUTES="$encoder_minutes" DECODER_MINUTES="$decoder_minutes" \
  bash packages/condfip/scripts/gpu_train.sh >"$OUT/train.log" 2>&1
record $?
for stage in encoder model; do
  for file in train_log.jsonl validation.jsonl; do
    [ -f "$OUT/train/$stage/$file" ] && { note "$stage/$file (last line):"; tail -n 1 "$OUT/train/$stage/$file" | sed 's/^/    /' >>"$report"; }
  done
done
tail -n 5 "$OUT/train.log" | sed 's/^/    /' >>"$report"
if [ -d "$OUT/train/ship" ]; then
  mkdir -p "$OUT/base" && cp "$OUT/train/ship/"* "$OUT/base/"
fi

note ""
note "parts not passed: $failures; total: $((SECONDS - started)) s"
[ "$failures" = 0 ]
