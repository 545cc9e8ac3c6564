// Fused multi-head attention, fp32, CPU: forward and backward, dense (key lengths, additive
// mask) and varlen (packed sequences), with counter-based dropout. Three layers: tile
// operations (scalar, AVX2+FMA), the flash-style drivers and launcher (work items, threads,
// scratch), the checked C entry points.
//
// Algorithm (FlashAttention-2 on a CPU core):
//  - forward: a work item is (sequence, head, block of kFwdBr query rows). It streams over
//    key tiles of kFwdBc keys: S = Q Kᵀ (register-blocked micro-kernel), s = scale S + mask,
//    online softmax (running max m and sum l per row, rescaling the output accumulator when
//    m grows), then O += P V. out = O / l, lse = m + log l. Per thread: Kᵀ and V of the head,
//    packed once and reused by consecutive query blocks of that head (O(seq·head_dim)),
//    plus the S tile and the O accumulator. No [seq_q x seq_k] buffer exists.
//  - backward: a work item is (sequence, head, chunk of key blocks); a chunk is the whole key
//    range unless there are fewer heads than threads. Each thread owns its key rows, so
//    dK/dV never race; dQ accumulates in the thread's buffer (or in per-chunk partials that
//    are summed afterwards). For each key block and query block it recomputes
//    P = exp(s - lse), then dV += Pdᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP ∘ M - D) with
//    D_i = <dO_i, O_i>, dK += dSᵀ Q scale, dQ += dS K scale; Pd = P ∘ M is the dropped-out P
//    and M the regenerated keep mask times 1/(1-p).
//  All five products are one micro-kernel shape, C[MR x 8·NV] (+)= A[MR x K] B[K x 8·NV],
//  with A read by broadcast at any (row, k) strides (so Pᵀ and dSᵀ need no transpose) and B
//  row-major with 8-padded columns (packed Kᵀ, Vᵀ; Q, dO, K, V with head_dim padded to 8).

#include "attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "../common/philox.h"
#include "../common/status.h"
#include "bert4j_kernels.h"
#include "vec_avx2.h"
#include "vec_avx512.h"

namespace bert4j::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Tile sizes (rows of queries x keys). Forward: the S tile kFwdBr x kFwdBc stays in L1/L2 and
// kFwdBc = 128 means BERT's usual 128-token sequences need no online rescaling at all.
// Backward: five tiles live at once (S, dP, Kᵀ, Vᵀ, K), so they are smaller.
constexpr int64_t kFwdBr = 48;
constexpr int64_t kFwdBc = 128;
constexpr int64_t kBwdBr = 64;
constexpr int64_t kBwdBc = 64;

inline int64_t round8(int64_t n) { return (n + 7) & ~int64_t{7}; }

void grow(std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

// ---- kernel layer: tile operations, portable scalar ---------------------------------------
// Rows of S tiles are padded to a multiple of 8 with -inf (scores) or 0, so every op may run
// over the padded length.

struct ScalarOps {
    // dst[d * ld + j] = src[j * rs + d] for j < n, zero for n <= j < ld.
    static void pack_transposed(float* dst, int64_t ld, const float* src, int64_t rs, int64_t n,
                                int64_t D) {
        for (int64_t d = 0; d < D; ++d) std::fill(dst + d * ld + n, dst + (d + 1) * ld, 0.0f);
        constexpr int64_t kB = 16;  // small square blocks keep both sides in cache lines
        for (int64_t j0 = 0; j0 < n; j0 += kB)
            for (int64_t d0 = 0; d0 < D; d0 += kB)
                for (int64_t j = j0; j < std::min(n, j0 + kB); ++j)
                    for (int64_t d = d0; d < std::min(D, d0 + kB); ++d)
                        dst[d * ld + j] = src[j * rs + d];
    }
    // C[M x N] (+)= A B; A(r, k) = A[r*ars + k*aks]; B row-major (ldb); N a multiple of 8.
    static void gemm(float* C, int64_t ldc, const float* A, int64_t ars, int64_t aks,
                     const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K, bool acc) {
        for (int64_t r = 0; r < M; ++r) {
            float* c = C + r * ldc;
            if (!acc) std::fill(c, c + N, 0.0f);
            for (int64_t k = 0; k < K; ++k) {
                const float a = A[r * ars + k * aks];
                const float* b = B + k * ldb;
                for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
            }
        }
    }
    // s = scale * s + mask (mask may be null); returns the row max.
    static float scale_mask_max(float* s, int64_t n, float scale, const float* mask) {
        float m = kNegInf;
        for (int64_t j = 0; j < n; ++j) {
            s[j] = s[j] * scale + (mask ? mask[j] : 0.0f);
            m = std::max(m, s[j]);
        }
        return m;
    }
    // s = exp(s - m) (m finite; -inf scores give 0); returns the sum.
    static float exp_sum(float* s, int64_t n, float m) {
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
            s[j] = std::exp(s[j] - m);
            sum += s[j];
        }
        return sum;
    }
    static void scale(float* x, int64_t n, float a) {
        for (int64_t j = 0; j < n; ++j) x[j] *= a;
    }
    static void mul(float* x, const float* y, int64_t n) {
        for (int64_t j = 0; j < n; ++j) x[j] *= y[j];
    }
    // Backward row: s = exp(scale s + mask - lse) = P (lse finite); then, with mf the dropout
    // factors (keep/(1-p), or null = no dropout): dp = P (dp mf - di), s = P mf.
    static void bwd_row(float* s, float* dp, int64_t n, float scale, const float* mask,
                        float lse, float di, const float* mf) {
        for (int64_t j = 0; j < n; ++j) {
            const float p = std::exp(s[j] * scale + (mask ? mask[j] : 0.0f) - lse);
            const float f = mf ? mf[j] : 1.0f;
            dp[j] = p * (dp[j] * f - di);
            s[j] = p * f;
        }
    }
};

// ---- kernel layer: tile operations, AVX2 + FMA --------------------------------------------

// C[MR x 8NV] (+)= A[MR x K] B[K x 8NV]: MR*NV accumulators in registers (at most 12 of 16),
// one broadcast of A per row and k, NV loads of B per k.
template <int MR, int NV>
BERT4J_AVX2_FN inline void micro_kernel(float* C, int64_t ldc, const float* A, int64_t ars,
                                        int64_t aks, const float* B, int64_t ldb, int64_t K,
                                        bool acc) {
    __m256 c[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v)
            c[r][v] = acc ? _mm256_loadu_ps(C + r * ldc + 8 * v) : _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
        __m256 b[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + k * ldb + 8 * v);
        const float* a = A + k * aks;
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            const __m256 ar = _mm256_broadcast_ss(a + r * ars);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) c[r][v] = _mm256_fmadd_ps(ar, b[v], c[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) _mm256_storeu_ps(C + r * ldc + 8 * v, c[r][v]);
}

template <int NV>
BERT4J_AVX2_FN inline void micro_rows(int64_t mr, float* C, int64_t ldc, const float* A,
                                      int64_t ars, int64_t aks, const float* B, int64_t ldb,
                                      int64_t K, bool acc) {
    switch (mr) {
        case 6: micro_kernel<6, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 5: micro_kernel<5, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 4: micro_kernel<4, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 3: micro_kernel<3, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 2: micro_kernel<2, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        default: micro_kernel<1, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
    }
}

struct Avx2Ops {
    // As ScalarOps::pack_transposed, with 8x8 register transposes for the full blocks.
    BERT4J_AVX2_FN static void pack_transposed(float* dst, int64_t ld, const float* src, int64_t rs,
                                               int64_t n, int64_t D) {
        const int64_t n8 = n & ~int64_t{7}, d8 = D & ~int64_t{7};
        for (int64_t j = 0; j < n8; j += 8) {
            for (int64_t d = 0; d < d8; d += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (j + i) * rs + d);
                const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
                const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
                const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
                const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
                const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                float* o = dst + d * ld + j;
                _mm256_storeu_ps(o + 0 * ld, _mm256_permute2f128_ps(s0, s4, 0x20));
                _mm256_storeu_ps(o + 1 * ld, _mm256_permute2f128_ps(s1, s5, 0x20));
                _mm256_storeu_ps(o + 2 * ld, _mm256_permute2f128_ps(s2, s6, 0x20));
                _mm256_storeu_ps(o + 3 * ld, _mm256_permute2f128_ps(s3, s7, 0x20));
                _mm256_storeu_ps(o + 4 * ld, _mm256_permute2f128_ps(s0, s4, 0x31));
                _mm256_storeu_ps(o + 5 * ld, _mm256_permute2f128_ps(s1, s5, 0x31));
                _mm256_storeu_ps(o + 6 * ld, _mm256_permute2f128_ps(s2, s6, 0x31));
                _mm256_storeu_ps(o + 7 * ld, _mm256_permute2f128_ps(s3, s7, 0x31));
            }
            for (int64_t d = d8; d < D; ++d)
                for (int64_t i = 0; i < 8; ++i) dst[d * ld + j + i] = src[(j + i) * rs + d];
        }
        for (int64_t j = n8; j < n; ++j)
            for (int64_t d = 0; d < D; ++d) dst[d * ld + j] = src[j * rs + d];
        for (int64_t d = 0; d < D; ++d) std::fill(dst + d * ld + n, dst + (d + 1) * ld, 0.0f);
    }
    BERT4J_AVX2_FN static void gemm(float* C, int64_t ldc, const float* A, int64_t ars,
                                    int64_t aks, const float* B, int64_t ldb, int64_t M,
                                    int64_t N, int64_t K, bool acc) {
        // Column panels outermost: the K x 16 panel of B stays in L1 across the row blocks.
        for (int64_t c0 = 0; c0 < N; c0 += 16) {
            const bool two = c0 + 16 <= N;
            for (int64_t r0 = 0; r0 < M; r0 += 6) {
                const int64_t mr = std::min<int64_t>(6, M - r0);
                float* c = C + r0 * ldc + c0;
                const float* a = A + r0 * ars;
                if (two)
                    micro_rows<2>(mr, c, ldc, a, ars, aks, B + c0, ldb, K, acc);
                else
                    micro_rows<1>(mr, c, ldc, a, ars, aks, B + c0, ldb, K, acc);
            }
        }
    }
    BERT4J_AVX2_FN static float scale_mask_max(float* s, int64_t n, float scale,
                                               const float* mask) {
        const __m256 vs = _mm256_set1_ps(scale);
        __m256 vm = _mm256_set1_ps(kNegInf);
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + j), vs);
            if (mask) x = _mm256_add_ps(x, _mm256_loadu_ps(mask + j));
            _mm256_storeu_ps(s + j, x);
            vm = _mm256_max_ps(vm, x);
        }
        float m = avx2::hmax8(vm);
        for (; j < n; ++j) {
            s[j] = s[j] * scale + (mask ? mask[j] : 0.0f);
            m = std::max(m, s[j]);
        }
        return m;
    }
    BERT4J_AVX2_FN static float exp_sum(float* s, int64_t n, float m) {
        const __m256 vm = _mm256_set1_ps(m);
        __m256 acc = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
            const __m256 e = avx2::exp8_flush(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
            _mm256_storeu_ps(s + j, e);
            acc = _mm256_add_ps(acc, e);
        }
        float sum = avx2::hsum8(acc);
        for (; j < n; ++j) {
            s[j] = std::exp(s[j] - m);
            sum += s[j];
        }
        return sum;
    }
    BERT4J_AVX2_FN static void scale(float* x, int64_t n, float a) {
        const __m256 va = _mm256_set1_ps(a);
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), va));
        for (; j < n; ++j) x[j] *= a;
    }
    BERT4J_AVX2_FN static void mul(float* x, const float* y, int64_t n) {
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j)));
        for (; j < n; ++j) x[j] *= y[j];
    }
    BERT4J_AVX2_FN static void bwd_row(float* s, float* dp, int64_t n, float scale,
                                       const float* mask, float lse, float di, const float* mf) {
        const __m256 vs = _mm256_set1_ps(scale), vl = _mm256_set1_ps(lse),
                     vd = _mm256_set1_ps(di);
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 x = _mm256_fmsub_ps(_mm256_loadu_ps(s + j), vs, vl);
            if (mask) x = _mm256_add_ps(x, _mm256_loadu_ps(mask + j));
            const __m256 p = avx2::exp8_flush(x);
            __m256 g = _mm256_loadu_ps(dp + j);
            __m256 pd = p;
            if (mf) {
                const __m256 f = _mm256_loadu_ps(mf + j);
                g = _mm256_mul_ps(g, f);
                pd = _mm256_mul_ps(p, f);
            }
            _mm256_storeu_ps(dp + j, _mm256_mul_ps(p, _mm256_sub_ps(g, vd)));
            _mm256_storeu_ps(s + j, pd);
        }
        for (; j < n; ++j) {
            const float p = std::exp(s[j] * scale + (mask ? mask[j] : 0.0f) - lse);
            const float f = mf ? mf[j] : 1.0f;
            dp[j] = p * (dp[j] * f - di);
            s[j] = p * f;
        }
    }
};

// ---- kernel layer: tile operations, AVX-512 -----------------------------------------------
// The AVX2 operations with a zmm GEMM micro-kernel (up to 12 rows x 32 columns: 24
// accumulators of 32 registers) and 16-wide softmax passes; packing, dropout and the
// backward's row pass stay AVX2 (Avx512Ops inherits them).

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

template <int MR, int NV>
BERT4J_AVX512_FN inline void micro_kernel16(float* C, int64_t ldc, const float* A, int64_t ars,
                                            int64_t aks, const float* B, int64_t ldb, int64_t K,
                                            bool acc) {
    __m512 c[MR][NV];
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v)
            c[r][v] = acc ? _mm512_loadu_ps(C + r * ldc + 16 * v) : _mm512_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
        __m512 b[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(B + k * ldb + 16 * v);
        const float* a = A + k * aks;
#pragma GCC unroll 12
        for (int r = 0; r < MR; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r * ars]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(ar, b[v], c[r][v]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) _mm512_storeu_ps(C + r * ldc + 16 * v, c[r][v]);
}

template <int NV>
BERT4J_AVX512_FN inline void micro_rows16(int64_t mr, float* C, int64_t ldc, const float* A,
                                          int64_t ars, int64_t aks, const float* B, int64_t ldb,
                                          int64_t K, bool acc) {
    switch (mr) {
        case 12: micro_kernel16<12, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 11: micro_kernel16<11, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 10: micro_kernel16<10, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 9: micro_kernel16<9, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 8: micro_kernel16<8, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 7: micro_kernel16<7, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 6: micro_kernel16<6, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 5: micro_kernel16<5, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 4: micro_kernel16<4, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 3: micro_kernel16<3, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        case 2: micro_kernel16<2, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
        default: micro_kernel16<1, NV>(C, ldc, A, ars, aks, B, ldb, K, acc); break;
    }
}

struct Avx512Ops : Avx2Ops {
    BERT4J_AVX512_FN static void gemm(float* C, int64_t ldc, const float* A, int64_t ars,
                                      int64_t aks, const float* B, int64_t ldb, int64_t M,
                                      int64_t N, int64_t K, bool acc) {
        // N is a multiple of 8: panels of 32 and 16 columns in zmm, a last 8 in ymm.
        for (int64_t c0 = 0; c0 < N;) {
            const int64_t w = N - c0 >= 32 ? 32 : N - c0 >= 16 ? 16 : 8;
            for (int64_t r0 = 0; r0 < M; r0 += 12) {
                const int64_t mr = std::min<int64_t>(12, M - r0);
                float* c = C + r0 * ldc + c0;
                const float* a = A + r0 * ars;
                if (w == 32)
                    micro_rows16<2>(mr, c, ldc, a, ars, aks, B + c0, ldb, K, acc);
                else if (w == 16)
                    micro_rows16<1>(mr, c, ldc, a, ars, aks, B + c0, ldb, K, acc);
                else
                    for (int64_t r = 0; r < mr; r += 6)
                        micro_rows<1>(std::min<int64_t>(6, mr - r), c + r * ldc, ldc,
                                      a + r * ars, ars, aks, B + c0, ldb, K, acc);
            }
            c0 += w;
        }
    }
    BERT4J_AVX512_FN static float scale_mask_max(float* s, int64_t n, float scale,
                                                 const float* mask) {
        const __m512 vs = _mm512_set1_ps(scale);
        __m512 vm = _mm512_set1_ps(kNegInf);
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF)
                                            : static_cast<__mmask16>((1u << (n - j)) - 1u);
            __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), vs);
            if (mask) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, mask + j));
            _mm512_mask_storeu_ps(s + j, m, x);
            vm = _mm512_mask_max_ps(vm, m, vm, x);
        }
        return _mm512_reduce_max_ps(vm);
    }
    BERT4J_AVX512_FN static float exp_sum(float* s, int64_t n, float m) {
        const __m512 vm = _mm512_set1_ps(m);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 k = n - j >= 16 ? __mmask16(0xFFFF)
                                            : static_cast<__mmask16>((1u << (n - j)) - 1u);
            const __m512 e = _mm512_maskz_mov_ps(
                k, avx512::exp16_flush(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm)));
            _mm512_mask_storeu_ps(s + j, k, e);
            acc = _mm512_add_ps(acc, e);
        }
        return _mm512_reduce_add_ps(acc);
    }
};

#pragma GCC diagnostic pop

// ---- kernel layer: dropout factors --------------------------------------------------------

struct Dropout {
    bool on = false;
    uint32_t threshold = 0;
    float inv_keep = 1.0f;  // 1 / (1 - p)
    uint64_t seed = 0, offset = 0;
};

// f[j] = keep(idx0 + j) ? value : 0 for j < n: one Philox block serves 4 consecutive indices.
void dropout_factors(float* f, int64_t n, uint64_t idx0, const Dropout& d, float value) {
    uint64_t block = ~uint64_t{0};
    Philox4 r{};
    for (int64_t j = 0; j < n; ++j) {
        const uint64_t idx = idx0 + static_cast<uint64_t>(j);
        if ((idx >> 2) != block) {
            block = idx >> 2;
            Philox4 c;
            c.x[0] = static_cast<uint32_t>(block);
            c.x[1] = static_cast<uint32_t>(block >> 32);
            c.x[2] = static_cast<uint32_t>(d.offset);
            c.x[3] = static_cast<uint32_t>(d.offset >> 32);
            r = philox4x32_10(c, static_cast<uint32_t>(d.seed), static_cast<uint32_t>(d.seed >> 32));
        }
        f[j] = r.x[idx & 3] >= d.threshold ? value : 0.0f;
    }
}

// ---- launcher layer -----------------------------------------------------------------------

// One (sequence, head) of the problem, resolved to base pointers and row strides.
struct Head {
    const float *q, *k, *v, *o, *dout;
    float *out, *dq, *dk, *dv;
    int64_t q_rs, k_rs, v_rs, o_rs, do_rs, dq_rs, dk_rs, dv_rs;
    float* lse;            // forward output, stride 1 (may be null)
    const float* lse_in;   // backward input, stride 1
    int64_t lq, lk;        // query rows; visible keys (key_len)
    int64_t sk;            // key rows in the layout (dense: seq_k; rows lk..sk get dk = dv = 0)
    const float* mask;     // row i at mask + i * m_rs (null = none)
    int64_t m_rs;
    uint64_t drop_row0, drop_rs;  // dropout idx of (i, j) = drop_row0 + i * drop_rs + j
    int64_t row_id;        // first row of this head in [rows of all heads] (lse order)
};

Head resolve(const AttentionArgs& a, int64_t unit, int64_t h) {
    Head hd{};
    int64_t q0, k0, v0, o0, do0, dq0, dk0, dv0;
    const auto base = [&](const int64_t* s, int64_t tok) { return tok * s[2] + h * s[1]; };
    if (a.cu_seqlens) {
        const int64_t start = a.cu_seqlens[unit];
        const int64_t len = a.cu_seqlens[unit + 1] - start;
        q0 = base(a.qs, start); k0 = base(a.ks, start); v0 = base(a.vs, start);
        o0 = base(a.os, start); do0 = base(a.dos, start); dq0 = base(a.dqs, start);
        dk0 = base(a.dks, start); dv0 = base(a.dvs, start);
        hd.lq = hd.lk = hd.sk = len;
        hd.row_id = h * a.total_tokens + start;
        hd.drop_row0 = static_cast<uint64_t>(hd.row_id) * static_cast<uint64_t>(a.seq_k);
        hd.drop_rs = static_cast<uint64_t>(a.seq_k);
        hd.mask = nullptr;
        hd.m_rs = 0;
    } else {
        const auto off = [&](const int64_t* s) { return unit * s[0] + h * s[1]; };
        q0 = off(a.qs); k0 = off(a.ks); v0 = off(a.vs); o0 = off(a.os); do0 = off(a.dos);
        dq0 = off(a.dqs); dk0 = off(a.dks); dv0 = off(a.dvs);
        hd.lq = a.seq_q;
        hd.sk = a.seq_k;
        hd.lk = a.key_lengths ? a.key_lengths[unit] : a.seq_k;
        hd.row_id = (unit * a.heads + h) * a.seq_q;
        hd.drop_row0 = static_cast<uint64_t>(hd.row_id) * static_cast<uint64_t>(a.seq_k);
        hd.drop_rs = static_cast<uint64_t>(a.seq_k);
        hd.mask = a.mask ? a.mask + unit * a.ms[0] + h * a.ms[1] : nullptr;
        hd.m_rs = a.ms[2];
        // One mask row shared by all queries (a [B,1,1,Sk] padding mask): trailing -inf keys
        // are invisible to every query, so treat them like keys beyond key_len and skip them
        // (identical results: they would get P = 0, dk = dv = 0).
        if (hd.mask && (hd.m_rs == 0 || a.seq_q == 1))
            while (hd.lk > 0 && hd.mask[hd.lk - 1] == kNegInf) --hd.lk;
    }
    hd.q = a.q ? a.q + q0 : nullptr;
    hd.k = a.k ? a.k + k0 : nullptr;
    hd.v = a.v ? a.v + v0 : nullptr;
    hd.out = a.out ? a.out + o0 : nullptr;
    hd.o = a.out_in ? a.out_in + o0 : nullptr;
    hd.dout = a.dout ? a.dout + do0 : nullptr;
    hd.dq = a.dq ? a.dq + dq0 : nullptr;
    hd.dk = a.dk ? a.dk + dk0 : nullptr;
    hd.dv = a.dv ? a.dv + dv0 : nullptr;
    hd.q_rs = a.qs[2]; hd.k_rs = a.ks[2]; hd.v_rs = a.vs[2]; hd.o_rs = a.os[2];
    hd.do_rs = a.dos[2]; hd.dq_rs = a.dqs[2]; hd.dk_rs = a.dks[2]; hd.dv_rs = a.dvs[2];
    hd.lse = a.lse ? a.lse + hd.row_id : nullptr;
    hd.lse_in = a.lse_in ? a.lse_in + hd.row_id : nullptr;
    return hd;
}

Dropout make_dropout(const AttentionArgs& a) {
    Dropout d;
    d.on = a.dropout_p > 0.0f;
    if (d.on) {
        d.threshold = dropout_threshold(a.dropout_p);
        d.inv_keep = 1.0f / (1.0f - a.dropout_p);
        d.seed = a.seed;
        d.offset = a.offset;
    }
    return d;
}

// Copies rows [0, n) x [0, D) of a strided matrix into dst [n x ld], zero-filling columns
// D..ld (the micro-kernel reads 8-padded rows).
void pack_rows(float* dst, int64_t ld, const float* src, int64_t rs, int64_t n, int64_t D) {
    for (int64_t r = 0; r < n; ++r) {
        std::memcpy(dst + r * ld, src + r * rs, sizeof(float) * D);
        std::fill(dst + r * ld + D, dst + (r + 1) * ld, 0.0f);
    }
}

// Forward per-thread scratch.
struct FwdScratch {
    std::vector<float> kt;  // key tiles, tile t at t*D*kFwdBc: [D x kFwdBc] (Kᵀ)
    std::vector<float> vp;  // [lk x Dp]
    std::vector<float> s;   // [kFwdBr x kFwdBc]
    std::vector<float> o;   // [kFwdBr x Dp]
    std::vector<float> mf;  // [kFwdBc]
    std::vector<float> m, l;
    int64_t packed_unit = -1, packed_head = -1;
};

struct FwdItem {
    int64_t unit, head, i0, rows;
};

template <class Ops>
void forward_block(const AttentionArgs& a, const Head& hd, int64_t unit, int64_t h, int64_t i0,
                   int64_t nr, const Dropout& drop, FwdScratch& sc) {
    const int64_t D = a.head_dim, Dp = round8(D), lk = hd.lk;
    if (sc.packed_unit != unit || sc.packed_head != h) {
        for (int64_t j0 = 0, t = 0; j0 < lk; j0 += kFwdBc, ++t)
            Ops::pack_transposed(sc.kt.data() + t * D * kFwdBc, kFwdBc, hd.k + j0 * hd.k_rs, hd.k_rs,
                            std::min(kFwdBc, lk - j0), D);
        pack_rows(sc.vp.data(), Dp, hd.v, hd.v_rs, lk, D);
        sc.packed_unit = unit;
        sc.packed_head = h;
    }
    float* S = sc.s.data();
    float* O = sc.o.data();
    float* m = sc.m.data();
    float* l = sc.l.data();
    std::fill(O, O + nr * Dp, 0.0f);
    std::fill(m, m + nr, kNegInf);
    std::fill(l, l + nr, 0.0f);
    const float* q = hd.q + i0 * hd.q_rs;
    for (int64_t j0 = 0, t = 0; j0 < lk; j0 += kFwdBc, ++t) {
        const int64_t nc = std::min(kFwdBc, lk - j0), ncp = round8(nc);
        // S[nr x ncp] = Q Kᵀ (padded key columns see zero keys; set to -inf below)
        Ops::gemm(S, kFwdBc, q, hd.q_rs, 1, sc.kt.data() + t * D * kFwdBc, kFwdBc, nr, ncp, D,
                  false);
        bool any = false;
        for (int64_t r = 0; r < nr; ++r) {
            float* s = S + r * kFwdBc;
            const float* mrow = hd.mask ? hd.mask + (i0 + r) * hd.m_rs + j0 : nullptr;
            float mt = Ops::scale_mask_max(s, nc, a.scale, mrow);
            std::fill(s + nc, s + ncp, kNegInf);
            const float mnew = std::max(m[r], mt);
            if (mnew == kNegInf) {  // nothing visible yet in this row: P = 0
                std::fill(s, s + ncp, 0.0f);
                continue;
            }
            any = true;
            const float alpha = m[r] == kNegInf ? 0.0f : std::exp(m[r] - mnew);
            const float rowsum = Ops::exp_sum(s, ncp, mnew);
            if (alpha != 1.0f && l[r] != 0.0f) Ops::scale(O + r * Dp, Dp, alpha);
            l[r] = l[r] * alpha + rowsum;
            m[r] = mnew;
            if (drop.on) {  // l holds the undropped sum; 1/(1-p) is applied at the end
                float* mf = sc.mf.data();
                dropout_factors(mf, nc, hd.drop_row0 + (i0 + r) * hd.drop_rs + j0, drop, 1.0f);
                Ops::mul(s, mf, nc);
            }
        }
        // O[nr x Dp] += P[nr x nc] V[nc x Dp]
        if (any) Ops::gemm(O, Dp, S, kFwdBc, 1, sc.vp.data() + j0 * Dp, Dp, nr, Dp, nc, true);
    }
    for (int64_t r = 0; r < nr; ++r) {
        float* out = hd.out + (i0 + r) * hd.o_rs;
        if (l[r] == 0.0f) {  // no visible key
            std::fill(out, out + D, 0.0f);
            if (hd.lse) hd.lse[i0 + r] = kNegInf;
            continue;
        }
        const float inv = (drop.on ? drop.inv_keep : 1.0f) / l[r];
        const float* o = O + r * Dp;
        for (int64_t d = 0; d < D; ++d) out[d] = o[d] * inv;
        if (hd.lse) hd.lse[i0 + r] = m[r] + std::log(l[r]);
    }
}

int64_t units_of(const AttentionArgs& a) { return a.units; }

int64_t rows_of(const AttentionArgs& a, int64_t unit) {
    return a.cu_seqlens ? a.cu_seqlens[unit + 1] - a.cu_seqlens[unit] : a.seq_q;
}

int clamp_threads(int max_threads, int64_t items) {
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads, items)));
}

// Forward work of one item in multiply-add equivalents: Q Kᵀ and P V over its rows and keys,
// plus a fixed cost for what every item does whatever its size (resolving strides, packing
// Kᵀ/V, the row softmax bookkeeping: ~1 us on these machines).
constexpr int64_t kFwdItemOverheadMacs = 50'000;
// Below about this much work per thread a fork/join (~10-20 us with parked threads) costs more
// than the second thread saves: one 7-token sentence (12 items) ran 0.025 ms on 2 threads vs
// 0.015 ms on 1.
constexpr int64_t kFwdMinMacsPerThread = int64_t{1} << 20;

template <class Ops>
void forward_impl(const AttentionArgs& a, int max_threads) {
    std::vector<FwdItem> items;
    int64_t work = 0;
    for (int64_t u = 0; u < units_of(a); ++u) {
        const int64_t lq = rows_of(a, u), keys = a.cu_seqlens ? lq : a.seq_k;
        for (int64_t h = 0; h < a.heads; ++h)
            for (int64_t i0 = 0; i0 < lq; i0 += kFwdBr) {
                const int64_t rows = std::min(kFwdBr, lq - i0);
                items.push_back({u, h, i0, rows});
                work += rows * keys * 2 * a.head_dim + kFwdItemOverheadMacs;
            }
    }
    const int threads = clamp_threads(
        static_cast<int>(std::min<int64_t>(max_threads, std::max<int64_t>(1, work / kFwdMinMacsPerThread))),
        static_cast<int64_t>(items.size()));
    const int64_t D = a.head_dim, Dp = round8(D);
    const int64_t max_k = a.seq_k;  // dense: seq_k; varlen: max_seqlen
    const int64_t tiles = (max_k + kFwdBc - 1) / kFwdBc;
    const Dropout drop = make_dropout(a);
    const int64_t n = static_cast<int64_t>(items.size());
    // Dense: dynamic chunks of one head's query blocks (items are in head order), so a thread
    // packs Kᵀ/V once per head, and a thread the OS deschedules (a shared machine) does not
    // hold up the others the way a static split would. Varlen items differ in cost: chunks of 1.
    const bool dynamic = a.cu_seqlens != nullptr;
    const int chunk = static_cast<int>((a.seq_q + kFwdBr - 1) / kFwdBr);
    std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        // Per-thread scratch persists across calls (no page faults on every call) and only
        // grows; an allocation failure is caught here and rethrown after the region.
        thread_local FwdScratch sc;
        bool ready = true;
        try {
            grow(sc.kt, tiles * D * kFwdBc);
            grow(sc.vp, max_k * Dp);
            grow(sc.s, kFwdBr * kFwdBc);
            grow(sc.o, kFwdBr * Dp);
            grow(sc.mf, kFwdBc);
            grow(sc.m, kFwdBr);
            grow(sc.l, kFwdBr);
        } catch (...) {
            ready = false;
            failed = true;
        }
        sc.packed_unit = sc.packed_head = -1;  // new inputs: nothing packed yet
        if (dynamic) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t it = 0; it < n; ++it) {
                const FwdItem& w = items[it];
                if (ready)
                    forward_block<Ops>(a, resolve(a, w.unit, w.head), w.unit, w.head, w.i0,
                                       w.rows, drop, sc);
            }
        } else {
#pragma omp for schedule(dynamic, chunk)
            for (int64_t it = 0; it < n; ++it) {
                const FwdItem& w = items[it];
                if (ready)
                    forward_block<Ops>(a, resolve(a, w.unit, w.head), w.unit, w.head, w.i0,
                                       w.rows, drop, sc);
            }
        }
    }
    if (failed) throw std::bad_alloc();
}

// Backward per-thread scratch.
struct BwdScratch {
    std::vector<float> qp, dop;  // [lq x Dp]
    std::vector<float> di;       // [lq]
    std::vector<float> dqa;      // [lq x Dp]
    std::vector<float> kp;       // [kBwdBc x Dp]
    std::vector<float> kt, vt;   // [D x kBwdBc]
    std::vector<float> dka, dva; // [kBwdBc x Dp]
    std::vector<float> s, dp;    // [kBwdBr x kBwdBc]
    std::vector<float> mf;       // [kBwdBc]
};

// Key blocks [kb0, kb1) of one head; dQ (times scale) goes to dq_out with row stride dq_rs.
template <class Ops>
void backward_chunk(const AttentionArgs& a, const Head& hd, int64_t kb0, int64_t kb1,
                    float* dq_out, int64_t dq_rs, const Dropout& drop, BwdScratch& sc) {
    const int64_t D = a.head_dim, Dp = round8(D), lq = hd.lq;
    float* qp = sc.qp.data();
    float* dop = sc.dop.data();
    float* di = sc.di.data();
    float* dqa = sc.dqa.data();
    pack_rows(qp, Dp, hd.q, hd.q_rs, lq, D);
    pack_rows(dop, Dp, hd.dout, hd.do_rs, lq, D);
    for (int64_t i = 0; i < lq; ++i) {
        // D_i = <dO_i, O_i> = sum_j Pd_ij dPd_ij: in double, it is subtracted from every dP_ij
        const float* o = hd.o + i * hd.o_rs;
        const float* g = hd.dout + i * hd.do_rs;
        double acc = 0.0;
        for (int64_t d = 0; d < D; ++d) acc += static_cast<double>(o[d]) * g[d];
        di[i] = static_cast<float>(acc);
    }
    std::fill(dqa, dqa + lq * Dp, 0.0f);
    float* S = sc.s.data();
    float* dP = sc.dp.data();
    for (int64_t kb = kb0; kb < kb1; ++kb) {
        const int64_t j0 = kb * kBwdBc, nc = std::min(kBwdBc, hd.lk - j0), ncp = round8(nc);
        pack_rows(sc.kp.data(), Dp, hd.k + j0 * hd.k_rs, hd.k_rs, nc, D);
        Ops::pack_transposed(sc.kt.data(), ncp, hd.k + j0 * hd.k_rs, hd.k_rs, nc, D);
        Ops::pack_transposed(sc.vt.data(), ncp, hd.v + j0 * hd.v_rs, hd.v_rs, nc, D);
        float* dka = sc.dka.data();
        float* dva = sc.dva.data();
        std::fill(dka, dka + nc * Dp, 0.0f);
        std::fill(dva, dva + nc * Dp, 0.0f);
        for (int64_t i0 = 0; i0 < lq; i0 += kBwdBr) {
            const int64_t nr = std::min(kBwdBr, lq - i0);
            // S = Q Kᵀ, dPd = dO Vᵀ: [nr x ncp]
            Ops::gemm(S, kBwdBc, qp + i0 * Dp, Dp, 1, sc.kt.data(), ncp, nr, ncp, D, false);
            Ops::gemm(dP, kBwdBc, dop + i0 * Dp, Dp, 1, sc.vt.data(), ncp, nr, ncp, D, false);
            bool any = false;
            for (int64_t r = 0; r < nr; ++r) {
                const int64_t i = i0 + r;
                float* s = S + r * kBwdBc;
                float* dp = dP + r * kBwdBc;
                const float lse = hd.lse_in[i];
                if (lse == kNegInf) {  // row saw no key in the forward: P = 0, no gradient
                    std::fill(s, s + ncp, 0.0f);
                    std::fill(dp, dp + ncp, 0.0f);
                    continue;
                }
                any = true;
                const float* mrow = hd.mask ? hd.mask + i * hd.m_rs + j0 : nullptr;
                const float* mf = nullptr;
                if (drop.on) {
                    dropout_factors(sc.mf.data(), nc, hd.drop_row0 + i * hd.drop_rs + j0, drop,
                                    drop.inv_keep);
                    mf = sc.mf.data();
                }
                Ops::bwd_row(s, dp, nc, a.scale, mrow, lse, di[i], mf);  // s = Pd, dp = dS
                std::fill(s + nc, s + ncp, 0.0f);
                std::fill(dp + nc, dp + ncp, 0.0f);
            }
            if (!any) continue;
            // dV += Pdᵀ dO, dK += dSᵀ Q (A read transposed through strides), dQ += dS K
            Ops::gemm(dva, Dp, S, 1, kBwdBc, dop + i0 * Dp, Dp, nc, Dp, nr, true);
            Ops::gemm(dka, Dp, dP, 1, kBwdBc, qp + i0 * Dp, Dp, nc, Dp, nr, true);
            Ops::gemm(dqa + i0 * Dp, Dp, dP, kBwdBc, 1, sc.kp.data(), Dp, nr, Dp, nc, true);
        }
        for (int64_t j = 0; j < nc; ++j) {
            float* dk = hd.dk + (j0 + j) * hd.dk_rs;
            float* dv = hd.dv + (j0 + j) * hd.dv_rs;
            for (int64_t d = 0; d < D; ++d) {
                dk[d] = dka[j * Dp + d] * a.scale;
                dv[d] = dva[j * Dp + d];
            }
        }
    }
    for (int64_t i = 0; i < lq; ++i) {
        float* dq = dq_out + i * dq_rs;
        for (int64_t d = 0; d < D; ++d) dq[d] = dqa[i * Dp + d] * a.scale;
    }
}

struct BwdItem {
    int64_t unit, head, chunk;
};

template <class Ops>
void backward_impl(const AttentionArgs& a, int max_threads) {
    const int64_t heads_total = a.units * a.heads;
    const int64_t max_k = a.seq_k, max_q = a.seq_q;
    const int64_t max_kb = (max_k + kBwdBc - 1) / kBwdBc;
    // Split a head's key blocks over several threads only when there are fewer heads than
    // threads; dQ then goes through per-chunk partial buffers.
    int64_t chunks = 1;
    if (heads_total < max_threads && max_kb > 1)
        chunks = std::min<int64_t>(max_kb, (max_threads + heads_total - 1) / std::max<int64_t>(1, heads_total));
    std::vector<BwdItem> items;
    for (int64_t u = 0; u < a.units; ++u)
        for (int64_t h = 0; h < a.heads; ++h)
            for (int64_t c = 0; c < chunks; ++c) items.push_back({u, h, c});
    const int threads = clamp_threads(max_threads, static_cast<int64_t>(items.size()));
    const int64_t D = a.head_dim, Dp = round8(D);
    // Rows of all heads in lse order: dense B*H*Sq, varlen H*total_tokens.
    const int64_t all_rows = a.cu_seqlens ? a.heads * a.total_tokens : heads_total * max_q;
    std::vector<float> partial;
    if (chunks > 1) partial.resize(static_cast<size_t>(chunks * all_rows * D));
    const Dropout drop = make_dropout(a);
    const int64_t n = static_cast<int64_t>(items.size());
    const auto run = [&](const BwdItem& w, BwdScratch& sc) {
        const Head hd = resolve(a, w.unit, w.head);
        const int64_t nkb = (hd.lk + kBwdBc - 1) / kBwdBc;
        const int64_t kb0 = nkb * w.chunk / chunks, kb1 = nkb * (w.chunk + 1) / chunks;
        if (chunks == 1)
            backward_chunk<Ops>(a, hd, kb0, kb1, hd.dq, hd.dq_rs, drop, sc);
        else
            backward_chunk<Ops>(a, hd, kb0, kb1, partial.data() + (w.chunk * all_rows + hd.row_id) * D,
                                D, drop, sc);
        if (w.chunk == 0)  // keys beyond key_len: no gradient
            for (int64_t j = hd.lk; j < hd.sk; ++j) {
                std::fill(hd.dk + j * hd.dk_rs, hd.dk + j * hd.dk_rs + D, 0.0f);
                std::fill(hd.dv + j * hd.dv_rs, hd.dv + j * hd.dv_rs + D, 0.0f);
            }
    };
    std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        thread_local BwdScratch sc;  // persists and grows, as in the forward
        bool ready = true;
        try {
            grow(sc.qp, max_q * Dp);
            grow(sc.dop, max_q * Dp);
            grow(sc.di, max_q);
            grow(sc.dqa, max_q * Dp);
            grow(sc.kp, kBwdBc * Dp);
            grow(sc.kt, D * kBwdBc);
            grow(sc.vt, D * kBwdBc);
            grow(sc.dka, kBwdBc * Dp);
            grow(sc.dva, kBwdBc * Dp);
            grow(sc.s, kBwdBr * kBwdBc);
            grow(sc.dp, kBwdBr * kBwdBc);
            grow(sc.mf, kBwdBc);
        } catch (...) {
            ready = false;
            failed = true;
        }
        // Items are whole heads (or key chunks of one): dynamic, for the reason in the forward.
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n; ++it)
            if (ready) run(items[it], sc);
    }
    if (failed) throw std::bad_alloc();
    if (chunks > 1) {
        const int64_t nh = heads_total;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t t = 0; t < nh; ++t) {
            const Head hd = resolve(a, t / a.heads, t % a.heads);
            for (int64_t i = 0; i < hd.lq; ++i) {
                float* dq = hd.dq + i * hd.dq_rs;
                for (int64_t d = 0; d < D; ++d) {
                    float acc = 0.0f;
                    for (int64_t c = 0; c < chunks; ++c)
                        acc += partial[(c * all_rows + hd.row_id + i) * D + d];
                    dq[d] = acc;
                }
            }
        }
    }
}

}  // namespace

void attention_forward_launch(const AttentionArgs& a, Isa isa, int max_threads) {
    if (isa == Isa::Avx512)
        forward_impl<Avx512Ops>(a, max_threads);
    else if (isa == Isa::Avx2Fma)
        forward_impl<Avx2Ops>(a, max_threads);
    else
        forward_impl<ScalarOps>(a, max_threads);
}

void attention_backward_launch(const AttentionArgs& a, Isa isa, int max_threads) {
    if (isa == Isa::Avx512)
        backward_impl<Avx512Ops>(a, max_threads);
    else if (isa == Isa::Avx2Fma)
        backward_impl<Avx2Ops>(a, max_threads);
    else
        backward_impl<ScalarOps>(a, max_threads);
}

}  // namespace bert4j::cpu

// ---- checked entry points -----------------------------------------------------------------

namespace {

namespace cpu = bert4j::cpu;
namespace detail = bert4j::detail;
using bert4j::detail::fail;
using bert4j::detail::ok;

long long ll(int64_t v) { return static_cast<long long>(v); }

// Validates one strided tensor of logical shape sizes[0..n) x head_dim (head_dim contiguous).
// `what` names the stride layout for messages. Outputs must not have overlapping elements
// (threads write them concurrently); inputs may (e.g. a stride-0 broadcast).
int check_tensor(const char* op, const char* name, const void* p, const int64_t* strides,
                 const int64_t* sizes, int n, int64_t head_dim, bool output, const char* what) {
    bool empty = head_dim == 0;
    for (int i = 0; i < n; ++i) empty = empty || sizes[i] == 0;
    if (empty) return BERT4J_OK;  // empty: pointer and strides may be NULL
    if (strides == nullptr)
        return fail(BERT4J_ERR_NULL_POINTER, "%s: %s_strides is NULL (expected %d strides: %s)", op,
                    name, n, what);
    // The last element is at sum (size-1)*stride + head_dim-1; it must fit int64.
    int64_t last = head_dim - 1;
    for (int i = 0; i < n; ++i) {
        if (strides[i] < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s_strides[%d] (%s) must be >= 0, got %lld",
                        op, name, i, what, ll(strides[i]));
        int64_t span;
        if (__builtin_mul_overflow(sizes[i] - 1, strides[i], &span) ||
            __builtin_add_overflow(last, span, &last))
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s strides overflow int64 for its shape",
                        op, name);
    }
    if (p == nullptr)
        return fail(BERT4J_ERR_NULL_POINTER, "%s: %s is NULL (expected a tensor with strides %s)",
                    op, name, what);
    if (output) {
        // Non-overlap: sorted by stride, each dimension must step past everything inside it.
        std::pair<int64_t, int64_t> dims[3];  // (stride, size)
        int nd = 0;
        for (int i = 0; i < n; ++i)
            if (sizes[i] > 1) dims[nd++] = {strides[i], sizes[i]};
        for (int i = 1; i < nd; ++i)  // insertion sort of <= 3 entries
            for (int j = i; j > 0 && dims[j] < dims[j - 1]; --j) std::swap(dims[j], dims[j - 1]);
        int64_t extent = head_dim - 1;  // max offset covered so far
        for (int i = 0; i < nd; ++i) {
            if (dims[i].first <= extent)
                return fail(BERT4J_ERR_INVALID_ARGUMENT,
                            "%s: %s is an output but its strides (%s) make elements overlap: each "
                            "stride must exceed the extent of the smaller ones (head_dim %lld is "
                            "contiguous), got stride %lld",
                            op, name, what, ll(head_dim), ll(dims[i].first));
            extent += dims[i].first * (dims[i].second - 1);
        }
    }
    return BERT4J_OK;
}

int check_common(const char* op, float scale, float dropout_p) {
    if (!std::isfinite(scale))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: scale must be finite, got %g", op, scale);
    if (!(dropout_p >= 0.0f && dropout_p < 1.0f))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: dropout_p must be in [0, 1), got %g", op,
                    dropout_p);
    return BERT4J_OK;
}

#define BERT4J_TRY(expr)                          \
    do {                                          \
        const int status_ = (expr);               \
        if (status_ != BERT4J_OK) return status_; \
    } while (0)

// Dense problem shape, key lengths, mask; lse is checked by the caller.
int check_dense(const char* op, int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k,
                int64_t head_dim, const int32_t* key_lengths, const float* mask,
                const int64_t* mask_strides, float scale, float dropout_p) {
    const struct { const char* name; int64_t v; } dims[] = {
        {"batch", batch}, {"heads", heads}, {"seq_q", seq_q}, {"seq_k", seq_k}, {"head_dim", head_dim}};
    for (const auto& d : dims)
        if (d.v < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s must be >= 0, got %lld", op, d.name, ll(d.v));
    BERT4J_TRY(check_common(op, scale, dropout_p));
    int64_t scores;  // dropout indices run over batch*heads*seq_q*seq_k
    if (__builtin_mul_overflow(batch, heads, &scores) || __builtin_mul_overflow(scores, seq_q, &scores) ||
        __builtin_mul_overflow(scores, seq_k, &scores) || __builtin_mul_overflow(scores, head_dim + 1, &scores))
        return fail(BERT4J_ERR_INVALID_ARGUMENT,
                    "%s: batch*heads*seq_q*seq_k*(head_dim+1) overflows int64 ([%lld, %lld, %lld, %lld], head_dim %lld)",
                    op, ll(batch), ll(heads), ll(seq_q), ll(seq_k), ll(head_dim));
    if (key_lengths != nullptr)
        for (int64_t b = 0; b < batch; ++b)
            if (key_lengths[b] < 0 || key_lengths[b] > seq_k)
                return fail(BERT4J_ERR_INVALID_ARGUMENT,
                            "%s: key_lengths[%lld] must be in [0, seq_k = %lld], got %d", op, ll(b),
                            ll(seq_k), key_lengths[b]);
    if (mask != nullptr) {  // mask_strides are ignored without a mask
        const int64_t ms[3] = {batch, heads, seq_q};
        BERT4J_TRY(check_tensor(op, "mask", mask, mask_strides, ms, 3, seq_k, false,
                                "batch, head, query row; 0 broadcasts; keys contiguous"));
    }
    return BERT4J_OK;
}

int check_varlen(const char* op, const int32_t* cu_seqlens, int64_t num_seqs, int64_t total_tokens,
                 int64_t max_seqlen, int64_t heads, int64_t head_dim, float scale, float dropout_p) {
    const struct { const char* name; int64_t v; } dims[] = {{"num_seqs", num_seqs},
        {"total_tokens", total_tokens}, {"max_seqlen", max_seqlen}, {"heads", heads}, {"head_dim", head_dim}};
    for (const auto& d : dims)
        if (d.v < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s must be >= 0, got %lld", op, d.name, ll(d.v));
    BERT4J_TRY(check_common(op, scale, dropout_p));
    int64_t scores;
    if (__builtin_mul_overflow(heads, total_tokens, &scores) ||
        __builtin_mul_overflow(scores, max_seqlen, &scores) ||
        __builtin_mul_overflow(scores, head_dim + 1, &scores))
        return fail(BERT4J_ERR_INVALID_ARGUMENT,
                    "%s: heads*total_tokens*max_seqlen*(head_dim+1) overflows int64", op);
    if (cu_seqlens == nullptr)
        return fail(BERT4J_ERR_NULL_POINTER,
                    "%s: cu_seqlens is NULL (expected num_seqs + 1 = %lld int32 offsets)", op,
                    ll(num_seqs + 1));
    if (cu_seqlens[0] != 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: cu_seqlens[0] must be 0, got %d", op, cu_seqlens[0]);
    for (int64_t s = 0; s < num_seqs; ++s) {
        const int64_t len = int64_t{cu_seqlens[s + 1]} - cu_seqlens[s];
        if (len < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: cu_seqlens must be non-decreasing, got cu_seqlens[%lld] = %d > cu_seqlens[%lld] = %d",
                        op, ll(s), cu_seqlens[s], ll(s + 1), cu_seqlens[s + 1]);
        if (len > max_seqlen)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: sequence %lld has length %lld > max_seqlen = %lld (cu_seqlens[%lld..%lld] = %d..%d)",
                        op, ll(s), ll(len), ll(max_seqlen), ll(s), ll(s + 1), cu_seqlens[s], cu_seqlens[s + 1]);
    }
    if (cu_seqlens[num_seqs] != total_tokens)
        return fail(BERT4J_ERR_INVALID_ARGUMENT,
                    "%s: cu_seqlens[num_seqs = %lld] must equal total_tokens = %lld, got %d", op,
                    ll(num_seqs), ll(total_tokens), cu_seqlens[num_seqs]);
    return BERT4J_OK;
}

// Varlen strides {token, head} -> the internal {0, head, token}.
void varlen_strides(int64_t dst[3], const int64_t* src) {
    dst[0] = 0;
    dst[1] = src ? src[1] : 0;
    dst[2] = src ? src[0] : 0;
}

void dense_strides(int64_t dst[3], const int64_t* src) {
    for (int i = 0; i < 3; ++i) dst[i] = src ? src[i] : 0;
}

template <class F>
int guarded(const char* op, F&& body) {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return fail(BERT4J_ERR_INTERNAL, "%s: out of memory for the per-thread tiles", op);
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}

constexpr const char* kDense = "batch, head, seq";
constexpr const char* kVarlen = "token, head";

}  // namespace

extern "C" {

int bert4j_dropout_keep(uint64_t seed, uint64_t offset, uint64_t idx, float p) {
    // Outside [0, 1) the formula still applies with p clamped (NaN drops everything).
    const float pc = p >= 0.0f ? std::min(p, 1.0f) : (p < 0.0f ? 0.0f : 1.0f);
    return bert4j::dropout_keep(seed, offset, idx, bert4j::dropout_threshold(pc)) ? 1 : 0;
}

int bert4j_attention_forward_f32(const float* q, const float* k, const float* v, float* out,
                                 float* lse, int64_t batch, int64_t heads, int64_t seq_q,
                                 int64_t seq_k, int64_t head_dim, const int64_t* q_strides,
                                 const int64_t* k_strides, const int64_t* v_strides,
                                 const int64_t* out_strides, const int32_t* key_lengths,
                                 const float* mask, const int64_t* mask_strides, float scale,
                                 float dropout_p, uint64_t seed, uint64_t offset) {
    static const char* op = "bert4j_attention_forward_f32";
    return guarded(op, [&]() -> int {
        BERT4J_TRY(check_dense(op, batch, heads, seq_q, seq_k, head_dim, key_lengths, mask,
                               mask_strides, scale, dropout_p));
        const int64_t qsz[3] = {batch, heads, seq_q}, ksz[3] = {batch, heads, seq_k};
        BERT4J_TRY(check_tensor(op, "q", q, q_strides, qsz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "k", k, k_strides, ksz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "v", v, v_strides, ksz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "out", out, out_strides, qsz, 3, head_dim, true, kDense));
        if (batch * heads * seq_q == 0) return ok();
        cpu::AttentionArgs a;
        a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse;
        a.units = batch; a.heads = heads; a.seq_q = seq_q; a.seq_k = seq_k; a.head_dim = head_dim;
        dense_strides(a.qs, q_strides); dense_strides(a.ks, k_strides);
        dense_strides(a.vs, v_strides); dense_strides(a.os, out_strides);
        a.key_lengths = key_lengths; a.mask = mask; dense_strides(a.ms, mask_strides);
        a.scale = scale; a.dropout_p = dropout_p; a.seed = seed; a.offset = offset;
        cpu::attention_forward_launch(a, cpu::best_isa(), detail::num_threads());
        return ok();
    });
}

int bert4j_attention_backward_f32(const float* q, const float* k, const float* v, const float* out,
                                  const float* dout, const float* lse, float* dq, float* dk,
                                  float* dv, int64_t batch, int64_t heads, int64_t seq_q,
                                  int64_t seq_k, int64_t head_dim, const int64_t* q_strides,
                                  const int64_t* k_strides, const int64_t* v_strides,
                                  const int64_t* out_strides, const int64_t* dout_strides,
                                  const int64_t* dq_strides, const int64_t* dk_strides,
                                  const int64_t* dv_strides, const int32_t* key_lengths,
                                  const float* mask, const int64_t* mask_strides, float scale,
                                  float dropout_p, uint64_t seed, uint64_t offset) {
    static const char* op = "bert4j_attention_backward_f32";
    return guarded(op, [&]() -> int {
        BERT4J_TRY(check_dense(op, batch, heads, seq_q, seq_k, head_dim, key_lengths, mask,
                               mask_strides, scale, dropout_p));
        const int64_t qsz[3] = {batch, heads, seq_q}, ksz[3] = {batch, heads, seq_k};
        BERT4J_TRY(check_tensor(op, "q", q, q_strides, qsz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "k", k, k_strides, ksz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "v", v, v_strides, ksz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "out", out, out_strides, qsz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "dout", dout, dout_strides, qsz, 3, head_dim, false, kDense));
        BERT4J_TRY(check_tensor(op, "dq", dq, dq_strides, qsz, 3, head_dim, true, kDense));
        BERT4J_TRY(check_tensor(op, "dk", dk, dk_strides, ksz, 3, head_dim, true, kDense));
        BERT4J_TRY(check_tensor(op, "dv", dv, dv_strides, ksz, 3, head_dim, true, kDense));
        if (batch * heads * head_dim == 0 || seq_q + seq_k == 0) return ok();
        if (lse == nullptr && batch * heads * seq_q > 0)
            return fail(BERT4J_ERR_NULL_POINTER,
                        "%s: lse is NULL (expected the forward's [%lld, %lld, %lld] log-sum-exp)", op,
                        ll(batch), ll(heads), ll(seq_q));
        cpu::AttentionArgs a;
        a.q = q; a.k = k; a.v = v; a.out_in = out; a.dout = dout; a.lse_in = lse;
        a.dq = dq; a.dk = dk; a.dv = dv;
        a.units = batch; a.heads = heads; a.seq_q = seq_q; a.seq_k = seq_k; a.head_dim = head_dim;
        dense_strides(a.qs, q_strides); dense_strides(a.ks, k_strides);
        dense_strides(a.vs, v_strides); dense_strides(a.os, out_strides);
        dense_strides(a.dos, dout_strides); dense_strides(a.dqs, dq_strides);
        dense_strides(a.dks, dk_strides); dense_strides(a.dvs, dv_strides);
        a.key_lengths = key_lengths; a.mask = mask; dense_strides(a.ms, mask_strides);
        a.scale = scale; a.dropout_p = dropout_p; a.seed = seed; a.offset = offset;
        cpu::attention_backward_launch(a, cpu::best_isa(), detail::num_threads());
        return ok();
    });
}

int bert4j_attention_varlen_forward_f32(const float* q, const float* k, const float* v, float* out,
                                        float* lse, const int32_t* cu_seqlens, int64_t num_seqs,
                                        int64_t total_tokens, int64_t max_seqlen, int64_t heads,
                                        int64_t head_dim, const int64_t* q_strides,
                                        const int64_t* k_strides, const int64_t* v_strides,
                                        const int64_t* out_strides, float scale, float dropout_p,
                                        uint64_t seed, uint64_t offset) {
    static const char* op = "bert4j_attention_varlen_forward_f32";
    return guarded(op, [&]() -> int {
        BERT4J_TRY(check_varlen(op, cu_seqlens, num_seqs, total_tokens, max_seqlen, heads,
                                head_dim, scale, dropout_p));
        const int64_t sz[2] = {total_tokens, heads};
        BERT4J_TRY(check_tensor(op, "q", q, q_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "k", k, k_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "v", v, v_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "out", out, out_strides, sz, 2, head_dim, true, kVarlen));
        if (total_tokens * heads == 0) return ok();
        cpu::AttentionArgs a;
        a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse;
        a.cu_seqlens = cu_seqlens; a.total_tokens = total_tokens;
        a.units = num_seqs; a.heads = heads; a.seq_q = a.seq_k = max_seqlen; a.head_dim = head_dim;
        varlen_strides(a.qs, q_strides); varlen_strides(a.ks, k_strides);
        varlen_strides(a.vs, v_strides); varlen_strides(a.os, out_strides);
        a.scale = scale; a.dropout_p = dropout_p; a.seed = seed; a.offset = offset;
        cpu::attention_forward_launch(a, cpu::best_isa(), detail::num_threads());
        return ok();
    });
}

int bert4j_attention_varlen_backward_f32(
    const float* q, const float* k, const float* v, const float* out, const float* dout,
    const float* lse, float* dq, float* dk, float* dv, const int32_t* cu_seqlens, int64_t num_seqs,
    int64_t total_tokens, int64_t max_seqlen, int64_t heads, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides, const int64_t* dout_strides, const int64_t* dq_strides,
    const int64_t* dk_strides, const int64_t* dv_strides, float scale, float dropout_p,
    uint64_t seed, uint64_t offset) {
    static const char* op = "bert4j_attention_varlen_backward_f32";
    return guarded(op, [&]() -> int {
        BERT4J_TRY(check_varlen(op, cu_seqlens, num_seqs, total_tokens, max_seqlen, heads,
                                head_dim, scale, dropout_p));
        const int64_t sz[2] = {total_tokens, heads};
        BERT4J_TRY(check_tensor(op, "q", q, q_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "k", k, k_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "v", v, v_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "out", out, out_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "dout", dout, dout_strides, sz, 2, head_dim, false, kVarlen));
        BERT4J_TRY(check_tensor(op, "dq", dq, dq_strides, sz, 2, head_dim, true, kVarlen));
        BERT4J_TRY(check_tensor(op, "dk", dk, dk_strides, sz, 2, head_dim, true, kVarlen));
        BERT4J_TRY(check_tensor(op, "dv", dv, dv_strides, sz, 2, head_dim, true, kVarlen));
        if (total_tokens * heads * head_dim == 0) return ok();
        if (lse == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER,
                        "%s: lse is NULL (expected the forward's [%lld, %lld] log-sum-exp)", op,
                        ll(heads), ll(total_tokens));
        cpu::AttentionArgs a;
        a.q = q; a.k = k; a.v = v; a.out_in = out; a.dout = dout; a.lse_in = lse;
        a.dq = dq; a.dk = dk; a.dv = dv;
        a.cu_seqlens = cu_seqlens; a.total_tokens = total_tokens;
        a.units = num_seqs; a.heads = heads; a.seq_q = a.seq_k = max_seqlen; a.head_dim = head_dim;
        varlen_strides(a.qs, q_strides); varlen_strides(a.ks, k_strides);
        varlen_strides(a.vs, v_strides); varlen_strides(a.os, out_strides);
        varlen_strides(a.dos, dout_strides); varlen_strides(a.dqs, dq_strides);
        varlen_strides(a.dks, dk_strides); varlen_strides(a.dvs, dv_strides);
        a.scale = scale; a.dropout_p = dropout_p; a.seed = seed; a.offset = offset;
        cpu::attention_backward_launch(a, cpu::best_isa(), detail::num_threads());
        return ok();
    });
}

}  // extern "C"
