// CUDA attention and bias+GELU backward.
//
// Argument checks run everywhere (they fail before any CUDA call). Where a GPU exists the
// kernels are compared with float64 host references on seeded inputs; exit 77 (CTest
// "skipped") without a GPU.
//
// Attention reference: materialised softmax in double over the same inputs the kernel sees
// (bf16 runs: the bf16-rounded inputs), the same dropout keep decisions (bert4j::dropout_keep
// from philox.h, the CPU definition), and the ABI's dropout indices. Besides each reference
// value r the reference computes its absolute-value scale a (the same sum with |terms|:
// out: sum_j P_j Z_j |v_j|; dv: sum_i P Z |dO_i|; dq / dk: scale sum P (|dP Z| + |D|) |k| or
// |q|), the natural unit of rounding error of a sum. Tolerance per element:
//   fp32:  |got - r| <= 2e-5 a + 1e-7 A      (A = max a over the tensor; fp32 sums of <= 512
//                                             terms plus exp2f: ~1e-6 a expected)
//   bf16:  |got - r| <= 2^-7 a + 2^-10 A     (P and dS are rounded to bf16 before the tensor-
//                                             core products, 2^-9 each, and the output is
//                                             rounded to bf16, 2^-9 |r| <= 2^-9 a)
//   lse:   |got - r| <= 1e-5 (1 + |r|) fp32, 1e-4 (1 + |r|) bf16 (scores are fp32 sums of
//          exact bf16 products).
// Also checked: out = 0 and lse = -inf for rows with no visible key, dk = dv = 0 for keys past
// key_len, nothing written outside the strided elements (sentinels), no NaN, and a second
// backward run is bitwise identical (no atomics).
//
// Bias+GELU backward: float64 reference gelu'(h) on the fp32 sum h = x + bias. fp32: dx within
// 4e-6 |dy| cond(h) (expf/normcdff few-ulp, relative to the size of gelu's terms, since gelu'
// crosses zero near h = -0.75) + 1e-9 |dy| for the tanh form, dbias within 1e-5 sum_r |dy| cond
// (fp32 column sums); bf16: dx also within 2^-8 |ref| (output rounding 2^-9), dbias as fp32 on
// the unrounded dx.

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../src/common/philox.h"
#include "bert4j_kernels.h"
#include "test_util.h"

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

uint16_t to_bf16(float f) {  // round to nearest even (finite inputs)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
float round_bf16(float f) { return from_bf16(to_bf16(f)); }

void expect_reject(const char* what, int status, int expected, const char* must_contain) {
    const std::string msg = bert4j_last_error();
    CHECK(status == expected, "%s: status %d, expected %d (%s)", what, status, expected, msg.c_str());
    CHECK(msg.find(must_contain) != std::string::npos, "%s: message '%s' lacks '%s'", what,
          msg.c_str(), must_contain);
}

// ---- argument checks (no GPU needed) -------------------------------------------------------
void test_bad_arguments() {
    float f[64] = {};
    const int64_t bhsd[3] = {2 * 3 * 64, 3 * 64, 64};
    const int64_t neg[3] = {100, 64, -1};
    const int64_t narrow[3] = {2 * 3 * 64, 3 * 64, 32};
    const int64_t huge[3] = {INT64_MAX / 2, 64, 64};
    const int32_t kl[2] = {1, 1};
    auto forward = [&](int dtype, const void* q, int64_t b, int64_t s, int64_t d, const int64_t* qs,
                       const int64_t* os, const float* mask, const int64_t* mstr, float p, float sc) {
        return bert4j_attention_forward_cuda(dtype, q, f, f, f, f, b, 3, s, s, d, qs, bhsd, bhsd, os,
                                             kl, mask, mstr, sc, p, 1, 2, nullptr);
    };
    expect_reject("dtype", forward(7, f, 2, 4, 64, bhsd, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "bert4j_attention_forward_cuda: dtype must be 0");
    expect_reject("q NULL", forward(0, nullptr, 2, 4, 64, bhsd, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_NULL_POINTER, "bert4j_attention_forward_cuda: q is NULL (expected [batch 2, heads 3, seq_q 4, head_dim 64]");
    expect_reject("head_dim", forward(1, f, 2, 4, 48, bhsd, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "head_dim must be 32 or 64 on CUDA");
    expect_reject("dropout 1", forward(0, f, 2, 4, 64, bhsd, bhsd, nullptr, nullptr, 1.0f, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "dropout_p must be in [0, 1), got 1");
    expect_reject("dropout NaN", forward(0, f, 2, 4, 64, bhsd, bhsd, nullptr, nullptr, NAN, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "dropout_p must be in [0, 1)");
    expect_reject("scale inf", forward(0, f, 2, 4, 64, bhsd, bhsd, nullptr, nullptr, 0, INFINITY),
                  BERT4J_ERR_INVALID_ARGUMENT, "scale must be finite");
    expect_reject("batch", forward(0, f, -1, 4, 64, bhsd, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "batch must be >= 0, got -1");
    expect_reject("q_strides NULL", forward(0, f, 2, 4, 64, nullptr, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_NULL_POINTER, "q_strides is NULL");
    expect_reject("negative stride", forward(0, f, 2, 4, 64, neg, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "q_strides[2] (seq stride) must be >= 0, got -1");
    expect_reject("overlapping out", forward(0, f, 2, 4, 64, bhsd, narrow, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "out_strides[2] (seq stride) must be >= head_dim (64)");
    expect_reject("overflow", forward(0, f, 4, 4, 64, huge, bhsd, nullptr, nullptr, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "q with strides q_strides overflows int64");
    expect_reject("mask strides", forward(0, f, 2, 4, 64, bhsd, bhsd, f, nullptr, 0, 1),
                  BERT4J_ERR_NULL_POINTER, "mask_strides is NULL but mask is set");
    const int64_t mneg[3] = {64, 0, -4};
    expect_reject("mask stride", forward(0, f, 2, 4, 64, bhsd, bhsd, f, mneg, 0, 1),
                  BERT4J_ERR_INVALID_ARGUMENT, "mask_strides[2] (query stride) must be >= 0");
    // Empty: nothing to compute, NULL everywhere is fine and the message is reset.
    CHECK(bert4j_attention_forward_cuda(0, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 3, 4, 4,
                                        64, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                        nullptr, 1, 0, 0, 0, nullptr) == BERT4J_OK &&
              std::string(bert4j_last_error()).empty(),
          "empty forward: %s", bert4j_last_error());

    auto backward = [&](const float* lse, void* dk, int64_t d) {
        return bert4j_attention_backward_cuda(0, f, f, f, f, f, lse, f, dk, f, 2, 3, 4, 4, d, bhsd,
                                              bhsd, bhsd, bhsd, bhsd, bhsd, bhsd, bhsd, nullptr,
                                              nullptr, nullptr, 0.125f, 0, 0, 0, nullptr);
    };
    expect_reject("bwd lse NULL", backward(nullptr, f, 64), BERT4J_ERR_NULL_POINTER,
                  "bert4j_attention_backward_cuda: lse is NULL");
    expect_reject("bwd dk NULL", backward(f, nullptr, 64), BERT4J_ERR_NULL_POINTER, "dk is NULL");
    expect_reject("bwd head_dim", backward(f, f, 16), BERT4J_ERR_INVALID_ARGUMENT,
                  "head_dim must be 32 or 64");

    const int64_t tv[2] = {3 * 64, 64};
    const int32_t cu[3] = {0, 3, 5};
    auto varlen = [&](const int32_t* cus, int64_t n, int64_t total, int64_t max, float p) {
        return bert4j_attention_varlen_forward_cuda(1, f, f, f, f, f, cus, n, total, max, 3, 64, tv,
                                                    tv, tv, tv, 0.125f, p, 0, 0, nullptr);
    };
    expect_reject("varlen cu NULL", varlen(nullptr, 2, 5, 3, 0), BERT4J_ERR_NULL_POINTER,
                  "bert4j_attention_varlen_forward_cuda: cu_seqlens is NULL");
    expect_reject("varlen total", varlen(cu, 2, 7, 3, 0), BERT4J_ERR_INVALID_ARGUMENT,
                  "total_tokens (7) exceeds num_seqs (2) * max_seqlen (3)");
    expect_reject("varlen max 0", varlen(cu, 2, 5, 0, 0), BERT4J_ERR_INVALID_ARGUMENT,
                  "max_seqlen must be >= 1");
    expect_reject("varlen no seqs", varlen(cu, 0, 5, 3, 0), BERT4J_ERR_INVALID_ARGUMENT,
                  "total_tokens must be 0 when num_seqs is 0");
    expect_reject("varlen num_seqs", varlen(cu, -2, 5, 3, 0), BERT4J_ERR_INVALID_ARGUMENT,
                  "num_seqs must be >= 0, got -2");
    expect_reject("varlen dropout", varlen(cu, 2, 5, 3, -0.5f), BERT4J_ERR_INVALID_ARGUMENT,
                  "dropout_p must be in [0, 1)");
    const int64_t tv_bad[2] = {32, 64};
    expect_reject("varlen out stride",
                  bert4j_attention_varlen_backward_cuda(0, f, f, f, f, f, f, f, f, f, cu, 2, 5, 3, 3, 64,
                                                        tv, tv, tv, tv, tv, tv_bad, tv, tv, 0.125f, 0, 0,
                                                        0, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "dq_strides[0] (token stride) must be >= head_dim (64)");
    CHECK(varlen(nullptr, 0, 0, 0, 0) == BERT4J_OK, "empty varlen: %s", bert4j_last_error());

    // bias + GELU backward
    expect_reject("gelu bwd dy NULL",
                  bert4j_bias_gelu_backward_f32_cuda(nullptr, f, f, f, f, 2, 4, 4, 4, 4, 0, nullptr),
                  BERT4J_ERR_NULL_POINTER, "bert4j_bias_gelu_backward_f32_cuda: dy is NULL (expected [2, 4]");
    expect_reject("gelu bwd dx stride",
                  bert4j_bias_gelu_backward_f32_cuda(f, f, f, f, f, 2, 4, 4, 4, 3, 0, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "dx_row_stride must be >= cols (4)");
    uint16_t h[16] = {};
    expect_reject("gelu bwd approximate",
                  bert4j_bias_gelu_backward_bf16_cuda(h, h, h, h, f, 2, 4, 4, 4, 4, 9, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "approximate must be 0");
    expect_reject("gelu bwd bias NULL",
                  bert4j_bias_gelu_backward_bf16_cuda(h, h, nullptr, h, f, 2, 4, 4, 4, 4, 1, nullptr),
                  BERT4J_ERR_NULL_POINTER, "bias is NULL (expected [4] elements)");
    expect_reject("gelu bwd rows",
                  bert4j_bias_gelu_backward_bf16_cuda(h, h, h, h, f, -1, 4, 4, 4, 4, 1, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "rows must be >= 0, got -1");
    CHECK(bert4j_bias_gelu_backward_f32_cuda(nullptr, nullptr, nullptr, nullptr, nullptr, 5, 0, 0, 0,
                                             0, 0, nullptr) == BERT4J_OK,
          "empty gelu bwd: %s", bert4j_last_error());
}

// ---- host tensors ---------------------------------------------------------------------------
// [n0, n1, n2, D] with element (a, b, c, d) at a*s[0] + b*s[1] + c*s[2] + d.
struct HostT {
    int64_t n[3] = {0, 0, 0}, D = 0, s[3] = {0, 0, 0};
    std::vector<float> v;
    size_t at(int64_t a, int64_t b, int64_t c, int64_t d) const {
        return static_cast<size_t>(a * s[0] + b * s[1] + c * s[2] + d);
    }
    size_t span() const {
        if (n[0] == 0 || n[1] == 0 || n[2] == 0) return 1;
        return static_cast<size_t>((n[0] - 1) * s[0] + (n[1] - 1) * s[1] + (n[2] - 1) * s[2] + D);
    }
};

HostT make(int64_t n0, int64_t n1, int64_t n2, int64_t D, const int64_t s[3], std::mt19937* rng,
           bool bf16, float sentinel = NAN) {
    HostT t;
    t.n[0] = n0; t.n[1] = n1; t.n[2] = n2; t.D = D;
    for (int i = 0; i < 3; ++i) t.s[i] = s[i];
    t.v.assign(t.span(), sentinel);
    if (rng != nullptr) {
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (auto& x : t.v) x = bf16 ? round_bf16(normal(*rng)) : normal(*rng);
    }
    return t;
}

struct DevBuf {
    void* p = nullptr;
    DevBuf() = default;
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    ~DevBuf() { if (p) cudaFree(p); }
};

void upload(DevBuf& d, const std::vector<float>& v, bool bf16) {
    const size_t bytes = v.size() * (bf16 ? 2 : 4);
    CHECK(cudaMalloc(&d.p, bytes) == cudaSuccess, "cudaMalloc %zu", bytes);
    if (bf16) {
        std::vector<uint16_t> h(v.size());
        for (size_t i = 0; i < v.size(); ++i) h[i] = std::isnan(v[i]) ? 0x7FC0 : to_bf16(v[i]);
        cudaMemcpy(d.p, h.data(), bytes, cudaMemcpyHostToDevice);
    } else {
        cudaMemcpy(d.p, v.data(), bytes, cudaMemcpyHostToDevice);
    }
}
void download(std::vector<float>& v, const DevBuf& d, bool bf16) {
    if (bf16) {
        std::vector<uint16_t> h(v.size());
        cudaMemcpy(h.data(), d.p, h.size() * 2, cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < v.size(); ++i) v[i] = from_bf16(h[i]);
    } else {
        cudaMemcpy(v.data(), d.p, v.size() * 4, cudaMemcpyDeviceToHost);
    }
}

// ---- the attention reference ---------------------------------------------------------------
// One (batch/sequence, head) problem: sq queries, kv visible keys (of sk_rows key rows).
// Accessors read the kernel's inputs; results land in the reference HostT-shaped arrays
// (index through the same at() as the kernel's outputs, value and abs scale separately).
struct Refs {
    std::vector<double> out, out_a, lse, dq, dq_a, dk, dk_a, dv, dv_a;
};

struct ProblemView {
    const HostT *q, *k, *v, *dout;
    int64_t a, h;    // index into dims 0/1 of q/k/v (dense: b, h; varlen: 0, h)
    int64_t tok0;    // first row in dim 2 (varlen token offset)
    int sq, kv;
    int64_t lse_row0;  // lse index of query 0
    std::vector<double> mask_rows;  // materialised mask for this problem
    bool dropout;
    uint64_t seed, offset;
    uint32_t threshold;
    uint64_t drop_row0, drop_stride;
    double scale, zscale;
};

void ref_problem(const ProblemView& pv, const HostT& O, Refs& R, bool backward) {
    const int64_t D = pv.q->D;
    std::vector<double> s(pv.kv), P(pv.kv), Z(pv.kv), dP(pv.kv);
    for (int i = 0; i < pv.sq; ++i) {
        const int64_t qi = pv.tok0 + i;
        double m = -kInf;
        for (int j = 0; j < pv.kv; ++j) {
            double acc = 0;
            for (int64_t d = 0; d < D; ++d)
                acc += static_cast<double>(pv.q->v[pv.q->at(pv.a, pv.h, qi, d)]) *
                       pv.k->v[pv.k->at(pv.a, pv.h, pv.tok0 + j, d)];
            s[j] = pv.scale * acc + (pv.mask_rows.empty() ? 0.0 : pv.mask_rows[static_cast<size_t>(i) * pv.kv + j]);
            m = std::max(m, s[j]);
        }
        double l = 0;
        for (int j = 0; j < pv.kv; ++j) {
            P[j] = m == -kInf ? 0.0 : std::exp(s[j] - m);
            l += P[j];
        }
        for (int j = 0; j < pv.kv; ++j) {
            P[j] = l > 0 ? P[j] / l : 0.0;
            Z[j] = 1.0;
            if (pv.dropout)
                Z[j] = bert4j::dropout_keep(pv.seed, pv.offset, (pv.drop_row0 + i) * pv.drop_stride + j,
                                            pv.threshold) ? pv.zscale : 0.0;
        }
        const size_t li = static_cast<size_t>(pv.lse_row0 + i);
        R.lse[li] = l > 0 ? m + std::log(l) : -kInf;
        for (int64_t d = 0; d < D; ++d) {
            double acc = 0, abs = 0;
            for (int j = 0; j < pv.kv; ++j) {
                const double vv = pv.v->v[pv.v->at(pv.a, pv.h, pv.tok0 + j, d)];
                acc += P[j] * Z[j] * vv;
                abs += P[j] * Z[j] * std::fabs(vv);
            }
            const size_t oi = O.at(pv.a, pv.h, qi, d);
            R.out[oi] = acc;
            R.out_a[oi] = abs;
        }
        if (!backward) continue;
        double Dd = 0;
        for (int j = 0; j < pv.kv; ++j) {
            double acc = 0;
            for (int64_t d = 0; d < D; ++d)
                acc += static_cast<double>(pv.dout->v[pv.dout->at(pv.a, pv.h, qi, d)]) *
                       pv.v->v[pv.v->at(pv.a, pv.h, pv.tok0 + j, d)];
            dP[j] = acc * Z[j];
            Dd += P[j] * dP[j];
        }
        for (int j = 0; j < pv.kv; ++j) {
            const double ds = P[j] * (dP[j] - Dd), ds_a = P[j] * (std::fabs(dP[j]) + std::fabs(Dd));
            for (int64_t d = 0; d < D; ++d) {
                const double kk = pv.k->v[pv.k->at(pv.a, pv.h, pv.tok0 + j, d)];
                const double qq = pv.q->v[pv.q->at(pv.a, pv.h, qi, d)];
                const double go = pv.dout->v[pv.dout->at(pv.a, pv.h, qi, d)];
                const size_t qo = O.at(pv.a, pv.h, qi, d);  // dq shares the out layout here
                const size_t ko = pv.k->at(pv.a, pv.h, pv.tok0 + j, d);
                R.dq[qo] += pv.scale * ds * kk;
                R.dq_a[qo] += pv.scale * ds_a * std::fabs(kk);
                R.dk[ko] += pv.scale * ds * qq;
                R.dk_a[ko] += pv.scale * ds_a * std::fabs(qq);
                R.dv[ko] += P[j] * Z[j] * go;
                R.dv_a[ko] += P[j] * Z[j] * std::fabs(go);
            }
        }
    }
}

// Compares the elements of `got` (layout of `shape`) with reference value/scale; positions
// outside the strided elements must still hold the NaN sentinel.
double compare(const char* what, const std::string& tag, const HostT& shape, const std::vector<float>& got,
               const std::vector<double>& ref, const std::vector<double>& abs, bool bf16) {
    std::vector<char> is_elem(got.size(), 0);
    double A = 0;
    for (int64_t a = 0; a < shape.n[0]; ++a)
        for (int64_t b = 0; b < shape.n[1]; ++b)
            for (int64_t c = 0; c < shape.n[2]; ++c)
                for (int64_t d = 0; d < shape.D; ++d) {
                    const size_t i = shape.at(a, b, c, d);
                    is_elem[i] = 1;
                    A = std::max(A, abs[i]);
                }
    const double rel = bf16 ? 1.0 / 128 : 2e-5, floor_ = (bf16 ? 1.0 / 1024 : 1e-7) * A;
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (!is_elem[i]) {
            if (!std::isnan(got[i]) && bad++ < 3)
                CHECK(false, "%s %s: wrote outside its elements at offset %zu (%g)", tag.c_str(), what, i, got[i]);
            continue;
        }
        const double err = std::fabs(got[i] - ref[i]);
        const double tol = rel * abs[i] + floor_ + 1e-30;
        worst = std::max(worst, err / (abs[i] + floor_ / rel + 1e-30));
        if (!(err <= tol) && bad++ < 3)
            CHECK(false, "%s %s: offset %zu got %.9g ref %.12g (abs scale %.3g, tol %.3g)", tag.c_str(),
                  what, i, got[i], ref[i], abs[i], tol);
    }
    return worst;
}

struct Stats {
    double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
};

void check_lse(const std::string& tag, const std::vector<float>& got, const std::vector<double>& ref,
               bool bf16, Stats& st) {
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (ref[i] == -kInf) {
            if (!(got[i] == -INFINITY) && bad++ < 3)
                CHECK(false, "%s lse[%zu]: fully masked row must be -inf, got %g", tag.c_str(), i, got[i]);
            continue;
        }
        const double err = std::fabs(got[i] - ref[i]), tol = (bf16 ? 1e-4 : 1e-5) * (1 + std::fabs(ref[i]));
        st.lse = std::max(st.lse, err / (1 + std::fabs(ref[i])));
        if (!(err <= tol) && bad++ < 3)
            CHECK(false, "%s lse[%zu]: got %.9g ref %.12g", tag.c_str(), i, got[i], ref[i]);
    }
}

// ---- dense cases ------------------------------------------------------------------------------
enum MaskKind { kNoMask = 0, kPadding = 1, kFullMask = 2 };

void dense_case(bool bf16, int64_t B, int64_t H, int64_t Sq, int64_t Sk, int64_t D, int mask_kind,
                int layout, float p, std::mt19937& rng, Stats& st) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "dense %s B%lld H%lld Sq%lld Sk%lld D%lld mask%d layout%d p%.2f",
                  bf16 ? "bf16" : "f32", (long long)B, (long long)H, (long long)Sq, (long long)Sk,
                  (long long)D, mask_kind, layout, p);
    const std::string tag = buf;
    // layout 0: [B,H,S,D] contiguous; 1: [B,S,H,D] views (seq stride H*D); 2: [B,H,S,D] with an
    // odd padded seq stride (D + 3: the scalar, non-vector load path).
    auto strides = [&](int64_t S, int64_t out[3]) {
        if (layout == 1) { out[0] = S * H * D; out[1] = D; out[2] = H * D; }
        else { const int64_t ss = layout == 2 ? D + 3 : D; out[0] = H * S * ss; out[1] = S * ss; out[2] = ss; }
    };
    int64_t qs[3], ks[3];
    strides(Sq, qs);
    strides(Sk, ks);
    const HostT q = make(B, H, Sq, D, qs, &rng, bf16), k = make(B, H, Sk, D, ks, &rng, bf16),
                v = make(B, H, Sk, D, ks, &rng, bf16), dout = make(B, H, Sq, D, qs, &rng, bf16);
    HostT out = make(B, H, Sq, D, qs, nullptr, bf16), dq = make(B, H, Sq, D, qs, nullptr, bf16),
          dk = make(B, H, Sk, D, ks, nullptr, bf16), dv = make(B, H, Sk, D, ks, nullptr, bf16);
    std::vector<int32_t> key_len(B, static_cast<int32_t>(Sk));
    std::vector<float> mask;
    int64_t ms[3] = {0, 0, 0};
    std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
    if (mask_kind == kPadding) {
        // key_lengths (batch 0: none visible when B > 1) and a [B,1,1,Sk] additive mask.
        for (int64_t b = 0; b < B; ++b)
            key_len[b] = static_cast<int32_t>(b == 0 && B > 1 ? 0 : std::max<int64_t>(1, Sk - 3 * b - Sk / 3 * (b % 2)));
        mask.assign(B * Sk, 0.0f);
        for (int64_t b = 0; b < B; ++b)
            for (int64_t j = 0; j < Sk; ++j) mask[b * Sk + j] = (j % 5 == 3) ? -INFINITY : 0.0f;
        ms[0] = Sk;
    } else if (mask_kind == kFullMask) {
        // [B,H,Sq,Sk] finite values, one fully masked query row per (b, h).
        mask.resize(B * H * Sq * Sk);
        for (auto& x : mask) x = uni(rng);
        for (int64_t bh = 0; bh < B * H; ++bh)
            for (int64_t j = 0; j < Sk; ++j) mask[(bh * Sq + (bh % Sq)) * Sk + j] = -INFINITY;
        ms[0] = H * Sq * Sk; ms[1] = Sq * Sk; ms[2] = Sk;
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const uint64_t seed = 0x1234567890ABCDEFull + Sq, offset = 77;

    DevBuf dq_d, dk_d, dv_d, q_d, k_d, v_d, o_d, do_d, lse_d, kl_d, m_d;
    upload(q_d, q.v, bf16); upload(k_d, k.v, bf16); upload(v_d, v.v, bf16); upload(do_d, dout.v, bf16);
    upload(o_d, out.v, bf16); upload(dq_d, dq.v, bf16); upload(dk_d, dk.v, bf16); upload(dv_d, dv.v, bf16);
    std::vector<float> lse(B * H * Sq, 12345.0f);
    upload(lse_d, lse, false);
    const int32_t* kl_ptr = nullptr;
    if (mask_kind == kPadding) {
        cudaMalloc(&kl_d.p, B * sizeof(int32_t));
        cudaMemcpy(kl_d.p, key_len.data(), B * sizeof(int32_t), cudaMemcpyHostToDevice);
        kl_ptr = static_cast<const int32_t*>(kl_d.p);
    }
    if (!mask.empty()) upload(m_d, mask, false);
    const float* m_ptr = mask.empty() ? nullptr : static_cast<const float*>(m_d.p);
    const int dtype = bf16 ? BERT4J_DTYPE_BF16 : BERT4J_DTYPE_F32;

    int status = bert4j_attention_forward_cuda(dtype, q_d.p, k_d.p, v_d.p, o_d.p, static_cast<float*>(lse_d.p),
                                               B, H, Sq, Sk, D, qs, ks, ks, qs, kl_ptr, m_ptr, ms, scale, p,
                                               seed, offset, nullptr);
    CHECK(status == BERT4J_OK, "%s forward: %s", tag.c_str(), bert4j_last_error());
    status = bert4j_attention_backward_cuda(dtype, q_d.p, k_d.p, v_d.p, o_d.p, do_d.p,
                                            static_cast<const float*>(lse_d.p), dq_d.p, dk_d.p, dv_d.p, B, H,
                                            Sq, Sk, D, qs, ks, ks, qs, qs, qs, ks, ks, kl_ptr, m_ptr, ms, scale,
                                            p, seed, offset, nullptr);
    CHECK(status == BERT4J_OK, "%s backward: %s", tag.c_str(), bert4j_last_error());
    const cudaError_t sync = cudaDeviceSynchronize();
    CHECK(sync == cudaSuccess, "%s: %s", tag.c_str(), cudaGetErrorString(sync));
    std::vector<float> got_o(out.v.size()), got_lse(lse.size()), got_dq(dq.v.size()), got_dk(dk.v.size()),
        got_dv(dv.v.size());
    download(got_o, o_d, bf16); download(got_lse, lse_d, false); download(got_dq, dq_d, bf16);
    download(got_dk, dk_d, bf16); download(got_dv, dv_d, bf16);

    // Determinism: the backward again, bitwise.
    status = bert4j_attention_backward_cuda(dtype, q_d.p, k_d.p, v_d.p, o_d.p, do_d.p,
                                            static_cast<const float*>(lse_d.p), dq_d.p, dk_d.p, dv_d.p, B, H,
                                            Sq, Sk, D, qs, ks, ks, qs, qs, qs, ks, ks, kl_ptr, m_ptr, ms, scale,
                                            p, seed, offset, nullptr);
    cudaDeviceSynchronize();
    std::vector<float> again(dk.v.size());
    download(again, dk_d, bf16);
    CHECK(status == BERT4J_OK && std::memcmp(again.data(), got_dk.data(), again.size() * 4) == 0,
          "%s: a second backward gave different dk bits", tag.c_str());

    Refs R;
    R.out.assign(out.v.size(), 0); R.out_a = R.out; R.dq = R.out; R.dq_a = R.out;
    R.lse.assign(lse.size(), 0);
    R.dk.assign(dk.v.size(), 0); R.dk_a = R.dk; R.dv = R.dk; R.dv_a = R.dk;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h) {
            ProblemView pv;
            pv.q = &q; pv.k = &k; pv.v = &v; pv.dout = &dout;
            pv.a = b; pv.h = h; pv.tok0 = 0;
            pv.sq = static_cast<int>(Sq); pv.kv = key_len[b];
            pv.lse_row0 = (b * H + h) * Sq;
            if (!mask.empty()) {
                pv.mask_rows.resize(static_cast<size_t>(Sq) * pv.kv);
                for (int64_t i = 0; i < Sq; ++i)
                    for (int j = 0; j < pv.kv; ++j)
                        pv.mask_rows[i * pv.kv + j] = mask[b * ms[0] + h * ms[1] + i * ms[2] + j];
            }
            pv.dropout = p > 0; pv.seed = seed; pv.offset = offset;
            pv.threshold = bert4j::dropout_threshold(p);
            pv.drop_row0 = (b * H + h) * Sq; pv.drop_stride = Sk;
            pv.scale = scale; pv.zscale = 1.0 / (1.0 - static_cast<double>(p));
            ref_problem(pv, out, R, true);
        }
    // Keys past key_len: exactly zero gradients (the reference leaves them 0 too).
    st.out = std::max(st.out, compare("out", tag, out, got_o, R.out, R.out_a, bf16));
    check_lse(tag, got_lse, R.lse, bf16, st);
    st.dq = std::max(st.dq, compare("dq", tag, dq, got_dq, R.dq, R.dq_a, bf16));
    st.dk = std::max(st.dk, compare("dk", tag, dk, got_dk, R.dk, R.dk_a, bf16));
    st.dv = std::max(st.dv, compare("dv", tag, dv, got_dv, R.dv, R.dv_a, bf16));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t j = key_len[b]; j < Sk; ++j)
                for (int64_t d = 0; d < D; ++d)
                    if (got_dk[dk.at(b, h, j, d)] != 0.0f || got_dv[dv.at(b, h, j, d)] != 0.0f) {
                        CHECK(false, "%s: key %lld >= key_len %d has nonzero dk/dv", tag.c_str(),
                              (long long)j, key_len[b]);
                        d = D; j = Sk;
                    }
}

// ---- varlen cases -----------------------------------------------------------------------------
// Packed [total, H, D] tensors; `fused` reads q/k/v with the token stride of a fused QKV
// buffer (3 H D), the other layout is contiguous.
void varlen_case(bool bf16, const std::vector<int32_t>& lens, int64_t H, int64_t D, bool fused, float p,
                 std::mt19937& rng, Stats& st) {
    std::vector<int32_t> cu(lens.size() + 1, 0);
    int64_t maxlen = 1;
    for (size_t s = 0; s < lens.size(); ++s) { cu[s + 1] = cu[s] + lens[s]; maxlen = std::max<int64_t>(maxlen, lens[s]); }
    const int64_t total = cu.back(), N = static_cast<int64_t>(lens.size());
    char buf[160];
    std::snprintf(buf, sizeof buf, "varlen %s seqs%lld total%lld max%lld H%lld D%lld %s p%.2f", bf16 ? "bf16" : "f32",
                  (long long)N, (long long)total, (long long)maxlen, (long long)H, (long long)D,
                  fused ? "fusedQKV" : "packed", p);
    const std::string tag = buf;
    const int64_t in_tok = fused ? 3 * H * D : H * D;
    const int64_t s_in[3] = {0, D, in_tok}, s_out[3] = {0, D, H * D};  // HostT (0, h, token)
    const int64_t api_in[2] = {in_tok, D}, api_out[2] = {H * D, D};
    const HostT q = make(1, H, total, D, s_in, &rng, bf16), k = make(1, H, total, D, s_in, &rng, bf16),
                v = make(1, H, total, D, s_in, &rng, bf16), dout = make(1, H, total, D, s_out, &rng, bf16);
    HostT out = make(1, H, total, D, s_out, nullptr, bf16), dq = make(1, H, total, D, s_out, nullptr, bf16),
          dk = make(1, H, total, D, s_out, nullptr, bf16), dv = make(1, H, total, D, s_out, nullptr, bf16);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const uint64_t seed = 987654321, offset = (1ull << 40) + 5;
    DevBuf q_d, k_d, v_d, o_d, do_d, dq_d, dk_d, dv_d, lse_d, cu_d;
    upload(q_d, q.v, bf16); upload(k_d, k.v, bf16); upload(v_d, v.v, bf16); upload(do_d, dout.v, bf16);
    upload(o_d, out.v, bf16); upload(dq_d, dq.v, bf16); upload(dk_d, dk.v, bf16); upload(dv_d, dv.v, bf16);
    std::vector<float> lse(H * total, 12345.0f);
    upload(lse_d, lse, false);
    cudaMalloc(&cu_d.p, cu.size() * 4);
    cudaMemcpy(cu_d.p, cu.data(), cu.size() * 4, cudaMemcpyHostToDevice);
    const int dtype = bf16 ? BERT4J_DTYPE_BF16 : BERT4J_DTYPE_F32;
    const int32_t* cup = static_cast<const int32_t*>(cu_d.p);
    int status = bert4j_attention_varlen_forward_cuda(dtype, q_d.p, k_d.p, v_d.p, o_d.p, static_cast<float*>(lse_d.p),
                                                      cup, N, total, maxlen, H, D, api_in, api_in, api_in, api_out,
                                                      scale, p, seed, offset, nullptr);
    CHECK(status == BERT4J_OK, "%s forward: %s", tag.c_str(), bert4j_last_error());
    status = bert4j_attention_varlen_backward_cuda(dtype, q_d.p, k_d.p, v_d.p, o_d.p, do_d.p,
                                                   static_cast<const float*>(lse_d.p), dq_d.p, dk_d.p, dv_d.p, cup,
                                                   N, total, maxlen, H, D, api_in, api_in, api_in, api_out, api_out,
                                                   api_out, api_out, api_out, scale, p, seed, offset, nullptr);
    CHECK(status == BERT4J_OK, "%s backward: %s", tag.c_str(), bert4j_last_error());
    const cudaError_t sync = cudaDeviceSynchronize();
    CHECK(sync == cudaSuccess, "%s: %s", tag.c_str(), cudaGetErrorString(sync));
    std::vector<float> got_o(out.v.size()), got_lse(lse.size()), got_dq(dq.v.size()), got_dk(dk.v.size()),
        got_dv(dv.v.size());
    download(got_o, o_d, bf16); download(got_lse, lse_d, false); download(got_dq, dq_d, bf16);
    download(got_dk, dk_d, bf16); download(got_dv, dv_d, bf16);

    Refs R;
    R.out.assign(out.v.size(), 0); R.out_a = R.out; R.dq = R.out; R.dq_a = R.out;
    R.dk = R.out; R.dk_a = R.out; R.dv = R.out; R.dv_a = R.out;
    R.lse.assign(lse.size(), 0);
    // The reference indexes dk/dv through k's layout; here k (input) and dk (output) differ,
    // so it computes into k-shaped arrays and the comparison maps them below.
    Refs Rk;
    Rk.out = R.out; Rk.out_a = R.out; Rk.dq = R.out; Rk.dq_a = R.out; Rk.lse = R.lse;
    Rk.dk.assign(k.v.size(), 0); Rk.dk_a = Rk.dk; Rk.dv = Rk.dk; Rk.dv_a = Rk.dk;
    for (int64_t s = 0; s < N; ++s)
        for (int64_t h = 0; h < H; ++h) {
            ProblemView pv;
            pv.q = &q; pv.k = &k; pv.v = &v; pv.dout = &dout;
            pv.a = 0; pv.h = h; pv.tok0 = cu[s];
            pv.sq = pv.kv = lens[s];
            pv.lse_row0 = h * total + cu[s];
            pv.dropout = p > 0; pv.seed = seed; pv.offset = offset;
            pv.threshold = bert4j::dropout_threshold(p);
            pv.drop_row0 = h * total + cu[s]; pv.drop_stride = maxlen;
            pv.scale = scale; pv.zscale = 1.0 / (1.0 - static_cast<double>(p));
            ref_problem(pv, out, Rk, true);
        }
    for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < total; ++t)
            for (int64_t d = 0; d < D; ++d) {
                const size_t o = out.at(0, h, t, d), ki = k.at(0, h, t, d);
                R.dk[o] = Rk.dk[ki]; R.dk_a[o] = Rk.dk_a[ki]; R.dv[o] = Rk.dv[ki]; R.dv_a[o] = Rk.dv_a[ki];
            }
    st.out = std::max(st.out, compare("out", tag, out, got_o, Rk.out, Rk.out_a, bf16));
    check_lse(tag, got_lse, Rk.lse, bf16, st);
    st.dq = std::max(st.dq, compare("dq", tag, dq, got_dq, Rk.dq, Rk.dq_a, bf16));
    st.dk = std::max(st.dk, compare("dk", tag, dk, got_dk, R.dk, R.dk_a, bf16));
    st.dv = std::max(st.dv, compare("dv", tag, dv, got_dv, R.dv, R.dv_a, bf16));
}

// ---- bias + GELU backward -----------------------------------------------------------------------
// gelu'(h); *cond receives the sum of its terms' magnitudes: fp32 evaluation error is
// relative to that, not to the value, which crosses zero near h = -0.75 (an fp32 result
// there cannot be accurate relative to its own size, and neither is libtorch's).
double ref_gelu_grad(double h, int approximate, double* cond) {
    if (approximate == BERT4J_GELU_EXACT) {
        const double cdf = 0.5 * std::erfc(-h / std::sqrt(2.0));
        const double pdf_term = h * std::exp(-0.5 * h * h) / std::sqrt(2.0 * M_PI);
        *cond = std::fabs(cdf) + std::fabs(pdf_term);
        return cdf + pdf_term;
    }
    const double c = std::sqrt(2.0 / M_PI), u = c * (h + 0.044715 * h * h * h);
    const double t = std::tanh(u);
    const double first = 0.5 * (1 + t), second = 0.5 * h * (1 - t * t) * c * (1 + 3 * 0.044715 * h * h);
    *cond = std::fabs(first) + std::fabs(second);
    return first + second;
}

void gelu_bwd_case(bool bf16, int approximate, int64_t rows, int64_t cols, int64_t pad, bool in_place,
                   std::mt19937& rng, double& worst_dx, double& worst_db) {
    const int64_t s = cols + pad;
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> dy(rows * s), x(rows * s), b(cols);
    for (auto& e : dy) e = normal(rng);
    for (auto& e : x) e = normal(rng);
    for (auto& e : b) e = 0.5f * normal(rng);
    if (bf16) { for (auto* vec : {&dy, &x, &b}) for (auto& e : *vec) e = round_bf16(e); }
    DevBuf dy_d, x_d, b_d, dx_d, db_d;
    upload(dy_d, dy, bf16); upload(x_d, x, bf16); upload(b_d, b, bf16);
    std::vector<float> dbias(cols, NAN);
    upload(db_d, dbias, false);
    void* dx_ptr = dy_d.p;
    if (!in_place) { upload(dx_d, std::vector<float>(rows * s, 0.0f), bf16); dx_ptr = dx_d.p; }
    const int status = bf16 ? bert4j_bias_gelu_backward_bf16_cuda(
                                  static_cast<uint16_t*>(dy_d.p), static_cast<uint16_t*>(x_d.p),
                                  static_cast<uint16_t*>(b_d.p), static_cast<uint16_t*>(dx_ptr),
                                  static_cast<float*>(db_d.p), rows, cols, s, s, s, approximate, nullptr)
                            : bert4j_bias_gelu_backward_f32_cuda(
                                  static_cast<float*>(dy_d.p), static_cast<float*>(x_d.p),
                                  static_cast<float*>(b_d.p), static_cast<float*>(dx_ptr),
                                  static_cast<float*>(db_d.p), rows, cols, s, s, s, approximate, nullptr);
    const cudaError_t sync = cudaDeviceSynchronize();
    CHECK(status == BERT4J_OK && sync == cudaSuccess, "gelu bwd: %s / %s", bert4j_last_error(),
          cudaGetErrorString(sync));
    std::vector<float> dx(rows * s);
    DevBuf* src = in_place ? &dy_d : &dx_d;
    download(dx, *src, bf16);
    download(dbias, db_d, false);
    int bad = 0;
    for (int64_t c = 0; c < cols; ++c) {
        double sum = 0, sum_abs = 0, sum_cond = 0, sum_dy = 0;
        for (int64_t r = 0; r < rows; ++r) {
            const float h = x[r * s + c] + b[c];
            double cond = 0;
            const double ref = dy[r * s + c] * ref_gelu_grad(h, approximate, &cond);
            sum += ref;
            sum_abs += std::fabs(ref);
            sum_cond += std::fabs(dy[r * s + c]) * cond;
            sum_dy += std::fabs(dy[r * s + c]);
            const double err = std::fabs(dx[r * s + c] - ref);
            // bf16: the rounding of dx itself; both: fp32 evaluation error relative to the
            // terms, plus an absolute floor where the tanh form's 0.5 (1 + tanh u) underflows
            // towards 0 (h < -6: gelu' < 1e-9).
            const double atol = approximate == BERT4J_GELU_TANH ? 1e-9 : 1e-30;
            const double tol = (bf16 ? 1.0 / 256 : 0.0) * std::fabs(ref) +
                               (4e-6 * cond + atol) * std::fabs(dy[r * s + c]) + 1e-30;
            if (std::fabs(ref) > 1e-30) worst_dx = std::max(worst_dx, err / std::fabs(ref));
            if (!(err <= tol) && bad++ < 3)
                CHECK(false, "gelu bwd %s approx=%d [%lld x %lld] (%lld,%lld): h=%.9g got %.9g ref %.12g",
                      bf16 ? "bf16" : "f32", approximate, (long long)rows, (long long)cols, (long long)r,
                      (long long)c, h, dx[r * s + c], ref);
        }
        const double atol = approximate == BERT4J_GELU_TANH ? 1e-9 : 1e-30;
        const double err = std::fabs(dbias[c] - sum), tol = 1e-5 * sum_cond + atol * sum_dy + 1e-30;
        worst_db = std::max(worst_db, err / (sum_abs + 1e-30));
        if (!(err <= tol) && bad++ < 3)
            CHECK(false, "gelu bwd dbias %s [%lld x %lld] col %lld: got %.9g ref %.12g", bf16 ? "bf16" : "f32",
                  (long long)rows, (long long)cols, (long long)c, dbias[c], sum);
    }
}

}  // namespace

int main() {
    test_bad_arguments();
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("argument checks: %s; no CUDA device (%s): numeric tests skipped\n",
                    bert4j::test::g_failures ? "FAILED" : "passed", cudaGetErrorString(err));
        return bert4j::test::g_failures ? 1 : 77;
    }
    std::mt19937 rng(20261128);

    for (bool bf16 : {false, true})
        for (int approximate : {0, 1}) {
            double wdx = 0, wdb = 0;
            for (int64_t rows : {1, 7, 97, 300})
                for (int64_t cols : {1, 3, 384, 3072})
                    for (int64_t pad : {0, 3}) gelu_bwd_case(bf16, approximate, rows, cols, pad, pad == 3, rng, wdx, wdb);
            std::printf("bias_gelu_backward %s approx=%d: max rel err dx %.3g, dbias %.3g (of sum |dx|)\n",
                        bf16 ? "bf16" : "f32", approximate, wdx, wdb);
        }

    for (bool bf16 : {false, true}) {
        Stats st;
        int n = 0;
        for (int64_t S : {1, 7, 97, 128, 257, 512})
            for (int64_t D : {32, 64})
                for (float p : {0.0f, 0.1f}) {
                    const int mask_kind = n % 3, layout = (n / 3) % 3;
                    ++n;
                    const int64_t B = S >= 257 ? 2 : 3, H = S >= 257 ? 2 : 3;
                    dense_case(bf16, B, H, S, S, D, mask_kind, layout, p, rng, st);
                }
        // Cross attention shapes (seq_q != seq_k) and a long padded batch.
        dense_case(bf16, 2, 2, 97, 257, 64, kFullMask, 1, 0.0f, rng, st);
        dense_case(bf16, 2, 3, 130, 7, 32, kPadding, 0, 0.2f, rng, st);
        dense_case(bf16, 3, 2, 512, 512, 64, kPadding, 1, 0.1f, rng, st);
        for (int64_t D : {32, 64})
            for (float p : {0.0f, 0.1f}) {
                varlen_case(bf16, {1, 7, 97, 257}, 3, D, p > 0, p, rng, st);
                varlen_case(bf16, {128, 0, 64, 200, 512}, 2, D, p == 0, p, rng, st);
            }
        std::printf("attention %s: worst err/scale out %.3g, dq %.3g, dk %.3g, dv %.3g; lse rel %.3g\n",
                    bf16 ? "bf16" : "f32", st.out, st.dq, st.dk, st.dv, st.lse);
    }
    if (bert4j::test::g_failures == 0) std::printf("test_attention_cuda: all checks passed\n");
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
