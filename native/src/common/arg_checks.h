// Argument checks for the backward bias+GELU and the attention entry points, shared by the
// CPU and CUDA implementations (both validate the same contract from the ABI header). Each
// returns BERT4J_OK or a failure already recorded with detail::fail(), whose message is
// prefixed with `op` and names the argument and the expected value.
#pragma once

#include <cstdint>

#include "bert4j_kernels.h"

namespace bert4j::detail {

// check_bias_gelu_backward_args lives in status.h (shared with the CPU backward).


// Every argument of one attention call. Dense calls fill batch/seq_q/seq_k and the mask and
// key_lengths fields; varlen calls set varlen = true and fill num_seqs (in batch),
// total_tokens, max_seqlen (in seq_q and seq_k) and cu_seqlens. Forward calls leave
// dout/dq/dk/dv NULL with backward = false. Stride arrays hold 3 (dense: batch, head, seq)
// or 2 (varlen: token, head) values.
struct AttentionArgs {
    bool backward = false;
    bool varlen = false;
    const void *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr, *dout = nullptr;
    const float* lse = nullptr;
    const void *dq = nullptr, *dk = nullptr, *dv = nullptr;
    int64_t batch = 0, heads = 0, seq_q = 0, seq_k = 0, head_dim = 0, total_tokens = 0;
    const int32_t* cu_seqlens = nullptr;
    const int64_t *q_strides = nullptr, *k_strides = nullptr, *v_strides = nullptr,
                  *out_strides = nullptr, *dout_strides = nullptr, *dq_strides = nullptr,
                  *dk_strides = nullptr, *dv_strides = nullptr;
    const int32_t* key_lengths = nullptr;
    const float* mask = nullptr;
    const int64_t* mask_strides = nullptr;
    float scale = 1.0f, dropout_p = 0.0f;
};

// Validates sizes, dropout_p, scale, pointers (NULL allowed only for tensors with zero
// elements, and for the optional lse (forward), key_lengths and mask), stride arrays (non-
// negative; output strides of dimensions longer than 1 at least head_dim, a necessary
// no-overlap condition), and that every addressed element offset fits int64.
// Sets *empty when there is nothing to compute (then no pointer was required).
// Values inside key_lengths / cu_seqlens are not read here (they may live on a device).
int check_attention_args(const char* op, const AttentionArgs& a, bool* empty);

}  // namespace bert4j::detail
