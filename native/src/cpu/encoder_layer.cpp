// One whole BERT encoder layer for CPU fp32 inference in a single native call (see
// bert4j_kernels.h): QKV projection, attention, output projection + residual + LayerNorm,
// intermediate projection + bias+GELU, output projection + residual + LayerNorm.
//
// Why: run op by op from Java, a layer is ~15 libtorch/JNI calls, each allocating its result,
// crossing JNI and dispatching through libtorch, and each element-wise op (residual add, layer
// norm) starting its own OpenMP team. At the row counts of latency-bound inference (one
// sentence to a few hundred tokens) that overhead is a fifth to a third of the forward. Here
// the same kernels (prepacked GEMM, tiled attention, bias+GELU) run back to back on one
// caller-provided workspace, and the residual add and LayerNorm are one pass per row.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>

#include <immintrin.h>

#include "attention.h"
#include "bias_gelu.h"
#include "bert4j_kernels.h"
#include "linear.h"
#include "linear_int8.h"
#include "linear_bf16.h"
#include "../common/status.h"

namespace bert4j::cpu {
namespace {

// One row of add_layer_norm: yr = LayerNorm(xr + rr) * gamma + beta; yr may be rr. Mean and
// variance in two passes over the row in double (the biased variance, as torch.layer_norm);
// the vector paths keep 8 (AVX-512) or 4 (AVX2) double partial sums and finish in scalar, so
// they differ from the scalar path only in the order of the double additions.
void add_ln_row_scalar(const float* xr, const float* rr, const float* gamma, const float* beta,
                       float* yr, int64_t cols, float eps) {
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
        const float v = xr[c] + rr[c];
        yr[c] = v;
        sum += v;
    }
    const double mean = sum / static_cast<double>(cols);
    double sq = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
        const double d = yr[c] - mean;
        sq += d * d;
    }
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(cols) + eps);
    const float m = static_cast<float>(mean), s = static_cast<float>(inv);
    for (int64_t c = 0; c < cols; ++c) yr[c] = (yr[c] - m) * s * gamma[c] + beta[c];
}

__attribute__((target("avx512f,avx512dq,avx2,fma")))
void add_ln_row_avx512(const float* xr, const float* rr, const float* gamma, const float* beta,
                       float* yr, int64_t cols, float eps) {
    const int64_t cv = cols / 8 * 8;
    __m512d sum8 = _mm512_setzero_pd();
    for (int64_t c = 0; c < cv; c += 8) {
        const __m256 v = _mm256_add_ps(_mm256_loadu_ps(xr + c), _mm256_loadu_ps(rr + c));
        _mm256_storeu_ps(yr + c, v);
        sum8 = _mm512_add_pd(sum8, _mm512_cvtps_pd(v));
    }
    double sum = _mm512_reduce_add_pd(sum8);
    for (int64_t c = cv; c < cols; ++c) {
        const float v = xr[c] + rr[c];
        yr[c] = v;
        sum += v;
    }
    const double mean = sum / static_cast<double>(cols);
    const __m512d mean8 = _mm512_set1_pd(mean);
    __m512d sq8 = _mm512_setzero_pd();
    for (int64_t c = 0; c < cv; c += 8) {
        const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(yr + c)), mean8);
        sq8 = _mm512_fmadd_pd(d, d, sq8);
    }
    double sq = _mm512_reduce_add_pd(sq8);
    for (int64_t c = cv; c < cols; ++c) {
        const double d = yr[c] - mean;
        sq += d * d;
    }
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(cols) + eps);
    const float m = static_cast<float>(mean), s = static_cast<float>(inv);
    const __m256 m8 = _mm256_set1_ps(m), s8 = _mm256_set1_ps(s);
    for (int64_t c = 0; c < cv; c += 8) {
        const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(yr + c), m8), s8);
        _mm256_storeu_ps(yr + c, _mm256_add_ps(_mm256_mul_ps(t, _mm256_loadu_ps(gamma + c)),
                                               _mm256_loadu_ps(beta + c)));
    }
    for (int64_t c = cv; c < cols; ++c) yr[c] = (yr[c] - m) * s * gamma[c] + beta[c];
}

__attribute__((target("avx2,fma")))
void add_ln_row_avx2(const float* xr, const float* rr, const float* gamma, const float* beta,
                     float* yr, int64_t cols, float eps) {
    const int64_t cv = cols / 4 * 4;
    __m256d sum4 = _mm256_setzero_pd();
    for (int64_t c = 0; c < cv; c += 4) {
        const __m128 v = _mm_add_ps(_mm_loadu_ps(xr + c), _mm_loadu_ps(rr + c));
        _mm_storeu_ps(yr + c, v);
        sum4 = _mm256_add_pd(sum4, _mm256_cvtps_pd(v));
    }
    alignas(32) double part[4];
    _mm256_store_pd(part, sum4);
    double sum = (part[0] + part[1]) + (part[2] + part[3]);
    for (int64_t c = cv; c < cols; ++c) {
        const float v = xr[c] + rr[c];
        yr[c] = v;
        sum += v;
    }
    const double mean = sum / static_cast<double>(cols);
    const __m256d mean4 = _mm256_set1_pd(mean);
    __m256d sq4 = _mm256_setzero_pd();
    for (int64_t c = 0; c < cv; c += 4) {
        const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(yr + c)), mean4);
        sq4 = _mm256_fmadd_pd(d, d, sq4);
    }
    _mm256_store_pd(part, sq4);
    double sq = (part[0] + part[1]) + (part[2] + part[3]);
    for (int64_t c = cv; c < cols; ++c) {
        const double d = yr[c] - mean;
        sq += d * d;
    }
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(cols) + eps);
    const float m = static_cast<float>(mean), s = static_cast<float>(inv);
    const __m128 m4 = _mm_set1_ps(m), s4 = _mm_set1_ps(s);
    for (int64_t c = 0; c < cv; c += 4) {
        const __m128 t = _mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(yr + c), m4), s4);
        _mm_storeu_ps(yr + c, _mm_add_ps(_mm_mul_ps(t, _mm_loadu_ps(gamma + c)), _mm_loadu_ps(beta + c)));
    }
    for (int64_t c = cv; c < cols; ++c) yr[c] = (yr[c] - m) * s * gamma[c] + beta[c];
}

// y[r] = LayerNorm(x[r] + res[r]) * gamma + beta, rows of `cols` contiguous floats; y may be
// res (each row is summed into y first, then normalised in place).
void add_layer_norm(const float* x, const float* res, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t cols, float eps, Isa isa, int max_threads) {
    const auto row = isa == Isa::Avx512 ? &add_ln_row_avx512
                   : isa == Isa::Avx2Fma ? &add_ln_row_avx2
                                         : &add_ln_row_scalar;
    const int threads = rows * cols >= 32768 ? max_threads : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t r = 0; r < rows; ++r)
        row(x + r * cols, res + r * cols, gamma, beta, y + r * cols, cols, eps);
}

}  // namespace

int64_t encoder_layer_workspace_floats(int64_t rows, int64_t hidden, int64_t intermediate) {
    // qkv [rows, 3H], ctx [rows, H], tmp [rows, H], inter [rows, I]
    return rows * (5 * hidden + intermediate);
}

// The precision of the four linear layers and the packing their weights come in.
enum class LinearKind { F32, Int8, Bf16 };

// w: the BERT4J_LAYER_* pointers; the four linear weights are fp32 packs (linear_pack), int8
// packs (linear_int8_pack) or bf16 packs (linear_bf16_pack) as `kind` says; the rest fp32
// vectors.
void encoder_layer_forward(float* h, const void* const* wv, float* ws, int64_t rows,
                           int64_t hidden, int64_t heads, int64_t intermediate, float eps,
                           int approximate, const int32_t* cu_seqlens, int64_t num_seqs,
                           int64_t max_seqlen, int64_t batch, int64_t seq, const float* mask,
                           LinearKind kind, Isa isa, int threads) {
    const int64_t H = hidden, I = intermediate, D = hidden / heads;
    const float* const* w = reinterpret_cast<const float* const*>(wv);
    // y[rows, n] = x[rows, k] . W^T + b for the linear weight wi and the bias bi (or none).
    const auto linear = [&](const float* x, int wi, int bi, float* y, int64_t n, int64_t k) {
        const float* b = bi < 0 ? nullptr : w[bi];
        switch (kind) {
            case LinearKind::Int8:
                linear_int8_launch(x, static_cast<const uint8_t*>(wv[wi]), b, y, rows, n, k, k, n, isa, threads);
                break;
            case LinearKind::Bf16:
                linear_bf16_launch(x, static_cast<const uint16_t*>(wv[wi]), b, y, rows, n, k, k, n, true, threads);
                break;
            case LinearKind::F32:
                linear_packed_launch(x, w[wi], b, y, rows, n, k, k, n, isa, threads);
                break;
        }
    };
    float* qkv = ws;
    float* ctx = qkv + rows * 3 * H;
    float* tmp = ctx + rows * H;
    float* inter = tmp + rows * H;

    linear(h, BERT4J_LAYER_QKV_WEIGHT, BERT4J_LAYER_QKV_BIAS, qkv, 3 * H, H);

    AttentionArgs a;
    a.q = qkv;
    a.k = qkv + H;
    a.v = qkv + 2 * H;
    a.out = ctx;
    a.heads = heads;
    a.head_dim = D;
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    if (cu_seqlens != nullptr) {
        // Packed tokens: [T, 3, NH, D] projections, strides {0, head, token}.
        a.units = num_seqs;
        a.seq_q = a.seq_k = max_seqlen;
        a.cu_seqlens = cu_seqlens;
        a.total_tokens = rows;
        const int64_t in[3] = {0, D, 3 * H}, out[3] = {0, D, H};
        std::copy(in, in + 3, a.qs);
        std::copy(in, in + 3, a.ks);
        std::copy(in, in + 3, a.vs);
        std::copy(out, out + 3, a.os);
    } else {
        // Padded [B, S, 3, NH, D]; mask [B, S] additive, broadcast over heads and queries.
        a.units = batch;
        a.seq_q = a.seq_k = seq;
        const int64_t in[3] = {seq * 3 * H, D, 3 * H}, out[3] = {seq * H, D, H};
        std::copy(in, in + 3, a.qs);
        std::copy(in, in + 3, a.ks);
        std::copy(in, in + 3, a.vs);
        std::copy(out, out + 3, a.os);
        a.mask = mask;
        a.ms[0] = seq;
    }
    attention_forward_launch(a, isa, threads);

    linear(ctx, BERT4J_LAYER_ATTN_OUT_WEIGHT, BERT4J_LAYER_ATTN_OUT_BIAS, tmp, H, H);
    add_layer_norm(tmp, h, w[BERT4J_LAYER_ATTN_LN_WEIGHT], w[BERT4J_LAYER_ATTN_LN_BIAS], h, rows,
                   H, eps, isa, threads);

    if (kind == LinearKind::Bf16 && amx_bf16_supported()) {
        // bias + GELU in the intermediate GEMM's epilogue, straight to the bf16 operand copy the
        // output GEMM reads (the same values as the three steps below, without the fp32 round trip).
        const uint16_t* ab = linear_bf16_gelu_launch(
            h, static_cast<const uint16_t*>(wv[BERT4J_LAYER_INTER_WEIGHT]), w[BERT4J_LAYER_INTER_BIAS], rows, I, H,
            H, approximate, threads);
        linear_bf16_blocked_launch(ab, static_cast<const uint16_t*>(wv[BERT4J_LAYER_OUT_WEIGHT]),
                                   w[BERT4J_LAYER_OUT_BIAS], tmp, rows, H, I, H, threads);
    } else {
        linear(h, BERT4J_LAYER_INTER_WEIGHT, -1, inter, I, H);
        bias_gelu_launch(inter, w[BERT4J_LAYER_INTER_BIAS], inter, rows, I, I, I, approximate, isa,
                         threads);
        linear(inter, BERT4J_LAYER_OUT_WEIGHT, BERT4J_LAYER_OUT_BIAS, tmp, H, I);
    }
    add_layer_norm(tmp, h, w[BERT4J_LAYER_OUT_LN_WEIGHT], w[BERT4J_LAYER_OUT_LN_BIAS], h, rows, H,
                   eps, isa, threads);
}

}  // namespace bert4j::cpu

// ---- entry layer: checked C ABI ------------------------------------------------------------

namespace {

long long ll(int64_t v) { return static_cast<long long>(v); }

bool mul_fits(int64_t a, int64_t b) {
    return static_cast<unsigned __int128>(a) * static_cast<unsigned __int128>(b) <=
           static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max());
}

const char* weight_name(int i) {
    static const char* names[BERT4J_LAYER_NUM_WEIGHTS] = {
        "qkv weight (packed)", "qkv bias", "attention output weight (packed)",
        "attention output bias", "attention LayerNorm weight", "attention LayerNorm bias",
        "intermediate weight (packed)", "intermediate bias", "output weight (packed)",
        "output bias", "output LayerNorm weight", "output LayerNorm bias"};
    return names[i];
}

// Sizes shared by both entry points: positive, hidden divisible by heads, the workspace size
// representable.
int check_sizes(const char* op, int64_t rows, int64_t hidden, int64_t heads, int64_t intermediate) {
    using bert4j::detail::fail;
    if (rows < 0 || hidden <= 0 || heads <= 0 || intermediate <= 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT,
                    "%s: rows must be >= 0 and hidden, heads, intermediate > 0, got rows=%lld "
                    "hidden=%lld heads=%lld intermediate=%lld",
                    op, ll(rows), ll(hidden), ll(heads), ll(intermediate));
    if (hidden % heads != 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: hidden (%lld) must be a multiple of heads (%lld)",
                    op, ll(hidden), ll(heads));
    if (hidden > std::numeric_limits<int64_t>::max() / 8 ||
        intermediate > std::numeric_limits<int64_t>::max() / 8 ||
        !mul_fits(rows, 5 * hidden + intermediate))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: the workspace of rows=%lld overflows int64", op,
                    ll(rows));
    return BERT4J_OK;
}

}  // namespace

extern "C" int bert4j_encoder_layer_workspace_f32(int64_t rows, int64_t hidden, int64_t heads,
                                                  int64_t intermediate, int64_t* floats) {
    using bert4j::detail::fail;
    const char* op = "bert4j_encoder_layer_workspace_f32";
    if (floats == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: floats is NULL", op);
    const int st = check_sizes(op, rows, hidden, heads, intermediate);
    if (st != BERT4J_OK) return st;
    *floats = bert4j::cpu::encoder_layer_workspace_floats(rows, hidden, intermediate);
    return bert4j::detail::ok();
}

namespace {

int layer_forward_checked(const char* op, bert4j::cpu::LinearKind kind, float* h, const void* const* weights,
                          float* workspace, int64_t rows, int64_t hidden, int64_t heads,
                          int64_t intermediate, float layer_norm_eps, int approximate,
                          const int32_t* cu_seqlens, int64_t num_seqs, int64_t max_seqlen,
                          int64_t batch, int64_t seq, const float* mask) {
    using namespace bert4j;
    using detail::fail;
    try {
        int st = check_sizes(op, rows, hidden, heads, intermediate);
        if (st != BERT4J_OK) return st;
        if (approximate != BERT4J_GELU_EXACT && approximate != BERT4J_GELU_TANH)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: approximate must be %d (exact) or %d (tanh), got %d",
                        op, BERT4J_GELU_EXACT, BERT4J_GELU_TANH, approximate);
        if (!(layer_norm_eps > 0.0f) || !std::isfinite(layer_norm_eps))
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: layer_norm_eps must be finite and > 0, got %g",
                        op, static_cast<double>(layer_norm_eps));
        if (cu_seqlens != nullptr) {
            if (num_seqs < 0 || max_seqlen < 0)
                return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: num_seqs and max_seqlen must be >= 0, got %lld, %lld",
                            op, ll(num_seqs), ll(max_seqlen));
            if (rows > std::numeric_limits<int32_t>::max())
                return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: rows must fit the int32 cu_seqlens, got %lld",
                            op, ll(rows));
            if (cu_seqlens[0] != 0 || cu_seqlens[num_seqs] != rows)
                return fail(BERT4J_ERR_INVALID_ARGUMENT,
                            "%s: cu_seqlens must start at 0 and end at rows (%lld), got %d .. %d", op,
                            ll(rows), cu_seqlens[0], cu_seqlens[num_seqs]);
            for (int64_t s = 0; s < num_seqs; ++s) {
                const int64_t len = static_cast<int64_t>(cu_seqlens[s + 1]) - cu_seqlens[s];
                if (len < 0 || len > max_seqlen)
                    return fail(BERT4J_ERR_INVALID_ARGUMENT,
                                "%s: sequence %lld has length %lld (cu_seqlens must be non-decreasing, "
                                "each length <= max_seqlen %lld)",
                                op, ll(s), ll(len), ll(max_seqlen));
            }
        } else {
            if (batch < 0 || seq < 0 || batch * seq != rows || (seq > 0 && batch != rows / seq))
                return fail(BERT4J_ERR_INVALID_ARGUMENT,
                            "%s: padded mode needs batch * seq == rows, got batch=%lld seq=%lld rows=%lld",
                            op, ll(batch), ll(seq), ll(rows));
        }
        if (rows == 0) return detail::ok();
        if (h == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: h is NULL", op);
        if (workspace == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: workspace is NULL", op);
        if (weights == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: weights is NULL", op);
        for (int i = 0; i < BERT4J_LAYER_NUM_WEIGHTS; ++i)
            if (weights[i] == nullptr)
                return fail(BERT4J_ERR_NULL_POINTER, "%s: weights[%d] (%s) is NULL", op, i, weight_name(i));
        if (kind == cpu::LinearKind::Int8 && intermediate > cpu::kInt8MaxK)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: intermediate must be <= %lld for int8, got %lld", op,
                        ll(cpu::kInt8MaxK), ll(intermediate));
        cpu::encoder_layer_forward(h, weights, workspace, rows, hidden, heads, intermediate,
                                   layer_norm_eps, approximate, cu_seqlens, num_seqs, max_seqlen,
                                   batch, seq, mask, kind, cpu::best_isa(), detail::num_threads());
        return detail::ok();
    } catch (const std::exception& e) {
        return fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}

}  // namespace

extern "C" int bert4j_encoder_layer_forward_f32(float* h, const float* const* weights,
                                                float* workspace, int64_t rows, int64_t hidden,
                                                int64_t heads, int64_t intermediate,
                                                float layer_norm_eps, int approximate,
                                                const int32_t* cu_seqlens, int64_t num_seqs,
                                                int64_t max_seqlen, int64_t batch, int64_t seq,
                                                const float* mask) {
    return layer_forward_checked("bert4j_encoder_layer_forward_f32", bert4j::cpu::LinearKind::F32, h,
                                 reinterpret_cast<const void* const*>(weights), workspace, rows, hidden,
                                 heads, intermediate, layer_norm_eps, approximate, cu_seqlens, num_seqs,
                                 max_seqlen, batch, seq, mask);
}

extern "C" int bert4j_encoder_layer_int8_forward_f32(float* h, const void* const* weights,
                                                     float* workspace, int64_t rows, int64_t hidden,
                                                     int64_t heads, int64_t intermediate,
                                                     float layer_norm_eps, int approximate,
                                                     const int32_t* cu_seqlens, int64_t num_seqs,
                                                     int64_t max_seqlen, int64_t batch, int64_t seq,
                                                     const float* mask) {
    return layer_forward_checked("bert4j_encoder_layer_int8_forward_f32", bert4j::cpu::LinearKind::Int8, h, weights, workspace,
                                 rows, hidden, heads, intermediate, layer_norm_eps, approximate,
                                 cu_seqlens, num_seqs, max_seqlen, batch, seq, mask);
}

extern "C" int bert4j_encoder_layer_bf16_forward_f32(float* h, const void* const* weights,
                                                     float* workspace, int64_t rows, int64_t hidden,
                                                     int64_t heads, int64_t intermediate,
                                                     float layer_norm_eps, int approximate,
                                                     const int32_t* cu_seqlens, int64_t num_seqs,
                                                     int64_t max_seqlen, int64_t batch, int64_t seq,
                                                     const float* mask) {
    return layer_forward_checked("bert4j_encoder_layer_bf16_forward_f32", bert4j::cpu::LinearKind::Bf16, h,
                                 weights, workspace, rows, hidden, heads, intermediate, layer_norm_eps,
                                 approximate, cu_seqlens, num_seqs, max_seqlen, batch, seq, mask);
}
