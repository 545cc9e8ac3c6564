package io.bert4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

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

    record Child(String out, String gompPolicy) {
    }

    private static Child run(String env, String property, String... jvmArgs) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx256m"));
        if (property != null) {
            cmd.add("-Dbert4j.omp.waitPolicy=" + property);
        }
        cmd.addAll(List.of(jvmArgs));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Probe.class.getName()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().remove("OMP_WAIT_POLICY");
        pb.environment().remove("OPENBLAS_THREAD_TIMEOUT");
        if (env != null) {
            pb.environment().put("OMP_WAIT_POLICY", env);
        }
        pb.environment().put("OMP_DISPLAY_ENV", "TRUE");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "probe did not finish");
        assertEquals(0, p.exitValue(), out);
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
}
