#!/usr/bin/env bash
# Sentence-pair fine-tuning checks on GLUE's MRPC (paraphrase, classification, F1 of label 1) and
# STS-B (similarity, regression, Pearson/Spearman): the default model (MiniLM-L6) fine-tuned on
# the task's train.tsv minus a seeded validation split the size of GLUE's own dev set (MRPC 408
# rows, STS-B 1,500 rows; GLUE's dev files are kept aside in ../shared/data), on this machine's CPU.
#
#   benchmarks/finetune/run-pairs.sh mrpc|stsb [OUT_DIR]    (default: benchmarks/finetune/out-TASK)
#
# Prints the validation metrics at each evaluation (each epoch, or every EVAL_EVERY steps), the best
# one (by accuracy for MRPC, Pearson for STS-B: its checkpoint is the final model in OUT_DIR/model),
# and the wall time of the fine-tuning.
# Environment: EPOCHS, BATCH, LR (defaults: MRPC 3 / 32 / 1e-4, STS-B 5 / 16 / 5e-5), MAXLEN (128),
# EVAL_EVERY (default: each epoch), SEED (42), MODEL (default: the default model), KERNELS (fused).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TASK="${1:-}"
# Per-task defaults: the recipes recorded in benchmarks/finetune/RESULTS.md. STS-B at MRPC's
# recipe (3 epochs, batch 32, lr 1e-4) stopped at Pearson 0.855, still rising.
case "$TASK" in
  mrpc) split=408; d_epochs=3; d_batch=32; d_lr=1e-4
        cols=(--text-column "#1 String" --text-pair-column "#2 String" --label-column Quality) ;;
  stsb) split=1500; d_epochs=5; d_batch=16; d_lr=5e-5
        cols=(--text-column sentence1 --text-pair-column sentence2 --label-column score --regression) ;;
  *) echo "usage: $0 mrpc|stsb [OUT_DIR]" >&2; exit 2 ;;
esac
DATA="$ROOT/../shared/data/$TASK/train.tsv"
OUT="${2:-$ROOT/benchmarks/finetune/out-$TASK}"
EPOCHS="${EPOCHS:-$d_epochs}"; BATCH="${BATCH:-$d_batch}"; LR="${LR:-$d_lr}"; MAXLEN="${MAXLEN:-128}"
SEED="${SEED:-42}"; KERNELS="${KERNELS:-fused}"
BERT4J="${BERT4J:-$ROOT/bert4j}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mkdir -p "$OUT"
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git -C "$ROOT" rev-parse --short HEAD); $(date -u)"

model_args=()
if [[ -n "${MODEL:-}" ]]; then model_args=(--model "$MODEL"); fi
eval_args=()
if [[ -n "${EVAL_EVERY:-}" ]]; then eval_args=(--eval-every "$EVAL_EVERY"); fi
"$BERT4J" --version > /dev/null  # builds on first use: keep that out of the wall time
rm -rf "$OUT/model"
start=$(date +%s)
"$BERT4J" finetune classify "${model_args[@]}" --train "$DATA" "${cols[@]}" --validation-split "$split" \
  --seed "$SEED" --epochs "$EPOCHS" --batch-size "$BATCH" --lr "$LR" --max-length "$MAXLEN" --warmup 0.1 \
  --weight-decay 0.01 "${eval_args[@]}" --kernels "$KERNELS" --log-every 20 --out "$OUT/model" \
  > "$OUT/summary.json" 2> "$OUT/train.log"
wall=$(( $(date +%s) - start ))
python3 - "$TASK" "$OUT/model/metrics.jsonl" "$wall" "$split" <<'PY'
import json, sys
task, path, secs, split = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in open(path) if l.strip()]
key = "eval_accuracy" if task == "mrpc" else "eval_pearson"
ev = [r for r in rows if key in r]
for r in ev:
    if task == "mrpc":
        print(f"step {r['step']:5d}: validation F1 {100 * r['eval_f1']:.2f}, accuracy {100 * r['eval_accuracy']:.2f}, "
              f"MCC {r['eval_mcc']:.4f}, loss {r['eval_loss']:.4f}")
    else:
        print(f"step {r['step']:5d}: validation Pearson {r['eval_pearson']:.4f}, Spearman {r['eval_spearman']:.4f}, "
              f"loss {r['eval_loss']:.4f}")
if not ev:
    sys.exit("no evaluation in metrics.jsonl")
best = max(ev, key=lambda r: r[key])
what = (f"F1 {100 * best['eval_f1']:.2f}, accuracy {100 * best['eval_accuracy']:.2f}" if task == "mrpc"
        else f"Pearson {best['eval_pearson']:.4f}, Spearman {best['eval_spearman']:.4f}")
print(f"best ({key[5:]}): {what} at step {best['step']} of {rows[-1]['step']} ({split} held-out rows); "
      f"wall time {secs // 60} min {secs % 60} s")
PY
