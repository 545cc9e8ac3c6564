// Internal interface of the bf16 linear layer (AMX), for the entry points, the encoder layer
// and the native tests. Not part of the ABI.
#pragma once

#include <cstdint>

namespace bert4j::cpu {

// Packed bf16 weight layout (private to the library): ceil(n / 32) panels of 32 output
// columns; panel p holds, for each step s of 32 k values (ceil(k / 32) steps), two 1 KiB tiles
// (columns p*32 + 0..15, then + 16..31), each 16 rows of k pairs x 16 columns x 2 bf16:
//   w[p*32 + t*16 + j, s*32 + 2*r + e]  at element  ((p * steps + s) * 2 + t) * 512 + r * 32 + j * 2 + e
// (the operand layout of AMX's tdpbf16ps; zero past n and past k). Values are rounded to
// bf16 to nearest, ties to even.
constexpr int64_t kBf16Panel = 32;
constexpr int64_t kBf16KStep = 32;

inline int64_t bf16_steps(int64_t k) { return (k + kBf16KStep - 1) / kBf16KStep; }
inline int64_t bf16_panels(int64_t n) { return (n + kBf16Panel - 1) / kBf16Panel; }
inline int64_t bf16_packed_elements(int64_t n, int64_t k) {
    return bf16_panels(n) * bf16_steps(k) * kBf16Panel * kBf16KStep;
}

// fp32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN of the same sign.
inline uint16_t to_bf16(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

// Packs w [n, k] (row stride w_row_stride) into `packed`. No argument checks.
void linear_bf16_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride, uint16_t* packed);

// y[m, n] = bf16(x) . bf16(w)^T + bias: products of the bf16-rounded operands (exact in fp32)
// summed in fp32 per output (the scalar path in k order; AMX in its own order), then the bias
// added. With use_amx (the CPU
// has AMX-BF16 and the OS granted its state: amx_bf16_supported()) on AMX tiles (tdpbf16ps:
// denormal inputs and outputs of the sums flushed to zero), else a scalar path. m, n, k > 0;
// no argument checks.
void linear_bf16_launch(const float* x, const uint16_t* packed, const float* bias, float* y,
                        int64_t m, int64_t n, int64_t k, int64_t x_row_stride,
                        int64_t y_row_stride, bool use_amx, int max_threads);

// bf16 elements of the tile-blocked copy of m rows of k values the AMX path reads (rows padded
// to 16, k to 32): per block of 16 rows, per step of 32 k values, one 16 x 32 tile.
inline int64_t bf16_blocked_elements(int64_t m, int64_t k) {
    return (m + 15) / 16 * 16 * bf16_steps(k) * kBf16KStep;
}

// AMX only (amx_bf16_supported()). gelu(x . w^T + bias) (approximate: BERT4J_GELU_*), the
// GEMM as linear_bf16_launch, bias + GELU as bias_gelu_launch on its fp32 sums, rounded to bf16
// and written tile-blocked, ready to be the x of a GEMM with k = n. Returns that copy: the
// calling thread's buffer, valid until its next call here.
const uint16_t* linear_bf16_gelu_launch(const float* x, const uint16_t* packed, const float* bias, int64_t m,
                                        int64_t n, int64_t k, int64_t x_row_stride, int approximate,
                                        int max_threads);

// AMX only. y[m, n] = a . w^T + bias with `a` a tile-blocked bf16 copy of m rows of k values
// (from linear_bf16_gelu_launch): the same sums as linear_bf16_launch on the fp32 rows it holds.
void linear_bf16_blocked_launch(const uint16_t* a, const uint16_t* packed, const float* bias, float* y,
                                int64_t m, int64_t n, int64_t k, int64_t y_row_stride, int max_threads);

// Whether this CPU has AMX-TILE and AMX-BF16 and the OS let this process use the tile state
// (Linux arch_prctl ARCH_REQ_XCOMP_PERM, requested once). BERT4J_CPU_ISA=avx512, avx2 or
// scalar turns it off (as they cap the other kernels).
bool amx_bf16_supported();

}  // namespace bert4j::cpu
