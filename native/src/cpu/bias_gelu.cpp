// Fused bias + GELU, fp32, CPU, forward and backward. Three layers: row kernels (scalar,
// AVX2+FMA, AVX-512), the launchers (path and thread choice), the checked C entry points.
//
// Backward: dx = dy * gelu'(x + bias), recomputing h = x + bias (the forward saves x, not
// h), with dbias = column sums of dx fused into the same pass (double accumulators per
// fixed block of rows, reduced in block order: bitwise independent of the thread count).
//
// Accuracy (measured by native/tests/test_bias_gelu, float64 reference on the same fp32
// sum h = x + bias):
//  - scalar path: evaluates gelu(h) in double (std::erfc / std::exp) and rounds once, so
//    it is within 1 ulp of the exact value everywhere (also in the far negative tail).
//  - AVX2 and AVX-512 paths, exact GELU: one exp per element, shared by forward and backward
//    (erfc_half8/16): g = exp(-h^2/2) with h^2 entering the reduced argument exactly through an
//    FMA, erfc(|h|/sqrt 2)/2 = g t P(t) with t = 1/(1 + |h|/(2.33 sqrt 2)) and P a degree-7 fit
//    of erfcx (see kErfcxHalf); going through erfc instead of 1 + erf avoids the cancellation
//    that costs 1 + erf() its relative accuracy for h < 0. ~36 vector instructions per 16
//    elements (forward, AVX-512). Measured max relative error 4.9e-7 (AVX2), 5.7e-7 (AVX-512).
//  - AVX2 / AVX-512 paths, tanh GELU: h * sigmoid(2u), u = sqrt(2/pi) (h + 0.044715 h^3), the same
//    cancellation-free form. Its relative error grows like |2u| * 2^-24 in the negative
//    tail (the fp32 rounding of u is amplified by exp), ~1e-6 at h = -4, while the
//    absolute error stays below 1e-9 there.
//  The test states and enforces the bounds (see README).

#include "bias_gelu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include <immintrin.h>
#include "vec_avx2.h"

#include "../common/status.h"
#include "bert4j_kernels.h"

namespace bert4j::cpu {
namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kTanhCubic = 0.044715;

// ---- kernel layer: portable scalar rows -------------------------------------------------

// gelu(h) in double. Exact: Phi(h) = erfc(-h / sqrt 2) / 2, no cancellation for h < 0. tanh:
// 0.5 h (1 + tanh u) == h / (1 + exp(-2u)); exp overflow gives h / inf = -0.
double gelu_exact(double h) { return 0.5 * h * std::erfc(-h * kSqrt1_2); }

double gelu_tanh(double h) {
    const double u = kSqrt2OverPi * (h + kTanhCubic * h * h * h);
    return h / (1.0 + std::exp(-2.0 * u));
}

void row_scalar_exact(const float* x, const float* b, float* y, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        const double h = static_cast<float>(x[j] + b[j]);  // the fp32 sum, as the AVX2 path
        y[j] = static_cast<float>(gelu_exact(h));
    }
}

void row_scalar_tanh(const float* x, const float* b, float* y, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        const double h = static_cast<float>(x[j] + b[j]);
        y[j] = static_cast<float>(gelu_tanh(h));
    }
}


// Backward rows: dx = dy * gelu'(h), h = fp32(x + b); when acc != nullptr, acc[j] += dx[j]
// (the rounded fp32 dx, in double), which is what the column sum of a dx tensor would see.
//  exact: gelu'(h) = Phi(h) + h phi(h), phi(h) = exp(-h^2/2) / sqrt(2 pi).
//  tanh:  gelu'(h) = s + 2 h s (1 - s) u'(h), s = sigmoid(2u), u' = sqrt(2/pi)(1 + 3c h^2),
//         with s (1 - s) = a / (1 + a)^2, a = exp(-2|u|) <= 1: no overflow, no cancellation.
// dx may alias dy: each element is read before it is written.
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

double gelu_grad_exact(double h) {
    return 0.5 * std::erfc(-h * kSqrt1_2) + h * kInvSqrt2Pi * std::exp(-0.5 * h * h);
}

double gelu_grad_tanh(double h) {
    const double u = kSqrt2OverPi * (h + kTanhCubic * h * h * h);
    const double a = std::exp(-2.0 * std::fabs(u));
    const double r = 1.0 / (1.0 + a);
    const double s = u >= 0 ? r : a * r;
    return s + 2.0 * h * (a * r * r) * kSqrt2OverPi * (1.0 + 3.0 * kTanhCubic * h * h);
}

template <bool Tanh>
void row_scalar_backward(const float* dy, const float* x, const float* b, float* dx,
                         double* acc, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        const double h = static_cast<float>(x[j] + b[j]);
        const float g = static_cast<float>(static_cast<double>(dy[j]) *
                                           (Tanh ? gelu_grad_tanh(h) : gelu_grad_exact(h)));
        dx[j] = g;
        if (acc != nullptr) acc[j] += g;
    }
}

// Training forward rows: y as the forward rows and d = gelu'(h) rounded to fp32, the derivative
// the backward multiplies by (bert4j_bias_gelu_forward_train_f32).
template <bool Tanh>
void row_scalar_train(const float* x, const float* b, float* y, float* d, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        const double h = static_cast<float>(x[j] + b[j]);  // read before y[j] is written (y may be x)
        y[j] = static_cast<float>(Tanh ? gelu_tanh(h) : gelu_exact(h));
        d[j] = static_cast<float>(Tanh ? gelu_grad_tanh(h) : gelu_grad_exact(h));
    }
}

// Backward from a saved derivative over a block of rows: dx = dy * d (fp32) and, with Acc,
// acc[j] += the column sums of dx, each column summed in row order from 0 (the order every path
// keeps, so dbias is bitwise the same on all of them for the same products). dx may alias dy or d.
template <bool Acc>
void block_scalar_backward_saved(const float* dy, int64_t lddy, const float* d, int64_t ldd, float* dx,
                                 int64_t lddx, double* acc, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
            const float g = dy[r * lddy + j] * d[r * ldd + j];
            dx[r * lddx + j] = g;
            if (Acc) acc[j] += g;
        }
}

// ---- kernel layer: AVX2 + FMA rows ---------------------------------------------------
// Compiled for AVX2/FMA through target attributes only, so the rest of the library (and
// the scalar path) still runs on CPUs without them; best_isa() gates every call.

#define BERT4J_AVX2 __attribute__((target("avx2,fma")))

// exp(a), a clamped to [-87.3, 88] (Cody-Waite + Cephes polynomial): shared with attention.
using bert4j::cpu::avx2::exp8;

// The exact GELU's vector paths (forward, training forward and backward share one evaluation):
//   g  = exp(-h^2/2)                          0 where |h| > 13 (and for NaN)
//   e  = erfc(|h|/sqrt 2)/2 = Phi(-|h|)       = g t P(t), t = 1/(1 + |h| kT)
//   ac = min(|h|, 13)
// exp(-h^2/2): n = round(-h^2/2 log2 e) by the 1.5 * 2^23 shift, then the reduced argument
// r = fma(h, -h/2, -n ln2_hi) - n ln2_lo: the product h (-h/2) enters the FMA exactly (-h/2
// is exact) and n ln2_hi is exact (a 9-bit constant times |n| <= 122), so r carries no error
// from rounding h^2, even at h^2 ~ 170 where that rounding alone would cost ~5e-6; exp(r) by a
// degree-6 polynomial (minimax-weighted fit, relative 1.9e-9 on |r| <= ln2/2), times 2^n.
// erfcx(z) = exp(z^2) erfc(z) is smooth and bounded, so e keeps relative accuracy in the tail
// (no 1 + erf cancellation): P is a degree-7 fit (Lawson-weighted least squares, relative
// error; coefficients halved, so t P(t) g is erfc/2 directly) to erfcx(z)/(2t) on
// 0 <= z <= 9.25 with t = 1/(1 + z/2.33), constrained to P(1) = 1/2 and rounded so that the
// fp32 Horner sum at t = 1 is exactly 0.5 (gelu(0) = 0, gelu'(0) = 0.5 exactly); fit error
// 1.1e-7 with the fp32 coefficients.
// Then gelu(h) = h Phi(h) = relu(h) - ac e for either sign (h >= 0: h - h e; h < 0: -|h| e)
// in one FMA: +inf -> +inf, -inf -> -0, NaN -> NaN.
#define BERT4J_ERFCX_HALF_COEFFS(X)                                                          \
    X(3.671377525e-02f) X(-1.555867940e-01f) X(1.940564811e-01f) X(-4.449259117e-02f)       \
    X(1.241978705e-01f) X(1.020995900e-01f) X(1.219859496e-01f) X(1.210257113e-01f)
constexpr float kErfcxHalf[] = {
#define BERT4J_X(c) c,
    BERT4J_ERFCX_HALF_COEFFS(BERT4J_X)
#undef BERT4J_X
};
constexpr int kErfcxTerms = sizeof(kErfcxHalf) / sizeof(kErfcxHalf[0]);
constexpr float kTscale = 3.034793139e-01f;  // t = 1 / (1 + |h| / (2.33 sqrt 2))
// exp(r) on |r| <= ln2/2, highest degree first.
constexpr float kExpR[] = {1.383673167e-03f, 8.374905214e-03f, 4.166823253e-02f, 1.666641980e-01f,
                           4.999999106e-01f, 1.0f, 1.0f};
constexpr float kShift = 12582912.0f;          // 1.5 * 2^23: adding it rounds to an integer
constexpr float kHalfLog2e = 0.72134752044448170f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = hi + lo
constexpr float kHMax = 13.0f;  // |h| > 13: phi and erfc/2 are < 1e-37, flushed to 0

BERT4J_AVX2 inline void erfc_half8(__m256 h, __m256& e, __m256& g, __m256& ac) {
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), h);  // |h|
    ac = _mm256_min_ps(a, _mm256_set1_ps(kHMax));                    // NaN -> 13
    const __m256 c = _mm256_mul_ps(h, _mm256_set1_ps(-0.5f));
    const __m256 shift = _mm256_set1_ps(kShift);
    const __m256 k = _mm256_fmadd_ps(h, _mm256_mul_ps(h, _mm256_set1_ps(-kHalfLog2e)), shift);
    const __m256 n = _mm256_sub_ps(k, shift);
    __m256 r = _mm256_fmadd_ps(h, c, _mm256_mul_ps(n, _mm256_set1_ps(-kLn2Hi)));
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kExpR[0]);
    for (int i = 1; i < 7; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpR[i]));
    // 2^n: k's low mantissa bits hold n (two's complement); shifted into the exponent field the
    // shift constant's own bits drop out. Exact for the kept lanes (n >= -122, p in [0.7, 1.5]).
    p = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p),
                                             _mm256_slli_epi32(_mm256_castps_si256(k), 23)));
    g = _mm256_and_ps(_mm256_cmp_ps(a, _mm256_set1_ps(kHMax), _CMP_LE_OQ), p);
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(ac, _mm256_set1_ps(kTscale), one));
    __m256 q = _mm256_set1_ps(kErfcxHalf[0]);
    for (int i = 1; i < kErfcxTerms; ++i) q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kErfcxHalf[i]));
    e = _mm256_mul_ps(_mm256_mul_ps(t, q), g);
}

// gelu(h) = h Phi(h) = relu(h) - ac e. max(-0, h) is h for h >= 0 or NaN, -0 below.
BERT4J_AVX2 inline __m256 gelu_from_erfc8(__m256 h, __m256 e, __m256 ac) {
    return _mm256_fnmadd_ps(ac, e, _mm256_max_ps(_mm256_set1_ps(-0.0f), h));
}

BERT4J_AVX2 inline __m256 gelu_exact8(__m256 h) {
    __m256 e, g, ac;
    erfc_half8(h, e, g, ac);
    return gelu_from_erfc8(h, e, ac);
}

// 0.5 h (1 + tanh u) = h / (1 + exp(-2u)), u = sqrt(2/pi) h (1 + 0.044715 h^2).
BERT4J_AVX2 inline __m256 gelu_tanh8(__m256 h) {
    const __m256 h2 = _mm256_mul_ps(h, h);
    const __m256 inner = _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), h2, _mm256_set1_ps(1.0f));
    const __m256 m2u = _mm256_mul_ps(_mm256_mul_ps(h, _mm256_set1_ps(-1.5957691216057308f)), inner);
    const __m256 y = _mm256_div_ps(h, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(m2u)));
    // -2u > 87 (h < -10): |y| < 1e-37 but exp8 is clamped there; return -0 instead.
    const __m256 tail = _mm256_cmp_ps(m2u, _mm256_set1_ps(87.0f), _CMP_GT_OQ);
    return _mm256_blendv_ps(y, _mm256_and_ps(h, _mm256_set1_ps(-0.0f)), tail);
}

template <bool Tanh>
BERT4J_AVX2 void row_avx2(const float* x, const float* b, float* y, int64_t n) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {  // two vectors per step, as row_avx512
        const __m256 h0 = _mm256_add_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j));
        const __m256 h1 = _mm256_add_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(b + j + 8));
        const __m256 y0 = Tanh ? gelu_tanh8(h0) : gelu_exact8(h0);
        const __m256 y1 = Tanh ? gelu_tanh8(h1) : gelu_exact8(h1);
        _mm256_storeu_ps(y + j, y0);
        _mm256_storeu_ps(y + j + 8, y1);
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 h = _mm256_add_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j));
        _mm256_storeu_ps(y + j, Tanh ? gelu_tanh8(h) : gelu_exact8(h));
    }
    if (j < n) {
        // Masked tail: the same math as the body, and masked-off lanes are never touched.
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)), lane);
        const __m256 h = _mm256_add_ps(_mm256_maskload_ps(x + j, mask), _mm256_maskload_ps(b + j, mask));
        _mm256_maskstore_ps(y + j, mask, Tanh ? gelu_tanh8(h) : gelu_exact8(h));
    }
}


// gelu'(h) = Phi(h) + h phi(h), phi(h) = exp(-h^2/2) / sqrt(2 pi): the same evaluation as
// the forward (erfc_half8), whose one exp serves both terms. Phi(h) = e for h < 0, 1 - e else.
// At h = +-inf this is NaN (inf * 0), as libtorch's gelu_backward.
BERT4J_AVX2 inline __m256 grad_from_erfc8(__m256 h, __m256 e, __m256 g) {
    const __m256 neg = _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 cdf = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), e), e, neg);
    return _mm256_fmadd_ps(_mm256_mul_ps(h, g), _mm256_set1_ps(0.39894228040143267794f), cdf);
}

BERT4J_AVX2 inline __m256 gelu_grad_exact8(__m256 h) {
    __m256 e, g, ac;
    erfc_half8(h, e, g, ac);
    return grad_from_erfc8(h, e, g);
}

// gelu'(h) = s + 2 h s (1 - s) u', s = sigmoid(2u), s (1 - s) = a / (1 + a)^2, a = exp(-2|u|).
BERT4J_AVX2 inline __m256 gelu_grad_tanh8(__m256 h) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 h2 = _mm256_mul_ps(h, h);
    const __m256 inner = _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), h2, one);
    const __m256 two_u = _mm256_mul_ps(_mm256_mul_ps(h, _mm256_set1_ps(1.5957691216057308f)), inner);
    const __m256 abs2u = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), two_u);
    __m256 a = exp8(_mm256_sub_ps(_mm256_setzero_ps(), abs2u));
    // |2u| > 87: a < 1e-37, but exp8 is clamped there; flush it.
    a = _mm256_andnot_ps(_mm256_cmp_ps(abs2u, _mm256_set1_ps(87.0f), _CMP_GT_OQ), a);
    const __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, a));
    const __m256 neg = _mm256_cmp_ps(two_u, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 sig = _mm256_blendv_ps(r, _mm256_mul_ps(a, r), neg);
    const __m256 sig_d = _mm256_mul_ps(_mm256_mul_ps(a, r), r);              // s (1 - s)
    // 2 u' = 2 sqrt(2/pi) (1 + 3c h^2); h^2 capped at 1e30 (it is < 100 wherever s (1 - s) is not
    // 0) so that h s (1 - s) 2u' is 0, not 0 * inf = NaN, once h^2 overflows (|h| > 1.8e19).
    const __m256 two_du = _mm256_mul_ps(_mm256_set1_ps(1.5957691216057308f),
                                        _mm256_fmadd_ps(_mm256_set1_ps(3.0f * 0.044715f),
                                                        _mm256_min_ps(h2, _mm256_set1_ps(1e30f)), one));
    return _mm256_fmadd_ps(_mm256_mul_ps(h, sig_d), two_du, sig);
}

// acc[j..j+7] += (double) v, for the column sums.
BERT4J_AVX2 inline void acc8(double* acc, __m256 v) {
    _mm256_storeu_pd(acc, _mm256_add_pd(_mm256_loadu_pd(acc), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(acc + 4, _mm256_add_pd(_mm256_loadu_pd(acc + 4),
                                            _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

template <bool Tanh, bool Acc>
BERT4J_AVX2 void row_avx2_backward(const float* dy, const float* x, const float* b, float* dx,
                                   double* acc, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 h = _mm256_add_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j));
        const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + j),
                                       Tanh ? gelu_grad_tanh8(h) : gelu_grad_exact8(h));
        _mm256_storeu_ps(dx + j, g);
        if (Acc) acc8(acc + j, g);
    }
    if (j < n) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)), lane);
        const __m256 h = _mm256_add_ps(_mm256_maskload_ps(x + j, mask), _mm256_maskload_ps(b + j, mask));
        const __m256 g = _mm256_mul_ps(_mm256_maskload_ps(dy + j, mask),
                                       Tanh ? gelu_grad_tanh8(h) : gelu_grad_exact8(h));
        _mm256_maskstore_ps(dx + j, mask, g);
        if (Acc) {
            alignas(32) float tmp[8];
            _mm256_store_ps(tmp, g);
            for (int64_t k = 0; j + k < n; ++k) acc[j + k] += tmp[k];
        }
    }
}

// Training forward: y and d = gelu'(h) from one evaluation of h; each is the same float
// operations as row_avx2 and row_avx2_backward's derivative, so bitwise their values.
template <bool Tanh>
BERT4J_AVX2 inline void train8(__m256 h, __m256& y, __m256& d) {
    if (Tanh) {
        y = gelu_tanh8(h);
        d = gelu_grad_tanh8(h);
    } else {
        __m256 e, g, ac;
        erfc_half8(h, e, g, ac);
        y = gelu_from_erfc8(h, e, ac);
        d = grad_from_erfc8(h, e, g);
    }
}

template <bool Tanh>
BERT4J_AVX2 void row_avx2_train(const float* x, const float* b, float* y, float* d, int64_t n) {
    int64_t j = 0;
    __m256 vy, vd;
    for (; j + 8 <= n; j += 8) {
        train8<Tanh>(_mm256_add_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(b + j)), vy, vd);
        _mm256_storeu_ps(y + j, vy);
        _mm256_storeu_ps(d + j, vd);
    }
    if (j < n) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)), lane);
        train8<Tanh>(_mm256_add_ps(_mm256_maskload_ps(x + j, mask), _mm256_maskload_ps(b + j, mask)), vy, vd);
        _mm256_maskstore_ps(y + j, mask, vy);
        _mm256_maskstore_ps(d + j, mask, vd);
    }
}

// block_scalar_backward_saved in AVX2: strips of 16 columns whose column sums stay in four
// double accumulators across the block's rows (still each column in row order from 0), the
// tail columns one at a time. Keeping the sums in registers instead of loading and storing an
// acc row per row took the dbias part of a 128 x 1536 backward from ~50 to ~20 us (AVX-512).
template <bool Acc>
BERT4J_AVX2 void block_avx2_backward_saved(const float* dy, int64_t lddy, const float* d, int64_t ldd,
                                           float* dx, int64_t lddx, double* acc, int64_t rows, int64_t n) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t r = 0; r < rows; ++r) {
            const float* p = dy + r * lddy + j;
            const float* q = d + r * ldd + j;
            float* o = dx + r * lddx + j;
            const __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(q));
            const __m256 g1 = _mm256_mul_ps(_mm256_loadu_ps(p + 8), _mm256_loadu_ps(q + 8));
            _mm256_storeu_ps(o, g0);
            _mm256_storeu_ps(o + 8, g1);
            if (Acc) {
                a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(g0)));
                a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(g0, 1)));
                a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(g1)));
                a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(g1, 1)));
            }
        }
        if (!Acc) continue;
        _mm256_storeu_pd(acc + j, _mm256_add_pd(_mm256_loadu_pd(acc + j), a0));
        _mm256_storeu_pd(acc + j + 4, _mm256_add_pd(_mm256_loadu_pd(acc + j + 4), a1));
        _mm256_storeu_pd(acc + j + 8, _mm256_add_pd(_mm256_loadu_pd(acc + j + 8), a2));
        _mm256_storeu_pd(acc + j + 12, _mm256_add_pd(_mm256_loadu_pd(acc + j + 12), a3));
    }
    for (; j < n; ++j) {
        double a = 0.0;
        for (int64_t r = 0; r < rows; ++r) {
            const float g = dy[r * lddy + j] * d[r * ldd + j];
            dx[r * lddx + j] = g;
            a += g;
        }
        if (Acc) acc[j] += a;
    }
}

#undef BERT4J_AVX2

// ---- kernel layer: AVX-512 rows ------------------------------------------------------
// The same math as the AVX2 rows, 16 lanes, with mask registers for the blends and the
// row tails, roundscale/scalef in the exp, and reciprocals from rcp14 plus one Newton step
// (relative error < 2^-23 after the step, about 1 ulp) instead of a divide.

#define BERT4J_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
// GCC 12's avx512fintrin.h passes _mm512_undefined_ps() as the unused merge source of
// unmasked ops, which trips -Wmaybe-uninitialized after inlining; the value is never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// exp(a), a clamped to [-87.3, 88] (Cody-Waite by ln 2, the Cephes expf polynomial, scalef).
BERT4J_AVX512 inline __m512 exp16(__m512 a) {
    a = _mm512_min_ps(_mm512_max_ps(a, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), a);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// Lanes of a row's next 16 columns when `left` columns remain (all 16 when left >= 16).
inline __mmask16 tail_mask16(int64_t left) {
    return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

// 1 / d for d >= 1: rcp14 and one Newton step.
BERT4J_AVX512 inline __m512 recip16(__m512 d) {
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

// erfc_half8 in 16 lanes: the same constants and reduction, 2^n by a zero-masked scalef, the
// reciprocal from rcp14 and a Newton step.
BERT4J_AVX512 inline void erfc_half16(__m512 h, __m512& e, __m512& g, __m512& ac) {
    const __m512 a = _mm512_abs_ps(h);
    ac = _mm512_min_ps(a, _mm512_set1_ps(kHMax));  // NaN -> 13
    const __m512 c = _mm512_mul_ps(h, _mm512_set1_ps(-0.5f));
    const __m512 shift = _mm512_set1_ps(kShift);
    const __m512 n = _mm512_sub_ps(
        _mm512_fmadd_ps(h, _mm512_mul_ps(h, _mm512_set1_ps(-kHalfLog2e)), shift), shift);
    __m512 r = _mm512_fmadd_ps(h, c, _mm512_mul_ps(n, _mm512_set1_ps(-kLn2Hi)));
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
    __m512 p = _mm512_set1_ps(kExpR[0]);
    for (int i = 1; i < 7; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpR[i]));
    g = _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(kHMax), _CMP_LE_OQ), p, n);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 t = recip16(_mm512_fmadd_ps(ac, _mm512_set1_ps(kTscale), one));
    __m512 q = _mm512_set1_ps(kErfcxHalf[0]);
    for (int i = 1; i < kErfcxTerms; ++i) q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(kErfcxHalf[i]));
    e = _mm512_mul_ps(_mm512_mul_ps(t, q), g);
}

BERT4J_AVX512 inline __m512 gelu_from_erfc16(__m512 h, __m512 e, __m512 ac) {
    return _mm512_fnmadd_ps(ac, e, _mm512_max_ps(_mm512_set1_ps(-0.0f), h));
}

BERT4J_AVX512 inline __m512 gelu_exact16(__m512 h) {
    __m512 e, g, ac;
    erfc_half16(h, e, g, ac);
    return gelu_from_erfc16(h, e, ac);
}

BERT4J_AVX512 inline __m512 grad_from_erfc16(__m512 h, __m512 e, __m512 g) {
    const __mmask16 neg = _mm512_cmp_ps_mask(h, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 cdf = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e), neg, e);
    return _mm512_fmadd_ps(_mm512_mul_ps(h, g), _mm512_set1_ps(0.39894228040143267794f), cdf);
}

BERT4J_AVX512 inline __m512 gelu_grad_exact16(__m512 h) {
    __m512 e, g, ac;
    erfc_half16(h, e, g, ac);
    return grad_from_erfc16(h, e, g);
}

BERT4J_AVX512 inline __m512 gelu_tanh16(__m512 h) {
    const __m512 h2 = _mm512_mul_ps(h, h);
    const __m512 inner = _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), h2, _mm512_set1_ps(1.0f));
    const __m512 m2u = _mm512_mul_ps(_mm512_mul_ps(h, _mm512_set1_ps(-1.5957691216057308f)), inner);
    const __m512 y = _mm512_mul_ps(h, recip16(_mm512_add_ps(_mm512_set1_ps(1.0f),
                                                            exp16(m2u))));
    // -2u > 87 (h < -10): |y| < 1e-37 but the exp is clamped there; return -0 instead.
    const __mmask16 tail = _mm512_cmp_ps_mask(m2u, _mm512_set1_ps(87.0f), _CMP_GT_OQ);
    return _mm512_mask_mov_ps(y, tail, _mm512_castsi512_ps(_mm512_and_si512(
                                           _mm512_castps_si512(h), _mm512_set1_epi32(INT32_MIN))));
}

BERT4J_AVX512 inline __m512 gelu_grad_tanh16(__m512 h) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 h2 = _mm512_mul_ps(h, h);
    const __m512 inner = _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), h2, one);
    const __m512 two_u = _mm512_mul_ps(_mm512_mul_ps(h, _mm512_set1_ps(1.5957691216057308f)), inner);
    const __m512 abs2u = _mm512_abs_ps(two_u);
    __m512 a = exp16(_mm512_sub_ps(_mm512_setzero_ps(), abs2u));
    a = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(abs2u, _mm512_set1_ps(87.0f), _CMP_LE_OQ), a);
    const __m512 r = recip16(_mm512_add_ps(one, a));
    const __mmask16 neg = _mm512_cmp_ps_mask(two_u, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 ar = _mm512_mul_ps(a, r);
    const __m512 sig = _mm512_mask_mov_ps(r, neg, ar);
    const __m512 sig_d = _mm512_mul_ps(ar, r);
    const __m512 two_du = _mm512_mul_ps(_mm512_set1_ps(1.5957691216057308f),
                                        _mm512_fmadd_ps(_mm512_set1_ps(3.0f * 0.044715f),
                                                        _mm512_min_ps(h2, _mm512_set1_ps(1e30f)), one));  // as AVX2
    return _mm512_fmadd_ps(_mm512_mul_ps(h, sig_d), two_du, sig);
}

// Two full vectors per step (their dependency chains interleave: ~10% faster than one on the
// Emerald Rapids host), then masked vectors of 16 for the tail.
template <bool Tanh>
BERT4J_AVX512 void row_avx512(const float* x, const float* b, float* y, int64_t n) {
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        const __m512 h0 = _mm512_add_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(b + j));
        const __m512 h1 = _mm512_add_ps(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(b + j + 16));
        const __m512 y0 = Tanh ? gelu_tanh16(h0) : gelu_exact16(h0);
        const __m512 y1 = Tanh ? gelu_tanh16(h1) : gelu_exact16(h1);
        _mm512_storeu_ps(y + j, y0);
        _mm512_storeu_ps(y + j + 16, y1);
    }
    for (; j < n; j += 16) {
        const __mmask16 m = tail_mask16(n - j);
        const __m512 h = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, b + j));
        _mm512_mask_storeu_ps(y + j, m, Tanh ? gelu_tanh16(h) : gelu_exact16(h));
    }
}

#define BERT4J_AVX512_BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512bf16,avx2,fma")))

// gelu(x + bias) of a block of up to 32 rows x 32 columns, rounded to bf16 (to nearest even,
// as vcvtne2ps2bf16) into one or two 16 x 32 AMX operand tiles (t1 == nullptr: 16 rows). The
// same float operations as row_avx512, so the values are those rows' outputs, rounded.
template <bool Tanh>
BERT4J_AVX512_BF16 void gelu_block_bf16(const float* x, int64_t ldx, const float* b, int rows, int cols,
                                        uint16_t* t0, uint16_t* t1) {
    const __mmask16 lo = cols >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1u);
    const __mmask16 hi = cols <= 16 ? __mmask16(0)
                         : cols >= 32 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (cols - 16)) - 1u);
    const __m512 b0 = b != nullptr ? _mm512_maskz_loadu_ps(lo, b) : _mm512_setzero_ps();
    const __m512 b1 = b != nullptr ? _mm512_maskz_loadu_ps(hi, b + 16) : _mm512_setzero_ps();
    const int total = t1 != nullptr ? 32 : 16;
    for (int r = 0; r < total; ++r) {
        uint16_t* d = r < 16 ? t0 + r * 32 : t1 + (r - 16) * 32;
        if (r >= rows) {
            _mm512_store_si512(d, _mm512_setzero_si512());
            continue;
        }
        const float* xr = x + r * ldx;
        const __m512 h0 = _mm512_add_ps(_mm512_maskz_loadu_ps(lo, xr), b0);
        const __m512 h1 = _mm512_add_ps(_mm512_maskz_loadu_ps(hi, xr + 16), b1);
        const __m512 g0 = _mm512_maskz_mov_ps(lo, Tanh ? gelu_tanh16(h0) : gelu_exact16(h0));
        const __m512 g1 = _mm512_maskz_mov_ps(hi, Tanh ? gelu_tanh16(h1) : gelu_exact16(h1));
        _mm512_store_si512(d, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(g1, g0)));
    }
}

template <bool Tanh, bool Acc>
BERT4J_AVX512 void row_avx512_backward(const float* dy, const float* x, const float* b, float* dx,
                                       double* acc, int64_t n) {
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask16(n - j);
        const __m512 h = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, b + j));
        const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + j),
                                       Tanh ? gelu_grad_tanh16(h) : gelu_grad_exact16(h));
        _mm512_mask_storeu_ps(dx + j, m, g);
        if (Acc) {
            const __mmask8 lo = static_cast<__mmask8>(m), hi = static_cast<__mmask8>(m >> 8);
            _mm512_mask_storeu_pd(acc + j, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, acc + j),
                                  _mm512_cvtps_pd(_mm512_castps512_ps256(g))));
            _mm512_mask_storeu_pd(acc + j + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, acc + j + 8),
                                  _mm512_cvtps_pd(_mm512_extractf32x8_ps(g, 1))));
        }
    }
}

// Training forward: y and d = gelu'(h), bitwise row_avx512's y and the backward's derivative.
template <bool Tanh>
BERT4J_AVX512 inline void train16(__m512 h, __m512& y, __m512& d) {
    if (Tanh) {
        y = gelu_tanh16(h);
        d = gelu_grad_tanh16(h);
    } else {
        __m512 e, g, ac;
        erfc_half16(h, e, g, ac);
        y = gelu_from_erfc16(h, e, ac);
        d = grad_from_erfc16(h, e, g);
    }
}

// As row_avx512: two full vectors per step, then masked ones. Every value of x is loaded
// before the step stores (y or d may be x).
template <bool Tanh>
BERT4J_AVX512 void row_avx512_train(const float* x, const float* b, float* y, float* d, int64_t n) {
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 y0, d0, y1, d1;
        const __m512 h0 = _mm512_add_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(b + j));
        const __m512 h1 = _mm512_add_ps(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(b + j + 16));
        train16<Tanh>(h0, y0, d0);
        train16<Tanh>(h1, y1, d1);
        _mm512_storeu_ps(y + j, y0);
        _mm512_storeu_ps(y + j + 16, y1);
        _mm512_storeu_ps(d + j, d0);
        _mm512_storeu_ps(d + j + 16, d1);
    }
    for (; j < n; j += 16) {
        const __mmask16 m = tail_mask16(n - j);
        __m512 vy, vd;
        train16<Tanh>(_mm512_add_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, b + j)), vy, vd);
        _mm512_mask_storeu_ps(y + j, m, vy);
        _mm512_mask_storeu_ps(d + j, m, vd);
    }
}

// The AVX-512 form of block_avx2_backward_saved: strips of 32 columns in four double
// accumulators (wider strips measured slower), the tail in masked strips of 16.
template <bool Acc>
BERT4J_AVX512 void block_avx512_backward_saved(const float* dy, int64_t lddy, const float* d, int64_t ldd,
                                               float* dx, int64_t lddx, double* acc, int64_t rows, int64_t n) {
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t r = 0; r < rows; ++r) {
            const float* p = dy + r * lddy + j;
            const float* q = d + r * ldd + j;
            float* o = dx + r * lddx + j;
            const __m512 g0 = _mm512_mul_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(q));
            const __m512 g1 = _mm512_mul_ps(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(q + 16));
            _mm512_storeu_ps(o, g0);
            _mm512_storeu_ps(o + 16, g1);
            if (Acc) {
                a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(g0)));
                a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(g0, 1)));
                a2 = _mm512_add_pd(a2, _mm512_cvtps_pd(_mm512_castps512_ps256(g1)));
                a3 = _mm512_add_pd(a3, _mm512_cvtps_pd(_mm512_extractf32x8_ps(g1, 1)));
            }
        }
        if (!Acc) continue;
        _mm512_storeu_pd(acc + j, _mm512_add_pd(_mm512_loadu_pd(acc + j), a0));
        _mm512_storeu_pd(acc + j + 8, _mm512_add_pd(_mm512_loadu_pd(acc + j + 8), a1));
        _mm512_storeu_pd(acc + j + 16, _mm512_add_pd(_mm512_loadu_pd(acc + j + 16), a2));
        _mm512_storeu_pd(acc + j + 24, _mm512_add_pd(_mm512_loadu_pd(acc + j + 24), a3));
    }
    for (; j < n; j += 16) {
        const __mmask16 m = tail_mask16(n - j);
        const __mmask8 lo = static_cast<__mmask8>(m), hi = static_cast<__mmask8>(m >> 8);
        __m512d a0 = _mm512_setzero_pd(), a1 = a0;
        for (int64_t r = 0; r < rows; ++r) {
            const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + r * lddy + j),
                                           _mm512_maskz_loadu_ps(m, d + r * ldd + j));
            _mm512_mask_storeu_ps(dx + r * lddx + j, m, g);
            if (Acc) {
                a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(g)));
                a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(g, 1)));
            }
        }
        if (!Acc) continue;
        _mm512_mask_storeu_pd(acc + j, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, acc + j), a0));
        _mm512_mask_storeu_pd(acc + j + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, acc + j + 8), a1));
    }
}

#pragma GCC diagnostic pop
#undef BERT4J_AVX512


using RowFn = void (*)(const float*, const float*, float*, int64_t);

RowFn pick_row(Isa isa, int approximate) {
    const bool tanh = approximate == BERT4J_GELU_TANH;
    if (isa == Isa::Avx512) return tanh ? row_avx512<true> : row_avx512<false>;
    if (isa == Isa::Avx2Fma) return tanh ? row_avx2<true> : row_avx2<false>;
    return tanh ? row_scalar_tanh : row_scalar_exact;
}


using BackwardRowFn = void (*)(const float*, const float*, const float*, float*, double*, int64_t);

BackwardRowFn pick_backward_row(Isa isa, int approximate, bool acc) {
    const bool tanh = approximate == BERT4J_GELU_TANH;
    if (isa == Isa::Avx512) {
        if (tanh) return acc ? row_avx512_backward<true, true> : row_avx512_backward<true, false>;
        return acc ? row_avx512_backward<false, true> : row_avx512_backward<false, false>;
    }
    if (isa == Isa::Avx2Fma) {
        if (tanh) return acc ? row_avx2_backward<true, true> : row_avx2_backward<true, false>;
        return acc ? row_avx2_backward<false, true> : row_avx2_backward<false, false>;
    }
    return tanh ? row_scalar_backward<true> : row_scalar_backward<false>;
}

// Column sums of dx are accumulated per block of rows into its own double row, then the
// blocks are added in block order. The blocking depends on rows only (never on the thread
// count), so dbias is bitwise the same with 1 or N threads. At most kMaxRowBlocks blocks,
// so the scratch stays small ([blocks, cols] doubles: 0.75 MB at cols 3072), and at least
// kMinBlockRows rows per block (a 128-row input makes 8 blocks, not 32: less scratch to clear
// and reduce for the same parallelism on a few cores).
constexpr int64_t kMaxRowBlocks = 32;
constexpr int64_t kMinBlockRows = 16;

// Below this many elements a fork/join costs more than it saves (~10-20 us per row block).
constexpr int64_t kMinElementsPerThread = int64_t{1} << 15;

}  // namespace

bool isa_supported(Isa isa) {
    if (isa == Isa::Scalar) return true;
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == Isa::Avx2Fma) return avx2;
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

Isa best_isa() {
    static const Isa isa = [] {
        const char* forced = std::getenv("BERT4J_CPU_ISA");
        if (forced != nullptr && std::strcmp(forced, "scalar") == 0) return Isa::Scalar;
        const bool cap_avx2 = forced != nullptr && std::strcmp(forced, "avx2") == 0;
        if (!cap_avx2 && isa_supported(Isa::Avx512)) return Isa::Avx512;
        return isa_supported(Isa::Avx2Fma) ? Isa::Avx2Fma : Isa::Scalar;
    }();
    return isa;
}

// ---- launcher layer ---------------------------------------------------------------------

void bias_gelu_block_bf16(const float* x, int64_t ldx, const float* bias, int rows, int cols,
                          uint16_t* tile0, uint16_t* tile1, int approximate) {
    if (approximate == BERT4J_GELU_TANH) gelu_block_bf16<true>(x, ldx, bias, rows, cols, tile0, tile1);
    else gelu_block_bf16<false>(x, ldx, bias, rows, cols, tile0, tile1);
}


namespace {

// row(r) for every row, over up to max_threads threads (fewer for little work: a fork/join costs
// more than it saves below kMinElementsPerThread elements per thread).
//
// Guided, not static, scheduling (here and in rows_with_column_sums): with libgomp's passive
// wait policy (bert4j's default) a team thread sleeps between parallel regions and starts 7-25 us
// after the region does (measured on the 2-core KVM host: 7 us right after another region, 14-25
// us after a few hundred us of single-threaded work). A static split makes the calling thread
// wait that long for the late thread's half; guided lets the calling thread take the first,
// largest chunk (half the rows, the same rows a static split gives it, so each core finds its
// rows in its own cache in the backward) and the late thread takes half of what is left when it
// arrives. At 128 x 1536 exact, forward + backward interleaved with 150 us gaps: training forward
// 93-109 -> 87-98 us, saved backward 68-81 -> 66-76 us (medians of 3.8k calls, 3 runs); dynamic
// chunks of 1-8 rows were slower than static (rows land in the other core's cache). Bitwise the
// same results: rows are independent and column sums are reduced in block order.
template <class Row>
void for_each_row(int64_t rows, int64_t cols, int max_threads, const Row& row) {
    const int64_t by_work = std::max<int64_t>(1, rows * cols / kMinElementsPerThread);
    const int threads = static_cast<int>(std::min<int64_t>({max_threads, rows, by_work}));
#pragma omp parallel for num_threads(threads) schedule(guided) if (threads > 1)
    for (int64_t r = 0; r < rows; ++r) row(r);
}

// Runs block(r0, r1, acc) over all rows and, when dbias is not NULL, writes dbias = the column
// sums the blocks add into acc (one zeroed double row per block). Without dbias the rows are
// handed out one at a time (acc = nullptr). Column sums are accumulated per block of rows into
// its own double row, then the blocks are added in block order (see kMaxRowBlocks): bitwise
// the same with 1 or N threads.
template <class Block>
void rows_with_column_sums(int64_t rows, int64_t cols, float* dbias, int max_threads, const Block& block) {
    if (dbias == nullptr) {
        for_each_row(rows, cols, max_threads, [&](int64_t r) { block(r, r + 1, nullptr); });
        return;
    }
    const int64_t by_work = std::max<int64_t>(1, rows * cols / kMinElementsPerThread);
    const int64_t blocks = std::clamp<int64_t>((rows + kMinBlockRows - 1) / kMinBlockRows, 1, kMaxRowBlocks);
    const int64_t block_rows = (rows + blocks - 1) / blocks;
    // [blocks, cols] double partial sums, then [cols] totals: per calling thread, reused (a fresh
    // vector per call was an mmap'd, page-faulted allocation each time: ~100 us at 128 x 1536).
    thread_local std::vector<double> scratch;
    const size_t need = static_cast<size_t>((blocks + 1) * cols);
    if (scratch.size() < need) scratch.resize(need);
    double* partial = scratch.data();
    double* total = partial + blocks * cols;
    std::fill(partial, partial + need, 0.0);
    const int threads = static_cast<int>(std::min<int64_t>({max_threads, blocks, by_work}));
    // Guided: see for_each_row.
#pragma omp parallel for num_threads(threads) schedule(guided) if (threads > 1)
    for (int64_t blk = 0; blk < blocks; ++blk)
        block(blk * block_rows, std::min(rows, (blk + 1) * block_rows), partial + blk * cols);
    // Blocks added in block order for every column (the loops are swapped only for locality).
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const double* p = partial + blk * cols;
        for (int64_t c = 0; c < cols; ++c) total[c] += p[c];
    }
    for (int64_t c = 0; c < cols; ++c) dbias[c] = static_cast<float>(total[c]);
}

using TrainRowFn = void (*)(const float*, const float*, float*, float*, int64_t);
TrainRowFn pick_train_row(Isa isa, int approximate) {
    const bool tanh = approximate == BERT4J_GELU_TANH;
    if (isa == Isa::Avx512) return tanh ? row_avx512_train<true> : row_avx512_train<false>;
    if (isa == Isa::Avx2Fma) return tanh ? row_avx2_train<true> : row_avx2_train<false>;
    return tanh ? row_scalar_train<true> : row_scalar_train<false>;
}

using SavedBlockFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, double*, int64_t,
                              int64_t);

SavedBlockFn pick_saved_block(Isa isa, bool acc) {
    if (isa == Isa::Avx512) return acc ? block_avx512_backward_saved<true> : block_avx512_backward_saved<false>;
    if (isa == Isa::Avx2Fma) return acc ? block_avx2_backward_saved<true> : block_avx2_backward_saved<false>;
    return acc ? block_scalar_backward_saved<true> : block_scalar_backward_saved<false>;
}

}  // namespace

void bias_gelu_launch(const float* x, const float* bias, float* y, int64_t rows, int64_t cols,
                      int64_t x_row_stride, int64_t y_row_stride, int approximate, Isa isa,
                      int max_threads) {
    const RowFn row = pick_row(isa, approximate);
    for_each_row(rows, cols, max_threads,
                 [&](int64_t r) { row(x + r * x_row_stride, bias, y + r * y_row_stride, cols); });
}

void bias_gelu_backward_launch(const float* dy, const float* x, const float* bias, float* dx,
                               float* dbias, int64_t rows, int64_t cols, int64_t dy_row_stride,
                               int64_t x_row_stride, int64_t dx_row_stride, int approximate,
                               Isa isa, int max_threads) {
    const BackwardRowFn row = pick_backward_row(isa, approximate, dbias != nullptr);
    rows_with_column_sums(rows, cols, dbias, max_threads, [&](int64_t r0, int64_t r1, double* acc) {
        for (int64_t r = r0; r < r1; ++r)
            row(dy + r * dy_row_stride, x + r * x_row_stride, bias, dx + r * dx_row_stride, acc, cols);
    });
}

void bias_gelu_train_launch(const float* x, const float* bias, float* y, float* d, int64_t rows,
                            int64_t cols, int64_t x_row_stride, int64_t y_row_stride,
                            int64_t d_row_stride, int approximate, Isa isa, int max_threads) {
    const TrainRowFn row = pick_train_row(isa, approximate);
    for_each_row(rows, cols, max_threads, [&](int64_t r) {
        row(x + r * x_row_stride, bias, y + r * y_row_stride, d + r * d_row_stride, cols);
    });
}

void gelu_backward_saved_launch(const float* dy, const float* d, float* dx, float* dbias, int64_t rows,
                                int64_t cols, int64_t dy_row_stride, int64_t d_row_stride,
                                int64_t dx_row_stride, Isa isa, int max_threads) {
    const SavedBlockFn block = pick_saved_block(isa, dbias != nullptr);
    rows_with_column_sums(rows, cols, dbias, max_threads, [&](int64_t r0, int64_t r1, double* acc) {
        block(dy + r0 * dy_row_stride, dy_row_stride, d + r0 * d_row_stride, d_row_stride, dx + r0 * dx_row_stride,
              dx_row_stride, acc, r1 - r0, cols);
    });
}

}  // namespace bert4j::cpu

// ---- checked entry point ----------------------------------------------------------------

extern "C" int bert4j_bias_gelu_forward_f32(const float* x, const float* bias, float* y,
                                            int64_t rows, int64_t cols, int64_t x_row_stride,
                                            int64_t y_row_stride, int approximate) {
    using namespace bert4j;
    try {
        const int status = detail::check_bias_gelu_args("bert4j_bias_gelu_forward_f32", x, bias,
                                                        y, rows, cols, x_row_stride,
                                                        y_row_stride, approximate);
        if (status != BERT4J_OK) return status;
        if (rows > 0 && cols > 0)
            cpu::bias_gelu_launch(x, bias, y, rows, cols, x_row_stride, y_row_stride,
                                  approximate, cpu::best_isa(), detail::num_threads());
        return detail::ok();
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "bert4j_bias_gelu_forward_f32: %s", e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "bert4j_bias_gelu_forward_f32: unknown error");
    }
}

extern "C" int bert4j_bias_gelu_backward_f32(const float* dy, const float* x, const float* bias,
                                             float* dx, float* dbias, int64_t rows, int64_t cols,
                                             int64_t dy_row_stride, int64_t x_row_stride,
                                             int64_t dx_row_stride, int approximate) {
    using namespace bert4j;
    try {
        const int status = detail::check_bias_gelu_backward_args(
            "bert4j_bias_gelu_backward_f32", dy, x, bias, dx, rows, cols, dy_row_stride,
            x_row_stride, dx_row_stride, approximate);
        if (status != BERT4J_OK) return status;
        if (rows == 0 && cols > 0 && dbias != nullptr) {
            std::fill(dbias, dbias + cols, 0.0f);  // the sum over no rows
        } else if (rows > 0 && cols > 0) {
            cpu::bias_gelu_backward_launch(dy, x, bias, dx, dbias, rows, cols, dy_row_stride,
                                           x_row_stride, dx_row_stride, approximate,
                                           cpu::best_isa(), detail::num_threads());
        }
        return detail::ok();
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "bert4j_bias_gelu_backward_f32: %s", e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "bert4j_bias_gelu_backward_f32: unknown error");
    }
}

extern "C" int bert4j_bias_gelu_forward_train_f32(const float* x, const float* bias, float* y, float* dgelu,
                                                  int64_t rows, int64_t cols, int64_t x_row_stride,
                                                  int64_t y_row_stride, int64_t dgelu_row_stride,
                                                  int approximate) {
    using namespace bert4j;
    constexpr const char* op = "bert4j_bias_gelu_forward_train_f32";
    try {
        int status = detail::check_bias_gelu_args(op, x, bias, y, rows, cols, x_row_stride, y_row_stride,
                                                  approximate);
        if (status != BERT4J_OK) return status;
        status = detail::check_row_args(op, rows, cols, {{"dgelu", dgelu, dgelu_row_stride}});
        if (status != BERT4J_OK) return status;
        if (rows > 0 && cols > 0 && dgelu == y)
            return detail::fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: dgelu must not be y (both are outputs)", op);
        if (rows > 0 && cols > 0 && dgelu == x && dgelu_row_stride != x_row_stride)
            return detail::fail(BERT4J_ERR_INVALID_ARGUMENT,
                                "%s: dgelu aliases x, so dgelu_row_stride (%lld) must equal x_row_stride (%lld)", op,
                                static_cast<long long>(dgelu_row_stride), static_cast<long long>(x_row_stride));
        if (rows > 0 && cols > 0)
            cpu::bias_gelu_train_launch(x, bias, y, dgelu, rows, cols, x_row_stride, y_row_stride,
                                        dgelu_row_stride, approximate, cpu::best_isa(), detail::num_threads());
        return detail::ok();
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}

extern "C" int bert4j_gelu_backward_saved_f32(const float* dy, const float* dgelu, float* dx, float* dbias,
                                              int64_t rows, int64_t cols, int64_t dy_row_stride,
                                              int64_t dgelu_row_stride, int64_t dx_row_stride) {
    using namespace bert4j;
    constexpr const char* op = "bert4j_gelu_backward_saved_f32";
    try {
        const int status = detail::check_row_args(
            op, rows, cols, {{"dy", dy, dy_row_stride}, {"dgelu", dgelu, dgelu_row_stride}, {"dx", dx, dx_row_stride}});
        if (status != BERT4J_OK) return status;
        if (rows > 0 && cols > 0 && ((dx == dy && dx_row_stride != dy_row_stride) ||
                                     (dx == dgelu && dx_row_stride != dgelu_row_stride)))
            return detail::fail(BERT4J_ERR_INVALID_ARGUMENT,
                                "%s: dx aliases %s, so dx_row_stride (%lld) must equal %s_row_stride (%lld)", op,
                                dx == dy ? "dy" : "dgelu", static_cast<long long>(dx_row_stride),
                                dx == dy ? "dy" : "dgelu",
                                static_cast<long long>(dx == dy ? dy_row_stride : dgelu_row_stride));
        if (rows == 0 && cols > 0 && dbias != nullptr) {
            std::fill(dbias, dbias + cols, 0.0f);  // the sum over no rows
        } else if (rows > 0 && cols > 0) {
            cpu::gelu_backward_saved_launch(dy, dgelu, dx, dbias, rows, cols, dy_row_stride, dgelu_row_stride,
                                            dx_row_stride, cpu::best_isa(), detail::num_threads());
        }
        return detail::ok();
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}
