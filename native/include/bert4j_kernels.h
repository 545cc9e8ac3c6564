/*
 * bert4j kernel ABI: plain C, raw pointers, element sizes and strides, explicit streams.
 *
 * Rules (see native/README.md):
 *  - Every entry point returns an int status: BERT4J_OK (0) or a BERT4J_ERR_* code.
 *    On failure bert4j_last_error() returns a message, owned by the library and valid
 *    until the next bert4j_* call on the same thread, that names the offending argument
 *    and the value that was expected. On success the message is reset to "".
 *  - No entry point aborts, throws across the boundary or prints; bad arguments are
 *    rejected before any memory is touched.
 *  - Sizes and strides are int64_t and counted in elements, not bytes.
 *  - Tensors with zero elements (rows == 0 or cols == 0) are valid no-ops, and their
 *    pointers may then be NULL (libtorch gives NULL data pointers for empty tensors).
 *  - Nothing here depends on libtorch; the Java binding (io.bert4j.kernels) translates
 *    Tensors into these arguments.
 *  - CUDA entry points take the stream as void* (a cudaStream_t; NULL = legacy default
 *    stream) and are asynchronous: a 0 status means "validated and launched". They are
 *    defined only in libbert4j_kernels_cuda, which is built when nvcc is available.
 */
#ifndef BERT4J_KERNELS_H
#define BERT4J_KERNELS_H

#include <stdint.h>

#if defined(_WIN32)
#define BERT4J_API
#else
#define BERT4J_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum bert4j_status {
    BERT4J_OK = 0,
    BERT4J_ERR_NULL_POINTER = 1,     /* a required pointer was NULL */
    BERT4J_ERR_INVALID_ARGUMENT = 2, /* a size, stride, flag or count out of range */
    BERT4J_ERR_CUDA = 3,             /* a CUDA runtime call or kernel launch failed */
    BERT4J_ERR_INTERNAL = 4          /* a bug: an unexpected exception was caught */
};

/* GELU variants (the `approximate` argument). */
enum bert4j_gelu_approximate {
    BERT4J_GELU_EXACT = 0, /* 0.5 x (1 + erf(x / sqrt 2)); HF "gelu", torch approximate="none" */
    BERT4J_GELU_TANH = 1   /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); HF "gelu_new" */
};

/* Message for the last failed call on this thread; "" after a successful call. Never NULL. */
BERT4J_API const char* bert4j_last_error(void);

/* Threads used by the CPU kernels for large inputs (default: min(4, available cores)).
 * libtorch keeps its own pool, so keep this modest. n must be >= 1. */
BERT4J_API int bert4j_set_num_threads(int n);
BERT4J_API int bert4j_get_num_threads(void);

/* y[r, c] = gelu(x[r, c] + bias[c]) for 0 <= r < rows, 0 <= c < cols; fp32, CPU.
 * x and y are row-major with row strides x_row_stride, y_row_stride >= cols (elements);
 * bias is contiguous [cols] and broadcast over rows. y may be x itself (in place, same
 * stride); any other overlap between y and x or bias is undefined.
 * Only the first cols elements of each y row are written. */
BERT4J_API int bert4j_bias_gelu_forward_f32(const float* x, const float* bias, float* y,
                                            int64_t rows, int64_t cols,
                                            int64_t x_row_stride, int64_t y_row_stride,
                                            int approximate);

/* Per-row scaling around an int8 GEMM whose activation quantization is per tensor (bert4j's
 * int8 linear layers): the prologue scales every row of x to max |value| = 1 so that one
 * quantization range fits each token, the epilogue undoes it together with the per-output-
 * channel weight scales and adds the bias.
 *
 * rowscale_prologue: s[r] = max(max_c |x[r, c]|, 1e-12f) and xs[r, c] = x[r, c] / s[r].
 * x and xs are [rows, cols] with row strides (xs may be x itself, same stride); s is [rows].
 *
 * rowscale_epilogue, in place on y [rows, cols] (row stride y_row_stride):
 * y[r, c] = y[r, c] * s[r] * col_scale[c] + bias[c]; bias may be NULL (then no bias). */
BERT4J_API int bert4j_rowscale_prologue_f32(const float* x, float* xs, float* s, int64_t rows,
                                            int64_t cols, int64_t x_row_stride,
                                            int64_t xs_row_stride);
BERT4J_API int bert4j_rowscale_epilogue_f32(float* y, const float* s, const float* col_scale,
                                            const float* bias, int64_t rows, int64_t cols,
                                            int64_t y_row_stride);

/* CUDA (libbert4j_kernels_cuda only): same contract, device pointers, enqueued on
 * `stream` (a cudaStream_t). Math is fp32 in both; the bf16 variant reads and writes
 * bfloat16 stored as raw uint16_t bits (bias is bf16 too) and rounds to nearest even. */
BERT4J_API int bert4j_bias_gelu_forward_f32_cuda(const float* x, const float* bias, float* y,
                                                 int64_t rows, int64_t cols,
                                                 int64_t x_row_stride, int64_t y_row_stride,
                                                 int approximate, void* stream);
BERT4J_API int bert4j_bias_gelu_forward_bf16_cuda(const uint16_t* x, const uint16_t* bias,
                                                  uint16_t* y, int64_t rows, int64_t cols,
                                                  int64_t x_row_stride, int64_t y_row_stride,
                                                  int approximate, void* stream);


/* d/dx of the op above: dx[r, c] = dy[r, c] * gelu'(x[r, c] + bias[c]) and, when dbias is not
 * NULL, dbias[c] = sum over r of dx[r, c] (accumulated in double on CPU, written, not added).
 * x is the forward's input before the bias (recomputed from, never saved as gelu's input).
 * dx may alias dy (same stride). fp32, CPU. */
BERT4J_API int bert4j_bias_gelu_backward_f32(const float* dy, const float* x, const float* bias,
                                             float* dx, float* dbias, int64_t rows, int64_t cols,
                                             int64_t dy_row_stride, int64_t x_row_stride,
                                             int64_t dx_row_stride, int approximate);

/* Training pair (CPU, fp32): the forward above that also saves what the backward needs, so
 * the backward does no transcendental work. forward_train writes y exactly as
 * bert4j_bias_gelu_forward_f32 (bitwise) and dgelu[r, c] = gelu'(x[r, c] + bias[c]) rounded
 * to fp32 (row stride dgelu_row_stride >= cols). dgelu may be x itself (same row stride: each
 * element is read before it is overwritten; a caller done with x saves a buffer), never y.
 * backward_saved: dx = dy * dgelu (fp32 product) and, when dbias is not NULL, dbias = column
 * sums of dx accumulated in double in the same fixed row blocks as
 * bert4j_bias_gelu_backward_f32; on the AVX2 / AVX-512 paths the pair gives bitwise that
 * function's dx and dbias (the scalar reference path rounds the derivative once more).
 * dx may alias dy or dgelu (same row stride). */
BERT4J_API int bert4j_bias_gelu_forward_train_f32(const float* x, const float* bias, float* y,
                                                  float* dgelu, int64_t rows, int64_t cols,
                                                  int64_t x_row_stride, int64_t y_row_stride,
                                                  int64_t dgelu_row_stride, int approximate);
BERT4J_API int bert4j_gelu_backward_saved_f32(const float* dy, const float* dgelu, float* dx,
                                              float* dbias, int64_t rows, int64_t cols,
                                              int64_t dy_row_stride, int64_t dgelu_row_stride,
                                              int64_t dx_row_stride);

/* CUDA backward: the same contract; the bf16 variant reads dy, x, bias and writes dx as bf16
 * bits, and writes dbias as fp32 (accumulated in fp32). */
BERT4J_API int bert4j_bias_gelu_backward_f32_cuda(const float* dy, const float* x, const float* bias,
                                                  float* dx, float* dbias, int64_t rows, int64_t cols,
                                                  int64_t dy_row_stride, int64_t x_row_stride,
                                                  int64_t dx_row_stride, int approximate, void* stream);
BERT4J_API int bert4j_bias_gelu_backward_bf16_cuda(const uint16_t* dy, const uint16_t* x,
                                                   const uint16_t* bias, uint16_t* dx, float* dbias,
                                                   int64_t rows, int64_t cols, int64_t dy_row_stride,
                                                   int64_t x_row_stride, int64_t dx_row_stride,
                                                   int approximate, void* stream);

/* ---- Prepacked linear layer (fp32, CPU) ---------------------------------------------------
 * y[m, n] = x[m, k] . w^T + bias for a weight w [n, k] (a PyTorch Linear weight) packed once
 * into a library-private layout (the same for every ISA path, so a buffer packed on one
 * machine's path works on any path of the same build). Meant for inference with few rows,
 * where a BLAS sgemm spends most of its time re-packing w on every call.
 *
 * packed_size: *floats = the number of floats the packed buffer of an [n, k] weight needs
 * (0 when n or k is 0).
 * pack: reads w [n, k] (row stride w_row_stride >= k) and writes all *floats elements of
 * `packed`. The packed buffer has no alignment requirement.
 * linear_packed: x [m, k] (row stride x_row_stride >= k), y [m, n] (row stride
 * y_row_stride >= n), bias [n] contiguous or NULL (no bias); only the first n elements of each
 * y row are written. Each output is accumulated in fp32 in the order kk = 0 .. k-1, then the
 * bias is added. k == 0 writes y = bias (or 0). y must not overlap x, packed or bias (not
 * checked). Uses up to bert4j_set_num_threads() threads when the product is large enough. */
BERT4J_API int bert4j_linear_packed_size_f32(int64_t n, int64_t k, int64_t* floats);
BERT4J_API int bert4j_linear_pack_f32(const float* w, int64_t n, int64_t k, int64_t w_row_stride,
                                      float* packed);
BERT4J_API int bert4j_linear_packed_f32(const float* x, const float* packed, const float* bias,
                                        float* y, int64_t m, int64_t n, int64_t k,
                                        int64_t x_row_stride, int64_t y_row_stride);

/* ---- int8 linear layer, inference (CPU) -------------------------------------------------
 * Dynamic quantization: y ~ x . w^T + bias with w [n, k] quantized once per output row
 * (symmetric, 127 levels: w[j, :] ~ r_j q[j, :], r_j = max|w[j, :]| / 127) and x quantized per
 * call, per row (asymmetric u8: x[i, :] ~ zero_i + s_i q[i, :], zero_i = min, s_i = (max - min)
 * / 255), the products summed exactly in int32:
 *   y[i, j] = s_i r_j sum_kk q[i, kk] q[j, kk] + zero_i r_j sum_kk q[j, kk] + bias[j].
 * A row of x holding a NaN or an infinity gives a row of NaN. AVX-512 VNNI (vpdpbusd) where the
 * CPU has it (bert4j_linear_int8_vnni() == 1), else a scalar path with the same integer sums.
 * packed_size: *bytes the packed buffer of an [n, k] weight needs (0 when n or k is 0); k must
 * be <= 65536 (int32 sums). pack: w [n, k] (row stride >= k, finite) into `packed` (no
 * alignment requirement). linear_int8: x [m, k] (row stride >= k), y [m, n] (row stride >= n),
 * bias [n] or NULL; y must not overlap the inputs. Uses up to bert4j_set_num_threads() threads. */
BERT4J_API int bert4j_linear_int8_vnni(void);
BERT4J_API int bert4j_linear_int8_packed_size(int64_t n, int64_t k, int64_t* bytes);
BERT4J_API int bert4j_linear_int8_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride,
                                       uint8_t* packed);
BERT4J_API int bert4j_linear_int8_f32(const float* x, const uint8_t* packed, const float* bias,
                                      float* y, int64_t m, int64_t n, int64_t k,
                                      int64_t x_row_stride, int64_t y_row_stride);

/* ---- bf16 linear layer, inference (CPU, AMX) ----------------------------------------------
 * y = bf16(x) . bf16(w)^T + bias: both operands rounded to bf16 (to nearest, ties to even),
 * the products (exact in fp32) summed in fp32, then the bias added. The order of the additions
 * is AMX's own (not kk = 0 .. k-1), so results are not bitwise those of a sequential sum.
 * On CPUs with AMX-BF16 (bert4j_linear_bf16_amx() == 1: the CPU has it and the OS granted this
 * process the tile state, requested at the first call) the sums run on AMX tiles, which read
 * denormal operands as zero and flush denormal sums to zero; elsewhere a scalar path computes
 * the same sums (correct but slow: meant for tests, not for use). Setting BERT4J_CPU_ISA (to
 * any value) turns AMX off. packed_size: *elements (bf16, 2 bytes each) the packed buffer of an
 * [n, k] weight needs (0 when n or k is 0). pack: w [n, k] (row stride >= k) into `packed` (no
 * alignment requirement). linear_bf16: x [m, k] (row stride >= k), y [m, n] (row stride >= n),
 * bias [n] or NULL; y must not overlap the inputs. Uses up to bert4j_set_num_threads() threads
 * and a per-thread bf16 copy of x (kept for reuse). */
BERT4J_API int bert4j_linear_bf16_amx(void);
BERT4J_API int bert4j_linear_bf16_packed_size(int64_t n, int64_t k, int64_t* elements);
BERT4J_API int bert4j_linear_bf16_pack(const float* w, int64_t n, int64_t k, int64_t w_row_stride,
                                       uint16_t* packed);
BERT4J_API int bert4j_linear_bf16_f32(const float* x, const uint16_t* packed, const float* bias,
                                      float* y, int64_t m, int64_t n, int64_t k,
                                      int64_t x_row_stride, int64_t y_row_stride);

/* ---- Dropout randomness ------------------------------------------------------------------
 * Counter-based, so a backward pass regenerates the forward's mask from (seed, offset) instead
 * of storing it, identically on CPU and CUDA. Element idx is kept iff
 *     philox4x32_10(counter = {lo32(idx/4), hi32(idx/4), lo32(offset), hi32(offset)},
 *                   key = {lo32(seed), hi32(seed)})[idx % 4]  >=  threshold(p)
 * where threshold(p) = (uint32) min(2^32 - 1, floor(p * 2^32)). Kept values are scaled by
 * 1 / (1 - p). Returns 1 (keep) or 0 (drop); p must be in [0, 1) (outside, p is clamped to
 * [0, 1] and NaN drops; this function never fails and leaves bert4j_last_error() alone). */
BERT4J_API int bert4j_dropout_keep(uint64_t seed, uint64_t offset, uint64_t idx, float p);

/* ---- Whole encoder layer, inference (CPU, fp32) ---------------------------------------------
 * One BERT encoder layer (post-LayerNorm, as Hugging Face's BertLayer) in eval mode, in place on
 * h [rows, hidden] (contiguous):
 *   qkv   = h . Wqkv^T + bqkv                       (Wqkv = [query; key; value] weights, [3H, H])
 *   ctx   = attention(qkv) per head, scale 1/sqrt(hidden/heads), no dropout
 *   h     = LayerNorm(ctx . Wo^T + bo + h)          (attention output, eps layer_norm_eps)
 *   inter = gelu(h . Wi^T + bi)                     (approximate: bert4j_gelu_approximate)
 *   h     = LayerNorm(inter . Wout^T + bout + h)
 * weights[BERT4J_LAYER_*]: the four linear weights packed by bert4j_linear_pack_f32 (Wqkv with
 * n = 3H, k = H; Wo n = H, k = H; Wi n = I, k = H; Wout n = H, k = I), the biases and LayerNorm
 * parameters as plain contiguous fp32 vectors; none may be NULL.
 * Attention: when cu_seqlens is not NULL the rows are packed sequences (num_seqs, max_seqlen,
 * as bert4j_attention_varlen_forward_f32: a token attends to its own sequence) and batch, seq
 * and mask are ignored; else rows = batch * seq padded sequences, and mask, when not NULL, is
 * an additive [batch, seq] fp32 mask over the keys (0 = attend, -inf = padding).
 * workspace: bert4j_encoder_layer_workspace_f32 floats, caller-owned scratch. Uses up to
 * bert4j_set_num_threads() threads. */
enum bert4j_layer_weight {
    BERT4J_LAYER_QKV_WEIGHT = 0,
    BERT4J_LAYER_QKV_BIAS = 1,
    BERT4J_LAYER_ATTN_OUT_WEIGHT = 2,
    BERT4J_LAYER_ATTN_OUT_BIAS = 3,
    BERT4J_LAYER_ATTN_LN_WEIGHT = 4,
    BERT4J_LAYER_ATTN_LN_BIAS = 5,
    BERT4J_LAYER_INTER_WEIGHT = 6,
    BERT4J_LAYER_INTER_BIAS = 7,
    BERT4J_LAYER_OUT_WEIGHT = 8,
    BERT4J_LAYER_OUT_BIAS = 9,
    BERT4J_LAYER_OUT_LN_WEIGHT = 10,
    BERT4J_LAYER_OUT_LN_BIAS = 11,
    BERT4J_LAYER_NUM_WEIGHTS = 12
};
BERT4J_API int bert4j_encoder_layer_workspace_f32(int64_t rows, int64_t hidden, int64_t heads,
                                                  int64_t intermediate, int64_t* floats);
BERT4J_API int bert4j_encoder_layer_forward_f32(float* h, const float* const* weights,
                                                float* workspace, int64_t rows, int64_t hidden,
                                                int64_t heads, int64_t intermediate,
                                                float layer_norm_eps, int approximate,
                                                const int32_t* cu_seqlens, int64_t num_seqs,
                                                int64_t max_seqlen, int64_t batch, int64_t seq,
                                                const float* mask);
/* The same layer with the four linear layers in int8 (bert4j_linear_int8_f32): weights'
 * BERT4J_LAYER_*_WEIGHT entries are buffers packed by bert4j_linear_int8_pack (same n, k as
 * above), the others fp32 vectors as above. */
BERT4J_API int bert4j_encoder_layer_int8_forward_f32(float* h, const void* const* weights,
                                                     float* workspace, int64_t rows, int64_t hidden,
                                                     int64_t heads, int64_t intermediate,
                                                     float layer_norm_eps, int approximate,
                                                     const int32_t* cu_seqlens, int64_t num_seqs,
                                                     int64_t max_seqlen, int64_t batch, int64_t seq,
                                                     const float* mask);

/* The same layer with the four linear layers in bf16 (bert4j_linear_bf16_f32): weights'
 * BERT4J_LAYER_*_WEIGHT entries are buffers packed by bert4j_linear_bf16_pack (same n, k as
 * above), the others fp32 vectors as above. Everything outside the four GEMMs stays fp32. */
BERT4J_API int bert4j_encoder_layer_bf16_forward_f32(float* h, const void* const* weights,
                                                     float* workspace, int64_t rows, int64_t hidden,
                                                     int64_t heads, int64_t intermediate,
                                                     float layer_norm_eps, int approximate,
                                                     const int32_t* cu_seqlens, int64_t num_seqs,
                                                     int64_t max_seqlen, int64_t batch, int64_t seq,
                                                     const float* mask);

/* ---- Fused multi-head attention ----------------------------------------------------------
 * out[b,h,i,:] = sum_j P[b,h,i,j] v[b,h,j,:]  with
 * P = dropout(softmax_j(scale * <q[b,h,i,:], k[b,h,j,:]> + mask[b,h,i,j])), j < key_len(b),
 * key_len(b) = key_lengths[b] when key_lengths is not NULL (0 <= key_len <= seq_k), else seq_k.
 * Computed tile by tile with an online softmax: no [seq_q x seq_k] matrix is materialised.
 *
 * Layout: q is [batch, heads, seq_q, head_dim], element (b,h,i,d) at
 *   q[b*q_strides[0] + h*q_strides[1] + i*q_strides[2] + d]   (head_dim contiguous);
 * k and v are [batch, heads, seq_k, head_dim] (k_strides, v_strides); out is like q
 * (out_strides). Three strides per tensor (batch, head, seq) in elements, so both
 * [B,H,S,D] tensors and [B,S,H,D] views of a projection output (or of a fused QKV
 * [B,S,3,H,D] buffer) are accepted without copies.
 * lse: [batch, heads, seq_q] contiguous fp32, the natural log-sum-exp of the scaled, masked
 * scores of each query row (before dropout); written when not NULL; the backward needs it.
 * A row with no visible key (key_len 0, or all mask values -inf) gets out = 0, lse = -inf.
 * mask: optional additive fp32 mask, element (b,h,i,j) at
 *   mask[b*mask_strides[0] + h*mask_strides[1] + i*mask_strides[2] + j]; strides may be 0
 * to broadcast (a [B,1,1,Sk] padding mask has mask_strides = {Sk, 0, 0}). NULL = none.
 * Dropout (dropout_p in [0, 1); 0 = off): element (b,h,i,j) uses
 *   idx = ((b*heads + h)*seq_q + i)*seq_k + j  in bert4j_dropout_keep(seed, offset, idx, p).
 * Clarifications (added with the CPU implementation; they only pin down cases the text above
 * left open): strides must be >= 0; outputs (out, dq, dk, dv) must not have overlapping
 * elements (checked: each written concurrently) nor overlap any input (not checked); inputs may
 * overlap or broadcast (stride 0). scale must be finite. mask_strides are ignored when mask is
 * NULL. head_dim may be 0 (then only lse is computed: the log of the visible key count plus the
 * mask). Empty problems (batch, heads or seq_q 0) are no-ops; with seq_k 0 every row is fully
 * masked. lse is required by the backward (non-NULL when batch*heads*seq_q > 0).
 */
BERT4J_API int bert4j_attention_forward_f32(
    const float* q, const float* k, const float* v, float* out, float* lse,
    int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides,
    const int32_t* key_lengths, const float* mask, const int64_t* mask_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset);

/* Gradients of the above: from dout (like out, dout_strides), the forward's out and lse, writes
 * dq, dk, dv (overwritten, not accumulated; layouts dq/dk/dv_strides like q/k/v). Keys
 * j >= key_len(b) get dk = dv = 0. Same mask, scale and dropout arguments as the forward. */
BERT4J_API int bert4j_attention_backward_f32(
    const float* q, const float* k, const float* v, const float* out, const float* dout,
    const float* lse, float* dq, float* dk, float* dv,
    int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides, const int64_t* dout_strides,
    const int64_t* dq_strides, const int64_t* dk_strides, const int64_t* dv_strides,
    const int32_t* key_lengths, const float* mask, const int64_t* mask_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset);

/* Variable-length (packed, padding-free) attention. Sequence s occupies tokens
 * [cu_seqlens[s], cu_seqlens[s+1]) (cu_seqlens: num_seqs + 1 non-decreasing int32 values,
 * cu_seqlens[0] = 0, cu_seqlens[num_seqs] = total_tokens, each length <= max_seqlen) of
 * q, k, v, out: [total_tokens, heads, head_dim], element (t,h,d) at x[t*xs[0] + h*xs[1] + d]
 * (two strides per tensor). A query attends to the keys of its own sequence only (self-attention
 * within each sequence). lse: [heads, total_tokens] contiguous. Dropout index of (s, h, i, j):
 *   idx = (h*total_tokens + cu_seqlens[s] + i)*max_seqlen + j. */
BERT4J_API int bert4j_attention_varlen_forward_f32(
    const float* q, const float* k, const float* v, float* out, float* lse,
    const int32_t* cu_seqlens, int64_t num_seqs, int64_t total_tokens, int64_t max_seqlen,
    int64_t heads, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset);

BERT4J_API int bert4j_attention_varlen_backward_f32(
    const float* q, const float* k, const float* v, const float* out, const float* dout,
    const float* lse, float* dq, float* dk, float* dv,
    const int32_t* cu_seqlens, int64_t num_seqs, int64_t total_tokens, int64_t max_seqlen,
    int64_t heads, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides, const int64_t* dout_strides,
    const int64_t* dq_strides, const int64_t* dk_strides, const int64_t* dv_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset);

/* CUDA attention (libbert4j_kernels_cuda only): the same contracts on device pointers, for
 * dtype BERT4J_DTYPE_F32 or BERT4J_DTYPE_BF16 (q, k, v, out, dout, dq, dk, dv in that type;
 * lse and mask always fp32; accumulation in fp32), enqueued on `stream`. */
enum bert4j_dtype { BERT4J_DTYPE_F32 = 0, BERT4J_DTYPE_BF16 = 1 };

BERT4J_API int bert4j_attention_forward_cuda(
    int dtype, const void* q, const void* k, const void* v, void* out, float* lse,
    int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides,
    const int32_t* key_lengths, const float* mask, const int64_t* mask_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset, void* stream);

BERT4J_API int bert4j_attention_backward_cuda(
    int dtype, const void* q, const void* k, const void* v, const void* out, const void* dout,
    const float* lse, void* dq, void* dk, void* dv,
    int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides, const int64_t* dout_strides,
    const int64_t* dq_strides, const int64_t* dk_strides, const int64_t* dv_strides,
    const int32_t* key_lengths, const float* mask, const int64_t* mask_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset, void* stream);

BERT4J_API int bert4j_attention_varlen_forward_cuda(
    int dtype, const void* q, const void* k, const void* v, void* out, float* lse,
    const int32_t* cu_seqlens, int64_t num_seqs, int64_t total_tokens, int64_t max_seqlen,
    int64_t heads, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset, void* stream);

BERT4J_API int bert4j_attention_varlen_backward_cuda(
    int dtype, const void* q, const void* k, const void* v, const void* out, const void* dout,
    const float* lse, void* dq, void* dk, void* dv,
    const int32_t* cu_seqlens, int64_t num_seqs, int64_t total_tokens, int64_t max_seqlen,
    int64_t heads, int64_t head_dim,
    const int64_t* q_strides, const int64_t* k_strides, const int64_t* v_strides,
    const int64_t* out_strides, const int64_t* dout_strides,
    const int64_t* dq_strides, const int64_t* dk_strides, const int64_t* dv_strides,
    float scale, float dropout_p, uint64_t seed, uint64_t offset, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* BERT4J_KERNELS_H */
