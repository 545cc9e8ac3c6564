package io.bert4j.kernels;

/**
 * Holds OpenBLAS at one thread while libtorch CPU code that calls BLAS from its own OpenMP
 * workers runs.
 *
 * <p>libtorch's CPU {@code scaled_dot_product_attention} (its flash-attention kernel) runs
 * blocks of queries in an {@code at::parallel_for} and multiplies each block with a BLAS sgemm.
 * The OpenBLAS that the JavaCPP presets ship is the pthreads build: each of those calls splits
 * itself over OpenBLAS's own worker pool, so two OpenMP threads calling at once queue on the same
 * workers and spin-wait for each other (OpenBLAS warns about exactly this case: "Detect OpenMP
 * Loop and this application may hang"). Measured on 2 cores, [8, 12, 512, 32] attention: 1.0–2.8
 * s per call with OpenBLAS at 2 threads, 47–49 ms at 1 thread; a MiniLM forward at 8 × 512 with
 * {@link KernelMode#TORCH} took 13.6–16.9 s. With one OpenBLAS thread, the parallelism is
 * libtorch's own (the blocks), as the kernel intends.
 *
 * <p>The scope is reference-counted across threads: the first holder saves OpenBLAS's thread
 * count and sets 1, the last one restores it. Meanwhile other BLAS calls in the process (a
 * linear layer on another thread) also run on one OpenBLAS thread: slower, never wrong. A no-op
 * when no OpenBLAS is loaded. The calls go straight to OpenBLAS through {@link NativeEnv}
 * (measured 0.8–2.4 µs per scope, JNI included; the presets' Java helper looks the symbols up on
 * every call, ~1 ms).
 */
public final class BlasThreads {
    private static final Object LOCK = new Object();
    private static int holders;
    private static int saved;

    private BlasThreads() {
    }

    /** Whether an OpenBLAS library is loaded in the process (the scope does something). */
    public static boolean openBlas() {
        return current() > 0;
    }

    /** OpenBLAS's current thread count, or -1 when no OpenBLAS is loaded. */
    public static int current() {
        return NativeEnv.bert4j_openblas_threads(0);
    }

    /** Enters a single-threaded OpenBLAS scope; close it in a finally (try-with-resources). */
    public static Scope singleThreaded() {
        synchronized (LOCK) {
            if (holders == 0) {
                saved = NativeEnv.bert4j_openblas_threads(0);
                if (saved > 1) {
                    NativeEnv.bert4j_openblas_threads(1);
                }
            }
            holders++;
        }
        return new Scope();
    }

    /** One holder of the single-threaded state; closing it twice is harmless. */
    public static final class Scope implements AutoCloseable {
        private boolean open = true;

        private Scope() {
        }

        @Override
        public void close() {
            if (!open) {
                return;
            }
            open = false;
            synchronized (LOCK) {
                if (--holders == 0 && saved > 1) {
                    NativeEnv.bert4j_openblas_threads(saved);
                }
            }
        }
    }
}
