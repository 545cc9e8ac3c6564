#include "arg_checks.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "status.h"

namespace bert4j::detail {
namespace {

long long ll(int64_t v) { return static_cast<long long>(v); }

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// One [extent_0, ..., extent_{n-1}, head_dim] tensor: pointer, stride array, offsets.
struct Tensor {
    const char* name;         // "q", "dk", ...
    const char* stride_name;  // "q_strides", ...
    const void* ptr;
    const int64_t* strides;
    bool output;
};

int check_tensor(const char* op, const Tensor& t, const int64_t* extents, const char* const* dims,
                 int n, int64_t head_dim, const char* shape) {
    if (t.ptr == nullptr)
        return fail(BERT4J_ERR_NULL_POINTER, "%s: %s is NULL (expected %s elements)", op, t.name,
                    shape);
    if (t.strides == nullptr)
        return fail(BERT4J_ERR_NULL_POINTER, "%s: %s is NULL (expected %d strides for %s %s)", op,
                    t.stride_name, n, t.name, shape);
    unsigned __int128 last = static_cast<unsigned __int128>(head_dim - 1);
    for (int i = 0; i < n; ++i) {
        const int64_t s = t.strides[i];
        if (s < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s[%d] (%s stride) must be >= 0, got %lld",
                        op, t.stride_name, i, dims[i], ll(s));
        // An output row must not overlap the next one along any dimension longer than 1.
        if (t.output && extents[i] > 1 && s < head_dim)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: %s[%d] (%s stride) must be >= head_dim (%lld) for output %s %s, got %lld",
                        op, t.stride_name, i, dims[i], ll(head_dim), t.name, shape, ll(s));
        last += static_cast<unsigned __int128>(extents[i] - 1) * static_cast<uint64_t>(s);
    }
    if (last > static_cast<unsigned __int128>(kMax))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s with strides %s overflows int64 offsets",
                    op, t.name, t.stride_name);
    return BERT4J_OK;
}

}  // namespace

int check_attention_args(const char* op, const AttentionArgs& a, bool* empty) {
    *empty = false;
    const char* batch_name = a.varlen ? "num_seqs" : "batch";
    const struct { const char* name; int64_t v; } sizes[] = {
        {batch_name, a.batch}, {"heads", a.heads},
        {a.varlen ? "max_seqlen" : "seq_q", a.seq_q}, {"seq_k", a.seq_k},
        {"head_dim", a.head_dim}, {"total_tokens", a.total_tokens}};
    for (const auto& s : sizes)
        if (s.v < 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: %s must be >= 0, got %lld", op, s.name,
                        ll(s.v));
    if (!(a.dropout_p >= 0.0f && a.dropout_p < 1.0f))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: dropout_p must be in [0, 1), got %g", op,
                    static_cast<double>(a.dropout_p));
    if (!std::isfinite(a.scale))
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: scale must be finite, got %g", op,
                    static_cast<double>(a.scale));

    if (a.varlen) {
        if (a.batch == 0 && a.total_tokens != 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: total_tokens must be 0 when num_seqs is 0, got %lld", op,
                        ll(a.total_tokens));
        if (a.total_tokens > std::numeric_limits<int32_t>::max())
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: total_tokens must fit the int32 cu_seqlens, got %lld", op,
                        ll(a.total_tokens));
        if (a.total_tokens > 0 && a.seq_q == 0)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: max_seqlen must be >= 1 when total_tokens (%lld) > 0, got 0", op,
                        ll(a.total_tokens));
        if (static_cast<unsigned __int128>(a.batch) * static_cast<uint64_t>(a.seq_q) <
            static_cast<unsigned __int128>(a.total_tokens))
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: total_tokens (%lld) exceeds num_seqs (%lld) * max_seqlen (%lld)", op,
                        ll(a.total_tokens), ll(a.batch), ll(a.seq_q));
        if (a.heads == 0 || a.total_tokens == 0) {
            *empty = true;
            return BERT4J_OK;
        }
    } else {
        const bool q_rows = a.batch > 0 && a.heads > 0 && a.seq_q > 0;
        const bool k_rows = a.batch > 0 && a.heads > 0 && a.seq_k > 0;
        if (!q_rows && !(a.backward && k_rows)) {
            *empty = true;
            return BERT4J_OK;
        }
    }
    if (a.head_dim < 1)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: head_dim must be >= 1, got 0", op);

    char shape_q[96], shape_k[96];
    int n;
    int64_t ext_q[3], ext_k[3];
    const char* dense_dims[3] = {"batch", "head", "seq"};
    const char* varlen_dims[2] = {"token", "head"};
    const char* const* dims;
    if (a.varlen) {
        n = 2;
        ext_q[0] = ext_k[0] = a.total_tokens;
        ext_q[1] = ext_k[1] = a.heads;
        dims = varlen_dims;
        std::snprintf(shape_q, sizeof shape_q, "[total_tokens %lld, heads %lld, head_dim %lld]",
                      ll(a.total_tokens), ll(a.heads), ll(a.head_dim));
        std::snprintf(shape_k, sizeof shape_k, "%s", shape_q);
        if (a.cu_seqlens == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER,
                        "%s: cu_seqlens is NULL (expected num_seqs + 1 = %lld int32 values)", op,
                        ll(a.batch + 1));
    } else {
        n = 3;
        ext_q[0] = ext_k[0] = a.batch;
        ext_q[1] = ext_k[1] = a.heads;
        ext_q[2] = a.seq_q;
        ext_k[2] = a.seq_k;
        dims = dense_dims;
        std::snprintf(shape_q, sizeof shape_q, "[batch %lld, heads %lld, seq_q %lld, head_dim %lld]",
                      ll(a.batch), ll(a.heads), ll(a.seq_q), ll(a.head_dim));
        std::snprintf(shape_k, sizeof shape_k, "[batch %lld, heads %lld, seq_k %lld, head_dim %lld]",
                      ll(a.batch), ll(a.heads), ll(a.seq_k), ll(a.head_dim));
    }
    const bool need_q = a.varlen || a.seq_q > 0;
    const bool need_k = a.varlen || a.seq_k > 0;
    const Tensor qside[] = {{"q", "q_strides", a.q, a.q_strides, false},
                            {"out", "out_strides", a.out, a.out_strides, !a.backward},
                            {"dout", "dout_strides", a.dout, a.dout_strides, false},
                            {"dq", "dq_strides", a.dq, a.dq_strides, true}};
    const Tensor kside[] = {{"k", "k_strides", a.k, a.k_strides, false},
                            {"v", "v_strides", a.v, a.v_strides, false},
                            {"dk", "dk_strides", a.dk, a.dk_strides, true},
                            {"dv", "dv_strides", a.dv, a.dv_strides, true}};
    const int count = a.backward ? 4 : 2;
    int st;
    if (need_q)
        for (int i = 0; i < count; ++i)
            if ((st = check_tensor(op, qside[i], ext_q, dims, n, a.head_dim, shape_q)) != BERT4J_OK)
                return st;
    if (need_k)
        for (int i = 0; i < count; ++i)
            if ((st = check_tensor(op, kside[i], ext_k, dims, n, a.head_dim, shape_k)) != BERT4J_OK)
                return st;
    if (a.backward && need_q && a.lse == nullptr)
        return fail(BERT4J_ERR_NULL_POINTER,
                    "%s: lse is NULL (the backward needs the forward's log-sum-exp, %s)", op,
                    a.varlen ? "[heads, total_tokens] fp32" : "[batch, heads, seq_q] fp32");
    if (!a.varlen && a.mask != nullptr && a.seq_q > 0 && a.seq_k > 0) {
        if (a.mask_strides == nullptr)
            return fail(BERT4J_ERR_NULL_POINTER,
                        "%s: mask_strides is NULL but mask is set (expected 3 strides: batch, "
                        "head, query; 0 to broadcast)", op);
        unsigned __int128 last = static_cast<unsigned __int128>(a.seq_k - 1);
        const int64_t ext[3] = {a.batch, a.heads, a.seq_q};
        const char* mdims[3] = {"batch", "head", "query"};
        for (int i = 0; i < 3; ++i) {
            if (a.mask_strides[i] < 0)
                return fail(BERT4J_ERR_INVALID_ARGUMENT,
                            "%s: mask_strides[%d] (%s stride) must be >= 0 (0 broadcasts), got %lld",
                            op, i, mdims[i], ll(a.mask_strides[i]));
            last += static_cast<unsigned __int128>(ext[i] - 1) *
                    static_cast<uint64_t>(a.mask_strides[i]);
        }
        if (last > static_cast<unsigned __int128>(kMax))
            return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: mask with mask_strides overflows int64 offsets",
                        op);
    }
    return BERT4J_OK;
}

}  // namespace bert4j::detail
