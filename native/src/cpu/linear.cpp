// Prepacked fp32 linear layer, CPU: y = x . w^T + bias with w packed once (at model load).
//
// Why: libtorch's linear goes to a BLAS sgemm that re-packs the whole weight matrix on every
// call. For the few rows of an inference forward (a 12-token sentence is a [12, 384] x) that
// packing costs more than the multiply itself. Here the weight is packed once into panels of
// 64 output columns, k-major (linear.h), and each call reads x in place: the micro-kernel
// broadcasts its rows' values straight from x (row stride and all), no copy of x is made.
//
// Three layers, like bias_gelu.cpp: register-blocked micro-kernels (AVX-512: 6 rows x 64
// columns in 24 zmm accumulators; AVX2+FMA: 6 rows x 16 columns in 12 ymm; scalar: plain
// loops), the launcher (the task split and the thread choice), the checked C entry
// points. Every path accumulates each output in fp32, in the natural order kk = 0, 1, ..., k-1
// (one FMA per step on the vector paths), starting from 0, and adds the bias last.

#include "linear.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>

#include <immintrin.h>

#include "../common/status.h"
#include "bert4j_kernels.h"

namespace bert4j::cpu {
namespace {

constexpr int64_t NR = kLinearPanel;

// Below ~1M multiply-adds per thread (~10-20 us of work) an OpenMP fork/join (threads are
// parked with OMP_WAIT_POLICY=passive) costs about as much as it saves.
constexpr int64_t kMinMacsPerThread = int64_t{1} << 20;

// ---- kernel layer: AVX-512 -----------------------------------------------------------------
#define BERT4J_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

constexpr int kMrAvx512 = 6;          // 6 x 4 = 24 accumulators + 4 weight vectors + 1 broadcast <= 32 zmm
constexpr int kNvAvx512 = static_cast<int>(NR / 16);  // zmm vectors per panel row (4)
constexpr int64_t kPrefetchSteps = 8;  // k steps ahead (8 x 256 bytes); past the panel's end it is a harmless hint

// MR rows x 64 columns; nc (1..64) of them are stored. bias and y point at the panel's first
// column. Why 6 x 64 and not 12 x 32: per k step 24 FMAs need 4 weight loads + 6 broadcasts
// instead of 2 + 12; same-process A/B of whole GEMMs (2 threads, 144-624 rows) 1.04-1.12x.
template <int MR>
BERT4J_AVX512 void tile_avx512(const float* x, int64_t ldx, const float* wp, int64_t k,
                               const float* bias, float* y, int64_t ldy, int nc) {
    constexpr int NV = kNvAvx512;
    __m512 acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < k; ++kk) {
        __m512 w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            w[v] = _mm512_loadu_ps(wp + kk * NR + 16 * v);
            // At few rows the weight stream (from DRAM: a model's weights exceed the caches)
            // is the bottleneck; asking for it ~2 KiB ahead keeps more misses in flight than
            // the hardware prefetcher alone.
            _mm_prefetch(reinterpret_cast<const char*>(wp + (kk + kPrefetchSteps) * NR + 16 * v), _MM_HINT_T0);
        }
        const float* xk = x + kk;
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            const __m512 xb = _mm512_set1_ps(xk[r * ldx]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(xb, w[v], acc[r][v]);
        }
    }
    __mmask16 m[NV];
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
        const int left = nc - 16 * v;  // columns of this vector that exist
        m[v] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
        b[v] = bias != nullptr ? _mm512_maskz_loadu_ps(m[v], bias + 16 * v) : _mm512_setzero_ps();
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            _mm512_mask_storeu_ps(y + r * ldy + 16 * v, m[v], _mm512_add_ps(acc[r][v], b[v]));
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, int64_t,
                       int);

template <int... R>
TileFn pick_avx512_impl(int mr, std::integer_sequence<int, R...>) {
    TileFn fns[] = {&tile_avx512<R + 1>...};
    return fns[mr - 1];
}

TileFn pick_avx512(int mr) {
    return pick_avx512_impl(mr, std::make_integer_sequence<int, kMrAvx512>{});
}

// ---- kernel layer: AVX2 + FMA ------------------------------------------------------------
#define BERT4J_AVX2 __attribute__((target("avx2,fma")))

constexpr int kMrAvx2 = 6;  // 12 accumulators + 2 weight vectors + 1 broadcast <= 16 ymm

// MR rows x 16 columns (a quarter panel: wp points at column 0, 16, 32 or 48 of a panel, whose
// k steps are still NR floats apart); nc (1..16) columns are stored.
template <int MR>
BERT4J_AVX2 void tile_avx2(const float* x, int64_t ldx, const float* wp, int64_t k,
                           const float* bias, float* y, int64_t ldy, int nc) {
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t kk = 0; kk < k; ++kk) {
        const __m256 w0 = _mm256_loadu_ps(wp + kk * NR);
        const __m256 w1 = _mm256_loadu_ps(wp + kk * NR + 8);
        const float* xk = x + kk;
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            const __m256 xb = _mm256_broadcast_ss(xk + r * ldx);
            acc[r][0] = _mm256_fmadd_ps(xb, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(xb, w1, acc[r][1]);
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mk0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), lane);
    const __m256i mk1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8), lane);
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (bias != nullptr) {
        b0 = _mm256_maskload_ps(bias, mk0);
        b1 = _mm256_maskload_ps(bias + 8, mk1);
    }
    if (nc == 16) {
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            _mm256_storeu_ps(y + r * ldy, _mm256_add_ps(acc[r][0], b0));
            _mm256_storeu_ps(y + r * ldy + 8, _mm256_add_ps(acc[r][1], b1));
        }
    } else {
        // Masked: columns past n (and past the row) are never touched.
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            _mm256_maskstore_ps(y + r * ldy, mk0, _mm256_add_ps(acc[r][0], b0));
            _mm256_maskstore_ps(y + r * ldy + 8, mk1, _mm256_add_ps(acc[r][1], b1));
        }
    }
}

template <int... R>
TileFn pick_avx2_impl(int mr, std::integer_sequence<int, R...>) {
    TileFn fns[] = {&tile_avx2<R + 1>...};
    return fns[mr - 1];
}

TileFn pick_avx2(int mr) { return pick_avx2_impl(mr, std::make_integer_sequence<int, kMrAvx2>{}); }

// ---- kernel layer: scalar ----------------------------------------------------------------
// One row x one panel: NR (64) fp32 accumulators the compiler keeps in vector registers.
void row_panel_scalar(const float* xr, const float* wp, int64_t k, const float* bias, float* y,
                      int nc) {
    float acc[NR];
    for (int j = 0; j < NR; ++j) acc[j] = 0.0f;
    for (int64_t kk = 0; kk < k; ++kk) {
        const float xv = xr[kk];
        const float* wk = wp + kk * NR;
        for (int j = 0; j < NR; ++j) acc[j] += xv * wk[j];
    }
    for (int j = 0; j < nc; ++j) y[j] = bias != nullptr ? acc[j] + bias[j] : acc[j];
}

}  // namespace

void linear_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride, float* packed) {
    const int64_t panels = (n + NR - 1) / NR;
    for (int64_t p = 0; p < panels; ++p) {
        float* dst = packed + p * k * NR;
        const int64_t nc = std::min(NR, n - p * NR);
        for (int64_t kk = 0; kk < k; ++kk) {
            float* d = dst + kk * NR;
            for (int64_t j = 0; j < nc; ++j) d[j] = w[(p * NR + j) * w_row_stride + kk];
            for (int64_t j = nc; j < NR; ++j) d[j] = 0.0f;
        }
    }
}

void linear_packed_launch(const float* x, const float* packed, const float* bias, float* y,
                          int64_t m, int64_t n, int64_t k, int64_t x_row_stride,
                          int64_t y_row_stride, Isa isa, int max_threads) {
    const int64_t panels = (n + NR - 1) / NR;
    // m * n * k in double: the product of three int64 sizes may overflow.
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const int64_t by_work = static_cast<int64_t>(
        std::max(1.0, std::min(1e9, macs / static_cast<double>(kMinMacsPerThread))));

    if (isa == Isa::Scalar) {
        const int64_t tasks = panels * m;
        const int threads = static_cast<int>(std::min<int64_t>({max_threads, tasks, by_work}));
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t t = 0; t < tasks; ++t) {
            const int64_t p = t / m, r = t % m;
            row_panel_scalar(x + r * x_row_stride, packed + p * k * NR, k,
                             bias != nullptr ? bias + p * NR : nullptr, y + r * y_row_stride + p * NR,
                             static_cast<int>(std::min(NR, n - p * NR)));
        }
        return;
    }

    const bool avx512 = isa == Isa::Avx512;
    const int64_t MR = avx512 ? kMrAvx512 : kMrAvx2;
    const int64_t cw = avx512 ? NR : 16;           // columns per tile
    const int64_t col_units = (n + cw - 1) / cw;  // AVX2: four quarter panels per panel
    const int64_t row_blocks = (m + MR - 1) / MR;
    const int64_t tasks = col_units * row_blocks;
    const int threads = static_cast<int>(std::min<int64_t>({max_threads, tasks, by_work}));

    // Column units outermost: consecutive tasks reuse a weight panel (up to 64 x 1536 floats,
    // L2-resident) across row blocks, and the threads split the weight (the bigger operand at
    // these row counts) instead of each streaming all of it. Chunks of consecutive tasks are
    // handed out dynamically, shrinking towards the end (guided, linear_min_chunk): on a shared
    // host one vCPU is often slower than the other for a while, and a static split would wait
    // for the slow half.
    const int64_t chunk = linear_min_chunk(row_blocks);
#pragma omp parallel for num_threads(threads) schedule(guided, chunk) if (threads > 1)
    for (int64_t t = 0; t < tasks; ++t) {
        const int64_t cu = t / row_blocks, rb = t % row_blocks;
        const int64_t r0 = rb * MR, c0 = cu * cw;
        const int mr = static_cast<int>(std::min(MR, m - r0));
        const int nc = static_cast<int>(std::min(cw, n - c0));
        // Column c0 lives in panel c0 / NR at offset c0 % NR (0, 16, 32 or 48 for AVX2 quarters).
        const float* wp = packed + (c0 / NR) * k * NR + (c0 % NR);
        const TileFn tile = avx512 ? pick_avx512(mr) : pick_avx2(mr);
        tile(x + r0 * x_row_stride, x_row_stride, wp, k, bias != nullptr ? bias + c0 : nullptr,
             y + r0 * y_row_stride + c0, y_row_stride, nc);
    }
}

}  // namespace bert4j::cpu

// ---- entry layer: checked C ABI ------------------------------------------------------------

namespace {

long long ll(int64_t v) { return static_cast<long long>(v); }

// ceil(n / kLinearPanel) * kLinearPanel * k, or -1 when it does not fit int64 (n, k >= 0).
int64_t packed_floats_checked(int64_t n, int64_t k) {
    constexpr int64_t P = bert4j::cpu::kLinearPanel;
    const unsigned __int128 f = static_cast<unsigned __int128>((n / P) + (n % P != 0 ? 1 : 0)) *
                                static_cast<unsigned __int128>(P) * static_cast<unsigned __int128>(k);
    if (f > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) return -1;
    return static_cast<int64_t>(f);
}

}  // namespace

extern "C" int bert4j_linear_packed_size_f32(int64_t n, int64_t k, int64_t* floats) {
    using bert4j::detail::fail;
    const char* op = "bert4j_linear_packed_size_f32";
    if (floats == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: floats is NULL", op);
    if (n < 0 || k < 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: n and k must be >= 0, got n=%lld k=%lld", op,
                    ll(n), ll(k));
    const int64_t f = packed_floats_checked(n, k);
    if (f < 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: the packed size of n=%lld k=%lld overflows int64",
                    op, ll(n), ll(k));
    *floats = f;
    return bert4j::detail::ok();
}

extern "C" int bert4j_linear_pack_f32(const float* w, int64_t n, int64_t k, int64_t w_row_stride,
                                      float* packed) {
    using namespace bert4j;
    using detail::fail;
    const char* op = "bert4j_linear_pack_f32";
    try {
        if (n < 0 || k < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: n and k must be >= 0, got n=%lld k=%lld",
                        op, ll(n), ll(k));
        if (packed_floats_checked(n, k) < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: the packed size of n=%lld k=%lld overflows int64", op, ll(n), ll(k));
        if (n == 0 || k == 0) return detail::ok();
        if (w == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: w is NULL (expected [%lld, %lld])",
                                      op, ll(n), ll(k));
        if (packed == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER, "%s: packed is NULL (expected %lld floats)", op,
                        ll(packed_floats_checked(n, k)));
        if (w_row_stride < k)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: w_row_stride must be >= k (%lld), got %lld",
                        op, ll(k), ll(w_row_stride));
        cpu::linear_pack(w, n, k, w_row_stride, packed);
        return detail::ok();
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}

extern "C" int bert4j_linear_packed_f32(const float* x, const float* packed, const float* bias,
                                        float* y, int64_t m, int64_t n, int64_t k,
                                        int64_t x_row_stride, int64_t y_row_stride) {
    using namespace bert4j;
    using detail::fail;
    const char* op = "bert4j_linear_packed_f32";
    try {
        if (m < 0 || n < 0 || k < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: m, n and k must be >= 0, got m=%lld n=%lld k=%lld", op, ll(m), ll(n),
                        ll(k));
        if (packed_floats_checked(n, k) < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: the packed size of n=%lld k=%lld overflows int64", op, ll(n), ll(k));
        if (m == 0 || n == 0) return detail::ok();  // y has no elements
        if (y == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER, "%s: y is NULL (expected [%lld, %lld])", op, ll(m),
                        ll(n));
        if (k > 0 && x == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER, "%s: x is NULL (expected [%lld, %lld])", op, ll(m),
                        ll(k));
        if (k > 0 && packed == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER, "%s: packed is NULL (expected %lld floats)", op,
                        ll(packed_floats_checked(n, k)));
        if (x_row_stride < k)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: x_row_stride must be >= k (%lld), got %lld",
                        op, ll(k), ll(x_row_stride));
        if (y_row_stride < n)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: y_row_stride must be >= n (%lld), got %lld",
                        op, ll(n), ll(y_row_stride));
        if (static_cast<unsigned __int128>(m) * static_cast<unsigned __int128>(std::max(x_row_stride, y_row_stride)) >
            static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()))
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: m=%lld rows of stride %lld overflow int64 offsets",
                        op, ll(m), ll(std::max(x_row_stride, y_row_stride)));
        if (k == 0) {
            // An empty sum: y = bias (or 0).
            for (int64_t r = 0; r < m; ++r) {
                float* yr = y + r * y_row_stride;
                if (bias != nullptr) std::memcpy(yr, bias, static_cast<size_t>(n) * sizeof(float));
                else std::fill(yr, yr + n, 0.0f);
            }
            return detail::ok();
        }
        cpu::linear_packed_launch(x, packed, bias, y, m, n, k, x_row_stride, y_row_stride,
                                  cpu::best_isa(), detail::num_threads());
        return detail::ok();
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}
