// CPU bf16 linear layer against references computed here:
//  1. bf16 rounding of single values (ties to even, overflow to infinity, NaN kept) checked on
//     hand-picked bit patterns;
//  2. the packed layout: each packed element is compared with the rounding of the weight the
//     layout puts there;
//  3. exact: the same products (bf16-rounded operands, each product exact) summed in float64;
//     the library's fp32 sums must lie within the recursive-summation bound k * 2^-24 * sum |p|
//     of it (the bias adds one more rounding);
//  4. both paths: the scalar one always, AMX when this CPU and OS have it (its additions run in
//     its own order, so it is held to the bound, not to the scalar path's bits);
//  5. the float64 product x . w^T + bias within the bf16 rounding bound
//     sum |x||w| (2^-8 + 2^-8 + 2^-16) + the summation bound: the rounding itself is right.
//  6. (AMX) the encoder layer's fused pair: linear_bf16_gelu_launch (bias + GELU in the GEMM's
//     epilogue, bf16 out) then linear_bf16_blocked_launch gives bitwise the outputs of the
//     three-step path (GEMM without bias, bias_gelu_launch, GEMM), every GELU form, tails included.
// BERT shapes and awkward ones (k and n not multiples of 32, rows not multiples of 16, padded
// rows), 1 and 2 threads, NaN/inf rows, and the entry points' argument checks.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../src/cpu/bias_gelu.h"
#include "../src/cpu/linear_bf16.h"
#include "bert4j_kernels.h"
#include "test_util.h"

namespace {

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

void check_rounding() {
    using bert4j::cpu::to_bf16;
    CHECK(to_bf16(1.0f) == 0x3f80, "1.0 -> %04x", to_bf16(1.0f));
    CHECK(to_bf16(-2.0f) == 0xc000, "-2.0 -> %04x", to_bf16(-2.0f));
    CHECK(to_bf16(from_bits(0x3f808000)) == 0x3f80, "tie rounds to even (down)");
    CHECK(to_bf16(from_bits(0x3f818000)) == 0x3f82, "tie rounds to even (up)");
    CHECK(to_bf16(from_bits(0x3f808001)) == 0x3f81, "above the tie rounds up");
    CHECK(to_bf16(from_bits(0x3f807fff)) == 0x3f80, "below the tie rounds down");
    CHECK(to_bf16(3.4028235e38f) == 0x7f80, "FLT_MAX rounds to +inf");
    CHECK(to_bf16(INFINITY) == 0x7f80 && to_bf16(-INFINITY) == 0xff80, "infinities");
    const uint16_t nan = to_bf16(std::nanf(""));
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0, "NaN stays NaN: %04x", nan);
    CHECK(to_bf16(from_bits(0x7f800001)) != 0x7f80, "a NaN with low payload bits does not become inf");
}

struct Case {
    int64_t m, n, k, xpad, ypad;
    bool bias;
};

// Runs one case through the scalar path and (when present) AMX; checks both against float64.
void run_case(const Case& c, int threads, std::mt19937& rng) {
    using bert4j::cpu::from_bf16;
    using bert4j::cpu::to_bf16;
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t ldx = c.k + c.xpad, ldy = c.n + c.ypad;
    std::vector<float> x(c.m * ldx), w(c.n * c.k), b(c.n);
    for (float& v : x) v = dist(rng);
    for (float& v : w) v = dist(rng) * 0.2f;
    for (float& v : b) v = dist(rng);
    int64_t elems = -1;
    CHECK(bert4j_linear_bf16_packed_size(c.n, c.k, &elems) == BERT4J_OK, "size: %s", bert4j_last_error());
    std::vector<uint16_t> packed(elems, 0xdead);
    CHECK(bert4j_linear_bf16_pack(w.data(), c.n, c.k, c.k, packed.data()) == BERT4J_OK, "pack: %s",
          bert4j_last_error());
    // 2. layout
    const int64_t steps = (c.k + 31) / 32, panels = (c.n + 31) / 32;
    CHECK(elems == panels * steps * 1024, "size %lld", static_cast<long long>(elems));
    int layout_bad = 0;
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t s = 0; s < steps; ++s)
            for (int64_t t = 0; t < 2; ++t)
                for (int64_t r = 0; r < 16; ++r)
                    for (int64_t j = 0; j < 16; ++j)
                        for (int64_t e = 0; e < 2; ++e) {
                            const int64_t col = p * 32 + t * 16 + j, kk = s * 32 + 2 * r + e;
                            const uint16_t want = col < c.n && kk < c.k ? to_bf16(w[col * c.k + kk]) : 0;
                            if (packed[((p * steps + s) * 2 + t) * 512 + r * 32 + j * 2 + e] != want) ++layout_bad;
                        }
    CHECK(layout_bad == 0, "m=%lld n=%lld k=%lld: %d packed elements misplaced", (long long)c.m, (long long)c.n,
          (long long)c.k, layout_bad);

    const float* bias = c.bias ? b.data() : nullptr;
    for (bool amx : {false, true}) {
        if (amx && !bert4j::cpu::amx_bf16_supported()) continue;
        std::vector<float> y(c.m * ldy, -777.0f);
        bert4j::cpu::linear_bf16_launch(x.data(), packed.data(), bias, y.data(), c.m, c.n, c.k, ldx, ldy, amx,
                                        threads);
        double worst = 0, worst_q = 0;
        int untouched = 0;
        for (int64_t r = 0; r < c.m; ++r) {
            for (int64_t j = 0; j < c.n; ++j) {
                double exact = 0, mag = 0, full = 0, fmag = 0;
                for (int64_t kk = 0; kk < c.k; ++kk) {
                    const double p = static_cast<double>(from_bf16(to_bf16(x[r * ldx + kk]))) *
                                     from_bf16(to_bf16(w[j * c.k + kk]));
                    exact += p;
                    mag += std::fabs(p);
                    full += static_cast<double>(x[r * ldx + kk]) * w[j * c.k + kk];
                    fmag += std::fabs(static_cast<double>(x[r * ldx + kk]) * w[j * c.k + kk]);
                }
                const double bj = c.bias ? b[j] : 0.0;
                const double got = y[r * ldy + j];
                const double sum_bound = static_cast<double>(c.k) * std::ldexp(1.0, -24) * mag +
                                         std::ldexp(1.0, -24) * (std::fabs(exact) + std::fabs(bj)) + 1e-30;
                worst = std::max(worst, std::fabs(got - (exact + bj)) / sum_bound);
                const double q_bound = fmag * (std::ldexp(1.0, -7) + std::ldexp(1.0, -16)) + 2 * sum_bound;
                worst_q = std::max(worst_q, std::fabs(got - (full + bj)) / q_bound);
            }
            for (int64_t j = c.n; j < ldy; ++j) untouched += y[r * ldy + j] != -777.0f;
        }
        CHECK(worst <= 1.0, "%s m=%lld n=%lld k=%lld threads=%d: %.3g x the fp32 summation bound", amx ? "amx" : "scalar",
              (long long)c.m, (long long)c.n, (long long)c.k, threads, worst);
        CHECK(worst_q <= 1.0, "%s m=%lld n=%lld k=%lld: %.3g x the bf16 rounding bound", amx ? "amx" : "scalar",
              (long long)c.m, (long long)c.n, (long long)c.k, worst_q);
        CHECK(untouched == 0, "%s: %d elements past n written", amx ? "amx" : "scalar", untouched);
    }
}

void check_nonfinite_rows(bool amx) {
    const int64_t m = 35, n = 40, k = 50;
    std::vector<float> x(m * k, 0.5f), w(n * k, 0.25f), y(m * n);
    x[1 * k + 17] = std::nanf("");
    x[33 * k + 3] = INFINITY;
    std::vector<uint16_t> packed(bert4j::cpu::bf16_packed_elements(n, k));
    bert4j::cpu::linear_bf16_pack(w.data(), n, k, k, packed.data());
    bert4j::cpu::linear_bf16_launch(x.data(), packed.data(), nullptr, y.data(), m, n, k, k, n, amx, 2);
    int bad = 0;
    for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) {
            const float v = y[r * n + j];
            if (r == 1) bad += !std::isnan(v);
            else if (r == 33) bad += !(std::isinf(v) && v > 0);
            else bad += v != 0.5f * 0.25f * k;
        }
    CHECK(bad == 0, "%s: %d outputs wrong with a NaN row and an inf row", amx ? "amx" : "scalar", bad);
}

void check_fused_gelu_pair(int64_t m, int64_t n1, int64_t k, int64_t n2, int approximate, int threads,
                           std::mt19937& rng) {
    using namespace bert4j::cpu;
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> x(m * k), w1(n1 * k), b1(n1), w2(n2 * n1), b2(n2);
    for (float& v : x) v = dist(rng);
    for (float& v : w1) v = dist(rng) * 0.2f;
    for (float& v : b1) v = dist(rng);
    for (float& v : w2) v = dist(rng) * 0.1f;
    for (float& v : b2) v = dist(rng);
    std::vector<uint16_t> p1(bf16_packed_elements(n1, k)), p2(bf16_packed_elements(n2, n1));
    linear_bf16_pack(w1.data(), n1, k, k, p1.data());
    linear_bf16_pack(w2.data(), n2, n1, n1, p2.data());
    // Three steps.
    std::vector<float> inter(m * n1), want(m * n2), got(m * n2, -777.0f);
    linear_bf16_launch(x.data(), p1.data(), nullptr, inter.data(), m, n1, k, k, n1, true, threads);
    bias_gelu_launch(inter.data(), b1.data(), inter.data(), m, n1, n1, n1, approximate, best_isa(), threads);
    linear_bf16_launch(inter.data(), p2.data(), b2.data(), want.data(), m, n2, n1, n1, n2, true, threads);
    // Fused pair.
    const uint16_t* a = linear_bf16_gelu_launch(x.data(), p1.data(), b1.data(), m, n1, k, k, approximate, threads);
    linear_bf16_blocked_launch(a, p2.data(), b2.data(), got.data(), m, n2, n1, n2, threads);
    int64_t diff = 0;
    for (int64_t i = 0; i < m * n2; ++i) diff += std::memcmp(&want[i], &got[i], 4) != 0;
    CHECK(diff == 0, "fused GELU pair m=%lld n1=%lld k=%lld n2=%lld gelu=%d threads=%d: %lld of %lld outputs differ",
          (long long)m, (long long)n1, (long long)k, (long long)n2, approximate, threads, (long long)diff,
          (long long)(m * n2));
}

void check_arguments() {
    std::vector<float> x(64), y(64);
    std::vector<uint16_t> p(2048);
    int64_t e = 0;
    CHECK(bert4j_linear_bf16_packed_size(-1, 4, &e) == BERT4J_ERR_INVALID_ARGUMENT, "n < 0");
    CHECK(bert4j_linear_bf16_packed_size(4, 4, nullptr) == BERT4J_ERR_NULL_POINTER, "elements NULL");
    CHECK(bert4j_linear_bf16_packed_size(int64_t{1} << 40, int64_t{1} << 40, &e) == BERT4J_ERR_INVALID_ARGUMENT,
          "too large");
    CHECK(bert4j_linear_bf16_packed_size(0, 7, &e) == BERT4J_OK && e == 0, "empty");
    CHECK(bert4j_linear_bf16_pack(nullptr, 4, 4, 4, p.data()) == BERT4J_ERR_NULL_POINTER, "w NULL");
    CHECK(bert4j_linear_bf16_pack(x.data(), 4, 4, 3, p.data()) == BERT4J_ERR_INVALID_ARGUMENT, "w stride");
    CHECK(std::strstr(bert4j_last_error(), "w_row_stride") != nullptr, "message names the stride: %s",
          bert4j_last_error());
    CHECK(bert4j_linear_bf16_f32(x.data(), p.data(), nullptr, y.data(), -1, 4, 4, 4, 4) ==
              BERT4J_ERR_INVALID_ARGUMENT, "m < 0");
    CHECK(bert4j_linear_bf16_f32(nullptr, p.data(), nullptr, y.data(), 2, 4, 4, 4, 4) == BERT4J_ERR_NULL_POINTER,
          "x NULL");
    CHECK(bert4j_linear_bf16_f32(x.data(), nullptr, nullptr, y.data(), 2, 4, 4, 4, 4) == BERT4J_ERR_NULL_POINTER,
          "packed NULL");
    CHECK(bert4j_linear_bf16_f32(x.data(), p.data(), nullptr, nullptr, 2, 4, 4, 4, 4) == BERT4J_ERR_NULL_POINTER,
          "y NULL");
    CHECK(bert4j_linear_bf16_f32(x.data(), p.data(), nullptr, y.data(), 2, 4, 4, 3, 4) ==
              BERT4J_ERR_INVALID_ARGUMENT, "x stride");
    CHECK(bert4j_linear_bf16_f32(x.data(), p.data(), nullptr, y.data(), 2, 4, 4, 4, 3) ==
              BERT4J_ERR_INVALID_ARGUMENT, "y stride");
    const float bias[3] = {1, 2, 3};
    CHECK(bert4j_linear_bf16_f32(nullptr, nullptr, bias, y.data(), 2, 3, 0, 0, 3) == BERT4J_OK && y[4] == 2.0f,
          "k == 0 writes the bias");
}

}  // namespace

int main() {
    std::mt19937 rng(7);
    const bool amx = bert4j::cpu::amx_bf16_supported();
    std::printf("bf16 paths: scalar%s (bert4j_linear_bf16_amx() = %d)\n", amx ? ", amx" : "", bert4j_linear_bf16_amx());
    check_rounding();
    for (int threads : {1, 2}) {
        for (int64_t m : {1, 7, 13, 16, 17, 31, 32, 33, 48, 70}) {
            run_case({m, 1152, 384, 0, 0, true}, threads, rng);
            run_case({m, 384, 1536, 3, 5, false}, threads, rng);
        }
    }
    for (int64_t n = 1; n <= 70; n += 3) run_case({19, n, 9, 1, 2, n % 2 == 0}, 2, rng);
    for (int64_t k = 1; k <= 70; k += 3) run_case({37, 33, k, 2, 0, true}, 2, rng);
    {
        // Through the entry point (AMX when present).
        const int64_t m = 100, n = 1536, k = 384;
        std::vector<float> x(m * k), w(n * k), y1(m * n), y2(m * n);
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (float& v : x) v = dist(rng);
        for (float& v : w) v = dist(rng);
        std::vector<uint16_t> packed(bert4j::cpu::bf16_packed_elements(n, k));
        CHECK(bert4j_linear_bf16_pack(w.data(), n, k, k, packed.data()) == BERT4J_OK, "pack");
        bert4j_set_num_threads(2);
        CHECK(bert4j_linear_bf16_f32(x.data(), packed.data(), nullptr, y1.data(), m, n, k, k, n) == BERT4J_OK,
              "entry: %s", bert4j_last_error());
        // The entry point takes AMX when present, else the scalar path: the same bits as that path.
        bert4j::cpu::linear_bf16_launch(x.data(), packed.data(), nullptr, y2.data(), m, n, k, k, n, amx, 2);
        CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0, "entry point differs from the %s path",
              amx ? "AMX" : "scalar");
    }
    check_nonfinite_rows(false);
    if (amx) {
        check_nonfinite_rows(true);
        if (bert4j::cpu::best_isa() == bert4j::cpu::Isa::Avx512) {
            for (int64_t m : {1, 7, 16, 17, 33, 70})
                for (int approximate : {BERT4J_GELU_EXACT, BERT4J_GELU_TANH})
                    check_fused_gelu_pair(m, 1536, 384, 384, approximate, 2, rng);
            check_fused_gelu_pair(19, 37, 9, 5, BERT4J_GELU_EXACT, 1, rng);  // tails: n1, k, n2 not multiples of 32
            check_fused_gelu_pair(45, 70, 41, 33, BERT4J_GELU_TANH, 2, rng);
        }
    }
    check_arguments();
    std::printf("%s (%d failures)\n", bert4j::test::g_failures == 0 ? "PASS" : "FAIL", bert4j::test::g_failures);
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
