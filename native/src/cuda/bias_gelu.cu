// Fused bias + GELU on CUDA, fp32 and bf16 storage (math in fp32). Three layers: the
// kernel, the launcher (vector width, grid, stream, launch check), the checked C entry
// points. Built only into libbert4j_kernels_cuda (see native/CMakeLists.txt).
//
// Accuracy: exact GELU is h * normcdff(h) (CUDA's normcdff: <= 5 ulp, and no 1 + erf
// cancellation for h < 0); tanh GELU is h / (1 + expf(-2u)), the same cancellation-free
// form as the CPU path. Full-precision expf/normcdff: do not build with --use_fast_math.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <exception>

#include "../common/status.h"
#include "bert4j_kernels.h"

namespace bert4j::cuda {
namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

template <bool Tanh>
__device__ __forceinline__ float gelu(float h) {
    if (Tanh) {
        // -2u, u = sqrt(2/pi) h (1 + 0.044715 h^2); expf overflow to inf gives -0.
        const float m2u = -1.5957691216057308f * h * fmaf(0.044715f, h * h, 1.0f);
        return h / (1.0f + expf(m2u));
    }
    return h * normcdff(h);
}

// V consecutive elements moved as one 16-byte (or element-sized) access.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

// ---- kernel -------------------------------------------------------------------------
// Thread (blockIdx.x, threadIdx.x) owns V columns and walks rows blockIdx.y, +gridDim.y,
// ...; its bias pack is loaded once. x and y may alias (in place), so no __restrict__.
template <typename T, int V, bool Tanh>
__global__ void bias_gelu_kernel(const T* x, const T* __restrict__ bias, T* y, int64_t rows,
                                 int64_t packs_per_row, int64_t x_row_stride,
                                 int64_t y_row_stride) {
    using P = Pack<T, V>;
    const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (p >= packs_per_row) return;
    const P b = reinterpret_cast<const P*>(bias)[p];
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const P in = reinterpret_cast<const P*>(x + r * x_row_stride)[p];
        P out;
#pragma unroll
        for (int i = 0; i < V; ++i)
            out.v[i] = from_float<T>(gelu<Tanh>(to_float(in.v[i]) + to_float(b.v[i])));
        reinterpret_cast<P*>(y + r * y_row_stride)[p] = out;
    }
}

// ---- launcher -----------------------------------------------------------------------
constexpr int kThreads = 256;
constexpr int64_t kMaxGridY = 65535;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T, int V>
int launch_width(const T* x, const T* bias, T* y, int64_t rows, int64_t cols, int64_t xs,
                 int64_t ys, int approximate, cudaStream_t stream, const char* op) {
    const int64_t packs = cols / V;
    const int64_t grid_x = (packs + kThreads - 1) / kThreads;
    if (grid_x > INT_MAX)
        return detail::fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: cols (%lld) too large for one launch",
                            op, static_cast<long long>(cols));
    const dim3 grid(static_cast<unsigned>(grid_x),
                    static_cast<unsigned>(rows < kMaxGridY ? rows : kMaxGridY));
    if (approximate == BERT4J_GELU_TANH)
        bias_gelu_kernel<T, V, true><<<grid, kThreads, 0, stream>>>(x, bias, y, rows, packs, xs, ys);
    else
        bias_gelu_kernel<T, V, false><<<grid, kThreads, 0, stream>>>(x, bias, y, rows, packs, xs, ys);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        return detail::fail(BERT4J_ERR_CUDA, "%s: kernel launch failed: %s (%s)", op,
                            cudaGetErrorName(err), cudaGetErrorString(err));
    return BERT4J_OK;
}

// 16-byte packs when every row start and the bias are 16-byte aligned, else scalar.
template <typename T>
int bias_gelu_launch(const T* x, const T* bias, T* y, int64_t rows, int64_t cols, int64_t xs,
                     int64_t ys, int approximate, cudaStream_t stream, const char* op) {
    constexpr int V = 16 / sizeof(T);
    const bool vec = cols % V == 0 && xs % V == 0 && ys % V == 0 && aligned16(x) &&
                     aligned16(bias) && aligned16(y);
    return vec ? launch_width<T, V>(x, bias, y, rows, cols, xs, ys, approximate, stream, op)
               : launch_width<T, 1>(x, bias, y, rows, cols, xs, ys, approximate, stream, op);
}

// ---- checked entry point (shared body) ------------------------------------------------
template <typename T>
int checked(const char* op, const void* x, const void* bias, void* y, int64_t rows,
            int64_t cols, int64_t xs, int64_t ys, int approximate, void* stream) {
    try {
        const int status = detail::check_bias_gelu_args(op, x, bias, y, rows, cols, xs, ys,
                                                        approximate);
        if (status != BERT4J_OK) return status;
        if (rows > 0 && cols > 0) {
            const int launched = bias_gelu_launch<T>(
                static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(y),
                rows, cols, xs, ys, approximate, static_cast<cudaStream_t>(stream), op);
            if (launched != BERT4J_OK) return launched;
        }
        return detail::ok();
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
}

}  // namespace
}  // namespace bert4j::cuda

extern "C" {

int bert4j_bias_gelu_forward_f32_cuda(const float* x, const float* bias, float* y,
                                      int64_t rows, int64_t cols, int64_t x_row_stride,
                                      int64_t y_row_stride, int approximate, void* stream) {
    return bert4j::cuda::checked<float>("bert4j_bias_gelu_forward_f32_cuda", x, bias, y, rows,
                                        cols, x_row_stride, y_row_stride, approximate, stream);
}

int bert4j_bias_gelu_forward_bf16_cuda(const uint16_t* x, const uint16_t* bias, uint16_t* y,
                                       int64_t rows, int64_t cols, int64_t x_row_stride,
                                       int64_t y_row_stride, int approximate, void* stream) {
    return bert4j::cuda::checked<__nv_bfloat16>("bert4j_bias_gelu_forward_bf16_cuda", x, bias, y,
                                                rows, cols, x_row_stride, y_row_stride,
                                                approximate, stream);
}

}  // extern "C"
