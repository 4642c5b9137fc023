#!/usr/bin/env bash
# Train the `base` Cond-FiP model on one CUDA machine: the encoder stage, then the decoder stage, each ending
# after its time limit with the learning rate decayed over that limit (--schedule-by-time: how many steps fit is
# not known in advance); bfloat16 autocast; training data made by worker processes on the machine's cores.
# Writes both run folders ($OUT/encoder, $OUT/model: weights, training state, logs) and $OUT/ship, a bfloat16
# copy of the weights in shards of at most SHARD_MIB MiB (the loader casts back to float32).
#
#   OUT=/path bash packages/condfip/scripts/gpu_train.sh            # MINUTES per stage, default 30
#
# CPU dry run with tiny settings:
#   echo '{"dim": 8, "num_heads": 2, "mlp_dim": 16, "encoder_pairs": 1, "embedding_pairs": 1,
#          "decoder_blocks": 1, "num_anchor_rows": 16}' > /tmp/tiny.json
#   OUT=/tmp/gpu-dry CONFIG=/tmp/tiny.json STEPS=4 MINUTES=1 WORKERS=1 BATCH=2 SAMPLES=64 \
#     bash packages/condfip/scripts/gpu_train.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."

OUT=${OUT:?set OUT to the output directory}
CONFIG=${CONFIG:-base}
STEPS=${STEPS:-100000}        # per stage, a cap: the time limits below end each stage (and drive its schedule)
MINUTES=${MINUTES:-30}        # per stage
ENCODER_MINUTES=${ENCODER_MINUTES:-$MINUTES}
DECODER_MINUTES=${DECODER_MINUTES:-$MINUTES}
SHARD_MIB=${SHARD_MIB:-15}    # largest weight shard of the bfloat16 copy
WORKERS=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}   # data worker processes: the cores but two
BATCH=${BATCH:-16}
SAMPLES=${SAMPLES:-400}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}

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
common=(--config "$CONFIG" --steps "$STEPS" --batch-size "$BATCH" --num-samples "$SAMPLES" --lr 3e-4
        --warmup-steps 200 --checkpoint-every "$CHECKPOINT_EVERY" --workers "$WORKERS"
        --schedule-by-time --quiet)
start=$(date +%s)
python -m condfip.train encoder "${common[@]}" --time-limit "$ENCODER_MINUTES" --out "$OUT/encoder" 2>&1 \
  | tee "$OUT/encoder.log"
python -m condfip.train decoder "${common[@]}" --time-limit "$DECODER_MINUTES" --encoder "$OUT/encoder" \
  --out "$OUT/model" 2>&1 | tee "$OUT/decoder.log"
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$OUT/wall.txt"

# bfloat16 copy of the weights for shipping, in shards of at most SHARD_MIB (the loader casts back to float32)
python - "$OUT" "$SHARD_MIB" <<'PY'
import shutil, sys
from pathlib import Path
import torch
from condfip.model import CondFiPModel
out, shard_mib = Path(sys.argv[1]), float(sys.argv[2])
model = CondFiPModel.from_pretrained(out / "model")
model.save_pretrained(out / "ship", training=model.training_recipe, dtype=torch.bfloat16,
                      max_shard_bytes=int(shard_mib * 2**20))
shutil.copy(out / "model" / "validation.jsonl", out / "ship_validation.jsonl")
shutil.copy(out / "encoder" / "validation.jsonl", out / "ship_encoder_validation.jsonl")
print("shipped", sum(p.stat().st_size for p in (out / "ship").iterdir()), "bytes in",
      sorted(p.name for p in (out / "ship").iterdir()))
PY
tail -n 1 "$OUT/model/validation.jsonl"
