// CUDA bias+GELU: argument checks (run everywhere, no GPU needed: they fail before any
// CUDA call) and, where a GPU is present, fp32/bf16 results against the float64
// reference on the fp32 sum h = x + bias. Exits 77 (CTest "skipped") without a GPU.
//
// Tolerances: fp32 exact 1e-6 relative (normcdff <= 5 ulp, plus the product), fp32 tanh
// 1e-6 relative + 1e-9 absolute (as the CPU AVX2 path: fp32 u amplified by exp in the
// negative tail); bf16 2^-8 relative (the output rounding alone is 2^-9) + 1e-30.

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bert4j_kernels.h"
#include "test_util.h"

namespace {

double ref_gelu(float h, int approximate) {
    const double d = h;
    if (approximate == BERT4J_GELU_EXACT) return 0.5 * d * std::erfc(-d / std::sqrt(2.0));
    const double u = std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d);
    return d / (1.0 + std::exp(-2.0 * u));
}

uint16_t to_bf16(float f) {  // round to nearest even, as __float2bfloat16_rn (no NaNs here)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t b) {
    const uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

void expect_reject(const char* what, int status, int expected, const char* must_contain) {
    const std::string msg = bert4j_last_error();
    CHECK(status == expected, "%s: status %d, expected %d (%s)", what, status, expected, msg.c_str());
    CHECK(msg.find(must_contain) != std::string::npos, "%s: message '%s' lacks '%s'", what,
          msg.c_str(), must_contain);
}

void test_bad_arguments() {
    float f[16] = {};
    uint16_t h[16] = {};
    expect_reject("f32 x NULL", bert4j_bias_gelu_forward_f32_cuda(nullptr, f, f, 2, 4, 4, 4, 0, nullptr),
                  BERT4J_ERR_NULL_POINTER, "bert4j_bias_gelu_forward_f32_cuda: x is NULL");
    expect_reject("f32 stride", bert4j_bias_gelu_forward_f32_cuda(f, f, f, 2, 4, 4, 3, 0, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "y_row_stride must be >= cols (4)");
    expect_reject("bf16 bias NULL", bert4j_bias_gelu_forward_bf16_cuda(h, nullptr, h, 2, 4, 4, 4, 1, nullptr),
                  BERT4J_ERR_NULL_POINTER, "bias is NULL");
    expect_reject("bf16 approximate", bert4j_bias_gelu_forward_bf16_cuda(h, h, h, 2, 4, 4, 4, 7, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "approximate must be 0");
    expect_reject("bf16 rows", bert4j_bias_gelu_forward_bf16_cuda(h, h, h, -3, 4, 4, 4, 0, nullptr),
                  BERT4J_ERR_INVALID_ARGUMENT, "rows must be >= 0, got -3");
    CHECK(bert4j_bias_gelu_forward_f32_cuda(nullptr, nullptr, nullptr, 0, 4, 4, 4, 0, nullptr) == BERT4J_OK,
          "empty: %s", bert4j_last_error());
}

template <typename T>
T* device_copy(const std::vector<T>& host) {
    T* d = nullptr;
    if (cudaMalloc(&d, host.size() * sizeof(T) + 16) != cudaSuccess) return nullptr;
    cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}

// One case: bf16 or fp32, padded strides (pad != 0 forces the scalar-width kernel).
void run_case(bool bf16, int approximate, int64_t rows, int64_t cols, int64_t pad,
              std::mt19937& rng, double& max_rel) {
    const int64_t xs = cols + pad, ys = cols + pad;
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> xf(rows * xs), bf(cols);
    for (auto& v : xf) v = normal(rng);
    for (auto& v : bf) v = 0.5f * normal(rng);
    std::vector<float> got(rows * ys);
    int status;
    if (bf16) {
        std::vector<uint16_t> xh(xf.size()), bh(bf.size()), yh(got.size());
        for (size_t i = 0; i < xf.size(); ++i) { xh[i] = to_bf16(xf[i]); xf[i] = from_bf16(xh[i]); }
        for (size_t i = 0; i < bf.size(); ++i) { bh[i] = to_bf16(bf[i]); bf[i] = from_bf16(bh[i]); }
        uint16_t *dx = device_copy(xh), *db = device_copy(bh), *dy = device_copy(yh);
        status = bert4j_bias_gelu_forward_bf16_cuda(dx, db, dy, rows, cols, xs, ys, approximate, nullptr);
        cudaMemcpy(yh.data(), dy, yh.size() * 2, cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < yh.size(); ++i) got[i] = from_bf16(yh[i]);
        cudaFree(dx); cudaFree(db); cudaFree(dy);
    } else {
        float *dx = device_copy(xf), *db = device_copy(bf), *dy = device_copy(got);
        status = bert4j_bias_gelu_forward_f32_cuda(dx, db, dy, rows, cols, xs, ys, approximate, nullptr);
        cudaMemcpy(got.data(), dy, got.size() * 4, cudaMemcpyDeviceToHost);
        cudaFree(dx); cudaFree(db); cudaFree(dy);
    }
    const cudaError_t sync = cudaDeviceSynchronize();
    CHECK(status == BERT4J_OK && sync == cudaSuccess, "launch: %s / %s", bert4j_last_error(),
          cudaGetErrorString(sync));
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const float h = xf[r * xs + c] + bf[c];
            const double ref = ref_gelu(h, approximate);
            const double err = std::fabs(got[r * ys + c] - ref);
            const double tol = bf16 ? 0.00390625 * std::fabs(ref) + 1e-30
                               : approximate ? 1e-6 * std::fabs(ref) + 1e-9
                                             : 1e-6 * std::fabs(ref) + 1e-37;
            if (std::fabs(ref) > 1e-30) max_rel = std::max(max_rel, err / std::fabs(ref));
            if (!(err <= tol) && bad++ < 3)
                CHECK(false, "%s approx=%d [%lld x %lld] pad %lld (%lld, %lld): h=%.9g got %.9g ref %.17g",
                      bf16 ? "bf16" : "f32", approximate, (long long)rows, (long long)cols,
                      (long long)pad, (long long)r, (long long)c, h, got[r * ys + c], ref);
        }
}

}  // namespace

int main() {
    test_bad_arguments();
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("argument checks: %s; no CUDA device (%s): numeric tests skipped\n",
                    bert4j::test::g_failures ? "FAILED" : "passed", cudaGetErrorString(err));
        return bert4j::test::g_failures ? 1 : 77;
    }
    std::mt19937 rng(20261128);
    for (bool bf16 : {false, true})
        for (int approximate : {0, 1}) {
            double max_rel = 0;
            for (int64_t rows : {1, 7, 97})
                for (int64_t cols : {1, 3, 384, 1536, 3072})
                    for (int64_t pad : {0, 3}) run_case(bf16, approximate, rows, cols, pad, rng, max_rel);
            std::printf("cuda %s approx=%d: max rel err %.3g\n", bf16 ? "bf16" : "f32", approximate, max_rel);
        }
    if (bert4j::test::g_failures == 0) std::printf("test_bias_gelu_cuda: all checks passed\n");
    return bert4j::test::g_failures == 0 ? 0 : 1;
}
