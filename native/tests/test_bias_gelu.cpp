// CPU bias+GELU against a float64 reference: both code paths (scalar, AVX2+FMA), both
// GELU variants, awkward sizes, padded strides, threads, the far tails, and every
// argument the entry point must reject.
//
// Reference: h = x + bias summed in fp32 exactly as the kernel does (an IEEE add), then
// gelu(h) in double. That isolates the kernel's own GELU error from the rounding of the
// input sum, which any fp32 implementation shares.
//
// Tolerances (per element): |y - ref| <= rtol * |ref| + atol.
//  - scalar path: rtol = 1.2e-7 (1 ulp: double math rounded once), atol = 1e-37.
//  - AVX2 exact: rtol = 1e-6 (the NR erfc fit is < 1.2e-7, each exp ~1 ulp, the fp32
//    Horner evaluation and |h|/sqrt 2 a few ulp more; measured ~5e-7), atol = 1e-37
//    (outputs below ~1e-37 are denormal or flushed to -0 for h < -13).
//  - AVX2 tanh: rtol = 1e-6, atol = 1e-9: in the negative tail the fp32 rounding of u
//    is amplified by |2u| through exp (relative ~1e-6 at h = -4, ~1e-5 at h = -10, where
//    |gelu| < 1e-9), the same sensitivity any fp32 evaluation of u has.
// The measured maxima are printed so the README numbers can be checked.

#include <cinttypes>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/cpu/bias_gelu.h"
#include "bert4j_kernels.h"
#include "test_util.h"

using bert4j::cpu::Isa;

namespace {

double ref_gelu(float h, int approximate) {
    const double d = h;
    if (approximate == BERT4J_GELU_EXACT) return 0.5 * d * std::erfc(-d / std::sqrt(2.0));
    const double u = std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d);
    // 0.5 d (1 + tanh u) without the cancellation of 1 + tanh(u) for u << 0.
    return d / (1.0 + std::exp(-2.0 * u));
}

struct ErrStats {
    double max_rel = 0;   // over |ref| >= 1e-30
    double max_abs = 0;
    double worst_h = 0;
};

const char* isa_name(Isa isa) { return isa == Isa::Scalar ? "scalar" : "avx2"; }

// Allowed |got - ref| for one element (see the tolerance notes at the top).
double tol(Isa isa, int approximate, double ref) {
    if (isa == Isa::Scalar) return 1.2e-7 * std::fabs(ref) + 1e-37;
    if (approximate == BERT4J_GELU_EXACT) return 1e-6 * std::fabs(ref) + 1e-37;
    return 1e-6 * std::fabs(ref) + 1e-9;
}

constexpr float kCanary = -12345.0f;

// Runs one case through the launcher with a forced path and compares every element.
void run_case(Isa isa, int approximate, int64_t rows, int64_t cols, int64_t xpad, int64_t ypad,
              int threads, std::mt19937& rng, ErrStats& stats) {
    const int64_t xs = cols + xpad, ys = cols + ypad;
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> x(rows * xs), bias(cols), y(rows * ys, kCanary);
    for (auto& v : x) v = normal(rng);
    for (auto& v : bias) v = 0.5f * normal(rng);
    bert4j::cpu::bias_gelu_launch(x.data(), bias.data(), y.data(), rows, cols, xs, ys,
                                  approximate, isa, threads);
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < ys; ++c) {
            const float got = y[r * ys + c];
            if (c >= cols) {  // padding must be left alone
                if (got != kCanary && bad++ < 3)
                    CHECK(false, "%s approx=%d [%lld x %lld]: wrote padding at (%lld, %lld)",
                          isa_name(isa), approximate, (long long)rows, (long long)cols,
                          (long long)r, (long long)c);
                continue;
            }
            const float h = x[r * xs + c] + bias[c];
            const double ref = ref_gelu(h, approximate);
            const double err = std::fabs(got - ref);
            stats.max_abs = std::max(stats.max_abs, err);
            if (std::fabs(ref) >= 1e-30 && err / std::fabs(ref) > stats.max_rel) {
                stats.max_rel = err / std::fabs(ref);
                stats.worst_h = h;
            }
            if (!(err <= tol(isa, approximate, ref)) && bad++ < 3)
                CHECK(false, "%s approx=%d [%lld x %lld] (%lld, %lld): h=%.9g got %.9g ref %.17g",
                      isa_name(isa), approximate, (long long)rows, (long long)cols,
                      (long long)r, (long long)c, h, got, ref);
        }
    }
}

// Dense sweep over h in [-20, 20] (bias 0): the tails where 1 + erf(x) would cancel.
void run_sweep(Isa isa, int approximate, ErrStats& stats) {
    const int64_t n = 400001;
    std::vector<float> x(n), bias(n, 0.0f), y(n);
    for (int64_t i = 0; i < n; ++i) x[i] = -20.0f + 40.0f * static_cast<float>(i) / (n - 1);
    bert4j::cpu::bias_gelu_launch(x.data(), bias.data(), y.data(), 1, n, n, n, approximate, isa, 1);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double ref = ref_gelu(x[i], approximate);
        const double err = std::fabs(y[i] - ref);
        stats.max_abs = std::max(stats.max_abs, err);
        if (std::fabs(ref) >= 1e-30 && err / std::fabs(ref) > stats.max_rel) {
            stats.max_rel = err / std::fabs(ref);
            stats.worst_h = x[i];
        }
        if (!(err <= tol(isa, approximate, ref)) && bad++ < 3)
            CHECK(false, "%s approx=%d sweep: h=%.9g got %.9g ref %.17g", isa_name(isa),
                  approximate, x[i], y[i], ref);
    }
}

void test_accuracy() {
    std::mt19937 rng(20261128);
    const int64_t rows_list[] = {1, 7, 97};
    const int64_t cols_list[] = {1, 3, 384, 1536, 3072};
    for (Isa isa : {Isa::Scalar, Isa::Avx2Fma}) {
        if (!bert4j::cpu::isa_supported(isa)) {
            std::printf("%s path: not supported on this CPU, skipped\n", isa_name(isa));
            continue;
        }
        for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH}) {
            ErrStats random_stats, sweep_stats;
            for (int64_t rows : rows_list)
                for (int64_t cols : cols_list) {
                    run_case(isa, approximate, rows, cols, 0, 0, 1, rng, random_stats);
                    run_case(isa, approximate, rows, cols, 5, 2, 2, rng, random_stats);
                }
            run_sweep(isa, approximate, sweep_stats);
            std::printf("%-6s %-5s random: max rel %.3g, max abs %.3g | sweep [-20,20]: "
                        "max rel %.3g (at h=%.6g), max abs %.3g\n",
                        isa_name(isa), approximate ? "tanh" : "exact", random_stats.max_rel,
                        random_stats.max_abs, sweep_stats.max_rel, sweep_stats.worst_h,
                        sweep_stats.max_abs);
        }
    }
}

// Paths must agree closely with each other, and thread counts must not change a bit.
void test_paths_and_threads_agree() {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    const int64_t rows = 257, cols = 1536;  // 394k elements: the threaded branch is taken
    std::vector<float> x(rows * cols), bias(cols);
    for (auto& v : x) v = normal(rng);
    for (auto& v : bias) v = normal(rng);
    for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH}) {
        std::vector<float> scalar(x.size()), one(x.size()), many(x.size());
        bert4j::cpu::bias_gelu_launch(x.data(), bias.data(), scalar.data(), rows, cols, cols,
                                      cols, approximate, Isa::Scalar, 1);
        const Isa best = bert4j::cpu::best_isa();
        bert4j::cpu::bias_gelu_launch(x.data(), bias.data(), one.data(), rows, cols, cols, cols,
                                      approximate, best, 1);
        bert4j::cpu::bias_gelu_launch(x.data(), bias.data(), many.data(), rows, cols, cols,
                                      cols, approximate, best, 4);
        CHECK(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)) == 0,
              "approx=%d: 1 thread and 4 threads differ", approximate);
        double max_rel = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const double d = std::fabs(one[i] - scalar[i]);
            const double rel = d / std::max(std::fabs((double)scalar[i]), 1e-30);
            if (std::fabs(scalar[i]) > 1e-30) max_rel = std::max(max_rel, rel);
            if (!(d <= tol(best, approximate, scalar[i]))) {
                CHECK(false, "approx=%d: %s vs scalar at %zu: %.9g vs %.9g", approximate,
                      isa_name(best), i, one[i], scalar[i]);
                break;
            }
        }
        std::printf("%s vs scalar, approx=%d: max rel diff %.3g; 1 vs 4 threads bitwise equal\n",
                    isa_name(best), approximate, max_rel);
    }
}

// The public entry point: status, message naming the argument, no writes on failure.
void expect_reject(const char* what, int status, int expected_status, const char* must_contain) {
    const std::string msg = bert4j_last_error();
    CHECK(status == expected_status, "%s: status %d, expected %d (%s)", what, status,
          expected_status, msg.c_str());
    CHECK(msg.find(must_contain) != std::string::npos, "%s: message '%s' lacks '%s'", what,
          msg.c_str(), must_contain);
}

void test_bad_arguments() {
    float x[12] = {0}, b[4] = {0}, y[12];
    std::fill(std::begin(y), std::end(y), kCanary);
    const auto call = [&](const float* xp, const float* bp, float* yp, int64_t rows,
                          int64_t cols, int64_t xs, int64_t ys, int approx) {
        return bert4j_bias_gelu_forward_f32(xp, bp, yp, rows, cols, xs, ys, approx);
    };
    expect_reject("x NULL", call(nullptr, b, y, 3, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "x is NULL");
    expect_reject("bias NULL", call(x, nullptr, y, 3, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "bias is NULL");
    expect_reject("y NULL", call(x, b, nullptr, 3, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "y is NULL");
    expect_reject("rows < 0", call(x, b, y, -1, 4, 4, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "rows must be >= 0, got -1");
    expect_reject("cols < 0", call(x, b, y, 3, -4, 4, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "cols must be >= 0, got -4");
    expect_reject("x stride < cols", call(x, b, y, 3, 4, 3, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "x_row_stride must be >= cols (4)");
    expect_reject("y stride < cols", call(x, b, y, 3, 4, 4, -1, 0), BERT4J_ERR_INVALID_ARGUMENT, "y_row_stride must be >= cols (4)");
    expect_reject("approximate 2", call(x, b, y, 3, 4, 4, 4, 2), BERT4J_ERR_INVALID_ARGUMENT, "approximate must be 0");
    expect_reject("approximate -1", call(x, b, y, 3, 4, 4, 4, -1), BERT4J_ERR_INVALID_ARGUMENT, "got -1");
    expect_reject("stride overflow", call(x, b, y, 3, 4, INT64_MAX / 2, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "overflows int64");
    expect_reject("threads 0", bert4j_set_num_threads(0), BERT4J_ERR_INVALID_ARGUMENT, "n must be >= 1, got 0");
    for (float v : y) CHECK(v == kCanary, "a rejected call wrote to y");

    // Empty inputs are valid no-ops, NULL pointers included; success clears the message.
    CHECK(call(nullptr, nullptr, nullptr, 0, 4, 4, 4, 0) == BERT4J_OK, "rows 0: %s", bert4j_last_error());
    CHECK(call(nullptr, nullptr, nullptr, 3, 0, 0, 0, 1) == BERT4J_OK, "cols 0: %s", bert4j_last_error());
    CHECK(std::strcmp(bert4j_last_error(), "") == 0, "message not cleared after success");
    // In place (y == x) is allowed.
    float inplace[3] = {-1.0f, 0.0f, 2.0f};
    const float zero[3] = {0, 0, 0};
    CHECK(call(inplace, zero, inplace, 1, 3, 3, 3, 0) == BERT4J_OK, "in place: %s", bert4j_last_error());
    CHECK(std::fabs(inplace[2] - ref_gelu(2.0f, 0)) < 1e-6, "in place: gelu(2) = %.9g", inplace[2]);
    // Threads setting round-trips.
    const int before = bert4j_get_num_threads();
    CHECK(bert4j_set_num_threads(2) == BERT4J_OK && bert4j_get_num_threads() == 2, "set threads");
    bert4j_set_num_threads(before);
}

}  // namespace

int main() {
    std::printf("best CPU path: %s\n", isa_name(bert4j::cpu::best_isa()));
    test_accuracy();
    test_paths_and_threads_agree();
    test_bad_arguments();
    if (bert4j::test::g_failures == 0) std::printf("test_bias_gelu: all checks passed\n");
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
