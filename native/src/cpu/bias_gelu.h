// Internal interface of the CPU bias+GELU launcher, for the entry point and the native
// tests (which force each code path). Not part of the ABI.
#pragma once

#include <cstdint>

namespace bert4j::cpu {

// Avx512 = AVX-512 F+DQ (with AVX2+FMA); ops without an AVX-512 kernel run their AVX2 one.
enum class Isa { Scalar, Avx2Fma, Avx512 };

// The best path this CPU supports (AVX-512, else AVX2+FMA, else scalar), unless the
// environment variable BERT4J_CPU_ISA caps it: "avx2" (no AVX-512) or "scalar". Resolved once.
Isa best_isa();
bool isa_supported(Isa isa);

// Launcher: no argument checks (the entry point did them). Splits rows over at most
// `max_threads` OpenMP threads when the work is large enough to pay for a fork/join.
void bias_gelu_launch(const float* x, const float* bias, float* y, int64_t rows, int64_t cols,
                      int64_t x_row_stride, int64_t y_row_stride, int approximate, Isa isa,
                      int max_threads);

// gelu(x + bias) of a block of `rows` (<= 32) x `cols` (<= 32) values (row stride ldx; bias
// [cols] or null) rounded to bf16 into AMX operand tiles: rows 0-15 into tile0, 16-31 into
// tile1 (null: 16 rows), each 16 rows x 32 bf16 (64-byte aligned); rows >= `rows` and columns
// >= `cols` are written as 0. The values are bias_gelu_launch's (AVX-512 path), rounded to
// nearest even. Needs AVX-512 BF16 (callers: the AMX GEMM, linear_bf16.cpp).
void bias_gelu_block_bf16(const float* x, int64_t ldx, const float* bias, int rows, int cols,
                          uint16_t* tile0, uint16_t* tile1, int approximate);

// Backward launcher: dx = dy * gelu'(x + bias); when dbias != nullptr, dbias = column sums
// of dx accumulated in double over fixed blocks of rows (the blocking depends on rows only)
// and reduced in block order, so the result does not depend on max_threads.
void bias_gelu_backward_launch(const float* dy, const float* x, const float* bias, float* dx,
                               float* dbias, int64_t rows, int64_t cols, int64_t dy_row_stride,
                               int64_t x_row_stride, int64_t dx_row_stride, int approximate,
                               Isa isa, int max_threads);

// Training forward (y and the derivative d = gelu'(x + bias)) and the backward from d.
void bias_gelu_train_launch(const float* x, const float* bias, float* y, float* d, int64_t rows,
                            int64_t cols, int64_t x_row_stride, int64_t y_row_stride,
                            int64_t d_row_stride, int approximate, Isa isa, int max_threads);

void gelu_backward_saved_launch(const float* dy, const float* d, float* dx, float* dbias, int64_t rows,
                                int64_t cols, int64_t dy_row_stride, int64_t d_row_stride,
                                int64_t dx_row_stride, Isa isa, int max_threads);

}  // namespace bert4j::cpu
