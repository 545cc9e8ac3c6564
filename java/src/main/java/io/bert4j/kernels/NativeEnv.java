package io.bert4j.kernels;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of {@code native/include/bert4j_env.h}: the C environment, set before
 * libtorch loads. Its JNI library links neither libtorch nor OpenMP, so loading it does not
 * start libgomp (which reads its settings once, at load). Used by {@link io.bert4j.NativeSetup}.
 */
@Platform(include = "bert4j_env.h")
public final class NativeEnv {
    static {
        Loader.load();
    }

    private NativeEnv() {}

    /** setenv(name, value) unless name is set: 1 set, 0 kept, -1 failed. */
    public static native int bert4j_setenv_default(@Cast("const char*") String name, @Cast("const char*") String value);

    /**
     * OpenBLAS's thread count: sets it first when {@code n > 0}; returns the count in effect, or
     * -1 when no OpenBLAS library is loaded in the process (it never loads one).
     */
    public static native int bert4j_openblas_threads(int n);

    /**
     * Makes glibc malloc keep freed memory for reuse (no mmap for blocks a heap can hold, no
     * trimming, no deletion of empty thread heaps): 1 applied, 0 not glibc, -1 refused.
     */
    public static native int bert4j_malloc_retain();
}
