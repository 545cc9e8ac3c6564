// Internal interface of the int8 linear layer (dynamic quantization), for the entry points, the
// encoder layer and the native tests. Not part of the ABI.
#pragma once

#include <cstdint>

#include "bias_gelu.h"  // Isa

namespace bert4j::cpu {

// Packed int8 weight layout (private to the library):
//   ceil(n / 32) panels x ceil(k / 4) groups x 32 columns x 4 int8: q[p*32 + j, g*4 + t] at
//   byte ((p * K4 + g) * 32 + j) * 4 + t (zero past n and past k), so one 64-byte load holds
//   4 consecutive k of 16 columns, the operand order of vpdpbusd;
//   then, at a 64-byte aligned offset, float scale[n32] (r_j = max|w[j, :]| / 127: w ~ r_j q)
//   and float scale_sum[n32] (r_j * sum_kk q[j, kk]), n32 = panels * 32.
constexpr int64_t kInt8Panel = 32;

inline int64_t int8_k4(int64_t k) { return (k + 3) / 4; }
inline int64_t int8_panels(int64_t n) { return (n + kInt8Panel - 1) / kInt8Panel; }
inline int64_t int8_scales_offset(int64_t n, int64_t k) {
    return (int8_panels(n) * int8_k4(k) * kInt8Panel * 4 + 63) / 64 * 64;
}
inline int64_t int8_packed_bytes(int64_t n, int64_t k) {
    return int8_scales_offset(n, k) + int8_panels(n) * kInt8Panel * 2 * 4;
}

// Quantizes w [n, k] per output row (symmetric, 127 levels) into `packed`. No argument checks.
void linear_int8_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride, uint8_t* packed);

// Per-row asymmetric u8 quantization of x [m, k]: x[r, c] ~ zero[r] + scale[r] * q[r, c] with
// zero = min of the row, scale = (max - min) / 255 (1 for a constant row), q = round-to-even of
// (x - zero) * (1 / scale) clamped to [0, 255]. q rows have stride ldq >= 4 * ceil(k / 4); the
// bytes past k are set to 0. The vector path computes the same float expressions as the
// scalar one, so both give identical bytes.
void quantize_rows_u8(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq,
                      float* scale, float* zero, Isa isa, int max_threads);

// y[m, n] = dequantized (x . w^T) + bias, with x quantized per row as quantize_rows_u8 does and
// the products summed exactly in int32:
//   y[r, j] = scale[r] * r_j * sum_kk q[r, kk] qw[j, kk] + zero[r] * r_j * sum_kk qw[j, kk] + bias[j]
// Path: AVX-512 VNNI when isa is Avx512 and the CPU has VNNI, else scalar (same integers, the
// same float epilogue up to FMA contraction). m, n, k > 0 and k <= kInt8MaxK; no checks.
void linear_int8_launch(const float* x, const uint8_t* packed, const float* bias, float* y,
                        int64_t m, int64_t n, int64_t k, int64_t x_row_stride,
                        int64_t y_row_stride, Isa isa, int max_threads);

// 255 * 127 * k must fit int32.
constexpr int64_t kInt8MaxK = 65536;

// Whether linear_int8_launch has its VNNI path on this CPU (AVX-512 F/BW/VNNI).
bool int8_vnni_supported();

}  // namespace bert4j::cpu
