// AVX-512 (F + DQ) vector math shared by the CPU kernels. Like vec_avx2.h, every function
// carries the target attribute; callers reach them only behind a run-time
// __builtin_cpu_supports check (Isa::Avx512).
#pragma once

#include <immintrin.h>

#define BERT4J_AVX512_FN __attribute__((target("avx512f,avx512dq,avx2,fma")))

// GCC 12's avx512fintrin.h passes _mm512_undefined_ps() as the unused merge source of
// unmasked ops, which trips -Wmaybe-uninitialized after inlining; the value is never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bert4j::cpu::avx512 {

// exp(a) for softmax arguments a <= 0 (Cody-Waite by ln 2, the Cephes expf polynomial,
// scalef for 2^n; ~1-2 ulp); a < -87.3 (including -inf, a masked score) gives exactly 0.
BERT4J_AVX512_FN inline __m512 exp16_flush(__m512 a) {
    const __mmask16 ok = _mm512_cmp_ps_mask(a, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
    const __m512 x = _mm512_max_ps(a, _mm512_set1_ps(-87.3f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(ok, _mm512_scalef_ps(p, n));
}

}  // namespace bert4j::cpu::avx512

#pragma GCC diagnostic pop
