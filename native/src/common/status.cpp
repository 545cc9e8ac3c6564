#include "status.h"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace bert4j::detail {
namespace {

// One message per thread: the JNI caller reads it on the thread that made the call.
thread_local char g_message[512] = "";

int default_threads() {
#ifdef _OPENMP
    int procs = omp_get_num_procs();
#else
    int procs = 1;
#endif
    return std::max(1, std::min(4, procs));
}

std::atomic<int> g_threads{default_threads()};

}  // namespace

int fail(int status, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(g_message, sizeof g_message, fmt, args);
    va_end(args);
    return status;
}

int ok() {
    g_message[0] = '\0';
    return BERT4J_OK;
}

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

int linear_call_prologue(const char* op, const void* x, const void* packed, const float* bias, float* y,
                         int64_t m, int64_t n, int64_t k, int64_t x_row_stride, int64_t y_row_stride,
                         bool* done) {
    const auto ll = [](int64_t v) { return static_cast<long long>(v); };
    *done = true;
    if (m == 0 || n == 0) return ok();
    if (y == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: y is NULL", op);
    if (y_row_stride < n)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: y_row_stride must be >= n (%lld), got %lld", op, ll(n),
                    ll(y_row_stride));
    if (k == 0) {
        for (int64_t r = 0; r < m; ++r)
            for (int64_t j = 0; j < n; ++j) y[r * y_row_stride + j] = bias != nullptr ? bias[j] : 0.0f;
        return ok();
    }
    if (x == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: x is NULL", op);
    if (packed == nullptr) return fail(BERT4J_ERR_NULL_POINTER, "%s: packed is NULL", op);
    if (x_row_stride < k)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: x_row_stride must be >= k (%lld), got %lld", op, ll(k),
                    ll(x_row_stride));
    *done = false;
    return BERT4J_OK;
}

int check_row_args(const char* op, int64_t rows, int64_t cols, std::initializer_list<RowArg> args) {
    const auto ll = [](int64_t v) { return static_cast<long long>(v); };
    if (rows < 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: rows must be >= 0, got %lld", op, ll(rows));
    if (cols < 0)
        return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: cols must be >= 0, got %lld", op, ll(cols));
    for (const RowArg& a : args)
        if (!a.vector && a.row_stride < cols)
            return fail(BERT4J_ERR_INVALID_ARGUMENT,
                        "%s: %s_row_stride must be >= cols (%lld) for %s of shape [%lld, %lld], got %lld",
                        op, a.name, ll(cols), a.name, ll(rows), ll(cols), ll(a.row_stride));
    // The last element addressed is (rows - 1) * stride + cols - 1; it must fit int64.
    const int64_t max = std::numeric_limits<int64_t>::max();
    if (rows > 1)
        for (const RowArg& a : args)
            if (!a.vector && a.row_stride > (max - cols) / (rows - 1))
                return fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: rows (%lld) * %s_row_stride (%lld) overflows int64",
                            op, ll(rows), a.name, ll(a.row_stride));
    if (rows == 0 || cols == 0) return BERT4J_OK;  // empty: pointers may be NULL
    for (const RowArg& a : args)
        if (a.ptr == nullptr)
            return !a.vector
                       ? fail(BERT4J_ERR_NULL_POINTER, "%s: %s is NULL (expected [%lld, %lld] elements)", op,
                              a.name, ll(rows), ll(cols))
                       : fail(BERT4J_ERR_NULL_POINTER, "%s: %s is NULL (expected [%lld] elements)", op, a.name,
                              ll(cols));
    return BERT4J_OK;
}

namespace {
int check_approximate(const char* op, int approximate) {
    if (approximate != BERT4J_GELU_EXACT && approximate != BERT4J_GELU_TANH)
        return fail(BERT4J_ERR_INVALID_ARGUMENT,
                    "%s: approximate must be 0 (exact erf GELU) or 1 (tanh GELU), got %d", op, approximate);
    return BERT4J_OK;
}
}  // namespace

int check_bias_gelu_args(const char* op, const void* x, const void* bias, const void* y,
                         int64_t rows, int64_t cols, int64_t x_row_stride,
                         int64_t y_row_stride, int approximate) {
    if (const int s = check_approximate(op, approximate); s != BERT4J_OK) return s;
    return check_row_args(op, rows, cols, {{"x", x, x_row_stride}, {"bias", bias, 0, true}, {"y", y, y_row_stride}});
}

int check_bias_gelu_backward_args(const char* op, const void* dy, const void* x,
                                  const void* bias, const void* dx, int64_t rows, int64_t cols,
                                  int64_t dy_row_stride, int64_t x_row_stride,
                                  int64_t dx_row_stride, int approximate) {
    if (const int s = check_approximate(op, approximate); s != BERT4J_OK) return s;
    const int s = check_row_args(op, rows, cols,
                                 {{"dy", dy, dy_row_stride}, {"x", x, x_row_stride}, {"bias", bias, 0, true},
                                  {"dx", dx, dx_row_stride}});
    if (s != BERT4J_OK) return s;
    if (dx == dy && dx_row_stride != dy_row_stride)
        return fail(BERT4J_ERR_INVALID_ARGUMENT,
                    "%s: dx aliases dy, so dx_row_stride (%lld) must equal dy_row_stride (%lld)", op,
                    static_cast<long long>(dx_row_stride), static_cast<long long>(dy_row_stride));
    return BERT4J_OK;
}

}  // namespace bert4j::detail

extern "C" {

const char* bert4j_last_error(void) { return bert4j::detail::g_message; }

int bert4j_set_num_threads(int n) {
    if (n < 1)
        return bert4j::detail::fail(BERT4J_ERR_INVALID_ARGUMENT,
                                    "bert4j_set_num_threads: n must be >= 1, got %d", n);
    bert4j::detail::g_threads.store(n, std::memory_order_relaxed);
    return bert4j::detail::ok();
}

int bert4j_get_num_threads(void) { return bert4j::detail::num_threads(); }

}  // extern "C"
