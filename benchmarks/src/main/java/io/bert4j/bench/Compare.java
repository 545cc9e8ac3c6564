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
 * bert4j against ONNX Runtime on all-MiniLM-L6-v2 (the same ONNX file bert4j imports its default
 * model from), same texts, same thread count, one run, one markdown report. Implementations of a
 * case run in one JVM, timed in alternation with the order rotating every round so a noisy
 * neighbour hits them alike; every case warms up first and checks parity before timing.
 * <ul>
 * <li>(a) latency, batch 1 x 128 tokens, encoder forward: fused, int8, torch vs ORT;</li>
 * <li>(b) throughput on K batches of 32 consecutive SST-2 sentences end to end (tokenize,
 *     forward, mean pool, normalise): bert4j fused (padding-free), int8, torch (padded) vs the
 *     faster of ORT one text at a time and ORT on length-sorted padded batches of 32;</li>
 * <li>(c) throughput, batch 8 x 512 tokens, encoder forward;</li>
 * <li>(d) a training step at batch 32 x 128 (forward, loss, backward, clipping, AdamW), fused vs
 *     torch kernels;</li>
 * <li>(e) peak resident memory of each implementation doing (b), one child JVM each.</li>
 * </ul>
 * A parity check that fails is printed in the report and makes the run exit with status 1.
 *
 * <pre>
 * Compare [--threads N] [--warmup W] [--iters N] [--cases abcde] [--batches K] [--rss-rounds R] [--out FILE]
 * </pre>
 */
public final class Compare {
    private Compare() {
    }

    /** fp32 implementations against each other: float rounding only (measured ~1e-5 on these shapes). */
    static final double FP32_TOL = 1e-3;
    /** int8 against fp32: mean cosine of the output vectors (measured ~0.99 on MiniLM, see Int8Test). */
    static final double INT8_MIN_MEAN_COSINE = 0.98;
    /** bf16 against fp32: the smallest cosine allowed (measured 0.99998 on MiniLM, see Bf16Test). */
    static final double BF16_MIN_COSINE = 0.999;

    record Impl(String name, Runnable op) {
    }

    /**
     * A timed case. {@code refs}: the reference implementations; the one with the lowest median
     * is the reference every ratio is taken against. {@code items}: units of work per call
     * (sequences, sentences or steps), for the throughput column.
     */
    record Case(String id, String title, String unit, int items, int warmup, int iters, List<Impl> impls,
                List<String> refs, List<String> notes) {
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

    private static final List<String> failures = new ArrayList<>();

    /** Records a parity check; a failing one is reported and fails the run. */
    static String check(boolean ok, String what) {
        if (!ok) {
            failures.add(what);
            return what + " **FAILED**";
        }
        return what;
    }

    private static final String USAGE = "usage: Compare [--threads N] [--warmup W] [--iters N] [--cases abcde] "
            + "[--batches K] [--rss-rounds R] [--gap-ms G] [--out FILE]";

    public static void main(String[] args) throws IOException, InterruptedException {
        io.bert4j.NativeSetup.ensure(); // OpenMP settings before libtorch loads
        int threads = Bert4jRunner.defaultThreads();
        int warmup = -1;
        int iters = -1;
        int batches = 8;
        int rssRounds = 3;
        String cases = "abcde";
        Path out = null;
        gapMs = 10;
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(a + " needs a value");
                }
                String v = args[++i];
                switch (a) {
                    case "--threads" -> threads = positive(a, v);
                    case "--warmup" -> warmup = Integer.parseInt(v);
                    case "--iters" -> iters = positive(a, v);
                    case "--cases" -> cases = v;
                    case "--batches" -> batches = positive(a, v);
                    case "--rss-rounds" -> rssRounds = positive(a, v);
                    case "--gap-ms" -> gapMs = Integer.parseInt(v);
                    case "--out" -> out = Path.of(v);
                    default -> throw new IllegalArgumentException("unknown option " + a);
                }
            }
            if (warmup < -1 || !cases.matches("[abcde]+")) {
                throw new IllegalArgumentException("--warmup must be >= 0 and --cases letters from abcde");
            }
        } catch (IllegalArgumentException e) {
            System.err.println("Compare: " + e.getMessage() + "\n" + USAGE);
            System.exit(2);
        }
        String loadBefore = Machine.loadAverage();
        long t0 = System.nanoTime();
        Bert4jRunner.setThreads(threads);
        Bert bert = Bert4jRunner.loadDefault(KernelMode.FUSED);
        // A second copy for int8: switching int8 on and off re-quantizes, which must not be timed.
        Bert bertQ = Bert4jRunner.loadDefault(KernelMode.FUSED);
        bertQ.model().setInt8(true);
        // And one for bf16, on CPUs with AMX only (the mode is refused elsewhere).
        Bert bertB = null;
        if (io.bert4j.kernels.Kernels.bf16Amx()) {
            bertB = Bert4jRunner.loadDefault(KernelMode.FUSED);
            bertB.model().setBf16(true);
        }
        OrtReference ort = new OrtReference(threads);

        List<Case> list = new ArrayList<>();
        if (cases.contains("a")) {
            list.add(encoderCase("a", 1, 128, or(warmup, 10), or(iters, 150), bert, bertQ.model(), bertB, ort));
        }
        if (cases.contains("b")) {
            list.add(sentencesCase(batches, or(warmup, 2), or(iters, 30), bert, bertQ, bertB, ort));
        }
        if (cases.contains("c")) {
            list.add(encoderCase("c", 8, 512, or(warmup, 2), or(iters, 15), bert, bertQ.model(), bertB, ort));
        }
        Bert trainBert = null;
        TrainStep train = null;
        if (cases.contains("d")) {
            // Its own copy: the updates must not touch the weights the inference cases compare.
            trainBert = Bert4jRunner.loadDefault(KernelMode.FUSED);
            train = new TrainStep(trainBert.model(), Workloads.Inputs.of(Workloads.fixedLength(bert.tokenizer(), 32, 128),
                    bert.tokenizer().padId()), 42);
            list.add(trainCase(or(warmup, 2), or(iters, 15), train));
        }

        Map<String, Map<String, double[]>> timings = new LinkedHashMap<>();
        for (Case c : list) {
            System.err.printf(Locale.ROOT, "case %s: %s; %d warm-up + %d timed rounds%n", c.id, c.title, c.warmup, c.iters);
            c.notes.forEach(n -> System.err.println("  " + n));
            timings.put(c.id, time(c));
        }
        if (train != null) {
            train.close();
            trainBert.close();
        }
        ort.close();
        bertQ.close();
        bert.close();
        Map<String, PeakMemory.Result> rss = null;
        if (cases.contains("e")) {
            rss = PeakMemory.measureAll(threads, batches, rssRounds);
        }
        double totalS = (System.nanoTime() - t0) / 1e9;
        String md = markdown(list, timings, rss, batches, rssRounds, threads, loadBefore, Machine.loadAverage(), totalS, args);
        System.out.println(md);
        if (out != null) {
            Files.writeString(out, md, StandardCharsets.UTF_8);
            System.err.println("wrote " + out);
        }
        if (!failures.isEmpty()) {
            System.err.println("Compare: parity checks failed: " + String.join("; ", failures));
            System.exit(1);
        }
    }

    private static int positive(String name, String v) {
        int n;
        try {
            n = Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a whole number, got '" + v + "'");
        }
        if (n <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + n);
        }
        return n;
    }

    private static int or(int given, int dflt) {
        return given < 0 ? dflt : given;
    }

    /**
     * Minimum idle time before each timed call, ms (--gap-ms, default 10), after which the
     * harness also waits until the process's other threads are quiet ({@link Quiet}): no
     * implementation is timed while another runtime's workers (ONNX Runtime's spin, 5-30 ms
     * after each run on 2 cores) still hold the cores; a service's requests also arrive with
     * gaps. 0 runs the calls back to back.
     */
    private static int gapMs = 10;
    private static final Quiet QUIET = new Quiet();

    /** Warm-up rounds, then timed rounds with the order of the implementations rotating each round. */
    private static Map<String, double[]> time(Case c) {
        List<Impl> impls = c.impls;
        for (int w = 0; w < c.warmup; w++) {
            impls.forEach(i -> i.op.run());
        }
        Map<String, double[]> ms = new LinkedHashMap<>();
        impls.forEach(i -> ms.put(i.name, new double[c.iters]));
        for (int r = 0; r < c.iters; r++) {
            for (int k = 0; k < impls.size(); k++) {
                Impl impl = impls.get((r + k) % impls.size());
                if (gapMs > 0) {
                    QUIET.await(gapMs);
                }
                long s = System.nanoTime();
                impl.op.run();
                ms.get(impl.name)[r] = (System.nanoTime() - s) / 1e6;
            }
        }
        return ms;
    }

    private static Case encoderCase(String id, int batch, int seq, int warmup, int iters, Bert bert, BertModel int8,
                                    Bert bf16OrNull, OrtReference ort) {
        BertModel model = bert.model();
        Workloads.Inputs in = Workloads.Inputs.of(Workloads.fixedLength(bert.tokenizer(), batch, seq), bert.tokenizer().padId());
        List<Impl> impls = new ArrayList<>(List.of(
                new Impl("bert4j fused", () -> { model.setKernels(KernelMode.FUSED); Bert4jRunner.forward(model, in); }),
                new Impl("bert4j fused int8", () -> Bert4jRunner.forward(int8, in))));
        if (bf16OrNull != null) {
            impls.add(new Impl("bert4j fused bf16", () -> Bert4jRunner.forward(bf16OrNull.model(), in)));
        }
        impls.add(new Impl("bert4j torch", () -> { model.setKernels(KernelMode.TORCH); Bert4jRunner.forward(model, in); }));
        impls.add(new Impl("ORT", () -> ort.forward(in)));
        float[] ref = ort.lastHiddenState(in);
        model.setKernels(KernelMode.FUSED);
        float[] fused = Bert4jRunner.lastHiddenState(model, in);
        model.setKernels(KernelMode.TORCH);
        float[] torchOut = Bert4jRunner.lastHiddenState(model, in);
        float[] q = Bert4jRunner.lastHiddenState(int8, in);
        int h = model.config().hiddenSize();
        double dFused = Bert4jRunner.maxAbsDiff(fused, ref);
        double dTorch = Bert4jRunner.maxAbsDiff(torchOut, ref);
        double[] cos = cosines(rows(fused, h), rows(q, h));
        List<String> notes = new ArrayList<>(List.of(
                check(dFused <= FP32_TOL && dTorch <= FP32_TOL, String.format(Locale.ROOT,
                        "parity: max |last_hidden_state - ORT|: fused %.1e, torch %.1e (limit %.0e)", dFused, dTorch, FP32_TOL)),
                check(cos[0] >= INT8_MIN_MEAN_COSINE, String.format(Locale.ROOT,
                        "int8 accuracy: per-token cosine to fused fp32 mean %.4f, min %.4f; max |diff to ORT| %.2f",
                        cos[0], cos[1], Bert4jRunner.maxAbsDiff(q, ref)))));
        if (bf16OrNull != null) {
            float[] b = Bert4jRunner.lastHiddenState(bf16OrNull.model(), in);
            double[] cb = cosines(rows(fused, h), rows(b, h));
            notes.add(check(cb[1] >= BF16_MIN_COSINE, String.format(Locale.ROOT,
                    "bf16 accuracy: per-token cosine to fused fp32 mean %.6f, min %.6f; max |diff to ORT| %.3f",
                    cb[0], cb[1], Bert4jRunner.maxAbsDiff(b, ref))));
        }
        String title = (batch == 1 ? "latency" : "throughput") + ", batch " + batch + " x " + seq + " tokens (encoder forward)";
        return new Case(id, title, "sequences", batch, warmup, iters, impls, List.of("ORT"), notes);
    }

    private static Case sentencesCase(int batches, int warmup, int iters, Bert bert, Bert bertQ, Bert bertB,
                                      OrtReference ort) {
        List<String> texts = Workloads.consecutiveSentences(0, batches * 32);
        BertModel model = bert.model();
        BertTokenizer tok = bert.tokenizer();
        EmbedOptions opts = EmbedOptions.DEFAULTS.withBatchSize(32);
        List<Impl> impls = new ArrayList<>(List.of(
                new Impl("bert4j fused", () -> { model.setKernels(KernelMode.FUSED); bert.embed(texts, opts); }),
                new Impl("bert4j fused int8", () -> bertQ.embed(texts, opts))));
        if (bertB != null) {
            impls.add(new Impl("bert4j fused bf16", () -> bertB.embed(texts, opts)));
        }
        impls.addAll(List.of(
                new Impl("bert4j torch", () -> { model.setKernels(KernelMode.TORCH); bert.embed(texts, opts); }),
                new Impl("ORT one by one", () -> ort.embedOneByOne(tok, texts)),
                new Impl("ORT sorted batches", () -> ort.embedSortedBatches(tok, texts, 32))));
        float[][] ref = ort.embedOneByOne(tok, texts);
        model.setKernels(KernelMode.FUSED);
        float[][] fused = bert.embed(texts, opts);
        model.setKernels(KernelMode.TORCH);
        float[][] torchOut = bert.embed(texts, opts);
        float[][] sorted = ort.embedSortedBatches(tok, texts, 32);
        float[][] q = bertQ.embed(texts, opts);
        double dFused = Bert4jRunner.maxAbsDiff(fused, ref);
        double dTorch = Bert4jRunner.maxAbsDiff(torchOut, ref);
        double dSorted = Bert4jRunner.maxAbsDiff(sorted, ref);
        double[] cos = cosines(fused, q);
        int[] lengths = texts.stream().mapToInt(t -> tok.encode(t).length()).toArray();
        int[] sortedLengths = lengths.clone();
        Arrays.sort(sortedLengths);
        long total = Arrays.stream(lengths).sum();
        long padded = 0;        // tokens a padded run computes: batches of 32 in length order, each padded to its longest
        for (int from = 0; from < sortedLengths.length; from += 32) {
            padded += (long) sortedLengths[Math.min(sortedLengths.length, from + 32) - 1] * (Math.min(sortedLengths.length, from + 32) - from);
        }
        List<String> notes = new ArrayList<>(List.of(
                String.format(Locale.ROOT, "texts: SST-2 train sentences 1-%d (%d batches of 32 in file order): %d-%d tokens, "
                                + "mean %.1f; %d real tokens, %d once length-sorted batches are padded",
                        texts.size(), batches, sortedLengths[0], sortedLengths[sortedLengths.length - 1],
                        (double) total / texts.size(), total, padded),
                "feeding: bert4j embeds the whole list (its embedder sorts by length into batches of 32; fused runs them "
                        + "padding-free, torch pads each to its longest); ORT one by one = one unpadded text per run; "
                        + "ORT sorted batches = the same length-sorted batches of 32, padded, order restored",
                check(dFused <= FP32_TOL && dTorch <= FP32_TOL && dSorted <= FP32_TOL, String.format(Locale.ROOT,
                        "parity: max |embedding - ORT one by one|: fused %.1e, torch %.1e, ORT sorted batches %.1e (limit %.0e)",
                        dFused, dTorch, dSorted, FP32_TOL)),
                check(cos[0] >= INT8_MIN_MEAN_COSINE, String.format(Locale.ROOT,
                        "int8 accuracy: cosine of int8 to fused fp32 embeddings over %d sentences: mean %.4f, min %.4f",
                        texts.size(), cos[0], cos[1]))));
        if (bertB != null) {
            double[] cb = cosines(fused, bertB.embed(texts, opts));
            notes.add(check(cb[1] >= BF16_MIN_COSINE, String.format(Locale.ROOT,
                    "bf16 accuracy: cosine of bf16 to fused fp32 embeddings over %d sentences: mean %.6f, min %.6f",
                    texts.size(), cb[0], cb[1])));
        }
        return new Case("b", String.format(Locale.ROOT, "throughput, %d SST-2 sentences end to end (tokenize, forward, mean pool, "
                + "normalise)", texts.size()), "sentences", texts.size(), warmup, iters, impls,
                List.of("ORT one by one", "ORT sorted batches"), notes);
    }

    private static Case trainCase(int warmup, int iters, TrainStep train) {
        double[] f = train.lossAndGradNorm(KernelMode.FUSED);
        double[] t = train.lossAndGradNorm(KernelMode.TORCH);
        double dLoss = Math.abs(f[0] - t[0]) / Math.abs(t[0]);
        double dNorm = Math.abs(f[1] - t[1]) / t[1];
        List<Impl> impls = List.of(
                new Impl("bert4j fused", () -> train.step(KernelMode.FUSED)),
                new Impl("bert4j torch", () -> train.step(KernelMode.TORCH)));
        List<String> notes = List.of(
                "step: forward in training mode (dropout 0.1), MSE of the mean-pooled last hidden state to a fixed random "
                        + "target, backward, gradient clipping at 1.0, bert4j's AdamW (lr " + TrainStep.LR
                        + ", weight decay 0.01), zeroed gradients; both kernel modes step one model in turn",
                check(dLoss <= 1e-4 && dNorm <= FP32_TOL, String.format(Locale.ROOT,
                        "parity (dropout off, same weights): loss fused %.6f vs torch %.6f (relative %.1e), "
                                + "gradient norm relative difference %.1e", f[0], t[0], dLoss, dNorm)));
        return new Case("d", "training step, MiniLM-L6 at batch 32 x 128 tokens", "steps", 1, warmup, iters, impls,
                List.of("bert4j torch"), notes);
    }

    private static float[][] rows(float[] flat, int h) {
        float[][] out = new float[flat.length / h][];
        for (int i = 0; i < out.length; i++) {
            out[i] = Arrays.copyOfRange(flat, i * h, (i + 1) * h);
        }
        return out;
    }

    /** {mean, min} of the row-wise cosine similarities. */
    static double[] cosines(float[][] a, float[][] b) {
        double mean = 0, min = 1;
        for (int i = 0; i < a.length; i++) {
            double dot = 0, na = 0, nb = 0;
            for (int k = 0; k < a[i].length; k++) {
                dot += (double) a[i][k] * b[i][k];
                na += (double) a[i][k] * a[i][k];
                nb += (double) b[i][k] * b[i][k];
            }
            double c = dot / Math.sqrt(na * nb);
            mean += c / a.length;
            min = Math.min(min, c);
        }
        return new double[]{mean, min};
    }

    private static String markdown(List<Case> list, Map<String, Map<String, double[]>> timings,
                                   Map<String, PeakMemory.Result> rss, int batches, int rssRounds, int threads,
                                   String loadBefore, String loadAfter, double totalS, String[] args) {
        StringBuilder sb = new StringBuilder();
        sb.append("### bert4j vs ONNX Runtime: all-MiniLM-L6-v2 on CPU\n\n");
        sb.append("- date: ").append(ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)).append('\n');
        sb.append("- commit: ").append(Machine.gitCommit()).append('\n');
        sb.append("- machine: ").append(Machine.cpuModel()).append(", ").append(Runtime.getRuntime().availableProcessors())
                .append(" cores visible to the JVM; ").append(Machine.simdFlags()).append('\n');
        sb.append("- load average (1/5/15 min) before / after: ").append(loadBefore).append(" / ").append(loadAfter).append('\n');
        sb.append("- threads: ").append(threads).append(" (libtorch intra-op = bert4j kernels = ORT intra-op; ORT inter-op 1)\n");
        sb.append("- runtimes: bert4j on libtorch (JavaCPP pytorch ").append(version(org.bytedeco.pytorch.global.torch.class))
                .append("), ONNX Runtime ").append(OrtReference.version()).append(" (CPU EP, ALL_OPT, spin-wait ")
                .append(OrtReference.spinning() ? "on" : "off").append("); libgomp wait policy ")
                .append(io.bert4j.NativeSetup.ompWaitPolicy()).append(", OpenBLAS thread timeout ")
                .append(io.bert4j.NativeSetup.openBlasThreadTimeout()).append(", JavaCPP physical-memory limit ")
                .append(io.bert4j.NativeSetup.javacppMaxPhysicalBytes()).append(", freed memory kept for reuse ")
                .append(io.bert4j.NativeSetup.mallocRetain()).append("; JVM ")
                .append(System.getProperty("java.vm.name")).append(' ').append(System.getProperty("java.version")).append('\n');
        sb.append("- text: ").append(Workloads.textSource()).append('\n');
        sb.append("- arguments: `").append(String.join(" ", args)).append("`; whole run ")
                .append(String.format(Locale.ROOT, "%.0f s", totalS)).append(" (model loads included)\n\n");
        sb.append("Per case: ms per call, median and p90 over the timed rounds (implementations alternate, order rotating "
                + "each round; before each call at least " + gapMs + " ms idle, then until the other threads of the process "
                + "used < 10% of a core for " + Quiet.WINDOW_MS + " ms, so no runtime's worker threads are still spinning: "
                + QUIET.summary() + "). **Ratio = reference median / implementation median: > 1 means faster than the "
                + "reference.** \"paired\" = median and p10–p90 of the per-round ratios.\n");
        sb.append("\nSummary, reference median / bert4j median (> 1: bert4j faster):\n\n");
        for (Case c : list) {
            Map<String, double[]> ms = timings.get(c.id);
            String ref = reference(c, ms);
            List<String> parts = new ArrayList<>();
            for (Impl impl : c.impls) {
                if (impl.name.startsWith("bert4j") && !impl.name.equals(ref)) {
                    parts.add(String.format(Locale.ROOT, "%s %.2f", impl.name, Stats.of(ms.get(ref)).median / Stats.of(ms.get(impl.name)).median));
                }
            }
            sb.append("- (").append(c.id).append(") ").append(c.title).append(", against ").append(ref).append(": ")
                    .append(String.join(", ", parts)).append('\n');
        }
        if (rss != null) {
            List<String> parts = new ArrayList<>();
            rss.values().forEach(r -> parts.add(String.format(Locale.ROOT, "%s %.0f", r.impl(), r.peakKb() / 1024.0)));
            sb.append("- (e) peak resident memory, MB: ").append(String.join(", ", parts)).append('\n');
        }
        for (Case c : list) {
            Map<String, double[]> ms = timings.get(c.id);
            String ref = reference(c, ms);
            double refMedian = Stats.of(ms.get(ref)).median;
            sb.append("\n#### (").append(c.id).append(") ").append(c.title).append("\n\n");
            sb.append("Reference: **").append(ref).append("**")
                    .append(c.refs.size() > 1 ? " (the faster of " + String.join(" and ", c.refs) + " in this run)" : "")
                    .append(String.format(Locale.ROOT, "; %d rounds after %d warm-up.%n%n", c.iters, c.warmup));
            sb.append("| implementation | ms median | ms p90 | ").append(c.unit).append("/s | ratio ").append(ref)
                    .append(" / this | paired (p10–p90) |\n|---|---:|---:|---:|---:|---:|\n");
            for (Impl impl : c.impls) {
                Stats s = Stats.of(ms.get(impl.name));
                double[] paired = new double[c.iters];
                for (int i = 0; i < c.iters; i++) {
                    paired[i] = ms.get(ref)[i] / ms.get(impl.name)[i];
                }
                Arrays.sort(paired);
                sb.append(String.format(Locale.ROOT, "| %s%s | %.1f | %.1f | %s | %.2f | %.2f (%.2f–%.2f) |%n",
                        impl.name, impl.name.equals(ref) ? " (reference)" : "", s.median, s.p90,
                        rate(1000.0 * c.items / s.median), refMedian / s.median,
                        quantile(paired, 0.5), quantile(paired, 0.1), quantile(paired, 0.9)));
            }
            sb.append('\n');
            c.notes.forEach(n -> sb.append("- ").append(n).append('\n'));
        }
        if (rss != null) {
            sb.append("\n#### (e) peak resident memory, one child JVM per implementation\n\n");
            sb.append(String.format(Locale.ROOT, "Each child loads only its runtime and model, embeds the (b) texts (%d batches of 32) "
                    + "%d times, then reads VmHWM (peak resident set) from /proc/self/status; the JVM's own heap and "
                    + "code are included in every row alike. int8 keeps the float32 weights beside the int8 ones.%n%n",
                    batches, rssRounds));
            sb.append("| implementation | RSS after load MB | peak RSS (VmHWM) MB | child run s | libraries mapped |\n"
                    + "|---|---:|---:|---:|---|\n");
            rss.values().forEach(r -> sb.append(String.format(Locale.ROOT, "| %s | %.0f | %.0f | %.1f | %s |%n",
                    r.impl(), r.afterLoadKb() / 1024.0, r.peakKb() / 1024.0, r.seconds(),
                    (r.libtorch() ? "libtorch" : "") + (r.libtorch() && r.ort() ? " + " : "") + (r.ort() ? "onnxruntime" : ""))));
        }
        if (!failures.isEmpty()) {
            sb.append("\n**Parity checks failed:** ").append(String.join("; ", failures)).append('\n');
        }
        return sb.toString();
    }

    /** Three significant digits or more: training runs well under one step per second. */
    private static String rate(double perSecond) {
        return String.format(Locale.ROOT, perSecond >= 100 ? "%.0f" : perSecond >= 10 ? "%.1f" : perSecond >= 1 ? "%.2f" : "%.3f", perSecond);
    }

    /** The reference of a case: of its reference implementations, the one with the lowest median. */
    private static String reference(Case c, Map<String, double[]> ms) {
        String ref = c.refs.get(0);
        for (String r : c.refs) {
            if (Stats.of(ms.get(r)).median < Stats.of(ms.get(ref)).median) {
                ref = r;
            }
        }
        return ref;
    }

    static String version(Class<?> c) {
        String v = c.getPackage() != null ? c.getPackage().getImplementationVersion() : null;
        return v != null ? v : "?";
    }
}
