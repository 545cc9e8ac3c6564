// int8 linear layer for CPU inference (dynamic quantization): y ~ x . w^T + bias with w
// quantized once per output row (symmetric, 127 levels) and x quantized per call, per row
// (asymmetric u8, 256 levels), the products summed exactly in int32.
//
// Why: on CPUs with AVX-512 VNNI one vpdpbusd does 64 multiply-adds (16 lanes x 4 u8 x s8
// pairs) where an fp32 FMA does 16, so the GEMMs that dominate BERT inference can run up to
// four times as fast. Asymmetric activations use the whole u8 range for a row's [min, max]:
// GELU outputs (>= -0.17) get almost twice the resolution of a symmetric range. The zero point
// costs nothing per product: sum (zero + s q) w = s sum q w + zero sum w, and sum w per column
// is precomputed at packing.
//
// Layers like linear.cpp: the VNNI micro-kernel (12 rows x 32 columns in 24 zmm int32
// accumulators) and a scalar one (same integers), the quantizer (AVX-512 or scalar, identical
// bytes), the launcher, the checked C entry points.

#include "linear_int8.h"
#include "linear.h"  // linear_min_chunk

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

// GCC 12 reports the intrinsics' internal _mm512_undefined_* temporaries as uninitialized when
// they are inlined into functions with a target attribute (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "../common/status.h"
#include "bert4j_kernels.h"

namespace bert4j::cpu {
namespace {

constexpr int64_t NP = kInt8Panel;
constexpr int64_t kMinMacsPerThread = int64_t{1} << 21;  // int8 MACs are ~4x cheaper than fp32

#define BERT4J_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")))
#define BERT4J_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma")))

constexpr int kMr = 12;  // 24 accumulators + 2 weight vectors + 1 broadcast <= 32 zmm

struct Epilogue {
    const float* row_scale;  // [m]
    const float* row_zero;   // [m]
    const float* col_scale;  // [n32]
    const float* col_scale_sum;
    const float* bias;  // [n] or null
};

// acc += u8 x s8 products of 4 consecutive bytes per lane. Inline asm instead of
// _mm512_dpbusd_epi32: GCC 12 copies and spills the accumulator around each intrinsic call
// (3 extra instructions per product, the tile ran at ~40% of its rate), while the "+v"
// constraint keeps it in place.
BERT4J_VNNI inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
    return acc;
}

// MR rows x 32 columns; nc (1..32) stored. xq rows of ldq bytes, k4 groups of 4.
template <int MR>
BERT4J_VNNI void tile_vnni(const uint8_t* xq, int64_t ldq, const uint8_t* wp, int64_t k4,
                           const Epilogue& e, int64_t r0, int64_t c0, float* y, int64_t ldy,
                           int nc) {
    __m512i acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int64_t g = 0; g < k4; ++g) {
        const __m512i w0 = _mm512_loadu_si512(wp + g * NP * 4);
        const __m512i w1 = _mm512_loadu_si512(wp + g * NP * 4 + 64);
        _mm_prefetch(reinterpret_cast<const char*>(wp + (g + 8) * NP * 4), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(wp + (g + 8) * NP * 4 + 64), _MM_HINT_T0);
        const uint8_t* xg = xq + g * 4;
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
            int32_t four;
            std::memcpy(&four, xg + r * ldq, 4);
            const __m512i xb = _mm512_set1_epi32(four);
            acc[r][0] = dpbusd(acc[r][0], xb, w0);
            acc[r][1] = dpbusd(acc[r][1], xb, w1);
        }
    }
    const __mmask16 m0 = nc >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nc) - 1u);
    const __mmask16 m1 = nc >= 32 ? __mmask16(0xFFFF)
                                  : nc <= 16 ? __mmask16(0) : __mmask16((1u << (nc - 16)) - 1u);
    const __m512 cs0 = _mm512_loadu_ps(e.col_scale + c0), cs1 = _mm512_loadu_ps(e.col_scale + c0 + 16);
    const __m512 ss0 = _mm512_loadu_ps(e.col_scale_sum + c0),
                 ss1 = _mm512_loadu_ps(e.col_scale_sum + c0 + 16);
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (e.bias != nullptr) {
        b0 = _mm512_maskz_loadu_ps(m0, e.bias + c0);
        b1 = _mm512_maskz_loadu_ps(m1, e.bias + c0 + 16);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
        const __m512 s = _mm512_set1_ps(e.row_scale[r0 + r]), z = _mm512_set1_ps(e.row_zero[r0 + r]);
        // scale[r] * r_j * acc + (zero[r] * r_j sum qw + bias), as the scalar path.
        const __m512 y0 = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(s, cs0), _mm512_cvtepi32_ps(acc[r][0])),
                                        _mm512_add_ps(_mm512_mul_ps(z, ss0), b0));
        const __m512 y1 = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(s, cs1), _mm512_cvtepi32_ps(acc[r][1])),
                                        _mm512_add_ps(_mm512_mul_ps(z, ss1), b1));
        _mm512_mask_storeu_ps(y + r * ldy, m0, y0);
        _mm512_mask_storeu_ps(y + r * ldy + 16, m1, y1);
    }
}

using TileFn = void (*)(const uint8_t*, int64_t, const uint8_t*, int64_t, const Epilogue&, int64_t,
                        int64_t, float*, int64_t, int);

template <int... R>
TileFn pick_vnni_impl(int mr, std::integer_sequence<int, R...>) {
    TileFn fns[] = {&tile_vnni<R + 1>...};
    return fns[mr - 1];
}

TileFn pick_vnni(int mr) { return pick_vnni_impl(mr, std::make_integer_sequence<int, kMr>{}); }

// One row x one panel: the same int32 sums and epilogue expression as the VNNI tile (the tests
// compare the two paths with a float tolerance, not bitwise).
void row_panel_scalar(const uint8_t* xq, const uint8_t* wp, int64_t k4, const Epilogue& e,
                      int64_t r, int64_t c0, float* y, int nc) {
    int32_t acc[NP] = {};
    for (int64_t g = 0; g < k4; ++g)
        for (int64_t j = 0; j < NP; ++j)
            for (int t = 0; t < 4; ++t)
                acc[j] += static_cast<int32_t>(xq[g * 4 + t]) *
                          static_cast<int32_t>(static_cast<int8_t>(wp[(g * NP + j) * 4 + t]));
    for (int j = 0; j < nc; ++j) {
        const float s = e.row_scale[r] * e.col_scale[c0 + j];
        const float zb = e.row_zero[r] * e.col_scale_sum[c0 + j] + (e.bias != nullptr ? e.bias[c0 + j] : 0.0f);
        y[j] = s * static_cast<float>(acc[j]) + zb;
    }
}

bool vnni_cpu() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

// ---- quantizer -----------------------------------------------------------------------------

// Row minimum and maximum; both NaN when the row holds a NaN or an infinity (min/max alone
// would skip a NaN), so that its outputs are NaN rather than silently finite.
void row_range(const float* x, int64_t k, float* mn, float* mx) {
    float lo = x[0], hi = x[0], bad = 0.0f;
    for (int64_t c = 0; c < k; ++c) {
        lo = std::min(lo, x[c]);
        hi = std::max(hi, x[c]);
        bad += x[c] * 0.0f;
    }
    *mn = lo + bad;
    *mx = hi + bad;
}

BERT4J_AVX512 void row_range_avx512(const float* x, int64_t k, float* mn, float* mx) {
    const int64_t kv = k / 16 * 16;
    float lo = x[0], hi = x[0], bad = 0.0f;
    if (kv > 0) {
        __m512 l = _mm512_loadu_ps(x), h = l, b = _mm512_setzero_ps();
        const __m512 zero = _mm512_setzero_ps();
        for (int64_t c = 0; c < kv; c += 16) {
            const __m512 v = _mm512_loadu_ps(x + c);
            l = _mm512_min_ps(l, v);
            h = _mm512_max_ps(h, v);
            b = _mm512_add_ps(b, _mm512_mul_ps(v, zero));
        }
        lo = _mm512_reduce_min_ps(l);
        hi = _mm512_reduce_max_ps(h);
        bad = _mm512_reduce_add_ps(b);
    }
    for (int64_t c = kv; c < k; ++c) {
        lo = std::min(lo, x[c]);
        hi = std::max(hi, x[c]);
        bad += x[c] * 0.0f;
    }
    *mn = lo + bad;
    *mx = hi + bad;
}

// scale and the reciprocal both paths multiply by.
void row_params(float lo, float hi, float* scale, float* inv) {
    float s = (hi - lo) / 255.0f;
    if (std::isnan(s)) {  // a NaN or infinity in the row: every output of the row becomes NaN
        *scale = *inv = s;
        return;
    }
    if (!(s > 0.0f) || !std::isfinite(1.0f / s)) s = 1.0f;  // constant row (or denormal range)
    *scale = s;
    *inv = 1.0f / s;
}

void quantize_row_scalar(const float* x, int64_t k, float zero, float inv, uint8_t* q) {
    for (int64_t c = 0; c < k; ++c) {
        const float v = std::nearbyint((x[c] - zero) * inv);  // round half to even (default mode)
        q[c] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)));
    }
}

BERT4J_AVX512 void quantize_row_avx512(const float* x, int64_t k, float zero, float inv, uint8_t* q) {
    const int64_t kv = k / 16 * 16;
    const __m512 z = _mm512_set1_ps(zero), iv = _mm512_set1_ps(inv);
    const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
    for (int64_t c = 0; c < kv; c += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), z), iv);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    quantize_row_scalar(x + kv, k - kv, zero, inv, q + kv);
}

}  // namespace

bool int8_vnni_supported() {
    static const bool ok = vnni_cpu();
    return ok;
}

void linear_int8_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride, uint8_t* packed) {
    const int64_t k4 = int8_k4(k), panels = int8_panels(n);
    std::memset(packed, 0, static_cast<size_t>(int8_packed_bytes(n, k)));
    float* scale = reinterpret_cast<float*>(packed + int8_scales_offset(n, k));
    float* scale_sum = scale + panels * NP;
    for (int64_t j = 0; j < n; ++j) {
        const float* wr = w + j * w_row_stride;
        float mx = 0.0f;
        for (int64_t c = 0; c < k; ++c) mx = std::max(mx, std::fabs(wr[c]));
        const float r = mx / 127.0f;
        const float inv = r > 0.0f ? 1.0f / r : 0.0f;
        const int64_t p = j / NP, jj = j % NP;
        int64_t sum = 0;
        for (int64_t c = 0; c < k; ++c) {
            const float v = std::min(127.0f, std::max(-127.0f, std::nearbyint(wr[c] * inv)));
            const int8_t qv = static_cast<int8_t>(v);
            sum += qv;
            packed[((p * k4 + c / 4) * NP + jj) * 4 + c % 4] = static_cast<uint8_t>(qv);
        }
        scale[j] = r;
        scale_sum[j] = r * static_cast<float>(sum);
    }
}

void quantize_rows_u8(const float* x, int64_t m, int64_t k, int64_t ldx, uint8_t* q, int64_t ldq,
                      float* scale, float* zero, Isa isa, int max_threads) {
    const bool avx512 = isa == Isa::Avx512;
    const int threads = m * k >= 32768 ? max_threads : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * ldx;
        uint8_t* qr = q + r * ldq;
        float lo, hi, inv;
        if (avx512) row_range_avx512(xr, k, &lo, &hi);
        else row_range(xr, k, &lo, &hi);
        row_params(lo, hi, &scale[r], &inv);
        zero[r] = lo;
        if (avx512) quantize_row_avx512(xr, k, lo, inv, qr);
        else quantize_row_scalar(xr, k, lo, inv, qr);
        std::memset(qr + k, 0, static_cast<size_t>(ldq - k));
    }
}

void linear_int8_launch(const float* x, const uint8_t* packed, const float* bias, float* y,
                        int64_t m, int64_t n, int64_t k, int64_t x_row_stride,
                        int64_t y_row_stride, Isa isa, int max_threads) {
    const int64_t k4 = int8_k4(k), ldq = k4 * 4, panels = int8_panels(n);
    // Scratch per calling thread (quantized rows, row scales), reused across calls.
    thread_local std::vector<uint8_t> qbuf;
    thread_local std::vector<float> rbuf;
    if (qbuf.size() < static_cast<size_t>(m * ldq)) qbuf.resize(static_cast<size_t>(m * ldq));
    if (rbuf.size() < static_cast<size_t>(2 * m)) rbuf.resize(static_cast<size_t>(2 * m));
    uint8_t* xq = qbuf.data();
    float* rs = rbuf.data();
    float* rz = rs + m;
    quantize_rows_u8(x, m, k, x_row_stride, xq, ldq, rs, rz, isa, max_threads);

    const float* cs = reinterpret_cast<const float*>(packed + int8_scales_offset(n, k));
    const Epilogue e{rs, rz, cs, cs + panels * NP, bias};
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const int64_t by_work = static_cast<int64_t>(
        std::max(1.0, std::min(1e9, macs / static_cast<double>(kMinMacsPerThread))));

    if (isa != Isa::Avx512 || !int8_vnni_supported()) {
        const int64_t tasks = panels * m;
        const int threads = static_cast<int>(std::min<int64_t>({max_threads, tasks, by_work}));
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t t = 0; t < tasks; ++t) {
            const int64_t p = t / m, r = t % m;
            row_panel_scalar(xq + r * ldq, packed + p * k4 * NP * 4, k4, e, r, p * NP,
                             y + r * y_row_stride + p * NP, static_cast<int>(std::min(NP, n - p * NP)));
        }
        return;
    }
    const int64_t row_blocks = (m + kMr - 1) / kMr;
    const int64_t tasks = panels * row_blocks;
    const int threads = static_cast<int>(std::min<int64_t>({max_threads, tasks, by_work}));
    const int64_t chunk = linear_min_chunk(row_blocks);
    // Panels outermost and guided chunks, as the fp32 kernel (linear.cpp).
#pragma omp parallel for num_threads(threads) schedule(guided, chunk) if (threads > 1)
    for (int64_t t = 0; t < tasks; ++t) {
        const int64_t p = t / row_blocks, rb = t % row_blocks;
        const int64_t r0 = rb * kMr, c0 = p * NP;
        const int mr = static_cast<int>(std::min<int64_t>(kMr, m - r0));
        pick_vnni(mr)(xq + r0 * ldq, ldq, packed + p * k4 * NP * 4, k4, e, r0, c0,
                      y + r0 * y_row_stride + c0, y_row_stride, static_cast<int>(std::min(NP, n - c0)));
    }
}

}  // namespace bert4j::cpu

// ---- entry layer: checked C ABI ------------------------------------------------------------

namespace {

long long ll(int64_t v) { return static_cast<long long>(v); }

int check_nk(const char* op, int64_t n, int64_t k) {
    using bert4j::detail::fail;
    if (n < 0 || k < 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: n and k must be >= 0, got n=%lld k=%lld", op, ll(n), ll(k));
    if (k > bert4j::cpu::kInt8MaxK)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: k must be <= %lld (int32 sums), got %lld", op,
                    ll(bert4j::cpu::kInt8MaxK), ll(k));
    if (n > std::numeric_limits<int64_t>::max() / (4 * bert4j::cpu::kInt8MaxK))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: n=%lld is too large", op, ll(n));
    return BERT4J_OK;
}

}  // namespace

extern "C" int bert4j_linear_int8_vnni(void) { return bert4j::cpu::int8_vnni_supported() ? 1 : 0; }

extern "C" int bert4j_linear_int8_packed_size(int64_t n, int64_t k, int64_t* bytes) {
    using bert4j::detail::fail;
    const char* op = "bert4j_linear_int8_packed_size";
    if (bytes == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: bytes is NULL", op);
    const int st = check_nk(op, n, k);
    if (st != BERT4J_OK) return st;
    *bytes = n == 0 || k == 0 ? 0 : bert4j::cpu::int8_packed_bytes(n, k);
    return bert4j::detail::ok();
}

extern "C" int bert4j_linear_int8_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride,
                                       uint8_t* packed) {
    using bert4j::detail::fail;
    const char* op = "bert4j_linear_int8_pack";
    try {
        int st = check_nk(op, n, k);
        if (st != BERT4J_OK) return st;
        if (n == 0 || k == 0) return bert4j::detail::ok();
        if (w == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: w is NULL", op);
        if (packed == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: packed is NULL", op);
        if (w_row_stride < k)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: w_row_stride must be >= k (%lld), got %lld", op,
                        ll(k), ll(w_row_stride));
        for (int64_t j = 0; j < n; ++j)
            for (int64_t c = 0; c < k; ++c)
                if (!std::isfinite(w[j * w_row_stride + c]))
                    return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: w[%lld, %lld] is not finite", op, ll(j), ll(c));
        bert4j::cpu::linear_int8_pack(w, n, k, w_row_stride, packed);
        return bert4j::detail::ok();
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    }
}

extern "C" int bert4j_linear_int8_f32(const float* x, const uint8_t* packed, const float* bias,
                                      float* y, int64_t m, int64_t n, int64_t k,
                                      int64_t x_row_stride, int64_t y_row_stride) {
    using namespace bert4j;
    using detail::fail;
    const char* op = "bert4j_linear_int8_f32";
    try {
        if (m < 0) return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: m must be >= 0, got %lld", op, ll(m));
        int st = check_nk(op, n, k);
        if (st != BERT4J_OK) return st;
        bool done = false;
        st = detail::linear_call_prologue(op, x, packed, bias, y, m, n, k, x_row_stride, y_row_stride, &done);
        if (st != BERT4J_OK || done) return st;
        if (static_cast<unsigned __int128>(m) * static_cast<unsigned __int128>(std::max(x_row_stride, y_row_stride)) >
            static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max() / 4))
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: m=%lld rows overflow int64 offsets", op, ll(m));
        cpu::linear_int8_launch(x, packed, bias, y, m, n, k, x_row_stride, y_row_stride, cpu::best_isa(),
                                detail::num_threads());
        return detail::ok();
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    }
}
