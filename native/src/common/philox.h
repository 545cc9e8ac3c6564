// Philox-4x32-10 counter-based random numbers (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11), usable from host C++ and CUDA device code. bert4j uses it for dropout
// masks that the backward pass regenerates from (seed, offset, element index) instead of
// storing them; CPU and CUDA produce the same bits. See bert4j_dropout_keep in the ABI header.
#ifndef BERT4J_PHILOX_H
#define BERT4J_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define BERT4J_HD __host__ __device__ __forceinline__
#else
#define BERT4J_HD inline
#endif

namespace bert4j {

struct Philox4 {
    uint32_t x[4];
};

BERT4J_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
    const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
    *hi = static_cast<uint32_t>(p >> 32);
    *lo = static_cast<uint32_t>(p);
}

/** Ten rounds of Philox-4x32 on counter c with key (k0, k1). */
BERT4J_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(M0, c.x[0], &hi0, &lo0);
        philox_mulhilo(M1, c.x[2], &hi1, &lo1);
        Philox4 n;
        n.x[0] = hi1 ^ c.x[1] ^ k0;
        n.x[1] = lo1;
        n.x[2] = hi0 ^ c.x[3] ^ k1;
        n.x[3] = lo0;
        c = n;
        k0 += W0;
        k1 += W1;
    }
    return c;
}

/** The 32 random bits for element idx of the stream (seed, offset). */
BERT4J_HD uint32_t philox_bits(uint64_t seed, uint64_t offset, uint64_t idx) {
    const uint64_t block = idx >> 2;
    Philox4 c;
    c.x[0] = static_cast<uint32_t>(block);
    c.x[1] = static_cast<uint32_t>(block >> 32);
    c.x[2] = static_cast<uint32_t>(offset);
    c.x[3] = static_cast<uint32_t>(offset >> 32);
    Philox4 r = philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    return r.x[idx & 3];
}

/** threshold(p) = (uint32) min(2^32 - 1, floor(p * 2^32)); keep iff bits >= threshold. */
BERT4J_HD uint32_t dropout_threshold(float p) {
    const double t = static_cast<double>(p) * 4294967296.0;
    return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(t);
}

BERT4J_HD bool dropout_keep(uint64_t seed, uint64_t offset, uint64_t idx, uint32_t threshold) {
    return philox_bits(seed, offset, idx) >= threshold;
}

}  // namespace bert4j

#endif  // BERT4J_PHILOX_H
