#!/usr/bin/env bash
# bias + GELU training pairs (recomputing vs saved derivative) of the working tree's CPU kernels,
# one process per shape; see bias_gelu_pair.cpp. Default shapes: MiniLM and BERT-base widths at
# 128, 1,024 and 4,096 rows. Environment: THREADS (2), ITERS (scaled to the shape), ROUNDS (5).
#   benchmarks/native/run-bias-gelu-pair.sh [ROWSxCOLS ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$root/native"
g++ -O3 -DNDEBUG -std=c++17 -fopenmp -I"$src/include" "$src/src/common/status.cpp" "$src/src/common/arg_checks.cpp" \
    "$src"/src/cpu/*.cpp "$root/benchmarks/native/bias_gelu_pair.cpp" -o "$work/bias_gelu_pair"
shapes=("$@"); [[ ${#shapes[@]} -gt 0 ]] || shapes=(128x1536 1024x1536 4096x1536 128x3072 1024x3072 4096x3072)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
for s in "${shapes[@]}"; do
  rows="${s%x*}"; cols="${s#*x}"
  iters="${ITERS:-$(( 400000000 / (rows * cols) + 1 ))}"
  "$work/bias_gelu_pair" "$rows" "$cols" "$iters" "${ROUNDS:-5}" "${THREADS:-2}"
done
