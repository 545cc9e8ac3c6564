// bf16 linear layer for CPU inference on AMX: y = bf16(x) . bf16(w)^T + bias, fp32 sums.
//
// Why: on CPUs with AMX (Intel Sapphire Rapids and later) one tdpbf16ps multiplies a 16 x 32
// bf16 tile by a 32 x 16 one into 16 x 16 fp32 sums: 8,192 multiply-adds per instruction,
// where an AVX-512 FMA does 16. The GEMMs of a BERT forward run ~2.5-4x as fast as bert4j's
// fp32 kernel (measured on a 2-vCPU Emerald Rapids VM, 2 threads: [608 x 384] . [384 x 1536]
// 3.0x, [32 x 384] . [384 x 1536] 4.5x), at the cost of rounding both operands to bf16 (8
// significant bits; outputs within ~2e-3 relative RMS of fp32 on random data). An opt-in
// precision, like int8.
//
// Layers like linear.cpp: the AMX micro-kernels (32 rows x 32 columns in four accumulator
// tiles, and a 16-row one for the last rows; their epilogue either adds the bias into y or,
// for the encoder layer's intermediate GEMM, applies bias + GELU and writes bf16 straight into
// the next GEMM's operand copy), a scalar path with the same products, the launcher (x rounded
// to bf16 once per call into a zero-padded, tile-blocked copy; tasks in row groups of 128, then
// panels), the checked C entry points.

#include "linear_bf16.h"
#include "linear.h"  // linear_min_chunk
#include "bias_gelu.h"  // bias_gelu_block_bf16

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "../common/status.h"
#include "bert4j_kernels.h"

namespace bert4j::cpu {
namespace {

constexpr int64_t NP = kBf16Panel;
constexpr int64_t KS = kBf16KStep;
constexpr int64_t kTile = 512;  // bf16 elements in one 16 x 32 weight tile (1 KiB)
constexpr int64_t kMb = 32;     // rows per AMX task (two 16-row tiles)
// Row blocks per group (see launch_amx): 128 rows x k = 1536 bf16 is 384 KiB, a fifth of L2.
constexpr int64_t kGroupBlocks = 4;
// AMX multiply-adds are ~10x cheaper than fp32 FMAs; below this per thread a fork/join costs
// about as much as it saves.
constexpr int64_t kMinMacsPerThread = int64_t{1} << 22;

#define BERT4J_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

// ---- AMX ----------------------------------------------------------------------------------

struct alignas(64) TileConfig {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

// Every tile 16 rows x 64 bytes: accumulators 16 x 16 fp32, x tiles 16 rows x 32 bf16, weight
// tiles 16 k pairs x 16 columns x 2 bf16.
BERT4J_AMX void load_tile_config() {
    TileConfig c{};
    c.palette = 1;
    for (int i = 0; i < 8; ++i) {
        c.rows[i] = 16;
        c.colsb[i] = 64;
    }
    _tile_loadconfig(&c);
}

// Adds bias[0..nc) to rows [0, mr) of y (row stride ldy) and, when src != y, copies them from
// src (row stride lds) first.
BERT4J_AMX void epilogue(const float* src, int64_t lds, const float* bias, float* y, int64_t ldy,
                         int mr, int nc) {
    const __mmask16 lo = nc >= 16 ? __mmask16(0xffff) : __mmask16((1u << nc) - 1u);
    const __mmask16 hi = nc <= 16 ? __mmask16(0) : nc >= 32 ? __mmask16(0xffff) : __mmask16((1u << (nc - 16)) - 1u);
    const __m512 b0 = bias != nullptr ? _mm512_maskz_loadu_ps(lo, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias != nullptr ? _mm512_maskz_loadu_ps(hi, bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < mr; ++r) {
        const float* s = src + r * lds;
        float* d = y + r * ldy;
        _mm512_mask_storeu_ps(d, lo, _mm512_add_ps(_mm512_maskz_loadu_ps(lo, s), b0));
        if (hi) _mm512_mask_storeu_ps(d + 16, hi, _mm512_add_ps(_mm512_maskz_loadu_ps(hi, s + 16), b1));
    }
}

// Rows [r0, r0 + 32) (TWO) or [r0, r0 + 16) of a times panel wp, into y rows r0.. (mr of them
// valid), nc of the panel's 32 columns valid. `a` points at the first row's 16-row block of the
// tile-blocked bf16 copy of x (see convert_rows); the next block starts 16 * lda elements on.
// Sums in tiles 0-3, x tiles 4-5, weight tiles 6-7.
// Where a task's outputs go: y (plain, bias added) or, with gelu_to set, gelu(sum + bias)
// rounded to bf16 into the tile-blocked operand copy of the next GEMM (its tile for these rows
// and this panel's 32 columns, which are one k step there).
struct Epilogue {
    uint16_t* gelu_to = nullptr;  // the first row block's tile for this panel, or null
    int64_t gelu_lda = 0;         // elements per row of that copy (the next block is 16 * lda on)
    int approximate = 0;
};

template <bool TWO>
BERT4J_AMX void tile_amx(const uint16_t* a, int64_t lda, const uint16_t* wp, int64_t steps,
                         const float* bias, float* y, int64_t ldy, int mr, int nc, const Epilogue& ep) {
    _tile_zero(0);
    _tile_zero(1);
    if (TWO) {
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t s = 0; s < steps; ++s) {
        const uint16_t* w = wp + s * 2 * kTile;
        _tile_loadd(4, a + s * kTile, 64);
        _tile_loadd(6, w, 64);
        _tile_loadd(7, w + kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (TWO) {
            _tile_loadd(5, a + 16 * lda + s * kTile, 64);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    const int rows = TWO ? 32 : 16;
    if (ep.gelu_to == nullptr && mr == rows && nc == 32) {
        // Whole block: straight into y, then the bias while the lines are in L1.
        _tile_stored(0, y, ldy * 4);
        _tile_stored(1, y + 16, ldy * 4);
        if (TWO) {
            _tile_stored(2, y + 16 * ldy, ldy * 4);
            _tile_stored(3, y + 16 * ldy + 16, ldy * 4);
        }
        if (bias != nullptr) epilogue(y, ldy, bias, y, ldy, mr, nc);
        return;
    }
    alignas(64) float tmp[32 * 32];
    _tile_stored(0, tmp, 32 * 4);
    _tile_stored(1, tmp + 16, 32 * 4);
    if (TWO) {
        _tile_stored(2, tmp + 16 * 32, 32 * 4);
        _tile_stored(3, tmp + 16 * 32 + 16, 32 * 4);
    }
    if (ep.gelu_to != nullptr)
        bias_gelu_block_bf16(tmp, 32, bias, mr, nc, ep.gelu_to, TWO ? ep.gelu_to + 16 * ep.gelu_lda : nullptr,
                             ep.approximate);
    else
        epilogue(tmp, 32, bias, y, ldy, mr, nc);
}

// x rows [r_begin, r_end) of [m, k] (r_begin a multiple of 16) -> the bf16 copy `a`, blocked the
// way AMX loads it: per block of 16 rows, per step of 32 k values, one contiguous 1 KiB tile (16
// rows x 32 bf16), so every tile load reads 16 consecutive cache lines. lda = steps * 32; zero
// past k; rows >= m all zero.
BERT4J_AMX void convert_rows(const float* x, int64_t ldx, int64_t m, int64_t k, uint16_t* a,
                             int64_t lda, int64_t r_begin, int64_t r_end) {
    const int64_t steps = lda / KS;
    for (int64_t r = r_begin; r < r_end; ++r) {
        uint16_t* ar = a + (r / 16) * 16 * lda + (r % 16) * KS;  // row r of step 0's tile
        if (r >= m) {
            for (int64_t s = 0; s < steps; ++s) std::memset(ar + s * kTile, 0, KS * 2);
            continue;
        }
        const float* xr = x + r * ldx;
        for (int64_t s = 0; s < steps; ++s) {
            const int64_t c = s * KS, left = k - c;
            __m512bh v;
            if (left >= 32) {
                v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + c + 16), _mm512_loadu_ps(xr + c));
            } else {
                const __mmask16 l0 = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
                const __mmask16 l1 = left <= 16 ? __mmask16(0) : __mmask16((1u << (left - 16)) - 1u);
                v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(l1, xr + c + 16), _mm512_maskz_loadu_ps(l0, xr + c));
            }
            _mm512_store_si512(ar + s * kTile, reinterpret_cast<__m512i>(v));  // zeros past k
        }
    }
}

struct AlignedFree {
    void operator()(uint16_t* p) const { std::free(p); }
};

// A 64-byte aligned bf16 buffer per calling thread and purpose, grown as needed, reused.
uint16_t* thread_buffer(std::unique_ptr<uint16_t, AlignedFree>& buf, size_t& cap, size_t need) {
    if (cap < need) {
        buf.reset();
        cap = 0;
        void* p = std::aligned_alloc(64, (need * 2 + 63) / 64 * 64);
        if (p == nullptr) throw std::bad_alloc();
        buf.reset(static_cast<uint16_t*>(p));
        cap = need;
    }
    return buf.get();
}

// The AMX GEMM over m rows: x (fp32, converted here into `a`) or, with x null, `a` already
// holding the tile-blocked bf16 rows (lda = steps * 32). Outputs per `gelu`: into y, or, when
// gelu.gelu_to is set (the copy's base), gelu(sum + bias) in bf16 into that tile-blocked copy.
BERT4J_AMX void launch_amx(const float* x, int64_t ldx, uint16_t* a, const uint16_t* packed,
                           const float* bias, float* y, int64_t m, int64_t n, int64_t k, int64_t ldy,
                           const Epilogue& gelu, int max_threads) {
    const int64_t steps = bf16_steps(k), lda = steps * KS, panels = bf16_panels(n);
    const int64_t mp = (m + 15) / 16 * 16;
    const int64_t row_blocks = (mp + kMb - 1) / kMb;
    const int64_t tasks = panels * row_blocks;
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const int64_t by_work = static_cast<int64_t>(
        std::max(1.0, std::min(1e9, macs / static_cast<double>(kMinMacsPerThread))));
    const int threads = static_cast<int>(std::min<int64_t>({max_threads, tasks, by_work}));
    const int64_t chunk = linear_min_chunk(std::min(row_blocks, kGroupBlocks));
    const int64_t group_tasks = panels * kGroupBlocks;  // tasks of a whole group (the last may be smaller)
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        if (x != nullptr) {
#pragma omp for schedule(static)
            for (int64_t rb = 0; rb < mp / 16; ++rb) convert_rows(x, ldx, m, k, a, lda, rb * 16, rb * 16 + 16);
        }
        load_tile_config();
        // Row groups outermost, then panels, then the group's row blocks: a group's bf16 rows
        // (kGroupBlocks x 32 rows x k) stay in L2 while every weight panel passes by once per
        // group, and consecutive tasks share a panel.
#pragma omp for schedule(guided, chunk)
        for (int64_t t = 0; t < tasks; ++t) {
            const int64_t g = t / group_tasks, in_group = t % group_tasks;
            const int64_t g_blocks = std::min(kGroupBlocks, row_blocks - g * kGroupBlocks);
            const int64_t p = in_group / g_blocks, rb = g * kGroupBlocks + in_group % g_blocks;
            const int64_t r0 = rb * kMb, c0 = p * NP;
            const int mr = static_cast<int>(std::min<int64_t>(kMb, m - r0));
            const int nc = static_cast<int>(std::min<int64_t>(NP, n - c0));
            const uint16_t* wp = packed + p * steps * 2 * kTile;
            const float* b = bias != nullptr ? bias + c0 : nullptr;
            Epilogue ep = gelu;
            if (ep.gelu_to != nullptr) ep.gelu_to += (r0 / 16) * 16 * ep.gelu_lda + p * kTile;
            float* yt = y != nullptr ? y + r0 * ldy + c0 : nullptr;
            if (mp - r0 >= 32) tile_amx<true>(a + r0 * lda, lda, wp, steps, b, yt, ldy, mr, nc, ep);
            else tile_amx<false>(a + r0 * lda, lda, wp, steps, b, yt, ldy, mr, nc, ep);
        }
        _tile_release();
    }
}

// The bf16 copy of x per calling thread (linear_bf16_launch, linear_bf16_gelu_launch's input).
thread_local std::unique_ptr<uint16_t, AlignedFree> t_xbuf;
thread_local size_t t_xcap = 0;
// linear_bf16_gelu_launch's output per calling thread.
thread_local std::unique_ptr<uint16_t, AlignedFree> t_gbuf;
thread_local size_t t_gcap = 0;

// ---- scalar path ----------------------------------------------------------------------------
// The sums AMX computes, up to the order of its fp32 additions: bf16 operands with denormals
// read as zero, each product (exact in fp32) added in k order, denormal sums flushed to zero.
// tdpbf16ps does not add in this order (measured: ~half the outputs of a 384-long sum differ
// from it in the last bits, also from pair-wise variants); both stay within the fp32
// recursive-summation bound of the exact sum, which the native test checks.

inline float daz(float v) { return std::fabs(v) < FLT_MIN ? 0.0f : v; }

void launch_scalar(const float* x, const uint16_t* packed, const float* bias, float* y, int64_t m,
                   int64_t n, int64_t k, int64_t ldx, int64_t ldy, int max_threads) {
    const int64_t steps = bf16_steps(k);
    const int threads = static_cast<int>(std::min<int64_t>(max_threads, m));
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t r = 0; r < m; ++r) {
        // The row's bf16 values, rounded once (not once per output column).
        std::vector<float> xb(static_cast<size_t>(k));
        for (int64_t kk = 0; kk < k; ++kk) xb[kk] = daz(from_bf16(to_bf16(x[r * ldx + kk])));
        for (int64_t j = 0; j < n; ++j) {
            const int64_t p = j / NP, t = (j % NP) / 16, jj = j % 16;
            float acc = 0.0f;
            for (int64_t kk = 0; kk < k; ++kk) {
                const int64_t s = kk / KS, rr = (kk % KS) / 2, e = kk % 2;
                const float w = daz(from_bf16(packed[((p * steps + s) * 2 + t) * kTile + rr * 32 + jj * 2 + e]));
                acc = daz(acc + xb[kk] * w);
            }
            y[r * ldy + j] = bias != nullptr ? acc + bias[j] : acc;
        }
    }
}

bool request_amx() {
    if (std::getenv("BERT4J_CPU_ISA") != nullptr) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1u, bf16 = (d >> 22) & 1u;
    const bool avx512bf16 = __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1u);
    if (!tile || !bf16 || !avx512bf16) return false;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtileData) == 0;
#else
    return false;
#endif
}

}  // namespace

bool amx_bf16_supported() {
    static const bool ok = request_amx();
    return ok;
}

void linear_bf16_pack(const float* w, int64_t n, int64_t k, int64_t ldw, uint16_t* packed) {
    const int64_t steps = bf16_steps(k), panels = bf16_panels(n);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t s = 0; s < steps; ++s)
            for (int64_t t = 0; t < 2; ++t) {
                uint16_t* dst = packed + ((p * steps + s) * 2 + t) * kTile;
                for (int64_t r = 0; r < 16; ++r)
                    for (int64_t j = 0; j < 16; ++j)
                        for (int64_t e = 0; e < 2; ++e) {
                            const int64_t col = p * NP + t * 16 + j, kk = s * KS + 2 * r + e;
                            dst[r * 32 + j * 2 + e] = col < n && kk < k ? to_bf16(w[col * ldw + kk]) : 0;
                        }
            }
}

void linear_bf16_launch(const float* x, const uint16_t* packed, const float* bias, float* y, int64_t m,
                        int64_t n, int64_t k, int64_t x_row_stride, int64_t y_row_stride, bool use_amx,
                        int max_threads) {
    if (use_amx && amx_bf16_supported()) {
        uint16_t* a = thread_buffer(t_xbuf, t_xcap, static_cast<size_t>(bf16_blocked_elements(m, k)));
        launch_amx(x, x_row_stride, a, packed, bias, y, m, n, k, y_row_stride, Epilogue{}, max_threads);
    } else
        launch_scalar(x, packed, bias, y, m, n, k, x_row_stride, y_row_stride, max_threads);
}

const uint16_t* linear_bf16_gelu_launch(const float* x, const uint16_t* packed, const float* bias, int64_t m,
                                        int64_t n, int64_t k, int64_t x_row_stride, int approximate,
                                        int max_threads) {
    uint16_t* a = thread_buffer(t_xbuf, t_xcap, static_cast<size_t>(bf16_blocked_elements(m, k)));
    uint16_t* out = thread_buffer(t_gbuf, t_gcap, static_cast<size_t>(bf16_blocked_elements(m, n)));
    // k steps of the output beyond n's panels (n not a multiple of 32 leaves none: panels = steps)
    Epilogue ep;
    ep.gelu_to = out;
    ep.gelu_lda = bf16_steps(n) * KS;
    ep.approximate = approximate;
    launch_amx(x, x_row_stride, a, packed, bias, nullptr, m, n, k, 0, ep, max_threads);
    return out;
}

void linear_bf16_blocked_launch(const uint16_t* a, const uint16_t* packed, const float* bias, float* y,
                                int64_t m, int64_t n, int64_t k, int64_t y_row_stride, int max_threads) {
    launch_amx(nullptr, 0, const_cast<uint16_t*>(a), packed, bias, y, m, n, k, y_row_stride, Epilogue{},
               max_threads);
}

}  // namespace bert4j::cpu

// ---- entry layer: checked C ABI ------------------------------------------------------------

namespace {

long long ll(int64_t v) { return static_cast<long long>(v); }

int check_nk(const char* op, int64_t n, int64_t k) {
    using bert4j::detail::fail;
    if (n < 0 || k < 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: n and k must be >= 0, got n=%lld k=%lld", op, ll(n), ll(k));
    if (n > 0 && k > 0 &&
        static_cast<unsigned __int128>(bert4j::cpu::bf16_panels(n) * bert4j::cpu::kBf16Panel) *
                static_cast<unsigned __int128>(bert4j::cpu::bf16_steps(k) * bert4j::cpu::kBf16KStep) >
            static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max() / 4))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: n=%lld, k=%lld is too large", op, ll(n), ll(k));
    return BERT4J_OK;
}

}  // namespace

extern "C" int bert4j_linear_bf16_amx(void) { return bert4j::cpu::amx_bf16_supported() ? 1 : 0; }

extern "C" int bert4j_linear_bf16_packed_size(int64_t n, int64_t k, int64_t* elements) {
    using bert4j::detail::fail;
    const char* op = "bert4j_linear_bf16_packed_size";
    if (elements == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: elements is NULL", op);
    const int st = check_nk(op, n, k);
    if (st != BERT4J_OK) return st;
    *elements = n == 0 || k == 0 ? 0 : bert4j::cpu::bf16_packed_elements(n, k);
    return bert4j::detail::ok();
}

extern "C" int bert4j_linear_bf16_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride,
                                       uint16_t* packed) {
    using bert4j::detail::fail;
    const char* op = "bert4j_linear_bf16_pack";
    try {
        int st = check_nk(op, n, k);
        if (st != BERT4J_OK) return st;
        if (n == 0 || k == 0) return bert4j::detail::ok();
        if (w == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: w is NULL", op);
        if (packed == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: packed is NULL", op);
        if (w_row_stride < k)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: w_row_stride must be >= k (%lld), got %lld", op,
                        ll(k), ll(w_row_stride));
        bert4j::cpu::linear_bf16_pack(w, n, k, w_row_stride, packed);
        return bert4j::detail::ok();
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    }
}

extern "C" int bert4j_linear_bf16_f32(const float* x, const uint16_t* packed, const float* bias,
                                      float* y, int64_t m, int64_t n, int64_t k,
                                      int64_t x_row_stride, int64_t y_row_stride) {
    using namespace bert4j;
    using detail::fail;
    const char* op = "bert4j_linear_bf16_f32";
    try {
        if (m < 0) return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: m must be >= 0, got %lld", op, ll(m));
        int st = check_nk(op, n, k);
        if (st != BERT4J_OK) return st;
        bool done = false;
        st = detail::linear_call_prologue(op, x, packed, bias, y, m, n, k, x_row_stride, y_row_stride, &done);
        if (st != BERT4J_OK || done) return st;
        if (static_cast<unsigned __int128>(m + 32) *
                static_cast<unsigned __int128>(std::max({x_row_stride, y_row_stride, k + 32})) >
            static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max() / 4))
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: m=%lld rows overflow int64 offsets", op, ll(m));
        cpu::linear_bf16_launch(x, packed, bias, y, m, n, k, x_row_stride, y_row_stride, true,
                                detail::num_threads());
        return detail::ok();
    } catch (const std::bad_alloc&) {
        return fail(BERT4J_ERR_INTERNAL, "%s: out of memory for the bf16 copy of x (%lld rows)", op, ll(m));
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    }
}
