package io.bert4j.bench;

import io.bert4j.Bert;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertModel;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.tokenize.BertTokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A short, bounded comparison of bert4j (fused kernels, plain libtorch ops) against ONNX Runtime
 * on all-MiniLM-L6-v2, written as a markdown table. All three run in one JVM and are timed in
 * alternation (the order rotates every iteration), so a noisy neighbour hits them alike; each
 * case warms up first. Cases: (a) batch 1 x 128 tokens, (b) batch 32 x 128 tokens, (c) 32 real
 * SST-2 sentences end to end (tokenize, forward, mean pool, normalise).
 *
 * <pre>
 * Compare [--threads N] [--warmup W] [--iters N] [--cases abc] [--out FILE]
 * </pre>
 */
public final class Compare {
    private Compare() {
    }

    private static final String[] IMPLS = {"fused", "torch", "ort"};

    record Case(String id, String title, int sentences, int warmup, int iters, Map<String, Runnable> ops, String parity) {
    }

    record Stats(double median, double p90, double min) {
        static Stats of(double[] xs) {
            double[] s = xs.clone();
            Arrays.sort(s);
            return new Stats(quantile(s, 0.5), s[Math.max(0, (int) Math.ceil(0.9 * s.length) - 1)], s[0]);
        }
    }

    static double quantile(double[] sorted, double q) {
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(sorted.length - 1, lo + 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }

    public static void main(String[] args) throws IOException {
        int threads = Bert4jRunner.defaultThreads();
        int warmup = -1;
        int iters = -1;
        String cases = "abc";
        Path out = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (a) {
                case "--threads" -> { threads = Integer.parseInt(v); i++; }
                case "--warmup" -> { warmup = Integer.parseInt(v); i++; }
                case "--iters" -> { iters = Integer.parseInt(v); i++; }
                case "--cases" -> { cases = v; i++; }
                case "--out" -> { out = Path.of(v); i++; }
                default -> {
                    System.err.println("usage: Compare [--threads N] [--warmup W] [--iters N] [--cases abc] [--out FILE]");
                    System.exit(2);
                }
            }
        }
        String loadBefore = loadAverage();
        long t0 = System.nanoTime();
        Bert4jRunner.setThreads(threads);
        Bert bert = Bert4jRunner.loadDefault(KernelMode.FUSED);
        BertModel model = bert.model();
        BertTokenizer tok = bert.tokenizer();
        OrtReference ort = new OrtReference(threads);

        List<Case> list = new ArrayList<>();
        if (cases.contains("a")) {
            list.add(encoderCase("a", 1, 128, warmup < 0 ? 10 : warmup, iters < 0 ? 60 : iters, model, tok, ort));
        }
        if (cases.contains("b")) {
            list.add(encoderCase("b", 32, 128, warmup < 0 ? 2 : warmup, iters < 0 ? 15 : iters, model, tok, ort));
        }
        if (cases.contains("c")) {
            list.add(embedCase(warmup < 0 ? 5 : warmup, iters < 0 ? 40 : iters, bert, ort));
        }

        Map<String, Map<String, double[]>> timings = new LinkedHashMap<>();
        for (Case c : list) {
            System.err.printf(Locale.ROOT, "case %s: %s — %d warm-up + %d timed rounds; %s%n",
                    c.id, c.title, c.warmup, c.iters, c.parity);
            for (int w = 0; w < c.warmup; w++) {
                for (String impl : IMPLS) {
                    c.ops.get(impl).run();
                }
            }
            Map<String, double[]> ms = new LinkedHashMap<>();
            for (String impl : IMPLS) {
                ms.put(impl, new double[c.iters]);
            }
            for (int i = 0; i < c.iters; i++) {
                for (int k = 0; k < IMPLS.length; k++) {
                    String impl = IMPLS[(i + k) % IMPLS.length];      // rotate who goes first
                    long s = System.nanoTime();
                    c.ops.get(impl).run();
                    ms.get(impl)[i] = (System.nanoTime() - s) / 1e6;
                }
            }
            timings.put(c.id, ms);
        }
        model.setKernels(KernelMode.FUSED);
        double totalS = (System.nanoTime() - t0) / 1e9;
        String md = markdown(list, timings, threads, loadBefore, loadAverage(), totalS, args);
        System.out.println(md);
        if (out != null) {
            Files.writeString(out, md, StandardCharsets.UTF_8);
            System.err.println("wrote " + out);
        }
        ort.close();
        bert.close();
    }

    private static Case encoderCase(String id, int batch, int seq, int warmup, int iters, BertModel model,
                                    BertTokenizer tok, OrtReference ort) {
        Workloads.Inputs in = Workloads.Inputs.of(Workloads.fixedLength(tok, batch, seq), tok.padId());
        Map<String, Runnable> ops = new LinkedHashMap<>();
        ops.put("fused", () -> { model.setKernels(KernelMode.FUSED); Bert4jRunner.forward(model, in); });
        ops.put("torch", () -> { model.setKernels(KernelMode.TORCH); Bert4jRunner.forward(model, in); });
        ops.put("ort", () -> ort.forward(in));
        float[] ref = ort.lastHiddenState(in);
        model.setKernels(KernelMode.FUSED);
        double dFused = Bert4jRunner.maxAbsDiff(Bert4jRunner.lastHiddenState(model, in), ref);
        model.setKernels(KernelMode.TORCH);
        double dTorch = Bert4jRunner.maxAbsDiff(Bert4jRunner.lastHiddenState(model, in), ref);
        String parity = String.format(Locale.ROOT, "max |last_hidden_state - ORT|: fused %.1e, torch %.1e", dFused, dTorch);
        String title = (batch == 1 ? "latency" : "throughput") + ", batch " + batch + " x " + seq + " tokens (encoder forward)";
        return new Case(id, title, 0, warmup, iters, ops, parity);
    }

    private static Case embedCase(int warmup, int iters, Bert bert, OrtReference ort) {
        List<String> texts = Workloads.sentenceBatches(1, 32).get(0);
        BertModel model = bert.model();
        BertTokenizer tok = bert.tokenizer();
        Map<String, Runnable> ops = new LinkedHashMap<>();
        ops.put("fused", () -> { model.setKernels(KernelMode.FUSED); bert.embed(texts, EmbedOptions.DEFAULTS); });
        ops.put("torch", () -> { model.setKernels(KernelMode.TORCH); bert.embed(texts, EmbedOptions.DEFAULTS); });
        ops.put("ort", () -> ort.embed(tok, texts));
        float[][] ref = ort.embed(tok, texts);
        model.setKernels(KernelMode.FUSED);
        double dFused = Bert4jRunner.maxAbsDiff(bert.embed(texts, EmbedOptions.DEFAULTS), ref);
        model.setKernels(KernelMode.TORCH);
        double dTorch = Bert4jRunner.maxAbsDiff(bert.embed(texts, EmbedOptions.DEFAULTS), ref);
        int longest = 0;
        int total = 0;
        for (String t : texts) {
            int n = tok.encode(t).length();
            longest = Math.max(longest, n);
            total += n;
        }
        String parity = String.format(Locale.ROOT, "max |embedding - ORT|: fused %.1e, torch %.1e", dFused, dTorch);
        String title = String.format(Locale.ROOT, "end-to-end embed, 32 SST-2 sentences (%d-%d tokens, mean %.1f; padded to %d)",
                texts.stream().mapToInt(t -> tok.encode(t).length()).min().orElse(0), longest, total / 32.0, longest);
        return new Case("c", title, 32, warmup, iters, ops, parity);
    }

    private static String markdown(List<Case> list, Map<String, Map<String, double[]>> timings, int threads,
                                   String loadBefore, String loadAfter, double totalS, String[] args) {
        StringBuilder sb = new StringBuilder();
        sb.append("### bert4j vs ONNX Runtime: all-MiniLM-L6-v2 on CPU\n\n");
        sb.append("- date: ").append(ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)).append('\n');
        sb.append("- commit: ").append(gitCommit()).append('\n');
        sb.append("- machine: ").append(cpuModel()).append(", ").append(Runtime.getRuntime().availableProcessors())
                .append(" cores visible to the JVM; load average before/after: ").append(loadBefore).append(" / ")
                .append(loadAfter).append('\n');
        sb.append("- threads: ").append(threads).append(" (libtorch intra-op = bert4j kernels = ORT intra-op; ORT inter-op 1)\n");
        sb.append("- runtimes: bert4j on libtorch (JavaCPP pytorch ").append(version(org.bytedeco.pytorch.global.torch.class))
                .append("), ONNX Runtime ").append(OrtReference.version()).append(" (CPU EP, ALL_OPT, spin-wait "
                + (OrtReference.spinning() ? "on" : "off") + "); OMP_WAIT_POLICY=" + System.getenv().getOrDefault("OMP_WAIT_POLICY", "(unset)") + "; JVM ")
                .append(System.getProperty("java.vm.name")).append(' ').append(System.getProperty("java.version")).append('\n');
        sb.append("- text: ").append(Workloads.textSource()).append('\n');
        sb.append("- arguments: `").append(String.join(" ", args)).append("`; whole run ")
                .append(String.format(Locale.ROOT, "%.0f s", totalS)).append(" (model load included)\n\n");
        sb.append("Times in ms per call, median and p90 over the timed rounds (fused, torch and ORT alternate, ")
                .append("order rotating each round). Ratio = ORT median / bert4j median: **> 1 means bert4j is faster**. ")
                .append("\"paired\" = median and p10–p90 of the per-round ratios.\n\n");
        sb.append("| case | rounds | bert4j fused ms (median · p90) | bert4j torch ms (median · p90) | ORT ms (median · p90) "
                + "| ORT/fused | ORT/torch | ORT/fused paired (p10–p90) |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Case c : list) {
            Map<String, double[]> ms = timings.get(c.id);
            Stats f = Stats.of(ms.get("fused"));
            Stats t = Stats.of(ms.get("torch"));
            Stats o = Stats.of(ms.get("ort"));
            double[] paired = new double[c.iters];
            for (int i = 0; i < c.iters; i++) {
                paired[i] = ms.get("ort")[i] / ms.get("fused")[i];
            }
            Arrays.sort(paired);
            sb.append(String.format(Locale.ROOT, "| (%s) %s | %d | %.1f · %.1f | %.1f · %.1f | %.1f · %.1f | %.2f | %.2f | %.2f (%.2f–%.2f) |\n",
                    c.id, c.title, c.iters, f.median, f.p90, t.median, t.p90, o.median, o.p90,
                    o.median / f.median, o.median / t.median,
                    quantile(paired, 0.5), quantile(paired, 0.1), quantile(paired, 0.9)));
        }
        sb.append('\n');
        for (Case c : list) {
            Map<String, double[]> ms = timings.get(c.id);
            if (c.sentences > 0) {
                sb.append(String.format(Locale.ROOT, "- (%s) throughput, sentences/s from the medians: bert4j fused %.0f, bert4j torch %.0f, ORT %.0f\n",
                        c.id, 1000 * c.sentences / Stats.of(ms.get("fused")).median,
                        1000 * c.sentences / Stats.of(ms.get("torch")).median, 1000 * c.sentences / Stats.of(ms.get("ort")).median));
            } else if (c.id.equals("b")) {
                sb.append(String.format(Locale.ROOT, "- (%s) throughput, sequences/s from the medians: bert4j fused %.1f, bert4j torch %.1f, ORT %.1f\n",
                        c.id, 32000 / Stats.of(ms.get("fused")).median, 32000 / Stats.of(ms.get("torch")).median,
                        32000 / Stats.of(ms.get("ort")).median));
            }
            sb.append("- (").append(c.id).append(") parity, checked before timing: ").append(c.parity).append('\n');
        }
        return sb.toString();
    }

    static String version(Class<?> c) {
        String v = c.getPackage() != null ? c.getPackage().getImplementationVersion() : null;
        return v != null ? v : "?";
    }

    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException e) {
            // not Linux: fall through
        }
        return System.getProperty("os.arch");
    }

    static String gitCommit() {
        String prop = System.getProperty("bench.commit");
        if (prop != null && !prop.isBlank()) {
            return prop;
        }
        try {
            String head = run("git", "rev-parse", "--short=12", "HEAD");
            String dirty = run("git", "status", "--porcelain", "--untracked-files=no");
            return head.isEmpty() ? "unknown" : head + (dirty.isEmpty() ? "" : " (with uncommitted changes)");
        } catch (IOException | InterruptedException e) {
            return "unknown";
        }
    }

    private static String run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String s = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        return p.waitFor() == 0 ? s : "";
    }
}
