#!/usr/bin/env bash
# SQuAD v1.1 fine-tuning check: the default model (MiniLM-L6) fine-tuned for extractive QA on
# the first 30 articles of ../shared/data/squad_v1.1/squad-v1.1-dev-articles-00-35.json
# (7,010 questions) and evaluated on the last 6, articles 30-35 (Private_school,
# Harvard_University, Jacksonville,_Florida, Economic_inequality, Doctor_Who,
# University_of_Chicago; 1,113 questions), held out whole: --validation-split 6 holds out the
# last 6 articles of the file. Only these 36 dev articles are in the shared data; SQuAD's
# training set is not, so the model never sees the official training data.
#
#   benchmarks/finetune/run-squad.sh [OUT_DIR]        (default: benchmarks/finetune/out-squad)
#
# Prints exact match and F1 (SQuAD's official normalisation) at each evaluation, the best one
# (its checkpoint is the final model in OUT_DIR/model), `bert4j eval qa` on the held-out articles
# (a file written from the same split), and the wall time.
# Environment: EPOCHS (default 2), BATCH (16), LR (1e-4), MAXLEN (256), STRIDE (64),
# EVAL_EVERY (default: each epoch), SEED (42), MODEL (default: the default model), KERNELS (fused).
# MAXLEN 256 / STRIDE 64 rather than run_qa's 384 / 128: most SQuAD contexts fit in 256 tokens,
# and attention cost grows with the window on a 2-core CPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/data/squad_v1.1/squad-v1.1-dev-articles-00-35.json"
OUT="${1:-$ROOT/benchmarks/finetune/out-squad}"
EPOCHS="${EPOCHS:-2}"; BATCH="${BATCH:-16}"; LR="${LR:-1e-4}"; MAXLEN="${MAXLEN:-256}"; STRIDE="${STRIDE:-64}"
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
"$BERT4J" finetune qa "${model_args[@]}" --train "$DATA" --validation-split 6 --seed "$SEED" \
  --epochs "$EPOCHS" --batch-size "$BATCH" --lr "$LR" --max-length "$MAXLEN" --doc-stride "$STRIDE" \
  --warmup 0.1 --weight-decay 0.01 "${eval_args[@]}" --kernels "$KERNELS" --log-every 50 \
  --out "$OUT/model" > "$OUT/summary.json" 2> "$OUT/train.log"
wall=$(( $(date +%s) - start ))

# The held-out articles as their own file, for `bert4j eval qa`.
python3 - "$DATA" "$OUT/held-out-articles-30-35.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
json.dump({"version": d.get("version", "1.1"), "data": d["data"][30:]}, open(sys.argv[2], "w", encoding="utf-8"))
PY
"$BERT4J" eval qa --model "$OUT/model" --data "$OUT/held-out-articles-30-35.json" --max-length "$MAXLEN" \
  --doc-stride "$STRIDE" --kernels "$KERNELS" > "$OUT/eval.json"

python3 - "$OUT/model/metrics.jsonl" "$OUT/eval.json" "$wall" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev = [r for r in rows if "eval_f1" in r]
for r in ev:
    print(f"step {r['step']:5d}: held-out exact match {r['eval_exact_match']:.2f}, F1 {r['eval_f1']:.2f}")
if not ev:
    sys.exit("no evaluation in metrics.jsonl")
best = max(ev, key=lambda r: r["eval_f1"])
final = json.load(open(sys.argv[2]))
secs = int(sys.argv[3])
print(f"best: F1 {best['eval_f1']:.2f}, EM {best['eval_exact_match']:.2f} at step {best['step']} of {rows[-1]['step']}")
print(f"eval qa on articles 30-35 ({final['examples']} questions): EM {final['exact_match']:.2f}, F1 {final['f1']:.2f}; "
      f"training wall time {secs // 3600} h {secs % 3600 // 60} min {secs % 60} s")
PY
