#!/usr/bin/env bash
# Train the `base` Cond-FiP model on one GPU (target: one H200, both stages in under 9 minutes of wall
# time, bfloat16 autocast, data produced by worker processes on the machine's cores) and write the
# checkpoint, its validation log and a bfloat16 copy of the weights to $OUT/ship, sharded under the device
# tool's 16 MiB return limit (base is ~20 MiB in bfloat16). Each stage's learning rate decays over its time
# limit (--schedule-by-time): how many steps fit is not known in advance.
#
#   OUT=/path bash packages/condfip/scripts/gpu_train.sh
#
# CPU dry run with tiny settings:
#   OUT=/tmp/gpu-dry CONFIG=/tmp/tiny.json STEPS=4 MINUTES=1 WORKERS=1 BATCH=2 SAMPLES=64 \
#     bash packages/condfip/scripts/gpu_train.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."

OUT=${OUT:?set OUT to the output directory}
CONFIG=${CONFIG:-base}
STEPS=${STEPS:-100000}        # per stage, a cap: the time limits below end each stage (and drive its schedule)
MINUTES=${MINUTES:-3.9}       # per stage: two stages plus setup and validation stay under 9 minutes
ENCODER_MINUTES=${ENCODER_MINUTES:-$MINUTES}
DECODER_MINUTES=${DECODER_MINUTES:-$MINUTES}
SHARD_MIB=${SHARD_MIB:-15}
WORKERS=${WORKERS:-14}
BATCH=${BATCH:-16}
SAMPLES=${SAMPLES:-400}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}

PYTHON=${PYTHON:-python}
python() { command "$PYTHON" "$@"; }  # PYTHON=python3 where plain python is absent
if ! python -c "import condfip, scm_gen, dag_attention" 2>/dev/null; then
  # this checkout's sources, no install (a GPU machine may have no network)
  export PYTHONPATH="$PWD/packages/scm-gen/src:$PWD/packages/dag-attention/src:$PWD/packages/condfip/src${PYTHONPATH:+:$PYTHONPATH}"
fi
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", flush=True)
PY

mkdir -p "$OUT"
common=(--config "$CONFIG" --steps "$STEPS" --batch-size "$BATCH" --num-samples "$SAMPLES" --lr 3e-4
        --warmup-steps 200 --checkpoint-every "$CHECKPOINT_EVERY" --workers "$WORKERS"
        --schedule-by-time --quiet)
start=$(date +%s)
python -m condfip.train encoder "${common[@]}" --time-limit "$ENCODER_MINUTES" --out "$OUT/encoder" 2>&1 \
  | tee "$OUT/encoder.log"
python -m condfip.train decoder "${common[@]}" --time-limit "$DECODER_MINUTES" --encoder "$OUT/encoder" \
  --out "$OUT/model" 2>&1 | tee "$OUT/decoder.log"
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$OUT/wall.txt"

# bfloat16 copy of the weights for shipping, in shards under the return limit (the loader casts back to float32)
python - "$OUT" "$SHARD_MIB" <<'PY'
import shutil, sys
from pathlib import Path
import torch
from condfip.checkpoint import save_model
from condfip.model import CondFiPModel
out, shard_mib = Path(sys.argv[1]), float(sys.argv[2])
model = CondFiPModel.from_pretrained(out / "model")
save_model(model, out / "ship", training=model.training_recipe, dtype=torch.bfloat16,
           max_shard_bytes=int(shard_mib * 2**20))
shutil.copy(out / "model" / "validation.jsonl", out / "ship_validation.jsonl")
shutil.copy(out / "encoder" / "validation.jsonl", out / "ship_encoder_validation.jsonl")
print("shipped", sum(p.stat().st_size for p in (out / "ship").iterdir()), "bytes in",
      sorted(p.name for p in (out / "ship").iterdir()))
PY
tail -n 1 "$OUT/model/validation.jsonl"
