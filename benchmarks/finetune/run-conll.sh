#!/usr/bin/env bash
# CoNLL-2003 NER fine-tuning check: the default model (MiniLM-L6) fine-tuned on conll2003/train.txt
# and evaluated on conll2003/valid.txt (entity level, IOB2), on this machine's CPU.
#
#   benchmarks/finetune/run-conll.sh [OUT_DIR]        (default: benchmarks/finetune/out-conll)
#
# Prints the validation entity F1 at each evaluation (each epoch, or every EVAL_EVERY steps), in
# seqeval's default counting and in strict IOB2 mode (the best checkpoint is chosen by strict F1 and
# becomes the final model in OUT_DIR/model), then `bert4j eval ner` of that final model on valid.txt,
# and the wall time of the fine-tuning.
# Environment: EPOCHS (default 3), BATCH (32), LR (1e-4), MAXLEN (128), EVAL_EVERY (default: each
# epoch), SEED (42), MODEL (default: the default model), KERNELS (fused).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/data/conll2003"
OUT="${1:-$ROOT/benchmarks/finetune/out-conll}"
EPOCHS="${EPOCHS:-3}"; BATCH="${BATCH:-32}"; LR="${LR:-1e-4}"; MAXLEN="${MAXLEN:-128}"
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
"$BERT4J" finetune ner "${model_args[@]}" --train "$DATA/train.txt" --eval "$DATA/valid.txt" --seed "$SEED" \
  --epochs "$EPOCHS" --batch-size "$BATCH" --lr "$LR" --max-length "$MAXLEN" --warmup 0.1 --weight-decay 0.01 \
  "${eval_args[@]}" --kernels "$KERNELS" --log-every 50 --out "$OUT/model" > "$OUT/summary.json" 2> "$OUT/train.log"
wall=$(( $(date +%s) - start ))
"$BERT4J" eval ner --model "$OUT/model" --data "$DATA/valid.txt" --max-length "$MAXLEN" --kernels "$KERNELS" > "$OUT/eval.json"
python3 - "$OUT/model/metrics.jsonl" "$OUT/eval.json" "$wall" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev = [r for r in rows if "eval_strict_f1" in r]
for r in ev:
    print(f"step {r['step']:6d}: valid.txt entity F1 strict {100 * r['eval_strict_f1']:.2f}, "
          f"default {100 * r['eval_f1']:.2f} (P {100 * r['eval_precision']:.2f}, R {100 * r['eval_recall']:.2f}), "
          f"loss {r['eval_loss']:.4f}")
if not ev:
    sys.exit("no evaluation in metrics.jsonl")
best = max(ev, key=lambda r: r["eval_strict_f1"])
final = json.load(open(sys.argv[2]))
secs = int(sys.argv[3])
print(f"best: strict entity F1 {100 * best['eval_strict_f1']:.2f} at step {best['step']} of {rows[-1]['step']}")
print(f"final model on valid.txt ({final['sentences']} sentences, {final['truncated']} truncated): "
      f"strict F1 {100 * final['strict_f1']:.2f} (P {100 * final['strict_precision']:.2f}, R {100 * final['strict_recall']:.2f}), "
      f"default F1 {100 * final['f1']:.2f}; per type (strict): "
      + ", ".join(f"{k[:-3]} {100 * v:.2f}" for k, v in final.items() if k.endswith("_f1") and k not in ("f1", "strict_f1")))
print(f"fine-tuning wall time {secs // 3600} h {secs % 3600 // 60} min {secs % 60} s")
PY
