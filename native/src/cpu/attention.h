// Internal interface of the CPU fused attention launcher, for the entry points and the native
// tests (which force a code path and a thread count). Not part of the ABI.
#pragma once

#include <cstdint>

#include "bias_gelu.h"  // Isa, best_isa(): one ISA choice (and BERT4J_CPU_ISA) for all CPU ops

namespace bert4j::cpu {

// One attention problem, dense or varlen, already validated. Dense: `units` = batch, strides
// {batch, head, seq} per tensor. Varlen (cu_seqlens != nullptr): `units` = num_seqs, the
// strides are {0, head, token}: sequence s starts at token cu_seqlens[s], and seq_q = seq_k =
// max_seqlen bound the per-sequence lengths. Pointers of tensors a pass does not use may be
// null (out/lse in the backward are read, not written).
struct AttentionArgs {
    const float* q = nullptr;
    const float* k = nullptr;
    const float* v = nullptr;
    float* out = nullptr;        // forward output
    float* lse = nullptr;        // forward output (optional)
    const float* out_in = nullptr;   // backward inputs
    const float* dout = nullptr;
    const float* lse_in = nullptr;
    float* dq = nullptr;
    float* dk = nullptr;
    float* dv = nullptr;

    int64_t units = 0, heads = 0, seq_q = 0, seq_k = 0, head_dim = 0;
    int64_t qs[3] = {}, ks[3] = {}, vs[3] = {}, os[3] = {}, dos[3] = {};
    int64_t dqs[3] = {}, dks[3] = {}, dvs[3] = {};

    const int32_t* key_lengths = nullptr;  // dense only
    const float* mask = nullptr;           // dense only
    int64_t ms[3] = {};

    const int32_t* cu_seqlens = nullptr;   // varlen only
    int64_t total_tokens = 0;              // varlen: lse is [heads, total_tokens]

    float scale = 1.0f;
    float dropout_p = 0.0f;
    uint64_t seed = 0, offset = 0;
};

// Launchers: no argument checks (the entry points did them). At most `max_threads` OpenMP
// threads, fewer when there are fewer work items.
void attention_forward_launch(const AttentionArgs& a, Isa isa, int max_threads);
void attention_backward_launch(const AttentionArgs& a, Isa isa, int max_threads);

}  // namespace bert4j::cpu
