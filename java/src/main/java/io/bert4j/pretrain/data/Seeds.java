package io.bert4j.pretrain.data;

import java.util.SplittableRandom;

/** Derives independent random streams from (seed, purpose, epoch, index) so any part can be regenerated alone. */
final class Seeds {
    private Seeds() {
    }

    /** The splitmix64 finalizer: nearby inputs give unrelated outputs. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    static SplittableRandom random(long seed, long purpose, long a, long b) {
        long z = mix(seed + 0x9e3779b97f4a7c15L);
        z = mix(z ^ purpose);
        z = mix(z ^ a);
        z = mix(z ^ (b * 0x9e3779b97f4a7c15L));
        return new SplittableRandom(z);
    }

    static final long INSTANCES = 0x1A57A;
    static final long MASKING = 0x3A5C;
}
