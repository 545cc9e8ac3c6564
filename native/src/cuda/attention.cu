// Fused multi-head attention on CUDA (FlashAttention-2 style), fp32 and bf16 storage, fp32
// accumulation, head_dim 32 or 64. Dense (strided [B,H,S,D] or [B,S,H,D] views, key lengths,
// broadcast additive mask) and varlen (packed tokens, cu_seqlens). Forward and backward.
// Three layers: kernels, launchers (grid, shared memory, stream, launch check), checked
// extern "C" entry points. Built only into libbert4j_kernels_cuda.
//
// Tiling. One thread block = 4 warps = 128 threads. A block owns 64 rows (queries in the
// forward and the dQ pass, keys in the dK/dV pass); each warp owns 16 of them and walks the
// other side in tiles of 64 staged in shared memory. Every tile product goes through a
// warp-private fp32 tile in shared memory ("C"), and the softmax / gradient element-wise math
// reads it with a fixed lane mapping, so the fp32 (SIMT) and bf16 (tensor core) paths share
// all code but the two warp products:
//   nt: C[16][64] = A[16][D] * B[64][D]^T      (scores, dP)
//   nn: C[16][D]  = A[16][64] * B[64][D]       (P V, dS K, P^T dO, dS^T Q)
// bf16 uses nvcuda::wmma m16n16k16 (bf16 in, fp32 accumulate: mma.sync on sm_80/sm_90);
// P and dS are rounded to bf16 before their products, as FlashAttention does. fp32 uses a
// SIMT product with fp32 FMAs (no TF32), so the fp32 path keeps fp32 accuracy.
//
// Forward: online softmax over key tiles (running max m, sum l, unnormalised O in
// registers), O / l and lse = m + log l at the end. A row with no visible key keeps
// l = 0: out = 0, lse = -inf, no NaN.
// Backward: (1) D_i = rowsum(dO_i * O_i) into fp32 scratch; (2) the dK/dV pass, parallel over
// key blocks, loops over query tiles and keeps dK, dV in registers; (3) a separate dQ pass,
// parallel over query blocks, loops over key tiles and keeps dQ in registers. Passes 2 and 3
// both recompute P and dP: 7 tile products instead of FlashAttention-2's 5, in exchange for
// no atomics and no dQ scratch, so every gradient is bitwise reproducible run to run.
// Dropout: the keep decision of element (row, j) is Philox-4x32-10 of the ABI's index
// (philox.h, identical to the CPU), recomputed in every pass; one Philox call serves 4
// consecutive keys of a row (two when the group straddles a 4-aligned counter block).
//
// Not yet done (see README): cp.async double buffering, register-resident mma fragments,
// a causal mask (BERT has none).

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <type_traits>

#include "../common/arg_checks.h"
#include "../common/philox.h"
#include "../common/status.h"
#include "bert4j_kernels.h"

namespace bert4j::cuda_attention {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kRows = 64;      // rows owned by a block
constexpr int kTile = 64;      // rows of the other side per shared-memory tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kWarpRows = 16;  // rows owned by a warp
constexpr int kLdc = kTile + 4;  // fp32 C tiles; a multiple of 4 (wmma store), D <= 64 fits
constexpr float kLog2e = 1.4426950408889634f;

static_assert(kRows == kWarps * kWarpRows, "each warp owns 16 rows");

template <typename T> struct Pad;
template <> struct Pad<float> { static constexpr int value = 1; };  // odd ld: no SIMT conflicts
template <> struct Pad<bf16> { static constexpr int value = 8; };   // wmma: ld % 8 == 0
template <typename T, int D> __host__ __device__ constexpr int ldt() { return D + Pad<T>::value; }  // Q/K/V/dO tiles
template <typename T> __host__ __device__ constexpr int ldp() { return kTile + Pad<T>::value; }     // P / dS tiles

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

// Everything a kernel needs. Dense: strides are (batch, head, seq). Varlen: (0, head, token),
// so offset(b, h, row) = b*s[0] + h*s[1] + (tok0 + row)*s[2] serves both.
struct Params {
    const void *q, *k, *v, *out, *dout;
    void *o, *dq, *dk, *dv;
    float* lse;         // forward: written when not NULL; backward: read
    float* dvec;        // backward scratch: rowsum(dO * O), indexed like lse
    int64_t qs[3], ks[3], vs[3], os[3], dos[3], dqs[3], dks[3], dvs[3];
    const int32_t* key_lengths;
    const float* mask;
    int64_t ms[3];
    const int32_t* cu_seqlens;  // varlen when not NULL
    int64_t batch, heads, seq_q, seq_k, total_tokens;  // varlen: seq_q = seq_k = max_seqlen
    int64_t tiles;             // row tiles per (batch, head): the grid is batch*heads*tiles
    int64_t drop_stride;       // dropout index = (row0 + i) * drop_stride + j
    float scale;
    float drop_scale;          // 1 / (1 - p)
    uint32_t threshold;        // keep iff bits >= threshold
    int dropout;               // 0 or 1
    int vec;                   // 16-byte global loads are aligned for every tensor
    int vec_out;               // outputs can be written as aligned 2-element (4-byte) words
    uint64_t seed, offset;
};

// One (batch or sequence, head) problem.
struct Problem {
    int64_t b, h;
    int64_t tok0;  // first token (varlen), 0 dense
    int64_t row0;  // lse / dvec index and dropout row of query 0
    int sq;        // queries
    int sk;        // visible keys (key_len, or the sequence length)
    int sk_rows;   // key rows owned (dk/dv rows to write): seq_k dense, length varlen
};

__device__ __forceinline__ Problem problem(const Params& p, int64_t bh) {
    Problem pr;
    pr.b = bh / p.heads;
    pr.h = bh - pr.b * p.heads;
    if (p.cu_seqlens != nullptr) {
        // Device-resident values cannot be checked before launch: clamp so a bad cu_seqlens
        // can never address memory outside [0, total_tokens) or beyond max_seqlen.
        int64_t start = p.cu_seqlens[pr.b], end = p.cu_seqlens[pr.b + 1];
        start = start < 0 ? 0 : (start > p.total_tokens ? p.total_tokens : start);
        end = end < start ? start : (end > p.total_tokens ? p.total_tokens : end);
        const int64_t len = end - start < p.seq_q ? end - start : p.seq_q;
        pr.tok0 = start;
        pr.row0 = pr.h * p.total_tokens + start;
        pr.sq = pr.sk = pr.sk_rows = static_cast<int>(len);
    } else {
        int64_t kl = p.seq_k;
        if (p.key_lengths != nullptr) {
            kl = p.key_lengths[pr.b];
            kl = kl < 0 ? 0 : (kl > p.seq_k ? p.seq_k : kl);  // clamped, as above
        }
        pr.tok0 = 0;
        pr.row0 = bh * p.seq_q;
        pr.sq = static_cast<int>(p.seq_q);
        pr.sk = static_cast<int>(kl);
        pr.sk_rows = static_cast<int>(p.seq_k);
    }
    return pr;
}

__device__ __forceinline__ int64_t base(const int64_t* s, const Problem& pr, int row0) {
    return pr.b * s[0] + pr.h * s[1] + (pr.tok0 + row0) * s[2];
}

// ---- dropout ----------------------------------------------------------------------------
__device__ __forceinline__ Philox4 philox_block(uint64_t block, uint64_t seed, uint64_t offset) {
    Philox4 c;
    c.x[0] = static_cast<uint32_t>(block);
    c.x[1] = static_cast<uint32_t>(block >> 32);
    c.x[2] = static_cast<uint32_t>(offset);
    c.x[3] = static_cast<uint32_t>(offset >> 32);
    return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

__device__ __forceinline__ uint32_t pick(const Philox4& r, uint32_t i) {
    return i == 0 ? r.x[0] : i == 1 ? r.x[1] : i == 2 ? r.x[2] : r.x[3];
}

// Keep bits (bit e) of the 4 consecutive elements idx0 .. idx0 + 3, exactly as
// bert4j::dropout_keep(seed, offset, idx0 + e, threshold).
__device__ __forceinline__ unsigned keep4(const Params& p, uint64_t idx0) {
    const uint64_t b0 = idx0 >> 2;
    const Philox4 r0 = philox_block(b0, p.seed, p.offset);
    Philox4 r1 = r0;
    if (((idx0 + 3) >> 2) != b0) r1 = philox_block(b0 + 1, p.seed, p.offset);
    unsigned bits = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const uint64_t idx = idx0 + e;
        const uint32_t x = pick((idx >> 2) == b0 ? r0 : r1, static_cast<uint32_t>(idx & 3));
        bits |= (x >= p.threshold ? 1u : 0u) << e;
    }
    return bits;
}

// ---- shared-memory tiles ----------------------------------------------------------------
// 64 rows x D of a global [rows, D] slice (row stride in elements) into smem (ld = ldt);
// rows >= valid are zero-filled, so masked rows never feed NaN/Inf garbage into a product.
template <typename T, int D>
__device__ __forceinline__ void load_tile(T* __restrict__ s, const T* g, int64_t row_stride,
                                          int valid, int vec) {
    constexpr int LD = ldt<T, D>();
    if (vec) {
        constexpr int V = 16 / sizeof(T);
        constexpr int CH = D / V;
        for (int e = threadIdx.x; e < kTile * CH; e += kThreads) {
            const int r = e / CH, c = (e % CH) * V;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (r < valid) val = *reinterpret_cast<const uint4*>(g + r * row_stride + c);
            if constexpr ((LD * sizeof(T)) % 16 == 0) {
                *reinterpret_cast<uint4*>(s + r * LD + c) = val;
            } else {
                const T* t = reinterpret_cast<const T*>(&val);
#pragma unroll
                for (int i = 0; i < V; ++i) s[r * LD + c + i] = t[i];
            }
        }
    } else {
        for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
            const int r = e / D, c = e % D;
            s[r * LD + c] = r < valid ? g[r * row_stride + c] : from_f<T>(0.0f);
        }
    }
}

// Warp writes its 16 rows of the fp32 tile C ([16][ld]) to global rows (coalesced along d).
template <typename T, int D>
__device__ __forceinline__ void store_rows(const float* C, T* g, int64_t row_stride, int valid,
                                           int lane) {
    for (int r = 0; r < kWarpRows && r < valid; ++r)
        for (int d = lane; d < D; d += 32) g[r * row_stride + d] = from_f<T>(C[r * kLdc + d]);
}

// ---- warp tile products -----------------------------------------------------------------
template <typename T, int D> struct WarpMM;

// fp32 SIMT: lane (r = lane/2, half = lane%2) computes row r, columns 2t + half.
template <int D> struct WarpMM<float, D> {
    static __device__ __forceinline__ void nt(const float* A, int lda, const float* B, int ldb,
                                              float* C, int lane) {
        const int r = lane >> 1, half = lane & 1;
        float acc[kTile / 2];
#pragma unroll
        for (int t = 0; t < kTile / 2; ++t) acc[t] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < D; ++d) {
            const float a = A[r * lda + d];
#pragma unroll
            for (int t = 0; t < kTile / 2; ++t) acc[t] = fmaf(a, B[(2 * t + half) * ldb + d], acc[t]);
        }
#pragma unroll
        for (int t = 0; t < kTile / 2; ++t) C[r * kLdc + 2 * t + half] = acc[t];
    }
    static __device__ __forceinline__ void nn(const float* A, int lda, const float* B, int ldb,
                                              float* C, int lane) {
        const int r = lane >> 1, half = lane & 1;
        float acc[D / 2];
#pragma unroll
        for (int t = 0; t < D / 2; ++t) acc[t] = 0.0f;
#pragma unroll 4
        for (int k = 0; k < kTile; ++k) {
            const float a = A[r * lda + k];
#pragma unroll
            for (int t = 0; t < D / 2; ++t) acc[t] = fmaf(a, B[k * ldb + 2 * t + half], acc[t]);
        }
#pragma unroll
        for (int t = 0; t < D / 2; ++t) C[r * kLdc + 2 * t + half] = acc[t];
    }
};

// bf16 tensor cores through wmma (mma.sync m16n8k16 underneath on sm_80 / sm_90).
template <int D> struct WarpMM<bf16, D> {
    static __device__ __forceinline__ void nt(const bf16* A, int lda, const bf16* B, int ldb,
                                              float* C, int) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
        using namespace nvcuda;
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a[D / 16];
#pragma unroll
        for (int k = 0; k < D / 16; ++k) wmma::load_matrix_sync(a[k], A + k * 16, lda);
#pragma unroll
        for (int n = 0; n < kTile / 16; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::fill_fragment(c, 0.0f);
#pragma unroll
            for (int k = 0; k < D / 16; ++k) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
                wmma::load_matrix_sync(b, B + n * 16 * ldb + k * 16, ldb);
                wmma::mma_sync(c, a[k], b, c);
            }
            wmma::store_matrix_sync(C + n * 16, c, kLdc, wmma::mem_row_major);
        }
#else
        __trap();  // bf16 tensor cores need sm_80+; the launcher never gets here
#endif
    }
    static __device__ __forceinline__ void nn(const bf16* A, int lda, const bf16* B, int ldb,
                                              float* C, int) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
        using namespace nvcuda;
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a[kTile / 16];
#pragma unroll
        for (int k = 0; k < kTile / 16; ++k) wmma::load_matrix_sync(a[k], A + k * 16, lda);
#pragma unroll
        for (int n = 0; n < D / 16; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::fill_fragment(c, 0.0f);
#pragma unroll
            for (int k = 0; k < kTile / 16; ++k) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
                wmma::load_matrix_sync(b, B + k * 16 * ldb + n * 16, ldb);
                wmma::mma_sync(c, a[k], b, c);
            }
            wmma::store_matrix_sync(C + n * 16, c, kLdc, wmma::mem_row_major);
        }
#else
        __trap();
#endif
    }
};

// ---- shared-memory layouts (bytes; every region 128-byte aligned) -----------------------
__host__ __device__ constexpr size_t align128(size_t n) { return (n + 127) / 128 * 128; }
template <typename T, int D> __host__ __device__ constexpr size_t tile_bytes() { return align128(sizeof(T) * kTile * ldt<T, D>()); }
__host__ __device__ constexpr size_t c_bytes() { return align128(sizeof(float) * kWarps * kWarpRows * kLdc); }
template <typename T> __host__ __device__ constexpr size_t p_bytes() { return align128(sizeof(T) * kWarps * kWarpRows * ldp<T>()); }

template <typename T, int D> constexpr size_t fwd_smem() { return 3 * tile_bytes<T, D>() + c_bytes() + p_bytes<T>(); }
template <typename T, int D> constexpr size_t dq_smem() { return 4 * tile_bytes<T, D>() + 2 * c_bytes() + p_bytes<T>(); }
template <typename T, int D> constexpr size_t dkdv_smem() {
    return 4 * tile_bytes<T, D>() + 2 * c_bytes() + 2 * p_bytes<T>() + align128(2 * kTile * sizeof(float));
}

// ---- kernel: forward --------------------------------------------------------------------
// Block = 64 queries of one (b, h). Element-wise lane mapping on the warp's [16][64] score
// tile: row r = lane/2; columns 4g .. 4g+3 for g = 2t + lane%2, t < 8 (the lane pair of a row
// reduces with one shuffle; 4 consecutive keys share one Philox call).
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_fwd_kernel(const Params p) {
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int LDT = ldt<T, D>(), LDP = ldp<T>();
    T* Qs = reinterpret_cast<T*>(smem);
    T* Ks = reinterpret_cast<T*>(smem + tile_bytes<T, D>());
    T* Vs = reinterpret_cast<T*>(smem + 2 * tile_bytes<T, D>());
    float* Cs = reinterpret_cast<float*>(smem + 3 * tile_bytes<T, D>());
    T* Ps = reinterpret_cast<T*>(smem + 3 * tile_bytes<T, D>() + c_bytes());

    const int64_t bh = blockIdx.x / p.tiles;
    const int tile = static_cast<int>(blockIdx.x - bh * p.tiles);
    const Problem pr = problem(p, bh);
    const int q0 = tile * kRows;
    if (q0 >= pr.sq) return;  // varlen: past the end of this sequence (uniform per block)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r = lane >> 1, half = lane & 1;
    float* Cw = Cs + warp * kWarpRows * kLdc;
    T* Pw = Ps + warp * kWarpRows * LDP;

    load_tile<T, D>(Qs, static_cast<const T*>(p.q) + base(p.qs, pr, q0), p.qs[2],
                    pr.sq - q0 < kRows ? pr.sq - q0 : kRows, p.vec);

    const int i = q0 + warp * kWarpRows + r;  // this lane's query
    const bool row_ok = i < pr.sq;
    const float* mrow = (p.mask != nullptr && row_ok) ? p.mask + pr.b * p.ms[0] + pr.h * p.ms[1] + i * p.ms[2] : nullptr;
    const uint64_t drow = static_cast<uint64_t>(pr.row0 + i) * static_cast<uint64_t>(p.drop_stride);
    float m = -INFINITY, l = 0.0f;
    float o[D / 2];
#pragma unroll
    for (int t = 0; t < D / 2; ++t) o[t] = 0.0f;

    const int n_tiles = (pr.sk + kTile - 1) / kTile;
    for (int kt = 0; kt < n_tiles; ++kt) {
        const int k0 = kt * kTile;
        const int valid = pr.sk - k0 < kTile ? pr.sk - k0 : kTile;
        __syncthreads();  // previous tile fully consumed
        load_tile<T, D>(Ks, static_cast<const T*>(p.k) + base(p.ks, pr, k0), p.ks[2], valid, p.vec);
        load_tile<T, D>(Vs, static_cast<const T*>(p.v) + base(p.vs, pr, k0), p.vs[2], valid, p.vec);
        __syncthreads();
        WarpMM<T, D>::nt(Qs + warp * kWarpRows * LDT, LDT, Ks, LDT, Cw, lane);
        __syncwarp();

        float s[32];
        float tmax = -INFINITY;
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const int c = 4 * (2 * t + half);
            const float4 raw = *reinterpret_cast<const float4*>(Cw + r * kLdc + c);
            const float rv[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int j = k0 + c + e;
                float x = -INFINITY;
                if (row_ok && j < pr.sk) {
                    x = rv[e] * p.scale;
                    if (mrow != nullptr) x += mrow[j];
                }
                s[4 * t + e] = x;
                tmax = fmaxf(tmax, x);
            }
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        const float m_new = fmaxf(m, tmax);
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // all masked so far: p = 0
        const float alpha = m == -INFINITY ? 0.0f : exp2f((m - m_new) * kLog2e);
        float tsum = 0.0f;
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const int c = 4 * (2 * t + half);
            unsigned keep = 0xFu;
            if (p.dropout && row_ok && k0 + c < pr.sk) keep = keep4(p, drow + k0 + c);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float pe = exp2f((s[4 * t + e] - m_use) * kLog2e);
                tsum += pe;  // l sums the softmax before dropout
                const float pd = p.dropout ? ((keep >> e) & 1u ? pe * p.drop_scale : 0.0f) : pe;
                Pw[r * LDP + c + e] = from_f<T>(pd);
            }
        }
        tsum += __shfl_xor_sync(0xffffffffu, tsum, 1);
        l = l * alpha + tsum;
        m = m_new;
        __syncwarp();  // C reads done, P visible
        WarpMM<T, D>::nn(Pw, LDP, Vs, LDT, Cw, lane);
        __syncwarp();
#pragma unroll
        for (int t = 0; t < D / 2; ++t) o[t] = fmaf(o[t], alpha, Cw[r * kLdc + 2 * t + half]);
        __syncwarp();
    }

    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    if (p.lse != nullptr && row_ok && half == 0)
        p.lse[pr.row0 + i] = l > 0.0f ? m + logf(l) : -INFINITY;
#pragma unroll
    for (int t = 0; t < D / 2; ++t) Cw[r * kLdc + 2 * t + half] = o[t] * inv;
    __syncwarp();
    const int w0 = q0 + warp * kWarpRows;
    store_rows<T, D>(Cw, static_cast<T*>(p.o) + base(p.os, pr, w0), p.os[2], pr.sq - w0, lane);
}

// ---- kernel: backward preprocessing D_i = rowsum(dO_i * O_i) ------------------------------
// rows are (a, h, i) with row = (a * heads + h) * n + i; one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) attention_bwd_dot_kernel(const Params p, int64_t rows, int64_t n, int D) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const int64_t i = row % n, ah = row / n, h = ah % p.heads, a = ah / p.heads;
    // dense: (b, h, i) strides (s0, s1, s2); varlen: (0, h, token) with s0 = 0
    const T* o = static_cast<const T*>(p.out) + a * p.os[0] + h * p.os[1] + i * p.os[2];
    const T* g = static_cast<const T*>(p.dout) + a * p.dos[0] + h * p.dos[1] + i * p.dos[2];
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc = fmaf(to_f(o[d]), to_f(g[d]), acc);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) p.dvec[row] = acc;
}

// ---- kernel: backward dQ -----------------------------------------------------------------
// Block = 64 queries; loops over key tiles; dS = P * (dP * Z - D_i), dQ += dS K (scaled at
// the end). Same lane mapping as the forward.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_bwd_dq_kernel(const Params p) {
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int LDT = ldt<T, D>(), LDP = ldp<T>();
    constexpr size_t TB = tile_bytes<T, D>();
    T* Qs = reinterpret_cast<T*>(smem);
    T* dOs = reinterpret_cast<T*>(smem + TB);
    T* Ks = reinterpret_cast<T*>(smem + 2 * TB);
    T* Vs = reinterpret_cast<T*>(smem + 3 * TB);
    float* C1 = reinterpret_cast<float*>(smem + 4 * TB);
    float* C2 = reinterpret_cast<float*>(smem + 4 * TB + c_bytes());
    T* As = reinterpret_cast<T*>(smem + 4 * TB + 2 * c_bytes());

    const int64_t bh = blockIdx.x / p.tiles;
    const int tile = static_cast<int>(blockIdx.x - bh * p.tiles);
    const Problem pr = problem(p, bh);
    const int q0 = tile * kRows;
    if (q0 >= pr.sq) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r = lane >> 1, half = lane & 1;
    float* C1w = C1 + warp * kWarpRows * kLdc;
    float* C2w = C2 + warp * kWarpRows * kLdc;
    T* Aw = As + warp * kWarpRows * LDP;

    const int qvalid = pr.sq - q0 < kRows ? pr.sq - q0 : kRows;
    load_tile<T, D>(Qs, static_cast<const T*>(p.q) + base(p.qs, pr, q0), p.qs[2], qvalid, p.vec);
    load_tile<T, D>(dOs, static_cast<const T*>(p.dout) + base(p.dos, pr, q0), p.dos[2], qvalid, p.vec);

    const int i = q0 + warp * kWarpRows + r;
    const bool row_ok = i < pr.sq;
    const float lse_i = row_ok ? p.lse[pr.row0 + i] : -INFINITY;
    const float d_i = row_ok ? p.dvec[pr.row0 + i] : 0.0f;
    const bool live = lse_i != -INFINITY;  // a fully masked row has P = 0 and no gradient
    const float* mrow = (p.mask != nullptr && row_ok) ? p.mask + pr.b * p.ms[0] + pr.h * p.ms[1] + i * p.ms[2] : nullptr;
    const uint64_t drow = static_cast<uint64_t>(pr.row0 + i) * static_cast<uint64_t>(p.drop_stride);
    float acc[D / 2];
#pragma unroll
    for (int t = 0; t < D / 2; ++t) acc[t] = 0.0f;

    const int n_tiles = (pr.sk + kTile - 1) / kTile;
    for (int kt = 0; kt < n_tiles; ++kt) {
        const int k0 = kt * kTile;
        const int valid = pr.sk - k0 < kTile ? pr.sk - k0 : kTile;
        __syncthreads();
        load_tile<T, D>(Ks, static_cast<const T*>(p.k) + base(p.ks, pr, k0), p.ks[2], valid, p.vec);
        load_tile<T, D>(Vs, static_cast<const T*>(p.v) + base(p.vs, pr, k0), p.vs[2], valid, p.vec);
        __syncthreads();
        WarpMM<T, D>::nt(Qs + warp * kWarpRows * LDT, LDT, Ks, LDT, C1w, lane);   // S
        WarpMM<T, D>::nt(dOs + warp * kWarpRows * LDT, LDT, Vs, LDT, C2w, lane);  // dO V^T
        __syncwarp();
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const int c = 4 * (2 * t + half);
            unsigned keep = 0xFu;
            if (p.dropout && live && k0 + c < pr.sk) keep = keep4(p, drow + k0 + c);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int j = k0 + c + e;
                float ds = 0.0f;
                if (live && j < pr.sk) {
                    float x = C1w[r * kLdc + c + e] * p.scale;
                    if (mrow != nullptr) x += mrow[j];
                    const float pe = exp2f((x - lse_i) * kLog2e);
                    float dp = C2w[r * kLdc + c + e];
                    if (p.dropout) dp = (keep >> e) & 1u ? dp * p.drop_scale : 0.0f;
                    ds = pe * (dp - d_i);
                }
                Aw[r * LDP + c + e] = from_f<T>(ds);
            }
        }
        __syncwarp();
        WarpMM<T, D>::nn(Aw, LDP, Ks, LDT, C1w, lane);  // dS K
        __syncwarp();
#pragma unroll
        for (int t = 0; t < D / 2; ++t) acc[t] += C1w[r * kLdc + 2 * t + half];
        __syncwarp();
    }
#pragma unroll
    for (int t = 0; t < D / 2; ++t) C1w[r * kLdc + 2 * t + half] = acc[t] * p.scale;
    __syncwarp();
    const int w0 = q0 + warp * kWarpRows;
    store_rows<T, D>(C1w, static_cast<T*>(p.dq) + base(p.dqs, pr, w0), p.dqs[2], pr.sq - w0, lane);
}

// ---- kernel: backward dK, dV --------------------------------------------------------------
// Block = 64 keys; loops over query tiles. The warp tiles are transposed ([16 keys][64
// queries]): S^T = K Q^T, dP^T = V dO^T; dV += (P*Z)^T dO, dK += dS^T Q (scaled at the end).
// Element-wise lane mapping: keys 4*(lane%4) .. +3 (consecutive: one Philox call), queries
// lane/4 + 8t, t < 8.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attention_bwd_dkdv_kernel(const Params p) {
    extern __shared__ __align__(128) unsigned char smem[];
    constexpr int LDT = ldt<T, D>(), LDP = ldp<T>();
    constexpr size_t TB = tile_bytes<T, D>();
    T* Ks = reinterpret_cast<T*>(smem);
    T* Vs = reinterpret_cast<T*>(smem + TB);
    T* Qs = reinterpret_cast<T*>(smem + 2 * TB);
    T* dOs = reinterpret_cast<T*>(smem + 3 * TB);
    float* C1 = reinterpret_cast<float*>(smem + 4 * TB);
    float* C2 = reinterpret_cast<float*>(smem + 4 * TB + c_bytes());
    T* A1 = reinterpret_cast<T*>(smem + 4 * TB + 2 * c_bytes());
    T* A2 = reinterpret_cast<T*>(smem + 4 * TB + 2 * c_bytes() + p_bytes<T>());
    float* lse_s = reinterpret_cast<float*>(smem + 4 * TB + 2 * c_bytes() + 2 * p_bytes<T>());
    float* d_s = lse_s + kTile;

    const int64_t bh = blockIdx.x / p.tiles;
    const int tile = static_cast<int>(blockIdx.x - bh * p.tiles);
    const Problem pr = problem(p, bh);
    const int k0 = tile * kRows;
    if (k0 >= pr.sk_rows) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* C1w = C1 + warp * kWarpRows * kLdc;
    float* C2w = C2 + warp * kWarpRows * kLdc;
    T* A1w = A1 + warp * kWarpRows * LDP;
    T* A2w = A2 + warp * kWarpRows * LDP;
    const int kg = lane & 3, qi = lane >> 2;     // element-wise mapping
    const int r = lane >> 1, half = lane & 1;    // accumulator mapping
    const int jw = k0 + warp * kWarpRows;        // first key of this warp
    float acc_k[D / 2], acc_v[D / 2];
#pragma unroll
    for (int t = 0; t < D / 2; ++t) acc_k[t] = acc_v[t] = 0.0f;

    const int kvalid = pr.sk - k0 < kRows ? (pr.sk - k0 > 0 ? pr.sk - k0 : 0) : kRows;
    if (kvalid > 0) {  // else every key of the block is invisible: dk = dv = 0
        load_tile<T, D>(Ks, static_cast<const T*>(p.k) + base(p.ks, pr, k0), p.ks[2], kvalid, p.vec);
        load_tile<T, D>(Vs, static_cast<const T*>(p.v) + base(p.vs, pr, k0), p.vs[2], kvalid, p.vec);
        const float* mbase = p.mask != nullptr ? p.mask + pr.b * p.ms[0] + pr.h * p.ms[1] : nullptr;
        const int n_tiles = (pr.sq + kTile - 1) / kTile;
        for (int qt = 0; qt < n_tiles; ++qt) {
            const int i0 = qt * kTile;
            const int qvalid = pr.sq - i0 < kTile ? pr.sq - i0 : kTile;
            __syncthreads();
            load_tile<T, D>(Qs, static_cast<const T*>(p.q) + base(p.qs, pr, i0), p.qs[2], qvalid, p.vec);
            load_tile<T, D>(dOs, static_cast<const T*>(p.dout) + base(p.dos, pr, i0), p.dos[2], qvalid, p.vec);
            for (int t = threadIdx.x; t < kTile; t += kThreads) {
                lse_s[t] = t < qvalid ? p.lse[pr.row0 + i0 + t] : -INFINITY;
                d_s[t] = t < qvalid ? p.dvec[pr.row0 + i0 + t] : 0.0f;
            }
            __syncthreads();
            WarpMM<T, D>::nt(Ks + warp * kWarpRows * LDT, LDT, Qs, LDT, C1w, lane);   // S^T
            WarpMM<T, D>::nt(Vs + warp * kWarpRows * LDT, LDT, dOs, LDT, C2w, lane);  // dP^T
            __syncwarp();
#pragma unroll
            for (int t = 0; t < 8; ++t) {
                const int c = qi + 8 * t;  // query column
                const int i = i0 + c;
                const float lse_i = lse_s[c], d_i = d_s[c];
                const bool live = lse_i != -INFINITY;  // also false for i >= sq
                const int j0 = jw + 4 * kg;
                unsigned keep = 0xFu;
                if (p.dropout && live && j0 < pr.sk)
                    keep = keep4(p, static_cast<uint64_t>(pr.row0 + i) * static_cast<uint64_t>(p.drop_stride) + j0);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int rr = 4 * kg + e, j = j0 + e;
                    float pz = 0.0f, ds = 0.0f;
                    if (live && j < pr.sk) {
                        float x = C1w[rr * kLdc + c] * p.scale;
                        if (mbase != nullptr) x += mbase[i * p.ms[2] + j];
                        const float pe = exp2f((x - lse_i) * kLog2e);
                        const float z = p.dropout ? ((keep >> e) & 1u ? p.drop_scale : 0.0f) : 1.0f;
                        pz = pe * z;
                        ds = pe * (C2w[rr * kLdc + c] * z - d_i);
                    }
                    A1w[rr * LDP + c] = from_f<T>(pz);
                    A2w[rr * LDP + c] = from_f<T>(ds);
                }
            }
            __syncwarp();
            WarpMM<T, D>::nn(A1w, LDP, dOs, LDT, C1w, lane);  // (P Z)^T dO
            __syncwarp();
#pragma unroll
            for (int t = 0; t < D / 2; ++t) acc_v[t] += C1w[r * kLdc + 2 * t + half];
            __syncwarp();
            WarpMM<T, D>::nn(A2w, LDP, Qs, LDT, C1w, lane);   // dS^T Q
            __syncwarp();
#pragma unroll
            for (int t = 0; t < D / 2; ++t) acc_k[t] += C1w[r * kLdc + 2 * t + half];
            __syncwarp();
        }
    }
    const int wrows = pr.sk_rows - jw;
#pragma unroll
    for (int t = 0; t < D / 2; ++t) C1w[r * kLdc + 2 * t + half] = acc_k[t] * p.scale;
    __syncwarp();
    store_rows<T, D>(C1w, static_cast<T*>(p.dk) + base(p.dks, pr, jw), p.dks[2], wrows, lane);
    __syncwarp();
#pragma unroll
    for (int t = 0; t < D / 2; ++t) C1w[r * kLdc + 2 * t + half] = acc_v[t];
    __syncwarp();
    store_rows<T, D>(C1w, static_cast<T*>(p.dv) + base(p.dvs, pr, jw), p.dvs[2], wrows, lane);
}

#include "attention_mma.cuh"

// ---- launchers --------------------------------------------------------------------------
// Kernel sets: the generic kernels (fp32 and bf16, any alignment) and, for bf16 with aligned
// tensors on sm_80+, the register-resident tensor-core kernels of attention_mma.cuh.
template <typename T, int D> struct GenericKernels {
    static constexpr int fwd_rows = kRows, dq_rows = kRows, dkdv_rows = kRows;
    static constexpr void (*fwd)(Params) = attention_fwd_kernel<T, D>;
    static constexpr void (*dq)(Params) = attention_bwd_dq_kernel<T, D>;
    static constexpr void (*dkdv)(Params) = attention_bwd_dkdv_kernel<T, D>;
    static constexpr size_t fwd_bytes = fwd_smem<T, D>();
    static constexpr size_t dq_bytes = dq_smem<T, D>();
    static constexpr size_t dkdv_bytes = dkdv_smem<T, D>();
};
// RB: 16-row blocks per warp in the forward and dQ kernels (blocks of 64 * RB queries).
template <int D, int RB> struct MmaKernels {
    static constexpr int fwd_rows = kRows * RB, dq_rows = kRows * RB, dkdv_rows = kRows;
    static constexpr void (*fwd)(Params) = mma::fwd_kernel<D, RB>;
    static constexpr void (*dq)(Params) = mma::dq_kernel<D, RB>;
    static constexpr void (*dkdv)(Params) = mma::dkdv_kernel<D>;
    static constexpr size_t fwd_bytes = mma::fwd_smem<D, RB>();
    static constexpr size_t dq_bytes = mma::dq_smem<D, RB>();
    static constexpr size_t dkdv_bytes = mma::dkdv_smem<D>();
};

int cuda_fail(const char* op, const char* what, cudaError_t err) {
    return detail::fail(BERT4J_ERR_CUDA, "%s: %s failed: %s (%s)", op, what, cudaGetErrorName(err),
                        cudaGetErrorString(err));
}

// Opts the kernel into `bytes` of dynamic shared memory (above 48 KiB needs it) after
// checking the device can give that much.
template <typename Kernel>
int prepare(Kernel kernel, size_t bytes, const char* op, const char* name) {
    int device = 0, optin = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (err != cudaSuccess) return cuda_fail(op, "querying the device", err);
    if (bytes > static_cast<size_t>(optin))
        return detail::fail(BERT4J_ERR_CUDA,
                            "%s: %s needs %zu bytes of shared memory per block, the device allows %d",
                            op, name, bytes, optin);
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (err != cudaSuccess) return cuda_fail(op, "cudaFuncSetAttribute (shared memory)", err);
    return BERT4J_OK;
}

int64_t row_tiles(int64_t n, int rows = kRows) { return (n + rows - 1) / rows; }

// Grid of batch * heads * tiles blocks (1-D: no 65535 limit on batch or heads).
int grid_of(int64_t bh, int64_t tiles, const char* op, unsigned* grid) {
    if (tiles > 0 && bh > INT_MAX / tiles)
        return detail::fail(BERT4J_ERR_INVALID_ARGUMENT,
                            "%s: batch * heads * ceil(seq / 64) = %lld * %lld blocks exceeds one launch",
                            op, static_cast<long long>(bh), static_cast<long long>(tiles));
    *grid = static_cast<unsigned>(bh * tiles);
    return BERT4J_OK;
}

template <typename T, int D, typename K>
int launch_forward(Params p, cudaStream_t stream, const char* op) {
    const int64_t bh = p.batch * p.heads;
    p.tiles = row_tiles(p.seq_q, K::fwd_rows);
    unsigned grid = 0;
    int st = grid_of(bh, p.tiles, op, &grid);
    if (st != BERT4J_OK || grid == 0) return st;
    constexpr size_t bytes = K::fwd_bytes;
    if ((st = prepare(K::fwd, bytes, op, "the forward kernel")) != BERT4J_OK) return st;
    K::fwd<<<grid, kThreads, bytes, stream>>>(p);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? BERT4J_OK : cuda_fail(op, "forward kernel launch", err);
}

template <typename T, int D, typename K>
int launch_backward(Params p, cudaStream_t stream, const char* op) {
    const int64_t bh = p.batch * p.heads;
    const bool varlen = p.cu_seqlens != nullptr;
    // D_i rows: dense (b, h, i) -> B*H*Sq; varlen (h, token) -> H*total.
    const int64_t rows = varlen ? p.heads * p.total_tokens : bh * p.seq_q;
    const int64_t dot_blocks = (rows + kWarps - 1) / kWarps;
    unsigned grid_q = 0, grid_k = 0;
    int st = grid_of(bh, row_tiles(p.seq_q, K::dq_rows), op, &grid_q);
    if (st == BERT4J_OK) st = grid_of(bh, row_tiles(p.seq_k, K::dkdv_rows), op, &grid_k);
    if (st != BERT4J_OK) return st;
    if (dot_blocks > INT_MAX)
        return detail::fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %lld query rows exceed one launch", op,
                            static_cast<long long>(rows));
    if (grid_q > 0 && (st = prepare(K::dq, K::dq_bytes, op, "the dQ kernel")) != BERT4J_OK)
        return st;
    if (grid_k > 0 && (st = prepare(K::dkdv, K::dkdv_bytes, op, "the dK/dV kernel")) != BERT4J_OK)
        return st;

    cudaError_t err = cudaSuccess;
    if (rows > 0) {
        err = cudaMallocAsync(reinterpret_cast<void**>(&p.dvec), static_cast<size_t>(rows) * sizeof(float), stream);
        if (err != cudaSuccess) return cuda_fail(op, "cudaMallocAsync (rowsum(dO * O) scratch)", err);
        Params dp = p;
        if (varlen) {  // (0, h, token): the kernel's (a, h, i) with a = 0
            dp.os[0] = dp.dos[0] = 0;
        }
        attention_bwd_dot_kernel<T><<<static_cast<unsigned>(dot_blocks), kThreads, 0, stream>>>(
            dp, rows, varlen ? p.total_tokens : p.seq_q, D);
        err = cudaGetLastError();
    }
    if (err == cudaSuccess && grid_q > 0) {
        p.tiles = row_tiles(p.seq_q, K::dq_rows);
        K::dq<<<grid_q, kThreads, K::dq_bytes, stream>>>(p);
        err = cudaGetLastError();
    }
    if (err == cudaSuccess && grid_k > 0) {
        p.tiles = row_tiles(p.seq_k, K::dkdv_rows);
        K::dkdv<<<grid_k, kThreads, K::dkdv_bytes, stream>>>(p);
        err = cudaGetLastError();
    }
    if (p.dvec != nullptr) {
        const cudaError_t freed = cudaFreeAsync(p.dvec, stream);
        if (err == cudaSuccess && freed != cudaSuccess) return cuda_fail(op, "cudaFreeAsync (scratch)", freed);
    }
    return err == cudaSuccess ? BERT4J_OK : cuda_fail(op, "backward kernel launch", err);
}

// The tensor-core kernels need sm_80+ (bf16 mma), 16-byte aligned inputs (cp.async) and
// 4-byte aligned outputs. By default the forward and dQ kernels give each warp two 16-row
// blocks (32 queries), so every K/V fragment read from shared memory feeds two products:
// on an H200 0.128 vs 0.135 ms forward, 0.62 vs 0.63 ms forward+backward at 32x12x512x64
// bf16 (benchmarks/gpu). BERT4J_CUDA_ATTENTION=mma16 selects one block per warp and
// =generic the generic kernels (for comparisons and as an escape hatch).
int device_major() {
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return 0;
    return major;
}

// 0: generic kernels; else the tensor-core kernels with that many 16-row blocks per warp.
int mma_rows(const Params& p) {
    const char* forced = std::getenv("BERT4J_CUDA_ATTENTION");
    if (forced != nullptr && std::strcmp(forced, "generic") == 0) return 0;
    if (!(p.vec && p.vec_out && device_major() >= 8)) return 0;
    return forced != nullptr && std::strcmp(forced, "mma16") == 0 ? 1 : 2;
}

template <typename T, int D>
int launch(bool backward, const Params& p, cudaStream_t stream, const char* op) {
    if constexpr (std::is_same_v<T, bf16>) {
        const int rb = mma_rows(p);
        if (rb == 1)
            return backward ? launch_backward<T, D, MmaKernels<D, 1>>(p, stream, op)
                            : launch_forward<T, D, MmaKernels<D, 1>>(p, stream, op);
        if (rb == 2)
            return backward ? launch_backward<T, D, MmaKernels<D, 2>>(p, stream, op)
                            : launch_forward<T, D, MmaKernels<D, 2>>(p, stream, op);
    }
    return backward ? launch_backward<T, D, GenericKernels<T, D>>(p, stream, op)
                    : launch_forward<T, D, GenericKernels<T, D>>(p, stream, op);
}

template <typename T>
int dispatch(bool backward, int64_t head_dim, const Params& p, cudaStream_t stream, const char* op) {
    return head_dim == 32 ? launch<T, 32>(backward, p, stream, op) : launch<T, 64>(backward, p, stream, op);
}

// ---- checked entry point (shared body) --------------------------------------------------
bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

void copy3(int64_t* dst, const int64_t* src, bool varlen) {
    if (src == nullptr) {
        dst[0] = dst[1] = dst[2] = 0;
    } else if (varlen) {  // (token, head) -> (0, head, token)
        dst[0] = 0;
        dst[1] = src[1];
        dst[2] = src[0];
    } else {
        dst[0] = src[0];
        dst[1] = src[1];
        dst[2] = src[2];
    }
}

int run(const char* op, int dtype, const detail::AttentionArgs& a, uint64_t seed, uint64_t offset,
        void* stream) {
    try {
        if (dtype != BERT4J_DTYPE_F32 && dtype != BERT4J_DTYPE_BF16)
            return detail::fail(BERT4J_ERR_INVALID_ARGUMENT,
                                "%s: dtype must be %d (BERT4J_DTYPE_F32) or %d (BERT4J_DTYPE_BF16), got %d",
                                op, BERT4J_DTYPE_F32, BERT4J_DTYPE_BF16, dtype);
        bool empty = false;
        int st = detail::check_attention_args(op, a, &empty);
        if (st != BERT4J_OK) return st;
        if (empty) return detail::ok();
        if (a.head_dim != 32 && a.head_dim != 64)
            return detail::fail(BERT4J_ERR_INVALID_ARGUMENT,
                                "%s: head_dim must be 32 or 64 on CUDA (kernels are specialised per head "
                                "size), got %lld", op, static_cast<long long>(a.head_dim));
        // Row indices inside one (b, h) are int in the kernels.
        const int64_t kMaxSeq = INT_MAX - 2 * kRows;
        if (a.seq_q > kMaxSeq || a.seq_k > kMaxSeq)
            return detail::fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: sequence lengths above %lld are not supported",
                                op, static_cast<long long>(kMaxSeq));

        Params p{};
        p.q = a.q; p.k = a.k; p.v = a.v; p.out = a.out; p.dout = a.dout;
        p.o = const_cast<void*>(a.out);
        p.dq = const_cast<void*>(a.dq); p.dk = const_cast<void*>(a.dk); p.dv = const_cast<void*>(a.dv);
        p.lse = const_cast<float*>(a.lse);
        copy3(p.qs, a.q_strides, a.varlen); copy3(p.ks, a.k_strides, a.varlen);
        copy3(p.vs, a.v_strides, a.varlen); copy3(p.os, a.out_strides, a.varlen);
        copy3(p.dos, a.dout_strides, a.varlen); copy3(p.dqs, a.dq_strides, a.varlen);
        copy3(p.dks, a.dk_strides, a.varlen); copy3(p.dvs, a.dv_strides, a.varlen);
        p.key_lengths = a.varlen ? nullptr : a.key_lengths;
        p.mask = a.varlen ? nullptr : a.mask;
        copy3(p.ms, p.mask != nullptr ? a.mask_strides : nullptr, false);
        p.cu_seqlens = a.varlen ? a.cu_seqlens : nullptr;
        p.batch = a.batch; p.heads = a.heads; p.seq_q = a.seq_q; p.seq_k = a.seq_k;
        p.total_tokens = a.total_tokens;
        p.drop_stride = a.seq_k;  // dense: seq_k; varlen: max_seqlen (seq_k = max_seqlen)
        p.scale = a.scale;
        p.dropout = a.dropout_p > 0.0f ? 1 : 0;
        p.threshold = dropout_threshold(a.dropout_p);
        p.drop_scale = 1.0f / (1.0f - a.dropout_p);
        p.seed = seed;
        p.offset = offset;
        // 16-byte global loads when every tile source is 16-byte aligned at every row.
        const int64_t V = dtype == BERT4J_DTYPE_BF16 ? 8 : 4;
        bool vec = true;
        const void* ptrs[] = {a.q, a.k, a.v, a.backward ? a.dout : nullptr};
        const int64_t* strides[] = {p.qs, p.ks, p.vs, p.dos};
        for (int t = 0; t < (a.backward ? 4 : 3); ++t) {
            if (ptrs[t] != nullptr && !aligned16(ptrs[t])) vec = false;
            for (int d = 0; d < 3; ++d)
                if (strides[t][d] % V != 0) vec = false;
        }
        p.vec = vec ? 1 : 0;
        // Outputs written as 2-element words by the tensor-core kernels.
        bool vec_out = true;
        const void* outs[] = {a.backward ? a.dq : a.out, a.backward ? a.dk : nullptr, a.backward ? a.dv : nullptr};
        const int64_t* out_strides[] = {a.backward ? p.dqs : p.os, p.dks, p.dvs};
        for (int t = 0; t < (a.backward ? 3 : 1); ++t) {
            if (outs[t] != nullptr && reinterpret_cast<uintptr_t>(outs[t]) % 4 != 0) vec_out = false;
            for (int d = 0; d < 3; ++d)
                if (out_strides[t][d] % 2 != 0) vec_out = false;
        }
        p.vec_out = vec_out ? 1 : 0;

        const cudaStream_t s = static_cast<cudaStream_t>(stream);
        st = dtype == BERT4J_DTYPE_BF16 ? dispatch<bf16>(a.backward, a.head_dim, p, s, op)
                                        : dispatch<float>(a.backward, a.head_dim, p, s, op);
        return st == BERT4J_OK ? detail::ok() : st;
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}

}  // namespace
}  // namespace bert4j::cuda_attention

extern "C" {

int bert4j_attention_forward_cuda(int dtype, const void* q, const void* k, const void* v, void* out,
                                  float* lse, int64_t batch, int64_t heads, int64_t seq_q,
                                  int64_t seq_k, int64_t head_dim, const int64_t* q_strides,
                                  const int64_t* k_strides, const int64_t* v_strides,
                                  const int64_t* out_strides, const int32_t* key_lengths,
                                  const float* mask, const int64_t* mask_strides, float scale,
                                  float dropout_p, uint64_t seed, uint64_t offset, void* stream) {
    bert4j::detail::AttentionArgs a;
    a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse;
    a.batch = batch; a.heads = heads; a.seq_q = seq_q; a.seq_k = seq_k; a.head_dim = head_dim;
    a.q_strides = q_strides; a.k_strides = k_strides; a.v_strides = v_strides; a.out_strides = out_strides;
    a.key_lengths = key_lengths; a.mask = mask; a.mask_strides = mask_strides;
    a.scale = scale; a.dropout_p = dropout_p;
    return bert4j::cuda_attention::run("bert4j_attention_forward_cuda", dtype, a, seed, offset, stream);
}

int bert4j_attention_backward_cuda(int dtype, const void* q, const void* k, const void* v,
                                   const void* out, const void* dout, const float* lse, void* dq,
                                   void* dk, void* dv, int64_t batch, int64_t heads, int64_t seq_q,
                                   int64_t seq_k, int64_t head_dim, const int64_t* q_strides,
                                   const int64_t* k_strides, const int64_t* v_strides,
                                   const int64_t* out_strides, const int64_t* dout_strides,
                                   const int64_t* dq_strides, const int64_t* dk_strides,
                                   const int64_t* dv_strides, const int32_t* key_lengths,
                                   const float* mask, const int64_t* mask_strides, float scale,
                                   float dropout_p, uint64_t seed, uint64_t offset, void* stream) {
    bert4j::detail::AttentionArgs a;
    a.backward = true;
    a.q = q; a.k = k; a.v = v; a.out = out; a.dout = dout; a.lse = lse; a.dq = dq; a.dk = dk; a.dv = dv;
    a.batch = batch; a.heads = heads; a.seq_q = seq_q; a.seq_k = seq_k; a.head_dim = head_dim;
    a.q_strides = q_strides; a.k_strides = k_strides; a.v_strides = v_strides;
    a.out_strides = out_strides; a.dout_strides = dout_strides; a.dq_strides = dq_strides;
    a.dk_strides = dk_strides; a.dv_strides = dv_strides;
    a.key_lengths = key_lengths; a.mask = mask; a.mask_strides = mask_strides;
    a.scale = scale; a.dropout_p = dropout_p;
    return bert4j::cuda_attention::run("bert4j_attention_backward_cuda", dtype, a, seed, offset, stream);
}

int bert4j_attention_varlen_forward_cuda(int dtype, const void* q, const void* k, const void* v,
                                         void* out, float* lse, const int32_t* cu_seqlens,
                                         int64_t num_seqs, int64_t total_tokens, int64_t max_seqlen,
                                         int64_t heads, int64_t head_dim, const int64_t* q_strides,
                                         const int64_t* k_strides, const int64_t* v_strides,
                                         const int64_t* out_strides, float scale, float dropout_p,
                                         uint64_t seed, uint64_t offset, void* stream) {
    bert4j::detail::AttentionArgs a;
    a.varlen = true;
    a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse; a.cu_seqlens = cu_seqlens;
    a.batch = num_seqs; a.total_tokens = total_tokens; a.seq_q = a.seq_k = max_seqlen;
    a.heads = heads; a.head_dim = head_dim;
    a.q_strides = q_strides; a.k_strides = k_strides; a.v_strides = v_strides; a.out_strides = out_strides;
    a.scale = scale; a.dropout_p = dropout_p;
    return bert4j::cuda_attention::run("bert4j_attention_varlen_forward_cuda", dtype, a, seed, offset, stream);
}

int bert4j_attention_varlen_backward_cuda(int dtype, const void* q, const void* k, const void* v,
                                          const void* out, const void* dout, const float* lse,
                                          void* dq, void* dk, void* dv, const int32_t* cu_seqlens,
                                          int64_t num_seqs, int64_t total_tokens, int64_t max_seqlen,
                                          int64_t heads, int64_t head_dim, const int64_t* q_strides,
                                          const int64_t* k_strides, const int64_t* v_strides,
                                          const int64_t* out_strides, const int64_t* dout_strides,
                                          const int64_t* dq_strides, const int64_t* dk_strides,
                                          const int64_t* dv_strides, float scale, float dropout_p,
                                          uint64_t seed, uint64_t offset, void* stream) {
    bert4j::detail::AttentionArgs a;
    a.varlen = true;
    a.backward = true;
    a.q = q; a.k = k; a.v = v; a.out = out; a.dout = dout; a.lse = lse; a.dq = dq; a.dk = dk; a.dv = dv;
    a.cu_seqlens = cu_seqlens;
    a.batch = num_seqs; a.total_tokens = total_tokens; a.seq_q = a.seq_k = max_seqlen;
    a.heads = heads; a.head_dim = head_dim;
    a.q_strides = q_strides; a.k_strides = k_strides; a.v_strides = v_strides;
    a.out_strides = out_strides; a.dout_strides = dout_strides; a.dq_strides = dq_strides;
    a.dk_strides = dk_strides; a.dv_strides = dv_strides;
    a.scale = scale; a.dropout_p = dropout_p;
    return bert4j::cuda_attention::run("bert4j_attention_varlen_backward_cuda", dtype, a, seed, offset, stream);
}

}  // extern "C"
