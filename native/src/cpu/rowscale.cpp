// Per-row scaling around bert4j's int8 linear layers (see bert4j_kernels.h): one pass each for
// the prologue (row max |x|, then x / max) and the epilogue (rescale rows and columns, add bias),
// instead of five libtorch element-wise ops with a thread-team wake-up each.
#include <algorithm>
#include <cmath>

#include "bert4j_kernels.h"
#include "../common/status.h"

namespace {

// Rows per OpenMP chunk: below ~16k elements a parallel region costs more than it saves.
int64_t rows_per_chunk(int64_t cols) {
    return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
}

// Runs row_fn(r) for every row, in chunks of rows_per_chunk rows split over the OpenMP team
// when the matrix is big enough to pay for a fork/join.
template <typename RowFn>
void for_each_row(int64_t rows, int64_t cols, RowFn row_fn) {
    const int64_t chunk = rows_per_chunk(cols);
#pragma omp parallel for schedule(static) num_threads(bert4j::detail::num_threads()) if (rows * cols >= 32768)
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t r1 = std::min(rows, r0 + chunk);
        for (int64_t r = r0; r < r1; ++r) row_fn(r);
    }
}

int check(const char* op, const void* a, const void* b, const void* c, int64_t rows, int64_t cols,
          int64_t stride_a, int64_t stride_b) {
    using bert4j::detail::fail;
    if (rows < 0 || cols < 0) {
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: rows and cols must be >= 0, got %lld x %lld", op,
                    static_cast<long long>(rows), static_cast<long long>(cols));
    }
    if (rows == 0 || cols == 0) return BERT4J_OK;
    if (a == nullptr || b == nullptr || c == nullptr) {
        return fail(BERT4J_ERR_NULL_POINTER, "%s: a required pointer is NULL", op);
    }
    if (stride_a < cols || stride_b < cols) {
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: row strides (%lld, %lld) must be >= cols (%lld)", op,
                    static_cast<long long>(stride_a), static_cast<long long>(stride_b),
                    static_cast<long long>(cols));
    }
    return BERT4J_OK;
}

}  // namespace

extern "C" int bert4j_rowscale_prologue_f32(const float* x, float* xs, float* s, int64_t rows,
                                            int64_t cols, int64_t x_row_stride,
                                            int64_t xs_row_stride) {
    using namespace bert4j;
    int st = check("bert4j_rowscale_prologue_f32", x, xs, s, rows, cols, x_row_stride, xs_row_stride);
    if (st != BERT4J_OK) return st;
    if (rows == 0 || cols == 0) return detail::ok();
    for_each_row(rows, cols, [&](int64_t r) {
        const float* xr = x + r * x_row_stride;
        float m = 0.0f;
#pragma omp simd reduction(max : m)
        for (int64_t c = 0; c < cols; ++c) m = std::max(m, std::fabs(xr[c]));
        m = std::max(m, 1e-12f);
        s[r] = m;
        const float inv = 1.0f / m;
        float* yr = xs + r * xs_row_stride;
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * inv;
    });
    return detail::ok();
}

extern "C" int bert4j_rowscale_epilogue_f32(float* y, const float* s, const float* col_scale,
                                            const float* bias, int64_t rows, int64_t cols,
                                            int64_t y_row_stride) {
    using namespace bert4j;
    int st = check("bert4j_rowscale_epilogue_f32", y, s, col_scale, rows, cols, y_row_stride, cols);
    if (st != BERT4J_OK) return st;
    if (rows == 0 || cols == 0) return detail::ok();
    for_each_row(rows, cols, [&](int64_t r) {
        float* yr = y + r * y_row_stride;
        const float sr = s[r];
        if (bias != nullptr) {
#pragma omp simd
            for (int64_t c = 0; c < cols; ++c) yr[c] = yr[c] * sr * col_scale[c] + bias[c];
        } else {
#pragma omp simd
            for (int64_t c = 0; c < cols; ++c) yr[c] = yr[c] * sr * col_scale[c];
        }
    });
    return detail::ok();
}
