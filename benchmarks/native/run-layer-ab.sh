#!/usr/bin/env bash
# Same-process A/B of bert4j's CPU encoder layer between two git revisions (or, with int8, the
# current fp32 layer against the int8 one): builds native/ of each revision into a shared library,
# then runs layer_ab.cpp on the shapes given (default: 1x128, 32 packed sentences, 1 sentence).
#   benchmarks/native/run-layer-ab.sh REV_A REV_B [SHAPES...]     e.g.  HEAD~3 HEAD
#   benchmarks/native/run-layer-ab.sh int8 [SHAPES...]            fp32 vs int8 layer of the working tree
#   benchmarks/native/run-layer-ab.sh bf16 [SHAPES...]            fp32 vs bf16 (AMX) layer of the working tree
# Environment: ITERS (default 30), THREADS (2). Ratio > 1: B faster.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
build() {  # build SRC_ROOT OUT.so
  local src="$1/native"
  g++ -O3 -DNDEBUG -std=c++17 -fPIC -shared -fopenmp -fvisibility=hidden -I"$src/include" \
      "$src/src/common/status.cpp" "$src/src/common/arg_checks.cpp" "$src"/src/cpu/*.cpp -o "$2"
}
mode=fp32
if [[ "${1:-}" == "int8" || "${1:-}" == "bf16" ]]; then
  mode="$1"; shift
  build "$root" "$work/a.so"; cp "$work/a.so" "$work/b.so"
else
  for side in a b; do
    rev="$1"; shift
    mkdir -p "$work/$side"
    git -C "$root" archive "$rev" native | tar -x -C "$work/$side"
    build "$work/$side" "$work/$side.so"
  done
fi
g++ -O2 -o "$work/layer_ab" "$root/benchmarks/native/layer_ab.cpp" -ldl
shapes=("$@"); [[ ${#shapes[@]} -gt 0 ]] || shapes=(1x128 32 1)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
for s in "${shapes[@]}"; do
  "$work/layer_ab" "$work/a.so" "$work/b.so" "$s" "${ITERS:-30}" "${THREADS:-2}" "$mode"
done
