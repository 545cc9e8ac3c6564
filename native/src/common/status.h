// Internal helpers shared by the CPU and CUDA entry points: the thread-local error
// message behind bert4j_last_error() and the argument checks every entry point runs.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "bert4j_kernels.h"

namespace bert4j::detail {

// Records a printf-style message for bert4j_last_error() and returns `status`, so an
// entry point can `return fail(BERT4J_ERR_..., "...")`.
int fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Resets the message to "" and returns BERT4J_OK.
int ok();

// Thread count requested through bert4j_set_num_threads (>= 1).
int num_threads();

// One argument of a row-wise elementwise kernel: a [rows, cols] matrix with a row stride, or
// (vector) a [cols] vector broadcast over the rows, whose row_stride is not used.
struct RowArg {
    const char* name;
    const void* ptr;
    int64_t row_stride;
    bool vector = false;
};

// rows >= 0 and cols >= 0; every matrix's row stride >= cols, with its last element
// (rows - 1) * stride + cols - 1 within int64; every pointer non-NULL unless rows or cols is 0.
// Messages name the argument, e.g. "op: x_row_stride must be >= cols (4) for x of shape [3, 4],
// got 2". Returns BERT4J_OK, or a failure already recorded with fail().
int check_row_args(const char* op, int64_t rows, int64_t cols, std::initializer_list<RowArg> args);

// Checks shared by every bias+GELU entry point (CPU and CUDA). `op` prefixes the message.
// Returns BERT4J_OK, or a failure already recorded with fail().
int check_bias_gelu_args(const char* op, const void* x, const void* bias, const void* y,
                         int64_t rows, int64_t cols, int64_t x_row_stride,
                         int64_t y_row_stride, int approximate);

// Checks shared by every bias+GELU backward entry point (CPU and CUDA): sizes, strides and
// `approximate` as above, dy/x/bias/dx non-NULL when not empty (dbias may be NULL), and
// dx aliasing dy only with the same row stride.
int check_bias_gelu_backward_args(const char* op, const void* dy, const void* x,
                                  const void* bias, const void* dx, int64_t rows, int64_t cols,
                                  int64_t dy_row_stride, int64_t x_row_stride,
                                  int64_t dx_row_stride, int approximate);

// The checks the int8 and bf16 linear entry points share once n and k are valid (the caller
// checked them and m >= 0, and still checks its own row-offset overflow after this): y non-NULL
// with row stride >= n; for k > 0 x and packed non-NULL and x's row stride >= k. When nothing
// is left to compute it returns BERT4J_OK with *done set: m or n is 0 (no output), or k is 0
// (y is set to the bias, or to 0). A failure is recorded with fail() and returned.
int linear_call_prologue(const char* op, const void* x, const void* packed, const float* bias, float* y,
                         int64_t m, int64_t n, int64_t k, int64_t x_row_stride, int64_t y_row_stride,
                         bool* done);

}  // namespace bert4j::detail
