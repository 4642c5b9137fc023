#!/usr/bin/env bash
# Train the `base` Cond-FiP model on one GPU (target: one H200, both stages in under 9 minutes of wall
# time, bfloat16 autocast, data produced by worker processes on the machine's cores) and write the
# checkpoint, its validation log and a bfloat16 copy of the weights (under the 16 MiB return limit) to $OUT.
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
STEPS=${STEPS:-4000}          # per stage; the time limit below usually ends a stage first
MINUTES=${MINUTES:-3.9}       # per stage: two stages plus setup and validation stay under 9 minutes
WORKERS=${WORKERS:-14}
BATCH=${BATCH:-16}
SAMPLES=${SAMPLES:-400}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-250}

if ! python -c "import condfip, scm_gen, dag_attention" 2>/dev/null; then
  python -m pip install --quiet ./packages/scm-gen ./packages/dag-attention ./packages/condfip
fi
python -c "import triton" 2>/dev/null || python -m pip install --quiet "triton==3.7.1" || true
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", flush=True)
PY

mkdir -p "$OUT"
common=(--config "$CONFIG" --steps "$STEPS" --batch-size "$BATCH" --num-samples "$SAMPLES" --lr 3e-4
        --warmup-steps 200 --checkpoint-every "$CHECKPOINT_EVERY" --workers "$WORKERS"
        --time-limit "$MINUTES" --quiet)
start=$(date +%s)
python -m condfip.train encoder "${common[@]}" --out "$OUT/encoder" 2>&1 | tee "$OUT/encoder.log"
python -m condfip.train decoder "${common[@]}" --encoder "$OUT/encoder" --out "$OUT/model" 2>&1 | tee "$OUT/decoder.log"
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$OUT/wall.txt"

# bfloat16 copy of the weights for shipping (the loader casts back to float32)
python - "$OUT" <<'PY'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
import torch
out = Path(sys.argv[1])
ship = out / "ship"
ship.mkdir(exist_ok=True)
tensors = {k: v.to(torch.bfloat16) for k, v in load_file(str(out / "model" / "model.safetensors")).items()}
save_file(tensors, str(ship / "model.safetensors"), metadata={"format": "pt", "model_type": "condfip"})
shutil.copy(out / "model" / "config.json", ship / "config.json")
shutil.copy(out / "model" / "validation.jsonl", ship / "validation.jsonl")
shutil.copy(out / "encoder" / "validation.jsonl", ship / "encoder_validation.jsonl")
print("shipped", sum(p.stat().st_size for p in ship.iterdir()), "bytes")
PY
tail -n 1 "$OUT/model/validation.jsonl"
