#!/usr/bin/env bash
# SST-2 fine-tuning check: the default model (MiniLM-L6) trained for one epoch on SST-2's
# training file minus a seeded validation split of 2,000 rows, on this machine's CPU.
#
#   benchmarks/finetune/run-sst2.sh [OUT_DIR]        (default: benchmarks/finetune/out-sst2)
#
# Prints the validation accuracy at each evaluation (every EVAL_EVERY steps and at the end),
# the best one (its checkpoint is the final model in OUT_DIR/model), and the wall time.
# Environment: EPOCHS (default 1), BATCH (32), LR (1e-4), MAXLEN (64; SST-2 sentences are short),
# EVAL_EVERY (500), SEED (42), MODEL (default: the default model), KERNELS (fused).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/data/sst2"
OUT="${1:-$ROOT/benchmarks/finetune/out-sst2}"
EPOCHS="${EPOCHS:-1}"; BATCH="${BATCH:-32}"; LR="${LR:-1e-4}"; MAXLEN="${MAXLEN:-64}"
EVAL_EVERY="${EVAL_EVERY:-500}"; SEED="${SEED:-42}"; KERNELS="${KERNELS:-fused}"
BERT4J="${BERT4J:-$ROOT/bert4j}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mkdir -p "$OUT"
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git -C "$ROOT" rev-parse --short HEAD); $(date -u)"

model_args=()
if [[ -n "${MODEL:-}" ]]; then model_args=(--model "$MODEL"); fi
"$BERT4J" --version > /dev/null  # builds on first use: keep that out of the wall time
rm -rf "$OUT/model"
start=$(date +%s)
"$BERT4J" finetune classify "${model_args[@]}" --train "$DATA/train.tsv" --validation-split 2000 --seed "$SEED" \
  --epochs "$EPOCHS" --batch-size "$BATCH" --lr "$LR" --max-length "$MAXLEN" --warmup 0.06 --weight-decay 0.01 \
  --eval-every "$EVAL_EVERY" --kernels "$KERNELS" --log-every 50 --out "$OUT/model" > "$OUT/summary.json" 2> "$OUT/train.log"
wall=$(( $(date +%s) - start ))
python3 - "$OUT/model/metrics.jsonl" "$wall" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev = [r for r in rows if "eval_accuracy" in r]
for r in ev:
    print(f"step {r['step']:5d}: validation accuracy {r['eval_accuracy']:.4f}, F1 {r['eval_f1']:.4f}, "
          f"MCC {r['eval_mcc']:.4f}, loss {r['eval_loss']:.4f}")
if not ev:
    sys.exit("no evaluation in metrics.jsonl")
best = max(ev, key=lambda r: r["eval_accuracy"])
secs = int(sys.argv[2])
print(f"best: validation accuracy {best['eval_accuracy']:.4f} at step {best['step']} of {rows[-1]['step']} "
      f"(2,000 held-out rows); wall time {secs // 60} min {secs % 60} s")
PY
