// Fused bias + GELU on CUDA, fp32 and bf16 storage (math in fp32), forward and backward.
// Three layers: the kernel, the launcher (vector width, grid, stream, launch check), the
// checked C entry points. Built only into libbert4j_kernels_cuda (see native/CMakeLists.txt).
//
// Backward dbias is deterministic (no float atomics): pass 1 writes one fp32 partial column
// sum per chunk of rows (fixed order inside a block), pass 2 adds the chunks in order. The
// chunking depends only on `rows`, so results are bitwise reproducible run to run.
//
// Accuracy: exact GELU is h * normcdff(h) (CUDA's normcdff: <= 5 ulp, and no 1 + erf
// cancellation for h < 0); tanh GELU is h / (1 + expf(-2u)), the same cancellation-free
// form as the CPU path. Full-precision expf/normcdff: do not build with --use_fast_math.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <exception>

#include "../common/arg_checks.h"
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

// ---- backward kernels -------------------------------------------------------------------
// gelu'(h). Exact: Phi(h) + h phi(h). Tanh: y = h s, s = sigmoid(2u), so
// y' = s + 2 h s (1 - s) u'; with em = exp(-2|u|) <= 1 both s and s (1 - s) = em / (1 + em)^2
// are formed without overflow for any h.
template <bool Tanh>
__device__ __forceinline__ float gelu_grad(float h) {
    if (Tanh) {
        const float u = 0.7978845608028654f * h * fmaf(0.044715f, h * h, 1.0f);
        const float du = 0.7978845608028654f * fmaf(0.134145f, h * h, 1.0f);
        const float em = expf(-2.0f * fabsf(u));
        const float inv = 1.0f / (1.0f + em);
        const float s = u >= 0.0f ? inv : em * inv;
        const float sp = em * inv * inv;  // s (1 - s)
        return sp == 0.0f ? s : fmaf(2.0f * h * sp, du, s);
    }
    return fmaf(h * 0.3989422804014327f, expf(-0.5f * h * h), normcdff(h));
}

constexpr int kBwdCols = 32;   // columns per block (one warp wide: coalesced rows)
constexpr int kBwdRowThreads = 8;
constexpr int64_t kBwdChunk = 128;  // rows per block (per dbias partial) unless rows is huge

// Block (blockIdx.x, blockIdx.y) owns 32 columns of the rows [y * chunk, (y + 1) * chunk).
// dx may alias dy (same stride): each element is read and then written by one thread.
// When `partial` is not NULL it receives this chunk's fp32 column sums of dx (before any
// bf16 rounding) at partial[blockIdx.y * cols + c], summed in a fixed order.
template <typename T, bool Tanh>
__global__ void __launch_bounds__(kBwdCols * kBwdRowThreads)
bias_gelu_bwd_kernel(const T* dy, const T* x, const T* __restrict__ bias, T* dx,
                     float* __restrict__ partial, int64_t rows, int64_t cols, int64_t chunk,
                     int64_t dys, int64_t xs, int64_t dxs) {
    __shared__ float sums[kBwdRowThreads][kBwdCols];
    const int64_t c = static_cast<int64_t>(blockIdx.x) * kBwdCols + threadIdx.x;
    const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
    const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
    float acc = 0.0f;
    if (c < cols) {
        const float b = to_float(bias[c]);
        for (int64_t r = r0 + threadIdx.y; r < r1; r += kBwdRowThreads) {
            const float g = to_float(dy[r * dys + c]) * gelu_grad<Tanh>(to_float(x[r * xs + c]) + b);
            dx[r * dxs + c] = from_float<T>(g);
            acc += g;
        }
    }
    if (partial == nullptr) return;
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float total = 0.0f;
#pragma unroll
        for (int i = 0; i < kBwdRowThreads; ++i) total += sums[i][threadIdx.x];
        partial[static_cast<int64_t>(blockIdx.y) * cols + c] = total;
    }
}

// dbias[c] = sum over chunks, in chunk order.
__global__ void column_sum_kernel(const float* __restrict__ partial, float* __restrict__ dbias,
                                  int64_t chunks, int64_t cols) {
    const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float total = 0.0f;
    for (int64_t i = 0; i < chunks; ++i) total += partial[i * cols + c];
    dbias[c] = total;
}

int launch_failed(const char* op, const char* what, cudaError_t err) {
    return detail::fail(BERT4J_ERR_CUDA, "%s: %s failed: %s (%s)", op, what, cudaGetErrorName(err),
                        cudaGetErrorString(err));
}

template <typename T>
int bias_gelu_bwd_launch(const T* dy, const T* x, const T* bias, T* dx, float* dbias,
                         int64_t rows, int64_t cols, int64_t dys, int64_t xs, int64_t dxs,
                         int approximate, cudaStream_t stream, const char* op) {
    // chunk depends on rows only (grid.y <= 65535), never on the device: reproducible sums.
    int64_t chunk = kBwdChunk;
    if ((rows + chunk - 1) / chunk > kMaxGridY) chunk = (rows + kMaxGridY - 1) / kMaxGridY;
    const int64_t chunks = (rows + chunk - 1) / chunk;
    const int64_t grid_x = (cols + kBwdCols - 1) / kBwdCols;
    if (grid_x > INT_MAX)
        return detail::fail(BERT4J_ERR_INVALID_ARGUMENT, "%s: cols (%lld) too large for one launch",
                            op, static_cast<long long>(cols));
    // One chunk: the block writes dbias itself. More: fp32 partials in stream-ordered scratch.
    float* partial = nullptr;
    if (dbias != nullptr && chunks > 1) {
        const cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(&partial),
                                                static_cast<size_t>(chunks * cols) * sizeof(float),
                                                stream);
        if (err != cudaSuccess) return launch_failed(op, "cudaMallocAsync (dbias partial sums)", err);
    } else if (dbias != nullptr) {
        partial = dbias;
    }
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(chunks));
    const dim3 block(kBwdCols, kBwdRowThreads);
    if (approximate == BERT4J_GELU_TANH)
        bias_gelu_bwd_kernel<T, true><<<grid, block, 0, stream>>>(dy, x, bias, dx, partial, rows,
                                                                  cols, chunk, dys, xs, dxs);
    else
        bias_gelu_bwd_kernel<T, false><<<grid, block, 0, stream>>>(dy, x, bias, dx, partial, rows,
                                                                   cols, chunk, dys, xs, dxs);
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess && partial != nullptr && partial != dbias) {
        const int64_t blocks = (cols + 255) / 256;
        column_sum_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(partial, dbias, chunks,
                                                                              cols);
        err = cudaGetLastError();
    }
    if (partial != nullptr && partial != dbias) {
        const cudaError_t freed = cudaFreeAsync(partial, stream);
        if (err == cudaSuccess && freed != cudaSuccess)
            return launch_failed(op, "cudaFreeAsync (dbias partial sums)", freed);
    }
    if (err != cudaSuccess) return launch_failed(op, "kernel launch", err);
    return BERT4J_OK;
}

template <typename T>
int checked_backward(const char* op, const void* dy, const void* x, const void* bias, void* dx,
                     float* dbias, int64_t rows, int64_t cols, int64_t dys, int64_t xs,
                     int64_t dxs, int approximate, void* stream) {
    try {
        const int status = detail::check_bias_gelu_backward_args(op, dy, x, bias, dx, rows, cols,
                                                                 dys, xs, dxs, approximate);
        if (status != BERT4J_OK) return status;
        const cudaStream_t s = static_cast<cudaStream_t>(stream);
        if (cols > 0 && rows == 0 && dbias != nullptr) {
            // No rows: the column sums are zero, and dbias is written, not added.
            const cudaError_t err = cudaMemsetAsync(dbias, 0, static_cast<size_t>(cols) * sizeof(float), s);
            if (err != cudaSuccess) return launch_failed(op, "cudaMemsetAsync (dbias)", err);
        }
        if (rows > 0 && cols > 0) {
            const int launched = bias_gelu_bwd_launch<T>(
                static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(bias),
                static_cast<T*>(dx), dbias, rows, cols, dys, xs, dxs, approximate, s, op);
            if (launched != BERT4J_OK) return launched;
        }
        return detail::ok();
    } catch (const std::exception& e) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: %s", op, e.what());
    } catch (...) {
        return detail::fail(BERT4J_ERR_INTERNAL, "%s: unknown error", op);
    }
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

int bert4j_bias_gelu_backward_f32_cuda(const float* dy, const float* x, const float* bias,
                                       float* dx, float* dbias, int64_t rows, int64_t cols,
                                       int64_t dy_row_stride, int64_t x_row_stride,
                                       int64_t dx_row_stride, int approximate, void* stream) {
    return bert4j::cuda::checked_backward<float>("bert4j_bias_gelu_backward_f32_cuda", dy, x, bias,
                                                 dx, dbias, rows, cols, dy_row_stride, x_row_stride,
                                                 dx_row_stride, approximate, stream);
}

int bert4j_bias_gelu_backward_bf16_cuda(const uint16_t* dy, const uint16_t* x,
                                        const uint16_t* bias, uint16_t* dx, float* dbias,
                                        int64_t rows, int64_t cols, int64_t dy_row_stride,
                                        int64_t x_row_stride, int64_t dx_row_stride,
                                        int approximate, void* stream) {
    return bert4j::cuda::checked_backward<__nv_bfloat16>(
        "bert4j_bias_gelu_backward_bf16_cuda", dy, x, bias, dx, dbias, rows, cols, dy_row_stride,
        x_row_stride, dx_row_stride, approximate, stream);
}

}  // extern "C"
