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
 */
public final class NativeSetup {
    private static final String PROPERTY = "bert4j.omp.waitPolicy";
    private static final String STATE;

    static {
        STATE = applyWaitPolicy();
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
        boolean gompLoaded = Loader.getLoadedLibraries().keySet().stream().anyMatch(k -> k.contains("gomp"));
        int rc;
        try {
            rc = NativeEnv.bert4j_setenv_default("OMP_WAIT_POLICY", wanted.toUpperCase(Locale.ROOT));
        } catch (UnsatisfiedLinkError e) {
            return "libgomp default (bert4j's environment library did not load: " + e.getMessage() + ")";
        }
        if (rc < 0) {
            return "libgomp default (setenv failed)";
        }
        return gompLoaded ? "libgomp default (libtorch was loaded before bert4j could set " + wanted + ")"
                : wanted + " (set by bert4j)";
    }
}
