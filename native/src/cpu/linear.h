// Internal interface of the prepacked fp32 linear layer, for the entry points and the native
// tests (which force each code path). Not part of the ABI.
#pragma once

#include <algorithm>
#include <cstdint>

#include "bias_gelu.h"  // Isa, best_isa(), isa_supported()

namespace bert4j::cpu {

// Packed weight layout (private to the library, the same for every ISA path):
// ceil(n / kLinearPanel) panels of kLinearPanel output columns; panel p holds, for each
// kk in [0, k) in order, the kLinearPanel weights w[p * kLinearPanel + j, kk] (j = 0..63),
// so a micro-kernel reads one contiguous 64-float row per step of k. Columns past n in the
// last panel are zero. Panel p starts at p * k * kLinearPanel.
constexpr int64_t kLinearPanel = 64;

// Floats the packed buffer of an [n, k] weight needs (no overflow checks: the entry point
// did them).
inline int64_t linear_packed_floats(int64_t n, int64_t k) {
    return (n + kLinearPanel - 1) / kLinearPanel * kLinearPanel * k;
}

// Smallest number of consecutive tiles a GEMM thread takes at once (the launchers hand tiles
// out with OpenMP's guided schedule: big chunks first, shrinking to this at the end). Tiles are
// ordered panel by panel, so consecutive ones share a weight panel; near the end, chunks of a
// few tiles (a few microseconds each) keep the two threads finishing together. A fixed chunk of
// 1/16 of the work (the earlier schedule) left up to one chunk of imbalance at the end: guided
// measured 3-4.5% faster on six MiniLM layers at 1x128 and 1-2% at 618 packed tokens, 2 threads.
inline int64_t linear_min_chunk(int64_t row_blocks) {
    return std::clamp<int64_t>(row_blocks, 1, 4);
}

// Packs w [n, k] (row stride w_row_stride) into `packed`. No argument checks.
void linear_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride, float* packed);

// y[m, n] = x[m, k] . w^T + bias (bias may be null) with the path `isa` and at most
// `max_threads` OpenMP threads (fewer when the product is too small to pay for a fork/join).
// m, n, k > 0; no argument checks.
void linear_packed_launch(const float* x, const float* packed, const float* bias, float* y,
                          int64_t m, int64_t n, int64_t k, int64_t x_row_stride,
                          int64_t y_row_stride, Isa isa, int max_threads);

}  // namespace bert4j::cpu
