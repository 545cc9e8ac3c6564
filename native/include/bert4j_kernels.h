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

#ifdef __cplusplus
}
#endif

#endif /* BERT4J_KERNELS_H */
