// CPU bias+GELU, forward and backward, against a float64 reference: every code path this
// CPU supports (scalar, AVX2+FMA, AVX-512; ctest also reruns it with BERT4J_CPU_ISA=avx2|scalar), both GELU variants, awkward sizes, padded strides, threads, the far
// tails, and every argument the entry points must reject.
//
// Reference: h = x + bias summed in fp32 exactly as the kernel does (an IEEE add), then
// gelu(h) in double. That isolates the kernel's own GELU error from the rounding of the
// input sum, which any fp32 implementation shares.
//
// Tolerances (per element): |y - ref| <= rtol * |ref| + atol.
//  - scalar path: rtol = 1.2e-7 (1 ulp: double math rounded once), atol = 1e-37.
//  - AVX2 / AVX-512 exact: rtol = 1e-6 (erfc = exp(-z^2) t P(t): the erfcx fit is 1.1e-7, its
//    fp32 evaluation ~3e-7, the exp ~1-2 ulp; measured 4.9e-7 / 5.7e-7), atol = 1e-37
//    (outputs below ~1e-37 are denormal or flushed to -0 for h < -13).
//  - AVX2 tanh: rtol = 1e-6, atol = 1e-9: in the negative tail the fp32 rounding of u
//    is amplified by |2u| through exp (relative ~1e-6 at h = -4, ~1e-5 at h = -10, where
//    |gelu| < 1e-9), the same sensitivity any fp32 evaluation of u has.
// The measured maxima are printed so the README numbers can be checked.
//
// Backward (dx = dy * gelu'(h), dbias = column sums of dx): gelu'(h) is a sum of two terms
// of opposite sign for h < 0 (it crosses zero at h ~ -0.75), so its error is stated against
// the size of the terms, cond(h) = |first term| + |second term| (Phi(h) + |h| phi(h) for
// exact, s + |2 h s (1-s) u'| for tanh), not against the (possibly zero) result:
//   |dx - dy g'(h)| <= rtol |dy| cond(h) + atol |dy|
//  - scalar: rtol = 1.2e-7 (double math, rounded once), atol = 1e-37.
//  - AVX2 exact: rtol = 1e-6 (the same erfc fit and exp as the forward), atol = 1.2e-36
//    (gelu' is flushed to 0 for h < -13, where it is above -1.1e-36).
//  - AVX2 tanh: rtol = 1e-6, atol = 1e-9 (as the forward: u's rounding amplified by |2u|).
// dbias: (1) within 1 fp32 rounding (+1e-12 relative to sum |dx|) of the float64 sum of
// the kernel's own dx, i.e. the reduction loses nothing; (2) against the float64 reference,
// within rtol * sum_r |dy| cond(h) + 1.2e-7 |ref| (each term's error, plus the final rounding).

#include <cinttypes>
#include <cmath>
#include <limits>
#include <cstdlib>
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

// gelu'(h) and the size of its terms, from an independent formulation (std::tanh / erfc).
struct GradRef {
    double value;
    double cond;
};

GradRef ref_gelu_grad(float h, int approximate) {
    const double d = h;
    if (approximate == BERT4J_GELU_EXACT) {
        const double cdf = 0.5 * std::erfc(-d / std::sqrt(2.0));
        const double pdf_term = d * std::exp(-0.5 * d * d) / std::sqrt(2.0 * M_PI);
        return {cdf + pdf_term, std::fabs(cdf) + std::fabs(pdf_term)};
    }
    const double k = std::sqrt(2.0 / M_PI);
    const double u = k * (d + 0.044715 * d * d * d);
    const double th = std::tanh(u);
    // 0.5 (1 + tanh u) without cancellation for u << 0.
    const double first = u >= 0 ? 0.5 * (1.0 + th) : std::exp(2.0 * u) / (1.0 + std::exp(2.0 * u));
    const double sech2 = 1.0 / (std::cosh(u) * std::cosh(u));
    const double second = 0.5 * d * sech2 * k * (1.0 + 3.0 * 0.044715 * d * d);
    return {first + second, std::fabs(first) + std::fabs(second)};
}

double grad_rtol(Isa isa) { return isa == Isa::Scalar ? 1.2e-7 : 1e-6; }
double grad_atol(Isa isa, int approximate) {
    if (isa == Isa::Scalar) return 1e-37;
    // AVX2 exact flushes gelu' to 0 for h < -13, where |gelu'(h)| < 1.1e-36.
    return approximate == BERT4J_GELU_TANH ? 1e-9 : 1.2e-36;
}

struct ErrStats {
    double max_rel = 0;   // over |ref| >= 1e-30
    double max_abs = 0;
    double worst_h = 0;
};

const char* isa_name(Isa isa) {
    return isa == Isa::Scalar ? "scalar" : isa == Isa::Avx2Fma ? "avx2" : "avx512";
}

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
    const int64_t cols_list[] = {1, 3, 17, 47, 63, 384, 1536, 3072};  // tails after 16- and 32-wide steps
    for (Isa isa : {Isa::Scalar, Isa::Avx2Fma, Isa::Avx512}) {
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

// Non-finite and extreme inputs on every path, both GELUs, forward and derivative:
// gelu(+inf) = +inf, gelu(NaN) = NaN, the sign of zero kept, huge |h| saturating to h or -0,
// gelu'(NaN) = NaN, gelu'(huge) = 1, gelu'(-huge) = 0. (gelu(-inf) is the limit -0 on the
// vector paths, NaN (-inf * 0) on the scalar one, as in libtorch; gelu'(+-inf) is NaN on all.)
void test_special_values() {
    const float inf = std::numeric_limits<float>::infinity(), big = std::numeric_limits<float>::max();
    const float h[] = {inf, std::nanf(""), 0.0f, -0.0f, 1e30f, -1e30f, big, -big, 13.0f, 13.5f, -13.5f, 1e-40f, -1e-40f};
    const int n = sizeof(h) / sizeof(h[0]);
    // bias -0: x + (-0) is x for every x, including -0 (a +0 bias would turn -0 into +0).
    std::vector<float> zero(n, -0.0f), y(n), ones(n, 1.0f), dx(n);
    for (Isa isa : {Isa::Scalar, Isa::Avx2Fma, Isa::Avx512}) {
        if (!bert4j::cpu::isa_supported(isa)) continue;
        for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH}) {
            bert4j::cpu::bias_gelu_launch(h, zero.data(), y.data(), 1, n, n, n, approximate, isa, 1);
            bert4j::cpu::bias_gelu_backward_launch(ones.data(), h, zero.data(), dx.data(), nullptr, 1, n, n, n, n,
                                                   approximate, isa, 1);
            const char* name = isa_name(isa);
            CHECK(y[0] == inf, "%s approx=%d: gelu(+inf) = %g", name, approximate, y[0]);
            CHECK(std::isnan(y[1]) && std::isnan(dx[1]), "%s approx=%d: gelu(NaN) = %g, gelu'(NaN) = %g", name,
                  approximate, y[1], dx[1]);
            CHECK(y[2] == 0.0f && !std::signbit(y[2]) && y[3] == 0.0f && std::signbit(y[3]),
                  "%s approx=%d: gelu(+0), gelu(-0) = %g, %g", name, approximate, y[2], y[3]);
            CHECK(y[4] == 1e30f && y[6] == big, "%s approx=%d: gelu(1e30) = %g, gelu(FLT_MAX) = %g", name,
                  approximate, y[4], y[6]);
            CHECK(y[5] == 0.0f && y[7] == 0.0f, "%s approx=%d: gelu(-1e30) = %g, gelu(-FLT_MAX) = %g", name,
                  approximate, y[5], y[7]);
            CHECK(y[8] == 13.0f && y[9] == 13.5f && std::fabs(y[10]) < 1e-37f && y[10] <= 0.0f,
                  "%s approx=%d: gelu(13), gelu(13.5), gelu(-13.5) = %g, %g, %g", name, approximate, y[8], y[9], y[10]);
            CHECK(y[11] == 0.5f * 1e-40f && y[12] == -0.5f * 1e-40f, "%s approx=%d: gelu(+-1e-40) = %g, %g", name,
                  approximate, y[11], y[12]);
            CHECK(dx[4] == 1.0f && dx[6] == 1.0f && dx[5] == 0.0f && dx[7] == 0.0f,
                  "%s approx=%d: gelu'(1e30, -1e30, FLT_MAX, -FLT_MAX) = %g, %g, %g, %g", name, approximate, dx[4],
                  dx[5], dx[6], dx[7]);
            CHECK(dx[2] == 0.5f && dx[3] == 0.5f, "%s approx=%d: gelu'(+-0) = %g, %g", name, approximate, dx[2], dx[3]);
            if (isa != Isa::Scalar)
                CHECK(y[n - 1] <= 0.0f, "%s approx=%d: sign of gelu(-1e-40)", name, approximate);
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
        for (Isa best : {Isa::Avx2Fma, Isa::Avx512}) {
        if (!bert4j::cpu::isa_supported(best)) continue;
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


// ---- backward ---------------------------------------------------------------------------

struct GradStats {
    double max_err_over_cond = 0;  // max |dx - dy g'| / (|dy| cond)
    double worst_h = 0;
    double max_dbias_rel = 0;      // max |dbias - ref| / sum_r |dy| cond
};

// One backward case with a forced path: dx per element, dbias against the float64 sum of
// the kernel's dx and against the float64 reference. `alias` runs it in place (dx == dy).
void run_backward_case(Isa isa, int approximate, int64_t rows, int64_t cols, int64_t dypad,
                       int64_t xpad, int64_t dxpad, bool alias, bool with_dbias, int threads,
                       std::mt19937& rng, GradStats& stats) {
    if (alias) dxpad = dypad;
    const int64_t dys = cols + dypad, xs = cols + xpad, dxs = cols + dxpad;
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> dy(rows * dys), x(rows * xs), bias(cols), dx_buf(rows * dxs, kCanary);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : x) v = normal(rng);
    for (auto& v : bias) v = 0.5f * normal(rng);
    const std::vector<float> dy_in = dy;
    std::vector<float> dbias(cols + 1, kCanary);
    float* dx = alias ? dy.data() : dx_buf.data();
    bert4j::cpu::bias_gelu_backward_launch(dy.data(), x.data(), bias.data(), dx,
                                           with_dbias ? dbias.data() : nullptr, rows, cols, dys,
                                           xs, dxs, approximate, isa, threads);
    char what[160];
    std::snprintf(what, sizeof what, "%s approx=%d [%lld x %lld] pads (%lld,%lld,%lld)%s",
                  isa_name(isa), approximate, (long long)rows, (long long)cols,
                  (long long)dypad, (long long)xpad, (long long)dxpad, alias ? " in place" : "");
    int bad = 0;
    std::vector<double> ref_sum(cols, 0.0), own_sum(cols, 0.0), abs_sum(cols, 0.0),
        bound(cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < dxs; ++c) {
            const float got = dx[r * dxs + c];
            if (c >= cols) {
                const float want = alias ? dy_in[r * dys + c] : kCanary;
                if (got != want && bad++ < 3)
                    CHECK(false, "%s: wrote padding at (%lld, %lld)", what, (long long)r,
                          (long long)c);
                continue;
            }
            const float h = x[r * xs + c] + bias[c];
            const double g = dy_in[r * dys + c];
            const GradRef ref = ref_gelu_grad(h, approximate);
            const double want = g * ref.value;
            const double err = std::fabs(got - want);
            const double scale = std::fabs(g) * ref.cond;
            if (scale > 1e-30 && err / scale > stats.max_err_over_cond) {
                stats.max_err_over_cond = err / scale;
                stats.worst_h = h;
            }
            const double allowed =
                grad_rtol(isa) * scale + grad_atol(isa, approximate) * std::fabs(g);
            if (!(err <= allowed) && bad++ < 3)
                CHECK(false, "%s (%lld, %lld): h=%.9g dy=%.9g got %.9g ref %.17g", what,
                      (long long)r, (long long)c, h, g, got, want);
            ref_sum[c] += want;
            own_sum[c] += got;
            abs_sum[c] += std::fabs(got);
            bound[c] += allowed;
        }
    }
    if (!with_dbias) {
        CHECK(dbias[0] == kCanary, "%s: dbias NULL, yet something was written", what);
        return;
    }
    CHECK(dbias[cols] == kCanary, "%s: wrote past dbias[cols]", what);
    for (int64_t c = 0; c < cols; ++c) {
        const double own_err = std::fabs(dbias[c] - own_sum[c]);
        if (!(own_err <= 0.6e-7 * std::fabs(own_sum[c]) + 1e-12 * abs_sum[c] + 1e-37) && bad++ < 3)
            CHECK(false, "%s: dbias[%lld] = %.9g, float64 sum of dx %.17g", what, (long long)c,
                  dbias[c], own_sum[c]);
        const double err = std::fabs(dbias[c] - ref_sum[c]);
        const double allowed = bound[c] + 1.2e-7 * std::fabs(ref_sum[c]) + 1e-30;
        if (bound[c] > 0) stats.max_dbias_rel = std::max(stats.max_dbias_rel, err / bound[c] * grad_rtol(isa));
        if (!(err <= allowed) && bad++ < 3)
            CHECK(false, "%s: dbias[%lld] = %.9g, reference %.17g", what, (long long)c, dbias[c],
                  ref_sum[c]);
    }
}

// Dense sweep of gelu'(h) over [-20, 20] with dy = 1.
void run_backward_sweep(Isa isa, int approximate, GradStats& stats) {
    const int64_t n = 400001;
    std::vector<float> x(n), bias(n, 0.0f), dy(n, 1.0f), dx(n);
    for (int64_t i = 0; i < n; ++i) x[i] = -20.0f + 40.0f * static_cast<float>(i) / (n - 1);
    bert4j::cpu::bias_gelu_backward_launch(dy.data(), x.data(), bias.data(), dx.data(), nullptr,
                                           1, n, n, n, n, approximate, isa, 1);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
        const GradRef ref = ref_gelu_grad(x[i], approximate);
        const double err = std::fabs(dx[i] - ref.value);
        if (ref.cond > 1e-30 && err / ref.cond > stats.max_err_over_cond) {
            stats.max_err_over_cond = err / ref.cond;
            stats.worst_h = x[i];
        }
        if (!(err <= grad_rtol(isa) * ref.cond + grad_atol(isa, approximate)) && bad++ < 3)
            CHECK(false, "%s approx=%d backward sweep: h=%.9g got %.9g ref %.17g", isa_name(isa),
                  approximate, x[i], dx[i], ref.value);
    }
}

void test_backward_accuracy() {
    std::mt19937 rng(20261129);
    const int64_t rows_list[] = {1, 7, 97, 257};
    const int64_t cols_list[] = {1, 3, 13, 384, 1536, 3072};
    for (Isa isa : {Isa::Scalar, Isa::Avx2Fma, Isa::Avx512}) {
        if (!bert4j::cpu::isa_supported(isa)) continue;
        for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH}) {
            GradStats random_stats, sweep_stats;
            for (int64_t rows : rows_list)
                for (int64_t cols : cols_list) {
                    if (rows * cols > 400000) continue;  // 257 x 3072 adds nothing but time
                    run_backward_case(isa, approximate, rows, cols, 0, 0, 0, false, true, 1, rng,
                                      random_stats);
                    run_backward_case(isa, approximate, rows, cols, 3, 5, 2, false, true, 2, rng,
                                      random_stats);
                    run_backward_case(isa, approximate, rows, cols, 4, 1, 0, true, true, 3, rng,
                                      random_stats);
                    run_backward_case(isa, approximate, rows, cols, 0, 2, 1, false, false, 2, rng,
                                      random_stats);
                }
            run_backward_sweep(isa, approximate, sweep_stats);
            std::printf("%-6s %-5s backward random: max |err|/(|dy| cond) %.3g (at h=%.6g), "
                        "dbias max err/sum(|dy| cond) %.3g | sweep: max err/cond %.3g (at h=%.6g)\n",
                        isa_name(isa), approximate ? "tanh" : "exact",
                        random_stats.max_err_over_cond, random_stats.worst_h,
                        random_stats.max_dbias_rel, sweep_stats.max_err_over_cond,
                        sweep_stats.worst_h);
        }
    }
}

// dx and dbias must not change by a bit with the thread count; the paths agree closely.
void test_backward_threads_bitwise() {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (int64_t rows : {int64_t{257}, int64_t{4096}}) {
        const int64_t cols = rows > 1000 ? 384 : 1536;  // both take the threaded branch
        std::vector<float> dy(rows * cols), x(rows * cols), bias(cols);
        for (auto& v : dy) v = normal(rng);
        for (auto& v : x) v = normal(rng);
        for (auto& v : bias) v = normal(rng);
        const Isa best = bert4j::cpu::best_isa();
        for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH}) {
            std::vector<float> dx1(dy.size()), dbias1(cols);
            bert4j::cpu::bias_gelu_backward_launch(dy.data(), x.data(), bias.data(), dx1.data(),
                                                   dbias1.data(), rows, cols, cols, cols, cols,
                                                   approximate, best, 1);
            for (int threads : {2, 3, 4, 7}) {
                std::vector<float> dxn(dy.size()), dbiasn(cols);
                bert4j::cpu::bias_gelu_backward_launch(dy.data(), x.data(), bias.data(),
                                                       dxn.data(), dbiasn.data(), rows, cols,
                                                       cols, cols, cols, approximate, best,
                                                       threads);
                CHECK(std::memcmp(dx1.data(), dxn.data(), dx1.size() * sizeof(float)) == 0,
                      "backward approx=%d rows=%lld: dx differs between 1 and %d threads",
                      approximate, (long long)rows, threads);
                CHECK(std::memcmp(dbias1.data(), dbiasn.data(), cols * sizeof(float)) == 0,
                      "backward approx=%d rows=%lld: dbias differs between 1 and %d threads",
                      approximate, (long long)rows, threads);
            }
            // The public entry point (thread count from bert4j_set_num_threads) agrees too.
            std::vector<float> dxe(dy.size()), dbiase(cols);
            const int before = bert4j_get_num_threads();
            bert4j_set_num_threads(2);
            CHECK(bert4j_bias_gelu_backward_f32(dy.data(), x.data(), bias.data(), dxe.data(),
                                                dbiase.data(), rows, cols, cols, cols, cols,
                                                approximate) == BERT4J_OK,
                  "entry point: %s", bert4j_last_error());
            bert4j_set_num_threads(before);
            CHECK(std::memcmp(dbias1.data(), dbiase.data(), cols * sizeof(float)) == 0 &&
                      std::memcmp(dx1.data(), dxe.data(), dx1.size() * sizeof(float)) == 0,
                  "backward approx=%d: entry point differs from the launcher", approximate);
        }
    }
    std::printf("backward: dx and dbias bitwise equal for 1, 2, 3, 4, 7 threads\n");
}

void test_backward_bad_arguments() {
    float dy[12] = {0}, x[12] = {0}, b[4] = {0}, dx[12], db[4];
    std::fill(std::begin(dx), std::end(dx), kCanary);
    std::fill(std::begin(db), std::end(db), kCanary);
    const auto call = [&](const float* dyp, const float* xp, const float* bp, float* dxp,
                          float* dbp, int64_t rows, int64_t cols, int64_t dys, int64_t xs,
                          int64_t dxs, int approx) {
        return bert4j_bias_gelu_backward_f32(dyp, xp, bp, dxp, dbp, rows, cols, dys, xs, dxs,
                                             approx);
    };
    expect_reject("bwd dy NULL", call(nullptr, x, b, dx, db, 3, 4, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "bert4j_bias_gelu_backward_f32: dy is NULL (expected [3, 4] elements)");
    expect_reject("bwd x NULL", call(dy, nullptr, b, dx, db, 3, 4, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "x is NULL");
    expect_reject("bwd bias NULL", call(dy, x, nullptr, dx, db, 3, 4, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "bias is NULL (expected [4] elements)");
    expect_reject("bwd dx NULL", call(dy, x, b, nullptr, db, 3, 4, 4, 4, 4, 0), BERT4J_ERR_NULL_POINTER, "dx is NULL");
    expect_reject("bwd rows < 0", call(dy, x, b, dx, db, -2, 4, 4, 4, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "rows must be >= 0, got -2");
    expect_reject("bwd cols < 0", call(dy, x, b, dx, db, 3, -1, 4, 4, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "cols must be >= 0, got -1");
    expect_reject("bwd dy stride", call(dy, x, b, dx, db, 3, 4, 3, 4, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "dy_row_stride must be >= cols (4) for dy of shape [3, 4], got 3");
    expect_reject("bwd x stride", call(dy, x, b, dx, db, 3, 4, 4, 0, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "x_row_stride must be >= cols (4)");
    expect_reject("bwd dx stride", call(dy, x, b, dx, db, 3, 4, 4, 4, 2, 0), BERT4J_ERR_INVALID_ARGUMENT, "dx_row_stride must be >= cols (4)");
    expect_reject("bwd approximate", call(dy, x, b, dx, db, 3, 4, 4, 4, 4, 5), BERT4J_ERR_INVALID_ARGUMENT, "approximate must be 0 (exact erf GELU) or 1 (tanh GELU), got 5");
    expect_reject("bwd overflow", call(dy, x, b, dx, db, 3, 4, 4, INT64_MAX / 2, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "x_row_stride (4611686018427387903) overflows int64");
    expect_reject("bwd alias stride", call(dy, x, b, dy, db, 2, 4, 4, 4, 6, 0), BERT4J_ERR_INVALID_ARGUMENT, "dx aliases dy, so dx_row_stride (6) must equal dy_row_stride (4)");
    for (float v : dx) CHECK(v == kCanary, "a rejected backward call wrote to dx");
    for (float v : db) CHECK(v == kCanary, "a rejected backward call wrote to dbias");
    for (float v : dy) CHECK(v == 0.0f, "a rejected backward call wrote to dy");

    // Empty: no-ops with NULL pointers; dbias over zero rows is written as zeros.
    CHECK(call(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 4, 4, 4, 4, 0) == BERT4J_OK, "rows 0: %s", bert4j_last_error());
    CHECK(call(nullptr, nullptr, nullptr, nullptr, db, 0, 4, 4, 4, 4, 1) == BERT4J_OK, "rows 0 dbias: %s", bert4j_last_error());
    for (float v : db) CHECK(v == 0.0f, "rows 0: dbias must be written as 0, got %g", v);
    CHECK(call(nullptr, nullptr, nullptr, nullptr, nullptr, 3, 0, 0, 0, 0, 0) == BERT4J_OK, "cols 0: %s", bert4j_last_error());
    CHECK(std::strcmp(bert4j_last_error(), "") == 0, "message not cleared after success");
    // A known value: gelu'(0) = 0.5, gelu'(1) = Phi(1) + phi(1) = 1.0833155.
    float one_dy[2] = {2.0f, 1.0f}, one_x[2] = {0.0f, 1.0f}, zero_b[2] = {0.0f, 0.0f}, out[2], ob[2];
    CHECK(call(one_dy, one_x, zero_b, out, ob, 1, 2, 2, 2, 2, 0) == BERT4J_OK, "known: %s", bert4j_last_error());
    CHECK(std::fabs(out[0] - 1.0f) < 1e-7 && std::fabs(out[1] - 1.0833155f) < 1e-6,
          "gelu'(0), gelu'(1): %.9g %.9g", out[0] / 2, out[1]);
    CHECK(ob[0] == out[0] && ob[1] == out[1], "one row: dbias must equal dx");
}


// ---- training pair: forward that saves gelu'(h), backward from it ------------------------

// forward_train's y is bitwise the forward's y; backward_saved from its d is bitwise the
// recomputing backward's dx and dbias on the vector paths, and within two fp32 roundings of
// them on the scalar path (which rounds the derivative to fp32 before the product).
void run_train_case(Isa isa, int approximate, int64_t rows, int64_t cols, int64_t pad, int threads,
                    bool alias, std::mt19937& rng) {
    const int64_t ld = cols + pad;
    std::normal_distribution<float> normal(0.0f, 1.8f);
    std::vector<float> x(rows * ld), dy(rows * ld), bias(cols);
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : bias) v = 0.5f * normal(rng);
    char what[160];
    std::snprintf(what, sizeof what, "train %s approx=%d [%lld x %lld] pad %lld threads %d%s", isa_name(isa),
                  approximate, (long long)rows, (long long)cols, (long long)pad, threads, alias ? " aliased" : "");
    std::vector<float> y_ref(rows * ld, kCanary), y(rows * ld, kCanary), d(rows * ld, kCanary);
    bert4j::cpu::bias_gelu_launch(x.data(), bias.data(), y_ref.data(), rows, cols, ld, ld, approximate, isa,
                                  threads);
    float* yp = y.data();
    std::vector<float> x_in = x;
    if (alias) yp = x_in.data();  // y written over x, in place
    bert4j::cpu::bias_gelu_train_launch(x_in.data(), bias.data(), yp, d.data(), rows, cols, ld, ld, ld,
                                        approximate, isa, threads);
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < ld; ++c) {
            const int64_t i = r * ld + c;
            if (c >= cols) {
                if ((d[i] != kCanary || (!alias && y[i] != kCanary)) && bad++ < 3)
                    CHECK(false, "%s: wrote padding at (%lld, %lld)", what, (long long)r, (long long)c);
                continue;
            }
            if (std::memcmp(&yp[i], &y_ref[i], sizeof(float)) != 0 && bad++ < 3)
                CHECK(false, "%s: y(%lld, %lld) = %.9g, forward %.9g", what, (long long)r, (long long)c, yp[i],
                      y_ref[i]);
        }
    // dgelu written over x itself (a caller done with x): the same y and d, bit for bit.
    {
        std::vector<float> x_over = x, y_over(rows * ld, kCanary);
        bert4j::cpu::bias_gelu_train_launch(x_over.data(), bias.data(), y_over.data(), x_over.data(), rows, cols, ld,
                                            ld, ld, approximate, isa, threads);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                const int64_t i = r * ld + c;
                if ((std::memcmp(&x_over[i], &d[i], sizeof(float)) != 0 ||
                     std::memcmp(&y_over[i], &y_ref[i], sizeof(float)) != 0) && bad++ < 3)
                    CHECK(false, "%s: dgelu over x differs at (%lld, %lld)", what, (long long)r, (long long)c);
            }
    }
    // The recomputing backward, then the saved one (optionally in place over dy or over d).
    std::vector<float> dx_ref(rows * ld, kCanary), dbias_ref(cols), dbias(cols + 1, kCanary);
    bert4j::cpu::bias_gelu_backward_launch(dy.data(), x.data(), bias.data(), dx_ref.data(), dbias_ref.data(),
                                           rows, cols, ld, ld, ld, approximate, isa, threads);
    std::vector<float> dy_in = dy, dx_buf(rows * ld, kCanary), d_in = d;
    float* dx = alias ? (rows % 2 ? dy_in.data() : d_in.data()) : dx_buf.data();
    bert4j::cpu::gelu_backward_saved_launch(dy_in.data(), d_in.data(), dx, dbias.data(), rows, cols, ld, ld, ld,
                                            isa, threads);
    CHECK(dbias[cols] == kCanary, "%s: wrote past dbias[cols]", what);
    // Without a bias gradient (rows handed out one at a time): the same dx, bit for bit.
    {
        std::vector<float> dx_nb(rows * ld, kCanary);
        bert4j::cpu::gelu_backward_saved_launch(dy.data(), d.data(), dx_nb.data(), nullptr, rows, cols, ld, ld, ld,
                                                isa, threads);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < ld; ++c) {
                const int64_t i = r * ld + c;
                const bool ok = c < cols ? std::memcmp(&dx_nb[i], &dx[i], sizeof(float)) == 0 : dx_nb[i] == kCanary;
                if (!ok && bad++ < 3)
                    CHECK(false, "%s: dx without dbias differs (or padding written) at (%lld, %lld)", what,
                          (long long)r, (long long)c);
            }
    }
    const bool exact_bits = isa != Isa::Scalar;
    std::vector<double> abs_sum(cols, 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t i = r * ld + c;
            abs_sum[c] += std::fabs(dx_ref[i]);
            const bool same = exact_bits ? std::memcmp(&dx[i], &dx_ref[i], sizeof(float)) == 0
                                         : std::fabs(dx[i] - dx_ref[i]) <= 3.6e-7 * std::fabs(dx_ref[i]) + 1e-37;
            if (!same && bad++ < 3)
                CHECK(false, "%s: dx(%lld, %lld) = %.9g, recomputing backward %.9g", what, (long long)r,
                      (long long)c, dx[i], dx_ref[i]);
        }
    for (int64_t c = 0; c < cols; ++c) {
        const bool same = exact_bits ? std::memcmp(&dbias[c], &dbias_ref[c], sizeof(float)) == 0
                                     : std::fabs(dbias[c] - dbias_ref[c]) <= 3.6e-7 * abs_sum[c] + 1.2e-7 * std::fabs(dbias_ref[c]) + 1e-37;
        if (!same && bad++ < 3)
            CHECK(false, "%s: dbias[%lld] = %.9g, recomputing backward %.9g", what, (long long)c, dbias[c],
                  dbias_ref[c]);
    }
}

void test_train_pair() {
    std::mt19937 rng(20261130);
    int cases = 0;
    for (Isa isa : {Isa::Scalar, Isa::Avx2Fma, Isa::Avx512}) {
        if (!bert4j::cpu::isa_supported(isa)) continue;
        for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH})
            for (int64_t rows : {int64_t{1}, int64_t{7}, int64_t{97}, int64_t{257}})
                for (int64_t cols : {int64_t{1}, int64_t{3}, int64_t{13}, int64_t{17}, int64_t{384}, int64_t{1536}}) {
                    if (isa == Isa::Scalar && rows * cols > 40000) continue;
                    run_train_case(isa, approximate, rows, cols, 0, 1, false, rng);
                    run_train_case(isa, approximate, rows, cols, 3, 2, false, rng);
                    run_train_case(isa, approximate, rows, cols, 0, 3, true, rng);
                    cases += 3;
                }
    }
    // Thread count never changes a bit (large enough to take the threaded branch).
    const Isa best = bert4j::cpu::best_isa();
    const int64_t rows = 1024, cols = 384;
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> x(rows * cols), dy(rows * cols), bias(cols);
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : bias) v = normal(rng);
    std::vector<float> y1(x.size()), d1(x.size()), dx1(x.size()), db1(cols);
    bert4j::cpu::bias_gelu_train_launch(x.data(), bias.data(), y1.data(), d1.data(), rows, cols, cols, cols, cols,
                                        BERT4J_GELU_EXACT, best, 1);
    bert4j::cpu::gelu_backward_saved_launch(dy.data(), d1.data(), dx1.data(), db1.data(), rows, cols, cols, cols,
                                            cols, best, 1);
    for (int threads : {2, 3, 7}) {
        std::vector<float> yn(x.size()), dn(x.size()), dxn(x.size()), dbn(cols);
        bert4j::cpu::bias_gelu_train_launch(x.data(), bias.data(), yn.data(), dn.data(), rows, cols, cols, cols,
                                            cols, BERT4J_GELU_EXACT, best, threads);
        bert4j::cpu::gelu_backward_saved_launch(dy.data(), dn.data(), dxn.data(), dbn.data(), rows, cols, cols,
                                                cols, cols, best, threads);
        CHECK(std::memcmp(y1.data(), yn.data(), y1.size() * 4) == 0 && std::memcmp(d1.data(), dn.data(), d1.size() * 4) == 0 &&
                  std::memcmp(dx1.data(), dxn.data(), dx1.size() * 4) == 0 && std::memcmp(db1.data(), dbn.data(), cols * 4) == 0,
              "train pair: results differ between 1 and %d threads", threads);
    }
    // The entry points run the launchers at the best path.
    std::vector<float> ye(x.size()), de(x.size()), dxe(x.size()), dbe(cols);
    CHECK(bert4j_bias_gelu_forward_train_f32(x.data(), bias.data(), ye.data(), de.data(), rows, cols, cols, cols,
                                             cols, BERT4J_GELU_EXACT) == BERT4J_OK, "train entry: %s", bert4j_last_error());
    CHECK(bert4j_gelu_backward_saved_f32(dy.data(), de.data(), dxe.data(), dbe.data(), rows, cols, cols, cols, cols) ==
              BERT4J_OK, "saved entry: %s", bert4j_last_error());
    CHECK(std::memcmp(d1.data(), de.data(), d1.size() * 4) == 0 && std::memcmp(db1.data(), dbe.data(), cols * 4) == 0 &&
              std::memcmp(dx1.data(), dxe.data(), dx1.size() * 4) == 0,
          "train pair: entry points differ from the launchers");
    std::printf("train pair: %d cases, y bitwise the forward's, dx/dbias %s the recomputing backward's; "
                "bitwise for 1, 2, 3, 7 threads\n", cases, best == Isa::Scalar ? "within 2 roundings of" : "bitwise");
}

void test_train_pair_bad_arguments() {
    float x[12] = {0}, b[4] = {0}, y[12], d[12], dy[12] = {0}, dx[12], db[4];
    std::fill(std::begin(y), std::end(y), kCanary);
    std::fill(std::begin(d), std::end(d), kCanary);
    std::fill(std::begin(dx), std::end(dx), kCanary);
    std::fill(std::begin(db), std::end(db), kCanary);
    const auto fwd = [&](const float* xp, float* yp, float* dp, int64_t rows, int64_t ds, int approx) {
        return bert4j_bias_gelu_forward_train_f32(xp, b, yp, dp, rows, 4, 4, 4, ds, approx);
    };
    expect_reject("train x NULL", fwd(nullptr, y, d, 3, 4, 0), BERT4J_ERR_NULL_POINTER, "bert4j_bias_gelu_forward_train_f32: x is NULL");
    expect_reject("train dgelu NULL", fwd(x, y, nullptr, 3, 4, 0), BERT4J_ERR_NULL_POINTER, "dgelu is NULL (expected [3, 4] elements)");
    expect_reject("train dgelu stride", fwd(x, y, d, 3, 2, 0), BERT4J_ERR_INVALID_ARGUMENT, "dgelu_row_stride must be >= cols (4) for dgelu of shape [3, 4], got 2");
    expect_reject("train dgelu overflow", fwd(x, y, d, 3, INT64_MAX / 2, 0), BERT4J_ERR_INVALID_ARGUMENT, "dgelu_row_stride (4611686018427387903) overflows int64");
    expect_reject("train dgelu is y", fwd(x, y, y, 3, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "dgelu must not be y");
    expect_reject("train dgelu is x, other stride", bert4j_bias_gelu_forward_train_f32(x, b, y, x, 2, 4, 4, 4, 5, 0),
                  BERT4J_ERR_INVALID_ARGUMENT, "dgelu aliases x, so dgelu_row_stride (5) must equal x_row_stride (4)");
    expect_reject("train approximate", fwd(x, y, d, 3, 4, 3), BERT4J_ERR_INVALID_ARGUMENT, "approximate must be 0");
    expect_reject("train rows < 0", fwd(x, y, d, -1, 4, 0), BERT4J_ERR_INVALID_ARGUMENT, "rows must be >= 0, got -1");
    const auto bwd = [&](const float* dyp, const float* dp, float* dxp, int64_t rows, int64_t dys, int64_t ds, int64_t dxs) {
        return bert4j_gelu_backward_saved_f32(dyp, dp, dxp, db, rows, 4, dys, ds, dxs);
    };
    expect_reject("saved dy NULL", bwd(nullptr, d, dx, 3, 4, 4, 4), BERT4J_ERR_NULL_POINTER, "bert4j_gelu_backward_saved_f32: dy is NULL (expected [3, 4] elements)");
    expect_reject("saved dgelu NULL", bwd(dy, nullptr, dx, 3, 4, 4, 4), BERT4J_ERR_NULL_POINTER, "dgelu is NULL");
    expect_reject("saved dx NULL", bwd(dy, d, nullptr, 3, 4, 4, 4), BERT4J_ERR_NULL_POINTER, "dx is NULL");
    expect_reject("saved dgelu stride", bwd(dy, d, dx, 3, 4, 3, 4), BERT4J_ERR_INVALID_ARGUMENT, "dgelu_row_stride must be >= cols (4)");
    expect_reject("saved cols < 0", bert4j_gelu_backward_saved_f32(dy, d, dx, db, 3, -2, 4, 4, 4), BERT4J_ERR_INVALID_ARGUMENT, "cols must be >= 0, got -2");
    expect_reject("saved alias dy", bwd(dy, d, dy, 2, 4, 4, 6), BERT4J_ERR_INVALID_ARGUMENT, "dx aliases dy, so dx_row_stride (6) must equal dy_row_stride (4)");
    expect_reject("saved alias dgelu", bwd(dy, d, d, 2, 4, 5, 4), BERT4J_ERR_INVALID_ARGUMENT, "dx aliases dgelu, so dx_row_stride (4) must equal dgelu_row_stride (5)");
    for (float v : y) CHECK(v == kCanary, "a rejected train call wrote to y");
    for (float v : d) CHECK(v == kCanary, "a rejected call wrote to dgelu");
    for (float v : dx) CHECK(v == kCanary, "a rejected saved call wrote to dx");
    for (float v : db) CHECK(v == kCanary, "a rejected saved call wrote to dbias");
    // Empty: no-ops with NULL pointers; dbias over zero rows is written as zeros.
    CHECK(bert4j_bias_gelu_forward_train_f32(nullptr, nullptr, nullptr, nullptr, 0, 4, 4, 4, 4, 0) == BERT4J_OK,
          "train rows 0: %s", bert4j_last_error());
    CHECK(bert4j_gelu_backward_saved_f32(nullptr, nullptr, nullptr, db, 0, 4, 4, 4, 4) == BERT4J_OK,
          "saved rows 0: %s", bert4j_last_error());
    for (float v : db) CHECK(v == 0.0f, "saved rows 0: dbias must be written as 0, got %g", v);
    // Known values: gelu'(0) = 0.5, gelu'(1) = 1.0833155.
    float kx[2] = {0.0f, 1.0f}, kb[2] = {0.0f, 0.0f}, ky[2], kd[2];
    CHECK(bert4j_bias_gelu_forward_train_f32(kx, kb, ky, kd, 1, 2, 2, 2, 2, 0) == BERT4J_OK, "known: %s", bert4j_last_error());
    CHECK(kd[0] == 0.5f && std::fabs(kd[1] - 1.0833155f) < 1e-6 && ky[0] == 0.0f && std::fabs(ky[1] - 0.8413447f) < 1e-6,
          "gelu(0), gelu(1), gelu'(0), gelu'(1): %.9g %.9g %.9g %.9g", ky[0], ky[1], kd[0], kd[1]);
}

}  // namespace

// BERT4J_CPU_ISA (ctest runs this binary with "avx2" and "scalar" too) caps the path.
void test_forced_isa() {
    const char* forced = std::getenv("BERT4J_CPU_ISA");
    const Isa best = bert4j::cpu::best_isa();
    std::printf("best CPU path: %s (BERT4J_CPU_ISA=%s)\n", isa_name(best), forced ? forced : "");
    Isa expect = bert4j::cpu::isa_supported(Isa::Avx512)    ? Isa::Avx512
                 : bert4j::cpu::isa_supported(Isa::Avx2Fma) ? Isa::Avx2Fma
                                                            : Isa::Scalar;
    if (forced != nullptr && std::strcmp(forced, "scalar") == 0) expect = Isa::Scalar;
    if (forced != nullptr && std::strcmp(forced, "avx2") == 0 && expect == Isa::Avx512)
        expect = Isa::Avx2Fma;
    CHECK(best == expect, "best_isa() = %s, expected %s", isa_name(best), isa_name(expect));
}

int main() {
    test_forced_isa();
    test_accuracy();
    test_special_values();
    test_paths_and_threads_agree();
    test_bad_arguments();
    test_backward_accuracy();
    test_backward_threads_bitwise();
    test_backward_bad_arguments();
    test_train_pair();
    test_train_pair_bad_arguments();
    if (bert4j::test::g_failures == 0) std::printf("test_bias_gelu: all checks passed\n");
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
