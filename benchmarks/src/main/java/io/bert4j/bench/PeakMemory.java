package io.bert4j.bench;

import io.bert4j.Bert;
import io.bert4j.DefaultModel;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.tokenize.BertTokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Case (e) of {@link Compare}: peak resident memory of each implementation, each in a JVM of its
 * own (peak RSS is per process, and one process holding all runtimes would report their sum).
 * A child loads only what its implementation needs, runs the case (b) workload a few times and
 * prints its {@code VmHWM} (the kernel's high-water mark of the resident set) on stdout.
 *
 * <pre>
 * PeakMemory IMPL THREADS BATCHES ROUNDS     IMPL: fused | int8 | torch | ort-single | ort-sorted
 * </pre>
 */
public final class PeakMemory {
    private PeakMemory() {
    }

    static final List<String> IMPLS = List.of("fused", "int8", "torch", "ort-single", "ort-sorted");
    private static final String PREFIX = "bert4j-peak-memory ";

    /** One child's report, in kB. */
    record Result(String impl, long afterLoadKb, long peakKb, double seconds, boolean libtorch, boolean ort) {
    }

    public static void main(String[] args) {
        io.bert4j.NativeSetup.ensure(); // OpenMP settings before libtorch loads
        if (args.length != 4 || !IMPLS.contains(args[0])) {
            System.err.println("usage: PeakMemory " + String.join("|", IMPLS) + " THREADS BATCHES ROUNDS");
            System.exit(2);
        }
        String impl = args[0];
        int threads = Integer.parseInt(args[1]);
        int batches = Integer.parseInt(args[2]);
        int rounds = Integer.parseInt(args[3]);
        List<String> texts = Workloads.consecutiveSentences(0, batches * 32);
        EmbedOptions opts = EmbedOptions.DEFAULTS.withBatchSize(32);
        long t0 = System.nanoTime();
        long afterLoad;
        double checksum = 0;    // consumed so no call can be optimised away
        if (impl.startsWith("ort")) {
            try (BertTokenizer tok = BertTokenizer.load(DefaultModel.ensure()); OrtReference ort = new OrtReference(threads)) {
                afterLoad = Machine.procStatusKb("VmRSS");
                for (int r = 0; r < rounds; r++) {
                    float[][] e = impl.equals("ort-single") ? ort.embedOneByOne(tok, texts) : ort.embedSortedBatches(tok, texts, 32);
                    checksum += e[e.length - 1][0];
                }
            }
        } else {
            Bert4jRunner.setThreads(threads);
            try (Bert bert = Bert4jRunner.loadDefault(impl.equals("torch") ? KernelMode.TORCH : KernelMode.FUSED)) {
                if (impl.equals("int8")) {
                    bert.model().setInt8(true);
                }
                afterLoad = Machine.procStatusKb("VmRSS");
                for (int r = 0; r < rounds; r++) {
                    float[][] e = bert.embed(texts, opts);
                    checksum += e[e.length - 1][0];
                }
            }
        }
        // Which runtimes' libraries ended up in the process: an ORT child must not carry libtorch, or
        // its number would include a runtime it does not use.
        System.out.printf(Locale.ROOT, "%s%s %d %d %.3f %b %b %.6f%n", PREFIX, impl, afterLoad, Machine.procStatusKb("VmHWM"),
                (System.nanoTime() - t0) / 1e9, Machine.mapped("libtorch_cpu"), Machine.mapped("onnxruntime"), checksum);
    }

    /**
     * Runs one child per implementation, one after another, with this JVM's java, heap options and
     * classpath; a child that fails or prints no report is an error naming it.
     */
    static Map<String, Result> measureAll(int threads, int batches, int rounds) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> jvmArgs = new ArrayList<>();
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            // Heap and system-property settings carry over; debug agents do not.
            if (!a.startsWith("-agentlib") && !a.startsWith("-javaagent") && !a.startsWith("-Xrunjdwp")) {
                jvmArgs.add(a);
            }
        }
        Map<String, Result> out = new LinkedHashMap<>();
        for (String impl : IMPLS) {
            List<String> cmd = new ArrayList<>();
            cmd.add(java);
            cmd.addAll(jvmArgs);
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), PeakMemory.class.getName(), impl,
                    String.valueOf(threads), String.valueOf(batches), String.valueOf(rounds)));
            System.err.printf(Locale.ROOT, "case e: child JVM for %s (%d x %d sentences, %d rounds)%n", impl, batches, 32, rounds);
            Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            Result r = null;
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    if (line.startsWith(PREFIX)) {
                        String[] f = line.substring(PREFIX.length()).trim().split("\\s+");
                        r = new Result(f[0], Long.parseLong(f[1]), Long.parseLong(f[2]), Double.parseDouble(f[3]),
                                Boolean.parseBoolean(f[4]), Boolean.parseBoolean(f[5]));
                    }
                }
            }
            if (!p.waitFor(15, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("peak-memory child for " + impl + " did not finish within 15 minutes");
            }
            if (p.exitValue() != 0 || r == null || !r.impl().equals(impl) || r.peakKb() <= 0) {
                throw new IllegalStateException("peak-memory child for " + impl + " failed (exit " + p.exitValue()
                        + (r == null ? ", no report" : "") + "); its stderr is above");
            }
            out.put(impl, r);
        }
        return out;
    }
}
