// CPU int8 linear layer (dynamic quantization) against two references:
//  1. exact: the integer sums recomputed in int64 from the library's own quantized values
//     (quantize_rows_u8 for x; the packed bytes for w), then the documented epilogue in double:
//     any indexing, packing, tail or accumulation mistake shows up here, with a tolerance of a
//     few float roundings of the epilogue (|y| * 1e-5 + 1e-5);
//  2. the float64 product x . w^T + bias, within the quantization error bound
//     sum_kk (s_i/2 |w| + r_j/2 |x| + s_i r_j / 4) + float rounding: the quantization itself is right.
// Every code path this CPU has (VNNI when present, and scalar; ctest reruns the whole test
// with BERT4J_CPU_ISA=avx2|scalar), 1 and 2 threads, BERT shapes and awkward ones (k not a
// multiple of 4, tail panels and row blocks, padded rows), quantizer bytes identical across
// paths, NaN rows, and the entry points' argument checks.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../src/cpu/linear_int8.h"
#include "bert4j_kernels.h"
#include "test_util.h"

using bert4j::cpu::Isa;

namespace {

struct Case {
    int64_t m, n, k, xpad, ypad;
    bool bias;
};

void run_case(const Case& c, Isa isa, int threads, bool via_entry, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t ldx = c.k + c.xpad, ldy = c.n + c.ypad;
    std::vector<float> x(c.m * ldx), w(c.n * c.k), b(c.n), y(c.m * ldy, -777.0f);
    for (float& v : x) v = dist(rng);
    for (float& v : w) v = dist(rng) * 0.2f;
    for (float& v : b) v = dist(rng);
    int64_t bytes = -1;
    CHECK(bert4j_linear_int8_packed_size(c.n, c.k, &bytes) == BERT4J_OK, "size: %s", bert4j_last_error());
    std::vector<uint8_t> packed(bytes);
    CHECK(bert4j_linear_int8_pack(w.data(), c.n, c.k, c.k, packed.data()) == BERT4J_OK, "pack: %s",
          bert4j_last_error());
    const float* bias = c.bias ? b.data() : nullptr;
    if (via_entry) {
        bert4j_set_num_threads(threads);
        CHECK(bert4j_linear_int8_f32(x.data(), packed.data(), bias, y.data(), c.m, c.n, c.k, ldx, ldy) ==
                  BERT4J_OK, "linear: %s", bert4j_last_error());
    } else {
        bert4j::cpu::linear_int8_launch(x.data(), packed.data(), bias, y.data(), c.m, c.n, c.k, ldx, ldy,
                                        isa, threads);
    }
    // The library's own quantization of x (scalar path) and the packed weight bytes.
    const int64_t k4 = bert4j::cpu::int8_k4(c.k), ldq = 4 * k4;
    std::vector<uint8_t> q(c.m * ldq);
    std::vector<float> s(c.m), z(c.m);
    bert4j::cpu::quantize_rows_u8(x.data(), c.m, c.k, ldx, q.data(), ldq, s.data(), z.data(), Isa::Scalar, 1);
    const float* scale = reinterpret_cast<const float*>(packed.data() + bert4j::cpu::int8_scales_offset(c.n, c.k));
    const float* scale_sum = scale + bert4j::cpu::int8_panels(c.n) * bert4j::cpu::kInt8Panel;
    double worst_exact = 0, worst_bound = 0;
    for (int64_t i = 0; i < c.m; ++i) {
        for (int64_t j = 0; j < c.n; ++j) {
            const int64_t p = j / 32, jj = j % 32;
            int64_t acc = 0;
            double ref = c.bias ? b[j] : 0.0, bound = 0.0;
            for (int64_t kk = 0; kk < c.k; ++kk) {
                const int8_t qw = static_cast<int8_t>(packed[((p * k4 + kk / 4) * 32 + jj) * 4 + kk % 4]);
                acc += static_cast<int64_t>(q[i * ldq + kk]) * qw;
                const double xv = x[i * ldx + kk], wv = w[j * c.k + kk];
                ref += xv * wv;
                bound += s[i] / 2.0 * std::fabs(wv) + scale[j] / 2.0 * std::fabs(xv) + s[i] * scale[j] / 4.0;
            }
            const double exact = static_cast<double>(s[i]) * scale[j] * static_cast<double>(acc) +
                                 static_cast<double>(z[i]) * scale_sum[j] + (c.bias ? b[j] : 0.0);
            const double got = y[i * ldy + j];
            const double e1 = std::fabs(got - exact), tol1 = 1e-5 * (std::fabs(exact) + 1.0);
            const double e2 = std::fabs(got - ref), tol2 = bound + 1e-4 * (std::fabs(ref) + 1.0);
            worst_exact = std::max(worst_exact, e1 / tol1);
            worst_bound = std::max(worst_bound, e2 / tol2);
        }
        for (int64_t j = c.n; j < ldy; ++j)
            CHECK(y[i * ldy + j] == -777.0f, "padding written at [%lld, %lld]", (long long)i, (long long)j);
    }
    CHECK(worst_exact <= 1.0, "m=%lld n=%lld k=%lld isa=%d: error vs exact integer reference %.3g x tolerance",
          (long long)c.m, (long long)c.n, (long long)c.k, static_cast<int>(isa), worst_exact);
    CHECK(worst_bound <= 1.0, "m=%lld n=%lld k=%lld: error vs float64 %.3g x the quantization bound",
          (long long)c.m, (long long)c.n, (long long)c.k, worst_bound);
}

}  // namespace

int main() {
    std::mt19937 rng(42);
    std::vector<Isa> isas{Isa::Scalar};
    if (bert4j::cpu::best_isa() == Isa::Avx512) isas.push_back(Isa::Avx512);
    std::printf("int8 paths: scalar%s (VNNI %s)\n", isas.size() > 1 ? ", avx512" : "",
                bert4j::cpu::int8_vnni_supported() ? "yes" : "no");
    for (Isa isa : isas) {
        for (int64_t m : {1, 7, 12, 13, 30}) {
            run_case({m, 1152, 384, 0, 0, true}, isa, 2, false, rng);
            run_case({m, 384, 1536, 3, 5, false}, isa, 1, false, rng);
        }
        for (int64_t n = 1; n <= 40; n += 3) run_case({13, n, 9, 1, 1, n % 2 == 0}, isa, 2, false, rng);
        for (int64_t k = 1; k <= 9; ++k) run_case({25, 33, k, 2, 0, true}, isa, 2, false, rng);
    }
    run_case({100, 1536, 384, 0, 0, true}, bert4j::cpu::best_isa(), 2, true, rng);

    // The AVX-512 quantizer writes the same bytes and parameters as the scalar one.
    if (bert4j::cpu::best_isa() == Isa::Avx512) {
        std::normal_distribution<float> nd(0.0f, 3.0f);
        const int64_t m = 9, k = 389, ldq = 392;
        std::vector<float> x(m * k);
        for (float& v : x) v = nd(rng);
        std::vector<uint8_t> q1(m * ldq), q2(m * ldq);
        std::vector<float> s1(m), z1(m), s2(m), z2(m);
        bert4j::cpu::quantize_rows_u8(x.data(), m, k, k, q1.data(), ldq, s1.data(), z1.data(), Isa::Scalar, 1);
        bert4j::cpu::quantize_rows_u8(x.data(), m, k, k, q2.data(), ldq, s2.data(), z2.data(), Isa::Avx512, 2);
        CHECK(q1 == q2 && s1 == s2 && z1 == z2, "AVX-512 and scalar quantizers differ");
    }

    // A NaN or an infinity in a row of x: that row's outputs are NaN, the others are finite.
    {
        const int64_t m = 3, n = 40, k = 50;
        std::vector<float> x(m * k, 0.5f), w(n * k, 0.25f), y(m * n);
        x[1 * k + 17] = std::nanf("");
        x[2 * k + 3] = INFINITY;
        int64_t bytes = 0;
        bert4j_linear_int8_packed_size(n, k, &bytes);
        std::vector<uint8_t> packed(bytes);
        bert4j_linear_int8_pack(w.data(), n, k, k, packed.data());
        CHECK(bert4j_linear_int8_f32(x.data(), packed.data(), nullptr, y.data(), m, n, k, k, n) == BERT4J_OK, "nan");
        for (int64_t j = 0; j < n; ++j) {
            CHECK(std::isfinite(y[j]) && std::fabs(y[j] - 0.5f * 0.25f * k) < 0.05f, "row 0 [%lld] = %g", (long long)j, y[j]);
            CHECK(std::isnan(y[n + j]), "row 1 (NaN input) [%lld] = %g", (long long)j, y[n + j]);
            CHECK(std::isnan(y[2 * n + j]), "row 2 (inf input) [%lld] = %g", (long long)j, y[2 * n + j]);
        }
        w[5] = INFINITY;
        CHECK(bert4j_linear_int8_pack(w.data(), n, k, k, packed.data()) == BERT4J_ERR_INVALID_ARGUMENT, "inf weight");
        CHECK(std::strstr(bert4j_last_error(), "w[0, 5] is not finite") != nullptr, "msg: %s", bert4j_last_error());
    }

    // Argument checks.
    {
        int64_t bytes = 0;
        float x[4] = {}, y[4] = {};
        uint8_t p[4] = {};
        CHECK(bert4j_linear_int8_packed_size(4, 70000, &bytes) == BERT4J_ERR_INVALID_ARGUMENT, "k too big");
        CHECK(std::strstr(bert4j_last_error(), "k must be <= 65536") != nullptr, "msg: %s", bert4j_last_error());
        CHECK(bert4j_linear_int8_packed_size(4, 4, nullptr) == BERT4J_ERR_NULL_POINTER, "null bytes");
        CHECK(bert4j_linear_int8_f32(x, p, nullptr, y, -1, 1, 1, 1, 1) == BERT4J_ERR_INVALID_ARGUMENT, "m < 0");
        CHECK(bert4j_linear_int8_f32(nullptr, p, nullptr, y, 1, 1, 1, 1, 1) == BERT4J_ERR_NULL_POINTER, "null x");
        CHECK(bert4j_linear_int8_f32(x, nullptr, nullptr, y, 1, 1, 1, 1, 1) == BERT4J_ERR_NULL_POINTER, "null packed");
        CHECK(bert4j_linear_int8_f32(x, p, nullptr, y, 1, 2, 3, 2, 2) == BERT4J_ERR_INVALID_ARGUMENT, "x stride");
        CHECK(std::strstr(bert4j_last_error(), "x_row_stride must be >= k (3), got 2") != nullptr, "msg: %s",
              bert4j_last_error());
        CHECK(bert4j_linear_int8_f32(x, p, nullptr, y, 1, 2, 3, 3, 1) == BERT4J_ERR_INVALID_ARGUMENT, "y stride");
        CHECK(bert4j_linear_int8_pack(nullptr, 2, 2, 2, p) == BERT4J_ERR_NULL_POINTER, "null w");
    }
    std::printf("%s: %d failure(s)\n", __FILE__, bert4j::test::g_failures);
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
