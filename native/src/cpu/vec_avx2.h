// AVX2 + FMA vector math shared by the CPU kernels. Every function carries the target
// attribute, so including this header does not raise the ISA of the including file; callers
// must only reach these functions behind a run-time __builtin_cpu_supports check.
#pragma once

#include <immintrin.h>

#define BERT4J_AVX2_FN __attribute__((target("avx2,fma")))

namespace bert4j::cpu::avx2 {

// exp(a), a clamped to [-87.3, 88]: Cody-Waite reduction by ln 2, Cephes expf polynomial,
// ~1-2 ulp in the normal range.
BERT4J_AVX2_FN inline __m256 exp8(__m256 a) {
    a = _mm256_min_ps(_mm256_max_ps(a, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(a, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), a);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// exp(a) for softmax arguments a <= 0: like exp8, but a < -87.3 (including -inf, i.e. a
// masked score) gives exactly 0 instead of the clamped ~1e-38, so masked keys contribute
// nothing to sums, outputs or gradients.
BERT4J_AVX2_FN inline __m256 exp8_flush(__m256 a) {
    const __m256 tiny = _mm256_cmp_ps(a, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    return _mm256_andnot_ps(tiny, exp8(a));
}

BERT4J_AVX2_FN inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

BERT4J_AVX2_FN inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

}  // namespace bert4j::cpu::avx2
