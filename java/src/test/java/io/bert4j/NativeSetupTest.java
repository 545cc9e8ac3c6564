package io.bert4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The OpenMP wait policy bert4j sets before libtorch loads, observed in fresh JVMs through
 * libgomp's own report of its settings (OMP_DISPLAY_ENV): libgomp reads the variable once, at
 * load, so only a new process shows what it really uses.
 */
class NativeSetupTest {

    /** Child main: load libtorch through a bert4j entry class, print what bert4j reports. */
    public static final class Probe {
        public static void main(String[] args) throws ClassNotFoundException {
            Class.forName("io.bert4j.Bert");                              // initialises Bert: NativeSetup runs
            org.bytedeco.pytorch.global.torch.set_num_threads(1);        // libtorch (and libgomp) loaded
            System.out.println("policy: " + NativeSetup.ompWaitPolicy());
            System.out.println("openblas: " + NativeSetup.openBlasThreadTimeout());
            System.out.println("javacpp: " + NativeSetup.javacppMaxPhysicalBytes()
                    + " [Pointer.maxPhysicalBytes() = " + org.bytedeco.javacpp.Pointer.maxPhysicalBytes() + "]");
        }
    }

    /**
     * Child main: allocates a 40 MiB tensor (BERT-base's FFN activation at 3,300 tokens; glibc
     * serves blocks above 32 MiB with mmap by default, however its threshold has moved), writes
     * it, frees it, 20 times; prints the minor page faults per round over the last 10 (whole
     * process, from /proc/self/stat). A block that is reused faults nothing.
     */
    public static final class FaultProbe {
        public static void main(String[] args) throws Exception {
            Class.forName("io.bert4j.Bert");
            System.out.println("malloc: " + NativeSetup.mallocRetain());
            org.bytedeco.pytorch.global.torch.set_num_threads(1);
            long start = 0;
            for (int round = 0; round < 20; round++) {
                if (round == 10) {
                    start = minorFaults();
                }
                try (var scope = new org.bytedeco.javacpp.PointerScope()) {
                    org.bytedeco.pytorch.global.torch.ones(10L << 20);
                }
            }
            System.out.println("faults per round: " + (minorFaults() - start) / 10);
        }

        private static long minorFaults() throws java.io.IOException {
            String stat = java.nio.file.Files.readString(Path.of("/proc/self/stat"));
            return Long.parseLong(stat.substring(stat.lastIndexOf(')') + 2).split(" ")[7]);
        }
    }

    record Child(String out, String gompPolicy) {
    }

    private static Child run(String env, String property, String... jvmArgs) throws Exception {
        List<String> args = new ArrayList<>();
        if (property != null) {
            args.add("-Dbert4j.omp.waitPolicy=" + property);
        }
        args.addAll(List.of(jvmArgs));
        String out = runMain(Probe.class, 0, e -> {
            e.remove("OMP_WAIT_POLICY");
            e.remove("OPENBLAS_THREAD_TIMEOUT");
            if (env != null) {
                e.put("OMP_WAIT_POLICY", env);
            }
            e.put("OMP_DISPLAY_ENV", "TRUE");
        }, args.toArray(new String[0]));
        var m = java.util.regex.Pattern.compile("OMP_WAIT_POLICY = '(\\w+)'").matcher(out);
        assertTrue(m.find(), "libgomp printed no settings:\n" + out);
        return new Child(out, m.group(1));
    }

    @Test
    void passiveByDefaultWhenTheEnvironmentSaysNothing() throws Exception {
        Child c = run(null, null);
        assertEquals("PASSIVE", c.gompPolicy(), c.out());
        assertTrue(c.out().contains("policy: passive (set by bert4j)"), c.out());
        // Set before libtorch (and the OpenBLAS it links) loaded: OpenBLAS read it at load.
        assertTrue(c.out().contains("openblas: 4 (set by bert4j)"), c.out());
    }

    @Test
    void theEnvironmentWins() throws Exception {
        Child c = run("ACTIVE", "passive");
        assertEquals("ACTIVE", c.gompPolicy(), c.out());
        assertTrue(c.out().contains("policy: active (environment)"), c.out());
    }

    /** libgomp reports its default as PASSIVE too, so ACTIVE here proves the variable was set in C. */
    @Test
    void thePropertyChoosesAnotherDefault() throws Exception {
        Child c = run(null, "active");
        assertEquals("ACTIVE", c.gompPolicy(), c.out());
        assertTrue(c.out().contains("policy: active (set by bert4j)"), c.out());
    }

    @Test
    void javacppPhysicalMemoryCheckOffByDefaultAndTheUsersValueWins() throws Exception {
        Child c = run(null, null);
        assertTrue(c.out().contains("javacpp: 0, off (set by bert4j) [Pointer.maxPhysicalBytes() = 0]"), c.out());
        Child mine = run(null, null, "-Dorg.bytedeco.javacpp.maxPhysicalBytes=3g");
        assertTrue(mine.out().contains("javacpp: 3221225472 (-Dorg.bytedeco.javacpp.maxPhysicalBytes) "
                + "[Pointer.maxPhysicalBytes() = 3221225472]"), mine.out());
    }

    /**
     * Freed memory kept for reuse: a 40 MiB block freed and allocated again is reused instead of
     * being unmapped and faulted in afresh (10,240 pages) every time, as with glibc's defaults.
     */
    @Test
    void freedMemoryIsReusedWithoutPageFaults() throws Exception {
        long kept = faultsPerRound(runMain(FaultProbe.class), "malloc: on (set by bert4j)");
        long glibc = faultsPerRound(runMain(FaultProbe.class, "-Dbert4j.malloc.retain=false"),
                "malloc: off (-Dbert4j.malloc.retain=false: glibc's defaults)");
        System.out.println("page faults per 40 MiB allocation: retained " + kept + ", glibc's defaults " + glibc);
        assertTrue(kept < 500, "a reused 40 MiB block faulted in " + kept + " pages");
        assertTrue(glibc > 5000, "glibc's defaults faulted in only " + glibc + " pages per fresh 40 MiB block");
    }

    private static long faultsPerRound(String out, String state) {
        assertTrue(out.contains(state), out);
        var m = java.util.regex.Pattern.compile("faults per round: (\\d+)").matcher(out);
        assertTrue(m.find(), out);
        return Long.parseLong(m.group(1));
    }

    @Test
    void aBadMallocSettingIsRefused() throws Exception {
        String out = runMain(Probe.class, 1, e -> { }, "-Dbert4j.malloc.retain=sometimes");
        assertTrue(out.contains("bert4j.malloc.retain must be true or false, got 'sometimes'"), out);
    }

    private static String runMain(Class<?> main, String... jvmArgs) throws Exception {
        return runMain(main, 0, e -> { }, jvmArgs);
    }

    /** Runs main in a fresh JVM (the test's class path, -Xmx256m), expects its exit status. */
    private static String runMain(Class<?> main, int expectedExit, Consumer<Map<String, String>> env,
                                  String... jvmArgs) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx256m"));
        cmd.addAll(List.of(jvmArgs));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), main.getName()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        env.accept(pb.environment());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), main.getSimpleName() + " did not finish");
        assertEquals(expectedExit, p.exitValue(), out);
        return out;
    }
}
