package io.bert4j;

import io.bert4j.kernels.NativeEnv;
import org.bytedeco.javacpp.Loader;

import java.util.Locale;

/**
 * Process-wide native settings that must be in place before libtorch is loaded. Called from the
 * static initialisers of bert4j's entry classes ({@link Bert}, the models, the trainer, the
 * kernels), so an application gets them without doing anything, provided bert4j is the first to
 * load libtorch in the JVM.
 *
 * <p><b>OpenMP wait policy.</b> libtorch runs its CPU operators on a libgomp thread team whose
 * idle threads spin (libgomp's default) between parallel regions. On a machine with few cores
 * any other runnable thread (the JVM's, another runtime's pool, a second request) then competes
 * with spinning threads, and a batch-1 MiniLM forward on 2 cores took 4x longer (270 ms vs
 * 63 ms; benchmarks/RESULTS.md). libgomp reads {@code OMP_WAIT_POLICY} once, when it is loaded,
 * so bert4j sets it to {@code passive} in the C environment before libtorch loads, unless the
 * environment already has a value (yours wins). {@code -Dbert4j.omp.waitPolicy=active|passive}
 * chooses another default; {@code -Dbert4j.omp.waitPolicy=} (empty) leaves libgomp's own.
 *
 * <p><b>OpenBLAS thread timeout.</b> See {@link #openBlasThreadTimeout()}.
 *
 * <p><b>JavaCPP's physical-memory limit.</b> See {@link #javacppMaxPhysicalBytes()}.
 *
 * <p><b>Freed memory kept for reuse.</b> See {@link #mallocRetain()}.
 */
public final class NativeSetup {
    private static final String PROPERTY = "bert4j.omp.waitPolicy";
    private static final String BLAS_PROPERTY = "bert4j.openblas.threadTimeout";
    private static final String BLAS_DEFAULT = "4";
    private static final String JAVACPP_PHYSICAL = "org.bytedeco.javacpp.maxPhysicalBytes";
    private static final String MALLOC_PROPERTY = "bert4j.malloc.retain";
    private static final String STATE;
    private static final String BLAS_STATE;
    private static final String PHYSICAL_STATE;
    private static final String MALLOC_STATE;

    static {
        // First: JavaCPP reads it once, when its Pointer class initialises.
        boolean userSet = System.getProperty(JAVACPP_PHYSICAL) != null
                || System.getProperty(JAVACPP_PHYSICAL.toLowerCase(Locale.ROOT)) != null;
        if (!userSet) {
            System.setProperty(JAVACPP_PHYSICAL, "0");
        }
        STATE = applyWaitPolicy();
        BLAS_STATE = applyBlasTimeout();
        MALLOC_STATE = applyMallocRetain();
        long limit = org.bytedeco.javacpp.Pointer.maxPhysicalBytes();
        PHYSICAL_STATE = userSet ? limit + " (-D" + JAVACPP_PHYSICAL + ")"
                : limit == 0 ? "0, off (set by bert4j)"
                : limit + " (JavaCPP was initialised before bert4j could turn the check off)";
    }

    private NativeSetup() {}

    /** Applies the settings (idempotent; the work happens once, on first call). */
    public static void ensure() {
        // class initialisation did the work
    }

    /**
     * The OpenMP wait policy in effect and where it came from, e.g. {@code "passive (set by
     * bert4j)"}, {@code "active (environment)"}; for /info, benchmark reports and diagnostics.
     */
    public static String ompWaitPolicy() {
        return STATE;
    }

    /**
     * OpenBLAS's thread timeout in effect, e.g. {@code "4 (set by bert4j)"}: libtorch's float32
     * GEMMs run on OpenBLAS's own pthread pool (separate from libgomp's), whose idle workers
     * busy-wait (rdtsc loop) for 2^N cycles after each GEMM, N = 28 by default (~0.1 s at
     * 2.5 GHz): between GEMMs they hold cores the attention, layer-norm and GELU threads need.
     * bert4j sets {@code OPENBLAS_THREAD_TIMEOUT} (OpenBLAS's minimum, 4, by default; choose with
     * {@code -Dbert4j.openblas.threadTimeout=4..30}, empty for OpenBLAS's own) unless it is set.
     * Measured on 2 cores (two alternating rounds, embedding 256 SST-2 sentences / one sentence):
     * 4 gave 1,175-1,354 / 13.0-15.6 ms, the default 1,317-1,942 / 14.9-31.3 ms, 20 was worst.
     */
    public static String openBlasThreadTimeout() {
        return BLAS_STATE;
    }

    /**
     * JavaCPP's {@code maxPhysicalBytes} in effect. By default JavaCPP caps the process's
     * resident memory at 4x the Java heap's maximum and, past it, forces garbage collections and
     * then throws {@code OutOfMemoryError: Physical memory usage is too high} — but a model's
     * weights and activations live in libtorch's native memory, outside the heap: with
     * {@code -Xmx48m} the default model's embed command died that way at 220 MB resident. It
     * also reads /proc/self/statm (a system call) at every native object JavaCPP allocates,
     * ~20 per fused op under autograd: turning the check off took a MiniLM-width bias + GELU
     * forward + backward at 128 rows from 534-602 to 442-475 us (benchmarks/RESULTS.md). bert4j
     * frees its native objects deterministically (PointerScope), so it sets the limit to 0
     * (off) unless {@code -Dorg.bytedeco.javacpp.maxPhysicalBytes} is given (yours wins); like
     * the settings above it only takes effect if bert4j initialises JavaCPP first.
     */
    public static String javacppMaxPhysicalBytes() {
        return PHYSICAL_STATE;
    }

    /**
     * Whether glibc malloc keeps freed memory for reuse, e.g. {@code "on (set by bert4j)"}.
     * libtorch's CPU tensors come from malloc, and by default glibc serves blocks above 32 MiB
     * (and, depending on what was freed before, smaller ones) with mmap and unmaps them on free,
     * trims its heaps' free tops and deletes empty thread heaps: the next tensor of the same size
     * then faults in fresh zeroed pages, thousands of 4 KiB page faults per tensor, on every
     * training step or batch (a 40 MiB tensor, BERT-base's FFN activation at 3,300 tokens:
     * 10,241 faults each time it is allocated). bert4j turns that off (mallopt: M_MMAP_MAX 0,
     * M_TRIM_THRESHOLD 2 GiB, M_TOP_PAD 64 MiB), so freed blocks are reused (0 faults). A
     * MiniLM-width bias + GELU forward + backward at 4,096 rows went from 2,155-2,575 faults and
     * 10.9-13.1 ms per call to 2-107 and 6.8-7.9 ms, libtorch's own gelu(x + b) from 11.9-12.7
     * to 9.6-10.6 ms (benchmarks/RESULTS.md). The cost: the process's resident size stays near
     * its peak instead of shrinking after it, and under strict overcommit accounting
     * (vm.overcommit_memory=2) the 64 MiB pads count against the commit limit. Blocks too big for
     * a thread heap (64 MiB) are still mmapped. {@code -Dbert4j.malloc.retain=false} keeps
     * glibc's defaults; other C libraries are left alone. Unlike the settings above, this one
     * works whenever it is made.
     */
    public static String mallocRetain() {
        return MALLOC_STATE;
    }

    private static String applyMallocRetain() {
        String wanted = System.getProperty(MALLOC_PROPERTY, "true").trim().toLowerCase(Locale.ROOT);
        if (wanted.equals("false")) {
            return "off (-D" + MALLOC_PROPERTY + "=false: glibc's defaults)";
        }
        if (!wanted.equals("true")) {
            throw new Bert4jException("-D" + MALLOC_PROPERTY + " must be true or false, got '" + wanted + "'");
        }
        int rc;
        try {
            rc = NativeEnv.bert4j_malloc_retain();
        } catch (UnsatisfiedLinkError e) {
            return "off (bert4j's environment library did not load: " + e.getMessage() + ")";
        }
        return switch (rc) {
            case 1 -> "on (set by bert4j)";
            case 0 -> "off (not glibc)";
            default -> "off (mallopt refused the settings)";
        };
    }

    private static String applyBlasTimeout() {
        String env = System.getenv("OPENBLAS_THREAD_TIMEOUT");
        if (env != null) {
            return env + " (environment)";
        }
        String wanted = System.getProperty(BLAS_PROPERTY, BLAS_DEFAULT).trim();
        if (wanted.isEmpty()) {
            return "OpenBLAS default (" + BLAS_PROPERTY + " is empty)";
        }
        int n;
        try {
            n = Integer.parseInt(wanted);
        } catch (NumberFormatException e) {
            n = -1;
        }
        if (n < 4 || n > 30) {
            throw new Bert4jException("-D" + BLAS_PROPERTY + " must be an exponent in 4..30 or empty, got '" + wanted + "'");
        }
        return setDefault("OPENBLAS_THREAD_TIMEOUT", Integer.toString(n), Integer.toString(n), "openblas", "OpenBLAS");
    }

    private static String applyWaitPolicy() {
        String env = System.getenv("OMP_WAIT_POLICY");
        if (env != null) {
            return env.toLowerCase(Locale.ROOT) + " (environment)";
        }
        String wanted = System.getProperty(PROPERTY, "passive").trim().toLowerCase(Locale.ROOT);
        if (wanted.isEmpty()) {
            return "libgomp default (" + PROPERTY + " is empty)";
        }
        if (!wanted.equals("passive") && !wanted.equals("active")) {
            throw new Bert4jException("-D" + PROPERTY + " must be passive, active or empty, got '" + wanted + "'");
        }
        return setDefault("OMP_WAIT_POLICY", wanted.toUpperCase(Locale.ROOT), wanted, "gomp", "libgomp");
    }

    /**
     * setenv(name, value) unless set, and what that achieved: "shown (set by bert4j)", or
     * "{@code owner} default (...)" when the library that reads it ({@code library} in JavaCPP's
     * loaded names) was already loaded or the call failed.
     */
    private static String setDefault(String name, String value, String shown, String library, String owner) {
        boolean loaded = Loader.getLoadedLibraries().keySet().stream().anyMatch(k -> k.contains(library));
        int rc;
        try {
            rc = NativeEnv.bert4j_setenv_default(name, value);
        } catch (UnsatisfiedLinkError e) {
            return owner + " default (bert4j's environment library did not load: " + e.getMessage() + ")";
        }
        if (rc < 0) {
            return owner + " default (setenv failed)";
        }
        return loaded ? owner + " default (" + owner + " was loaded before bert4j could set " + shown + ")"
                : shown + " (set by bert4j)";
    }
}
