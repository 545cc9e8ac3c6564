// CPU prepacked linear (y = x . w^T + bias) against a float64 reference: every code path this
// CPU supports (scalar, AVX2+FMA, AVX-512, called through the launcher; ctest also reruns the
// whole test with BERT4J_CPU_ISA=avx2|scalar so the entry points take each path), 1 and 2
// threads, the BERT shapes and awkward ones (tail panels, tail row blocks), bias and no bias,
// padded x/y rows, and every argument the entry points must reject.
//
// Bound (per element): the kernel sums k fp32 products in order, then adds the bias, so by the
// standard forward error bound for a recursive sum of products (each product and each partial
// sum rounded once; an FMA only rounds less),
//     |y - ref| <= gamma(k + 1) * (sum_kk |x[kk] w[kk]| + |bias|),  gamma(j) = j u / (1 - j u)
// with u = 2^-24. That bound is rigorous (no flaky failures) and still ~1e3 times smaller than
// what any indexing or packing mistake produces with these O(1) random inputs. The measured
// maximum of |y - ref| / (sum |x w| + |bias|) is printed, for comparison with u sqrt(k).
//
// Padding cells of y (between n and the row stride) are filled with a sentinel and must keep
// it: the kernels' masked tail stores must not write past column n.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../src/cpu/linear.h"
#include "bert4j_kernels.h"
#include "test_util.h"

using bert4j::cpu::Isa;

namespace {

const char* isa_name(Isa isa) {
    return isa == Isa::Scalar ? "scalar" : isa == Isa::Avx2Fma ? "avx2" : "avx512";
}

constexpr float kSentinel = -12345.0f;

struct Case {
    int64_t m, n, k;
    int64_t xpad, ypad, wpad;
    bool bias;
};

double g_max_ratio = 0.0;

// Runs one case through the launcher with `isa` (or, when via_entry, through the public entry
// point, which picks best_isa()), checks every element against the float64 reference.
void run_case(const Case& c, Isa isa, int threads, bool via_entry, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t ldx = c.k + c.xpad, ldy = c.n + c.ypad, ldw = c.k + c.wpad;
    std::vector<float> x(static_cast<size_t>(c.m * ldx)), w(static_cast<size_t>(c.n * ldw)),
        b(static_cast<size_t>(c.n)), y(static_cast<size_t>(c.m * ldy), kSentinel);
    for (float& v : x) v = dist(rng);
    for (float& v : w) v = dist(rng);
    for (float& v : b) v = dist(rng);

    int64_t floats = -1;
    CHECK(bert4j_linear_packed_size_f32(c.n, c.k, &floats) == BERT4J_OK, "size: %s",
          bert4j_last_error());
    CHECK(floats == bert4j::cpu::linear_packed_floats(c.n, c.k), "size %lld", (long long)floats);
    // One extra guard float after the buffer: pack must write exactly `floats` elements.
    std::vector<float> packed(static_cast<size_t>(floats) + 1, kSentinel);
    CHECK(bert4j_linear_pack_f32(w.data(), c.n, c.k, ldw, packed.data()) == BERT4J_OK, "pack: %s",
          bert4j_last_error());
    CHECK(packed[static_cast<size_t>(floats)] == kSentinel, "pack wrote past the packed size");

    const float* bias = c.bias ? b.data() : nullptr;
    if (via_entry) {
        bert4j_set_num_threads(threads);
        CHECK(bert4j_linear_packed_f32(x.data(), packed.data(), bias, y.data(), c.m, c.n, c.k, ldx,
                                       ldy) == BERT4J_OK,
              "linear: %s", bert4j_last_error());
    } else {
        bert4j::cpu::linear_packed_launch(x.data(), packed.data(), bias, y.data(), c.m, c.n, c.k,
                                          ldx, ldy, isa, threads);
    }

    const double u = std::ldexp(1.0, -24);
    const double gamma = (c.k + 1) * u / (1.0 - (c.k + 1) * u);
    int bad = 0;
    for (int64_t r = 0; r < c.m; ++r) {
        for (int64_t j = 0; j < c.n; ++j) {
            double ref = 0.0, mag = 0.0;
            for (int64_t kk = 0; kk < c.k; ++kk) {
                const double p = static_cast<double>(x[r * ldx + kk]) * w[j * ldw + kk];
                ref += p;
                mag += std::fabs(p);
            }
            if (c.bias) {
                ref += b[j];
                mag += std::fabs(b[j]);
            }
            const double got = y[r * ldy + j];
            const double err = std::fabs(got - ref);
            if (mag > 0) g_max_ratio = std::max(g_max_ratio, err / mag);
            if (!(err <= gamma * mag) && bad++ < 3)
                CHECK(false, "%s%s t=%d m=%lld n=%lld k=%lld bias=%d: y[%lld,%lld]=%.9g ref %.12g",
                      via_entry ? "entry " : "", isa_name(isa), threads, (long long)c.m,
                      (long long)c.n, (long long)c.k, c.bias, (long long)r, (long long)j, got, ref);
        }
        for (int64_t j = c.n; j < ldy; ++j)
            if (y[r * ldy + j] != kSentinel && bad++ < 3)
                CHECK(false, "%s t=%d m=%lld n=%lld k=%lld: padding y[%lld,%lld] overwritten",
                      isa_name(isa), threads, (long long)c.m, (long long)c.n, (long long)c.k,
                      (long long)r, (long long)j);
    }
}

void test_arguments() {
    float buf[64] = {};
    int64_t floats = 0;
    CHECK(bert4j_linear_packed_size_f32(4, 3, nullptr) == BERT4J_ERR_NULL_POINTER, "floats NULL");
    CHECK(bert4j_linear_packed_size_f32(-1, 3, &floats) == BERT4J_ERR_INVALID_ARGUMENT, "n < 0");
    CHECK(std::strstr(bert4j_last_error(), "n and k must be >= 0") != nullptr, "msg: %s",
          bert4j_last_error());
    CHECK(bert4j_linear_packed_size_f32(4, -3, &floats) == BERT4J_ERR_INVALID_ARGUMENT, "k < 0");
    CHECK(bert4j_linear_packed_size_f32(INT64_MAX, INT64_MAX / 2, &floats) ==
              BERT4J_ERR_INVALID_ARGUMENT,
          "overflow");
    CHECK(std::strstr(bert4j_last_error(), "overflows") != nullptr, "msg: %s", bert4j_last_error());
    CHECK(bert4j_linear_packed_size_f32(0, 7, &floats) == BERT4J_OK && floats == 0, "n=0 -> 0");
    CHECK(bert4j_linear_packed_size_f32(33, 2, &floats) == BERT4J_OK && floats == 128, "33x2 -> %lld",
          (long long)floats);
    CHECK(bert4j_last_error()[0] == '\0', "message reset after success");

    CHECK(bert4j_linear_pack_f32(nullptr, 2, 2, 2, buf) == BERT4J_ERR_NULL_POINTER, "w NULL");
    CHECK(std::strstr(bert4j_last_error(), "w is NULL") != nullptr, "msg: %s", bert4j_last_error());
    CHECK(bert4j_linear_pack_f32(buf, 2, 2, 2, nullptr) == BERT4J_ERR_NULL_POINTER, "packed NULL");
    CHECK(bert4j_linear_pack_f32(buf, 2, 3, 2, buf + 8) == BERT4J_ERR_INVALID_ARGUMENT,
          "w_row_stride < k");
    CHECK(std::strstr(bert4j_last_error(), "w_row_stride") != nullptr, "msg: %s",
          bert4j_last_error());
    CHECK(bert4j_linear_pack_f32(buf, -2, 3, 3, buf) == BERT4J_ERR_INVALID_ARGUMENT, "n < 0");
    CHECK(bert4j_linear_pack_f32(nullptr, 0, 3, 3, nullptr) == BERT4J_OK, "n = 0 no-op");
    CHECK(bert4j_linear_pack_f32(nullptr, 3, 0, 0, nullptr) == BERT4J_OK, "k = 0 no-op");

    float* y = buf + 32;
    CHECK(bert4j_linear_packed_f32(buf, buf, nullptr, y, -1, 2, 2, 2, 2) ==
              BERT4J_ERR_INVALID_ARGUMENT,
          "m < 0");
    CHECK(std::strstr(bert4j_last_error(), "m, n and k must be >= 0") != nullptr, "msg: %s",
          bert4j_last_error());
    CHECK(bert4j_linear_packed_f32(nullptr, buf, nullptr, y, 2, 2, 2, 2, 2) ==
              BERT4J_ERR_NULL_POINTER,
          "x NULL");
    CHECK(std::strstr(bert4j_last_error(), "x is NULL") != nullptr, "msg: %s", bert4j_last_error());
    CHECK(bert4j_linear_packed_f32(buf, nullptr, nullptr, y, 2, 2, 2, 2, 2) ==
              BERT4J_ERR_NULL_POINTER,
          "packed NULL");
    CHECK(bert4j_linear_packed_f32(buf, buf, nullptr, nullptr, 2, 2, 2, 2, 2) ==
              BERT4J_ERR_NULL_POINTER,
          "y NULL");
    CHECK(bert4j_linear_packed_f32(buf, buf, nullptr, y, 2, 2, 3, 2, 2) ==
              BERT4J_ERR_INVALID_ARGUMENT,
          "x_row_stride < k");
    CHECK(std::strstr(bert4j_last_error(), "x_row_stride must be >= k (3), got 2") != nullptr,
          "msg: %s", bert4j_last_error());
    CHECK(bert4j_linear_packed_f32(buf, buf, nullptr, y, 2, 3, 2, 2, 2) ==
              BERT4J_ERR_INVALID_ARGUMENT,
          "y_row_stride < n");
    CHECK(std::strstr(bert4j_last_error(), "y_row_stride") != nullptr, "msg: %s",
          bert4j_last_error());
    // Zero-size products are no-ops with NULL pointers allowed...
    CHECK(bert4j_linear_packed_f32(nullptr, nullptr, nullptr, nullptr, 0, 5, 3, 3, 5) == BERT4J_OK,
          "m = 0");
    CHECK(bert4j_linear_packed_f32(nullptr, nullptr, nullptr, nullptr, 4, 0, 3, 3, 0) == BERT4J_OK,
          "n = 0");
    // ...but k == 0 still defines y: the empty sum plus the bias.
    float yk[6];
    const float bk[3] = {1.5f, -2.0f, 0.25f};
    for (float& v : yk) v = kSentinel;
    CHECK(bert4j_linear_packed_f32(nullptr, nullptr, bk, yk, 2, 3, 0, 0, 3) == BERT4J_OK,
          "k = 0: %s", bert4j_last_error());
    CHECK(yk[0] == 1.5f && yk[1] == -2.0f && yk[2] == 0.25f && yk[3] == 1.5f && yk[5] == 0.25f,
          "k = 0 gives y = bias");
    CHECK(bert4j_linear_packed_f32(nullptr, nullptr, nullptr, yk, 2, 3, 0, 0, 3) == BERT4J_OK,
          "k = 0 no bias");
    CHECK(yk[0] == 0.0f && yk[4] == 0.0f, "k = 0 without bias gives y = 0");
}

}  // namespace

int main() {
    std::mt19937 rng(20261129);
    test_arguments();

    const int64_t ms[] = {1, 3, 12, 33, 128};
    const int64_t nks[][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}, {7, 5}, {33, 17}};
    for (Isa isa : {Isa::Scalar, Isa::Avx2Fma, Isa::Avx512}) {
        if (!bert4j::cpu::isa_supported(isa)) {
            std::printf("%s path: not supported on this CPU, skipped\n", isa_name(isa));
            continue;
        }
        g_max_ratio = 0.0;
        for (int64_t m : ms) {
            for (const auto& nk : nks) {
                // Contiguous, 1 thread, with bias; padded rows, 2 threads, without bias.
                run_case({m, nk[0], nk[1], 0, 0, 0, true}, isa, 1, false, rng);
                run_case({m, nk[0], nk[1], 3, 5, 2, false}, isa, 2, false, rng);
            }
        }
        // Odd panel / row-block tails on their own: n = 1..70, every width of the 64-column panel
        // (each of the AVX-512 tile's four masked vectors, the AVX2 quarters) and past it.
        for (int64_t n = 1; n <= 70; ++n) run_case({13, n, 9, 1, 1, 0, n % 2 == 0}, isa, 2, false, rng);
        std::printf("%s path: max |y - ref| / (sum |x w| + |b|) = %.3g (u = %.3g)\n",
                    isa_name(isa), g_max_ratio, std::ldexp(1.0, -24));
    }
    // The public entry point, on whatever path best_isa() chose (ctest forces each one).
    for (int64_t m : {1, 12, 33}) {
        run_case({m, 1152, 384, 0, 0, 0, true}, bert4j::cpu::best_isa(), 2, true, rng);
        run_case({m, 33, 17, 2, 3, 1, false}, bert4j::cpu::best_isa(), 1, true, rng);
    }
    std::printf("entry point path: %s\n", isa_name(bert4j::cpu::best_isa()));

    if (bert4j::test::g_failures == 0) std::printf("test_linear: all checks passed\n");
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
