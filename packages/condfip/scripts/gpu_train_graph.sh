#!/usr/bin/env bash
# Train the `base` graph model (AVICI-style, with pair statistics) on one CUDA machine, bfloat16 autocast, on fresh
# P_IN SCMs with 10-30 nodes made by worker processes on the machine's cores; then calibrate its default edge
# threshold and score it on the scm-gen test grid. Writes the run folders, logs and the benchmark table to $OUT;
# $OUT/ship holds what ships (model.safetensors + config.json, about 7 MB in float32).
# Two phases, as for the shipped graph-small (TRAINING.md): the pair-statistics head alone (--pairs-only,
# PAIR_MINUTES), then the whole model from it (--init, MINUTES).
#
#   OUT=/path bash packages/condfip/scripts/gpu_train_graph.sh
#
# CPU dry run with tiny settings:
#   echo '{"dim": 8, "num_heads": 2, "mlp_dim": 16, "num_layers": 1, "num_anchor_rows": 16,
#          "pair_statistics": true, "pair_mlp_dim": 8}' > /tmp/gtiny.json
#   OUT=/tmp/gpu-graph-dry CONFIG=/tmp/gtiny.json STEPS=4 MINUTES=1 WORKERS=0 BATCH=2 SAMPLES=32 NODES=4-6 \
#     CHECKPOINT_EVERY=2 PAIR_STEPS=4 PAIR_MINUTES=1 BENCH_NODES=10 BENCH_SCMS=1 bash packages/condfip/scripts/gpu_train_graph.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."

OUT=${OUT:?set OUT to the output directory}
CONFIG=${CONFIG:-base}
STEPS=${STEPS:-6000}          # the schedule's length; the time limit below may end the run first
MINUTES=${MINUTES:-30}
PAIR_STEPS=${PAIR_STEPS:-6000}
PAIR_MINUTES=${PAIR_MINUTES:-10}
WORKERS=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}   # data worker processes: the cores but two
BATCH=${BATCH:-32}
SAMPLES=${SAMPLES:-200}
NODES=${NODES:-10-30}
LR=${LR:-3e-4}
ACYCLICITY=${ACYCLICITY:-1.0}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}
BENCH_NODES=${BENCH_NODES:-10 20 50 100}
BENCH_SCMS=${BENCH_SCMS:-3}

PYTHON=${PYTHON:-python}
python() { command "$PYTHON" "$@"; }  # PYTHON=python3 where plain python is absent
if ! python -c "import condfip, scm_gen, dag_attention" 2>/dev/null; then
  # this checkout's sources, nothing installed
  export PYTHONPATH="$PWD/packages/scm-gen/src:$PWD/packages/dag-attention/src:$PWD/packages/condfip/src${PYTHONPATH:+:$PYTHONPATH}"
fi
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", flush=True)
PY

mkdir -p "$OUT"
start=$(date +%s)
python -m condfip.train graph --config "$CONFIG" --steps "$PAIR_STEPS" --batch-size "$BATCH" \
  --num-samples "$SAMPLES" --nodes "$NODES" --lr 3e-3 --warmup-steps 200 --acyclicity-weight "$ACYCLICITY" \
  --checkpoint-every "$CHECKPOINT_EVERY" --workers "$WORKERS" --time-limit "$PAIR_MINUTES" --quiet \
  --pairs-only --out "$OUT/pairs" 2>&1 | tee "$OUT/pairs.log"
python -m condfip.train graph --config "$CONFIG" --steps "$STEPS" --batch-size "$BATCH" --num-samples "$SAMPLES" \
  --nodes "$NODES" --lr "$LR" --warmup-steps 200 --acyclicity-weight "$ACYCLICITY" \
  --checkpoint-every "$CHECKPOINT_EVERY" --workers "$WORKERS" --time-limit "$MINUTES" --quiet \
  --init "$OUT/pairs" --out "$OUT/graph" 2>&1 | tee "$OUT/graph.log"
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$OUT/wall.txt"
python -m condfip.cli calibrate "$OUT/graph" | tee "$OUT/calibration.json"

# shellcheck disable=SC2086  # BENCH_NODES is a list of numbers
python packages/condfip/benchmarks/bench_graph.py --model "$OUT/graph" --nodes $BENCH_NODES \
  --scms-per-graph "$BENCH_SCMS" --json "$OUT/bench_graph.json" 2>&1 | tee "$OUT/bench_graph.md"

mkdir -p "$OUT/ship"
cp "$OUT/graph/model.safetensors" "$OUT/graph/config.json" "$OUT/graph/validation.jsonl" "$OUT/ship/"
echo "shipped $(du -b "$OUT/ship/model.safetensors" | cut -f1) bytes of weights"
tail -n 1 "$OUT/graph/validation.jsonl"
