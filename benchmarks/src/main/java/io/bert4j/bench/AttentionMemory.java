package io.bert4j.bench;

import io.bert4j.kernels.Attention;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Peak native memory of one attention call, batch 1, 12 heads, head_dim 64, no padding:
 * bert4j's fused kernel vs libtorch {@code scaled_dot_product_attention} vs the composed
 * math reference {@code softmax(scale·QKᵀ)V} (which materialises [1, 12, S, S]), forward
 * and forward+backward (loss = sum(out * w), gradients of q, k, v).
 *
 * <p>Each case runs in a fresh JVM (Linux only): inputs allocated, one small warm-up call,
 * then the peak-RSS counter is reset ({@code 5 > /proc/self/clear_refs}) and the case's one
 * call measured as VmHWM after minus VmRSS before. The number is what the call added at its
 * peak: outputs, gradients and temporaries, not q/k/v. glibc runs with a fixed 128 KiB mmap
 * threshold so large buffers are fresh pages (otherwise they can reuse C heap the JVM freed at
 * start-up and never show in the peak); buffers below that can still hide, so read the small-S
 * rows as "a few MB at most".
 *
 * <pre>
 * AttentionMemory [--seqs 256,512,1024,2048,4096] [--threads 2]
 * </pre>
 */
public final class AttentionMemory {
    private AttentionMemory() {
    }

    private static final int HEADS = 12;
    private static final int DIM = 64;
    private static final String[] IMPLS = {"fused", "sdpa", "math"};
    private static final String[] MODES = {"fwd", "fwdbwd"};

    public static void main(String[] args) throws Exception {
        io.bert4j.NativeSetup.ensure(); // OpenMP settings before libtorch loads
        if (args.length > 0 && args[0].equals("--child")) {
            child(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            return;
        }
        String seqs = "256,512,1024,2048,4096";
        int threads = 2;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--seqs" -> seqs = args[++i];
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                default -> {
                    System.err.println("AttentionMemory: unknown argument " + args[i]
                            + " (usage: AttentionMemory [--seqs 256,512,...] [--threads N])");
                    System.exit(2);
                }
            }
        }
        if (!Files.isReadable(Path.of("/proc/self/status"))) {
            System.err.println("AttentionMemory: needs Linux /proc/self/status");
            System.exit(2);
        }
        String java = ProcessHandle.current().info().command().orElse("java");
        String cp = System.getProperty("java.class.path");
        Map<String, double[]> mb = new LinkedHashMap<>();   // "impl mode" -> MB per seq
        Map<String, double[]> ms = new LinkedHashMap<>();
        String[] seqList = seqs.split(",");
        for (int si = 0; si < seqList.length; si++) {
            int s = Integer.parseInt(seqList[si].trim());
            for (String mode : MODES) {
                for (String impl : IMPLS) {
                    String key = impl + " " + mode;
                    List<String> cmd = List.of(java, "-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch",
                            "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                            // JavaCPP caps native memory at ~2x the heap by default; the S x S cases need more
                            "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0", "-Dorg.bytedeco.javacpp.maxBytes=0", "-cp", cp, AttentionMemory.class.getName(),
                            "--child", impl, mode, Integer.toString(s), Integer.toString(threads));
                    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
                    // A fixed mmap threshold (which also stops glibc raising it) and no top pad:
                    // the call's large buffers come from fresh pages rather than heap memory the
                    // JVM freed at start-up, which would hide them from the RSS peak.
                    pb.environment().put("MALLOC_MMAP_THRESHOLD_", "131072");
                    pb.environment().put("MALLOC_TRIM_THRESHOLD_", "0");
                    pb.environment().put("MALLOC_TOP_PAD_", "0");
                    Process p = pb.start();
                    String result = null;
                    List<String> lines = new ArrayList<>();
                    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                        for (String line; (line = r.readLine()) != null; ) {
                            lines.add(line);
                            if (line.startsWith("RESULT ")) {
                                result = line;
                            }
                        }
                    }
                    int rc = p.waitFor();
                    if (rc != 0 || result == null) {
                        // e.g. out of memory: report and keep going, the row shows NaN
                        System.err.println("case " + key + " S=" + s + " failed (exit " + rc + "):");
                        lines.stream().filter(l -> !l.startsWith("\tat ")).limit(5).forEach(System.err::println);
                        result = "RESULT -1 NaN";
                    }
                    String[] f = result.split(" ");  // RESULT deltaKb millis
                    mb.computeIfAbsent(key, x -> new double[seqList.length])[si] = f[1].equals("-1") ? Double.NaN : Long.parseLong(f[1]) / 1024.0;
                    ms.computeIfAbsent(key, x -> new double[seqList.length])[si] = Double.parseDouble(f[2]);
                    System.err.printf(Locale.ROOT, "  %-12s S=%-5d %9.1f MB %9.1f ms%n", key, s, Long.parseLong(f[1]) / 1024.0, Double.parseDouble(f[2]));
                }
            }
        }
        System.out.println();
        System.out.printf(Locale.ROOT, "Peak native memory added by one call (MB; VmHWM after - VmRSS before), batch 1, %d heads, head_dim %d, %d threads%n",
                HEADS, DIM, threads);
        StringBuilder h = new StringBuilder("| S | q (one input) MB | S×S scores (fp32, all heads) MB |");
        StringBuilder sep = new StringBuilder("| ---: | ---: | ---: |");
        for (String key : mb.keySet()) {
            h.append(' ').append(key.replace("fwdbwd", "fwd+bwd")).append(" |");
            sep.append(" ---: |");
        }
        System.out.println(h);
        System.out.println(sep);
        for (int si = 0; si < seqList.length; si++) {
            long s = Long.parseLong(seqList[si].trim());
            StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "| %d | %.1f | %.1f |", s,
                    s * HEADS * DIM * 4 / 1048576.0, (double) HEADS * s * s * 4 / 1048576.0));
            for (double[] v : mb.values()) {
                row.append(String.format(Locale.ROOT, " %.1f |", v[si]));
            }
            System.out.println(row);
        }
        System.out.println();
        System.out.println("Growth per doubling of S (MB ratio to the previous row; 2 = linear, 4 = quadratic):");
        for (Map.Entry<String, double[]> e : mb.entrySet()) {
            StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "  %-14s", e.getKey()));
            for (int si = 1; si < seqList.length; si++) {
                double prev = e.getValue()[si - 1];
                row.append(String.format(Locale.ROOT, " %6s", prev > 0.5 ? String.format(Locale.ROOT, "%.2f", e.getValue()[si] / prev) : "-"));
            }
            System.out.println(row);
        }
        System.out.println();
        System.out.println("Wall time of that single (cold-ish) call, ms (not a benchmark):");
        for (Map.Entry<String, double[]> e : ms.entrySet()) {
            StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "  %-14s", e.getKey()));
            for (double v : e.getValue()) {
                row.append(String.format(Locale.ROOT, " %8.1f", v));
            }
            System.out.println(row);
        }
    }

    private static void child(String impl, String mode, int s, int threads) throws IOException {
        Bert4jRunner.setThreads(threads);
        double scale = 1.0 / Math.sqrt(DIM);
        torch.manual_seed(1234);
        Tensor q = torch.randn(1, HEADS, s, DIM);
        Tensor k = torch.randn(1, HEADS, s, DIM);
        Tensor v = torch.randn(1, HEADS, s, DIM);
        Tensor w = torch.randn(1, HEADS, s, DIM);
        // warm-up on a tiny shape: thread pools, lazy init, JIT of this path
        Tensor q0 = torch.randn(1, HEADS, 16, DIM);
        run(impl, mode, q0, q0, q0, q0, scale);
        // a fixed, pre-touched Java heap and a quiet moment: the JVM's own memory should not move
        try {
            Thread.sleep(300);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Files.writeString(Path.of("/proc/self/clear_refs"), "5");   // reset VmHWM to the current RSS
        long before = status("VmRSS:");
        long t0 = System.nanoTime();
        run(impl, mode, q, k, v, w, scale);
        double millis = (System.nanoTime() - t0) / 1e6;
        long peak = status("VmHWM:");
        System.out.println("RESULT " + Math.max(0, peak - before) + " " + millis);
    }

    private static void run(String impl, String mode, Tensor q, Tensor k, Tensor v, Tensor w, double scale) {
        try (PointerScope scope = new PointerScope()) {
            if (mode.equals("fwd")) {
                try (InferenceMode guard = new InferenceMode()) {
                    Tensor out = switch (impl) {
                        case "fused" -> Attention.forward(q, k, v, null, null, scale, 0.0, 0, 0).out();
                        case "sdpa" -> KernelInputs.sdpa(q, k, v, null, scale);
                        case "math" -> KernelInputs.composed(q, k, v, scale);
                        default -> throw new IllegalArgumentException(impl);
                    };
                    out.size(0);
                }
                return;
            }
            if (impl.equals("fused")) {
                Attention.Result r = Attention.forward(q, k, v, null, null, scale, 0.0, 0, 0);
                r.out().mul(w).sum().item_double();
                Attention.backward(q, k, v, r.out(), w, r.lse(), null, null, scale, 0.0, 0, 0);
                return;
            }
            Tensor ql = q.detach().requires_grad_(true);
            Tensor kl = k.detach().requires_grad_(true);
            Tensor vl = v.detach().requires_grad_(true);
            Tensor out = impl.equals("sdpa") ? KernelInputs.sdpa(ql, kl, vl, null, scale) : KernelInputs.composed(ql, kl, vl, scale);
            out.mul(w).sum().backward();
        }
    }

    /** A /proc/self/status field in kB. */
    private static long status(String field) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(field)) {
                return Long.parseLong(line.substring(field.length()).trim().split("\\s+")[0]);
            }
        }
        throw new IllegalStateException("no " + field + " in /proc/self/status");
    }
}
