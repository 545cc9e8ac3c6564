#!/usr/bin/env bash
# GPU device check for bert4j's CUDA kernels: build, CTest, PyTorch comparison + benchmark.
#
# For a machine with an NVIDIA GPU, nvcc, CMake and Python with PyTorch (no Maven, no network).
# Run from anywhere:  benchmarks/gpu/run.sh
# Environment:
#   OUT        where gpu_check.md, gpu_bench.md, ctest.log and run.log go (default: benchmarks/gpu/out)
#   BUILD_DIR  CMake build tree (default: ${TMPDIR:-/tmp}/bert4j-gpu-build)
#   CUDA_ARCHS CMAKE_CUDA_ARCHITECTURES (default: the detected GPU's, e.g. 90-real; builds faster
#              than the project default 80-real;90-real;90-virtual)
#   QUICK=1    fewer benchmark iterations
#   PREBUILT   a folder holding libbert4j_kernels_cuda_shared.so, test_attention_cuda and
#              test_bias_gelu_cuda built elsewhere (same CUDA major version): skips the build
#              and runs those test programs instead of CTest
# Exit status: non-zero if the build, a CTest test or a PyTorch check failed (the benchmark
# still runs after a CTest failure, so one run gives all the numbers).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/benchmarks/gpu/out}"
BUILD_DIR="${BUILD_DIR:-${TMPDIR:-/tmp}/bert4j-gpu-build}"
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1

section() { printf '\n==== %s ====\n' "$*"; }
JOBS="$(nproc 2>/dev/null || echo 4)"

section "environment"
date -u
uname -a
nvidia-smi || echo "nvidia-smi failed"
NVCC="${CUDACXX:-}"
if [[ -z "$NVCC" ]]; then
  for c in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc /usr/local/cuda-13.0/bin/nvcc "$(command -v nvcc || true)"; do
    if [[ -n "$c" && -x "$c" ]]; then NVCC="$c"; break; fi
  done
fi
[[ -n "$NVCC" ]] || { echo "no nvcc found (set CUDACXX or CUDA_HOME)"; exit 2; }
"$NVCC" --version
cmake --version | head -1
python3 - <<'PY'
import torch, platform
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"sm_{p.major}{p.minor}", f"{p.total_memory / 2**30:.0f} GiB")
PY

ARCHS="${CUDA_ARCHS:-}"
if [[ -z "$ARCHS" ]]; then
  CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)"
  ARCHS="${CC:+${CC}-real}"
  ARCHS="${ARCHS:-80-real;90-real;90-virtual}"
fi

if [[ -n "${PREBUILT:-}" ]]; then
  section "prebuilt binaries from $PREBUILT"
  LIB="$PREBUILT/libbert4j_kernels_cuda_shared.so"
  [[ -f "$LIB" ]] || { echo "missing $LIB"; exit 2; }
  section "CUDA tests (prebuilt)"
  CTEST_STATUS=0
  for t in test_bias_gelu_cuda test_attention_cuda; do
    echo "-- $t" >> "$OUT/ctest.log"
    timeout 240 "$PREBUILT/$t" >> "$OUT/ctest.log" 2>&1 || CTEST_STATUS=$?
  done
  grep -E "max rel err|worst err|all checks passed|FAIL|tests passed|Skipped" "$OUT/ctest.log" | head -40 || true
else
section "build (CUDA archs $ARCHS, $JOBS jobs)"
cmake -S "$ROOT/native" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DBERT4J_CUDA=ON \
  -DBERT4J_CUDA_SHARED=ON -DCMAKE_CUDA_COMPILER="$NVCC" "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS"
time cmake --build "$BUILD_DIR" -j "$JOBS" \
  --target bert4j_kernels_cuda_shared test_attention_cuda test_bias_gelu_cuda test_bias_gelu
LIB="$BUILD_DIR/libbert4j_kernels_cuda_shared.so"
[[ -f "$LIB" ]] || { echo "missing $LIB"; exit 2; }

section "ctest"
CTEST_STATUS=0
ctest --test-dir "$BUILD_DIR" -R cuda -V --timeout 240 > "$OUT/ctest.log" 2>&1 || CTEST_STATUS=$?
grep -E "max rel err|worst err|all checks passed|FAIL|Test +#|tests passed|Skipped" "$OUT/ctest.log" | head -60 || true
fi
if (( CTEST_STATUS != 0 )); then
  echo "CUDA tests FAILED (status $CTEST_STATUS); first failures:"
  grep -m 40 -E "FAIL" "$OUT/ctest.log" || true
fi

section "PyTorch checks"
# Checks and benchmark in separate processes: a CUDA fault in one leaves the other's results.
PY_STATUS=0
python3 "$ROOT/benchmarks/gpu/check_and_bench.py" --lib "$LIB" --out "$OUT/gpu_check.md" --part check \
  || PY_STATUS=$?

section "benchmark vs PyTorch flash SDPA"
BENCH_STATUS=0
python3 "$ROOT/benchmarks/gpu/check_and_bench.py" --lib "$LIB" --out "$OUT/gpu_bench.md" --part bench \
  ${QUICK:+--quick} || BENCH_STATUS=$?

section "summary"
echo "ctest:             $([[ $CTEST_STATUS == 0 ]] && echo passed || echo "FAILED ($CTEST_STATUS)")"
echo "PyTorch checks:    $([[ $PY_STATUS == 0 ]] && echo passed || echo "FAILED ($PY_STATUS)")"
echo "benchmark:         $([[ $BENCH_STATUS == 0 ]] && echo ran || echo "FAILED ($BENCH_STATUS)")"
echo "reports:           $OUT/gpu_check.md, $OUT/gpu_bench.md (logs: run.log, ctest.log)"
for f in "$OUT/gpu_check.md" "$OUT/gpu_bench.md"; do [[ -f "$f" ]] && cat "$f"; done
(( CTEST_STATUS == 0 && PY_STATUS == 0 && BENCH_STATUS == 0 ))
