package io.bert4j.bench;

import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Runs JMH with the usual command-line options (e.g. {@code EncoderBenchmark -p batch=1}) and
 * then prints, per benchmark and shape, each bert4j variant against the named reference
 * measured in the same run: ONNX Runtime ({@code impl=ort}) for the model benchmarks, libtorch
 * ({@code impl=sdpa} / {@code impl=torch}) for the kernel benchmarks (the first of those present
 * in a shape is the reference). Printed: the score ratio bert4j/reference, which is faster,
 * the speed-up, and its spread from the measurement iterations (reference min/max over bert4j
 * max/min), then the same as a markdown table.
 *
 * <p>Expectations: every line of {@code benchmarks/expectations.txt} (or the file named by
 * {@code -Dbench.expect=FILE}; {@code -Dbench.expect=} turns them off) reads
 * {@code Benchmark.method [param=value ...] >= SPEEDUP}; each measured shape whose benchmark
 * matches and whose parameters (impl included) include all the given ones is checked against the minimum
 * speed-up over its reference. The report marks each row {@code ok} or {@code FAIL}, lists the
 * failures, and the process exits with status 1 when any failed, so a regression in the
 * kernels or the encoder's hot path shows up as a failed expectation in the benchmark report.
 *
 * <p>Paired benchmarks (no {@code impl} param; e.g. {@link BiasGeluPairedBenchmark}) run every
 * impl in the same invocations and report each one's time as a secondary result
 * {@code <impl>Ns} (with {@code calls} counting the invocations): they are compared the same
 * way, per shape, as µs per op, with the spread over iterations taken pair by pair.
 *
 * <p>{@code -Dbench.rounds=N} (default 1) runs the whole selection N times, every other round
 * with the impls in reverse order, and reports per shape the median of the N per-round
 * speed-ups with their min/max as the spread; expectations are checked against the median. On
 * a shared machine whose speed drifts by tens of percent within minutes, one round's ratio
 * (bert4j and its reference run minutes apart) can land anywhere in that drift.
 */
public final class JmhRatios {
    private JmhRatios() {
    }

    /** Reference impls in order of preference. */
    private static final List<String> REFERENCES = List.of("ort", "sdpa", "torch");

    /** One line of the expectations file. */
    record Expectation(String benchmark, List<String> params, double minSpeedup, String line) {
        boolean matches(String name) {
            String[] parts = name.split(" ");
            if (!parts[0].equals(benchmark)) {
                return false;
            }
            List<String> have = List.of(parts).subList(1, parts.length);
            return have.containsAll(params);
        }
    }

    static List<Expectation> readExpectations(Path file) throws IOException {
        List<Expectation> out = new ArrayList<>();
        int n = 0;
        for (String raw : Files.readAllLines(file)) {
            n++;
            String line = raw.replaceFirst("#.*$", "").trim();
            if (line.isEmpty()) {
                continue;
            }
            String[] halves = line.split(">=");
            String[] left = halves[0].trim().split("\\s+");
            if (halves.length != 2 || left[0].isEmpty()) {
                throw new IllegalArgumentException(file + ":" + n + ": expected 'Benchmark.method [param=value ...] >= SPEEDUP', got: " + raw);
            }
            double min;
            try {
                min = Double.parseDouble(halves[1].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(file + ":" + n + ": not a number after '>=': " + raw);
            }
            out.add(new Expectation(left[0], List.of(left).subList(1, left.length), min, line));
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        String expectProp = System.getProperty("bench.expect", "benchmarks/expectations.txt");
        List<Expectation> expectations = expectProp.isEmpty() || !Files.exists(Path.of(expectProp))
                ? List.of() : readExpectations(Path.of(expectProp));
        List<String> failures = new ArrayList<>();
        int rounds = Integer.getInteger("bench.rounds", 1);
        if (rounds < 1) {
            throw new IllegalArgumentException("-Dbench.rounds must be at least 1, got " + rounds);
        }
        // name -> impl -> one sample per round
        Map<String, Map<String, List<Sample>>> groups = new LinkedHashMap<>();
        List<String> impls = new ArrayList<>();
        for (int round = 0; round < rounds; round++) {
            String[] roundArgs = args;
            if (round % 2 == 1 && impls.size() > 1) {
                // Every other round runs the impls in reverse order (JMH runs the params in the
                // order given), so drift on a shared machine does not favour one side.
                List<String> reversed = new ArrayList<>(impls);
                Collections.reverse(reversed);
                roundArgs = withParam(args, "impl", String.join(",", reversed));
            }
            if (rounds > 1) {
                System.out.printf("%n# bench.rounds: round %d of %d (%s)%n", round + 1, rounds, String.join(" ", roundArgs));
            }
            for (RunResult r : new Runner(new CommandLineOptions(roundArgs)).run()) {
                var p = r.getParams();
                String impl = p.getParam("impl");
                List<String> key = new ArrayList<>();
                for (String k : p.getParamsKeys()) {
                    if (!k.equals("impl")) {
                        key.add(k + "=" + p.getParam(k));
                    }
                }
                String name = p.getBenchmark().replaceFirst("^.*\\.(\\w+\\.\\w+)$", "$1") + " " + String.join(" ", key);
                Map<String, List<Sample>> byImpl = groups.computeIfAbsent(name, n -> new LinkedHashMap<>());
                if (impl != null) {
                    if (round == 0 && !impls.contains(impl)) {
                        impls.add(impl);
                    }
                    byImpl.computeIfAbsent(impl, i -> new ArrayList<>()).add(Sample.of(r));
                } else {
                    // A paired benchmark: one secondary result "<impl>Ns" per impl, measured in
                    // the same invocations.
                    for (String label : r.getSecondaryResults().keySet()) {
                        if (label.endsWith("Ns")) {
                            byImpl.computeIfAbsent(label.substring(0, label.length() - 2), i -> new ArrayList<>())
                                    .add(Sample.ofSecondary(r, label));
                        }
                    }
                }
            }
        }
        List<String> table = new ArrayList<>();
        System.out.println();
        System.out.println("bert4j vs reference (same JMH run; ratio = bert4j score / reference score"
                + (rounds > 1 ? "; " + rounds + " rounds: median speed-up, spread = per-round min/max" : "") + ")");
        System.out.printf("%-70s %-6s %-5s %14s %14s %8s  %s%n", "benchmark", "impl", "ref", "score", "ref score", "ratio", "");
        groups.forEach((name, byImpl) -> {
            String refName = REFERENCES.stream().filter(byImpl::containsKey).findFirst().orElse(null);
            if (refName == null) {
                return;
            }
            List<Sample> refs = byImpl.get(refName);
            byImpl.forEach((impl, results) -> {
                if (impl.equals(refName)) {
                    return;  // bert4j's torch mode is not a reference when ORT is present
                }
                int n = Math.min(results.size(), refs.size());
                double[] speedups = new double[n];
                for (int i = 0; i < n; i++) {
                    speedups[i] = results.get(i).speedupOver(refs.get(i));
                }
                double speedup = median(speedups);
                Sample res = results.get(0), ref = refs.get(0);
                // One round: the spread over its measurement iterations; several: over the rounds.
                double[] spread = n == 1 ? res.iterationSpread(ref)
                        : new double[] {Arrays.stream(speedups).min().orElseThrow(), Arrays.stream(speedups).max().orElseThrow()};
                double lo = spread[0], hi = spread[1];
                double score = median(results.stream().mapToDouble(Sample::score).toArray());
                double refScore = median(refs.stream().mapToDouble(Sample::score).toArray());
                System.out.printf(Locale.ROOT, "%-70s %-6s %-5s %8.3f±%-5.3f %8.3f±%-5.3f %8.3f  %s %.2fx faster; speed-up %.2fx [%.2f–%.2f] (%s)%s%n",
                        name, impl, refName, score, n == 1 ? res.error() : 0, refScore, n == 1 ? ref.error() : 0,
                        res.higherIsBetter() ? speedup : 1 / speedup, speedup >= 1 ? "bert4j" : refName,
                        speedup >= 1 ? speedup : 1 / speedup, speedup, lo, hi,
                        res.unit(), n > 1 ? " rounds " + Arrays.toString(round2(speedups)) : "");
                String verdict = "";
                for (Expectation e : expectations) {
                    if (e.matches(name + " impl=" + impl)) {
                        boolean ok = speedup >= e.minSpeedup();
                        verdict = String.format(Locale.ROOT, "%s (≥ %.2f)", ok ? "ok" : "FAIL", e.minSpeedup());
                        if (!ok) {
                            failures.add(String.format(Locale.ROOT, "%s %s: speed-up %.2fx below the expected %.2fx (%s)",
                                    name, impl, speedup, e.minSpeedup(), e.line()));
                        }
                        break; // the first matching line decides
                    }
                }
                table.add(String.format(Locale.ROOT, "| %s | %s | %.3f %s | %s | %.3f | **%.2f×** | %.2f–%.2f | %s |", name, impl,
                        score, res.unit(), refName, refScore, speedup, lo, hi, verdict));
            });
        });
        if (!table.isEmpty()) {
            System.out.println();
            System.out.println("| benchmark + shape | impl | score | reference | ref score"
                    + " | speed-up (ref/bert4j) | spread (" + (rounds > 1 ? "round" : "iteration") + " min/max) | expectation |");
            System.out.println("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |");
            table.forEach(System.out::println);
        }
        if (!failures.isEmpty()) {
            System.out.println();
            System.out.println(failures.size() + " expectation(s) failed:");
            failures.forEach(f -> System.out.println("  FAIL " + f));
            System.exit(1);
        }
    }

    /**
     * One impl's measurement in one round: its score and unit, JMH's error, and its per-iteration
     * scores. {@code paired}: a secondary result {@code <impl>Ns} of a paired benchmark (time
     * per op over the iteration, the same ops on each side), whose iterations pair up with the
     * reference's.
     */
    record Sample(double score, double error, String unit, double[] iterations, boolean paired) {
        static Sample of(RunResult r) {
            Result<?> p = r.getPrimaryResult();
            double[] its = r.getBenchmarkResults().stream()
                    .flatMap(b -> b.getIterationResults().stream())
                    .mapToDouble(it -> it.getPrimaryResult().getScore()).toArray();
            return new Sample(p.getScore(), p.getScoreError(), p.getScoreUnit(), its, false);
        }

        static Sample ofSecondary(RunResult r, String label) {
            if (!r.getSecondaryResults().containsKey("calls")) {
                throw new IllegalStateException(r.getParams().getBenchmark() + ": a paired benchmark must count its"
                        + " invocations in a secondary result 'calls' next to '" + label + "'");
            }
            List<Double> perOp = new ArrayList<>();
            double ns = 0, calls = 0;
            for (var b : r.getBenchmarkResults()) {
                for (var it : b.getIterationResults()) {
                    double itNs = it.getSecondaryResults().get(label).getScore();
                    double itCalls = it.getSecondaryResults().get("calls").getScore();
                    perOp.add(itNs / itCalls / 1e3);
                    ns += itNs;
                    calls += itCalls;
                }
            }
            return new Sample(ns / calls / 1e3, 0, "us/op (paired)",
                    perOp.stream().mapToDouble(Double::doubleValue).toArray(), true);
        }

        boolean higherIsBetter() {
            return unit.endsWith("/s");  // ops/s: throughput; ms/op, us/op: time
        }

        /** Reference time / this time (or this throughput / the reference's): > 1, bert4j faster. */
        double speedupOver(Sample ref) {
            double ratio = score / ref.score;
            return higherIsBetter() ? ratio : 1 / ratio;
        }

        /** {min, max} speed-up over the iterations: paired iteration by iteration, else extremes. */
        double[] iterationSpread(Sample ref) {
            if (paired && ref.paired && iterations.length == ref.iterations.length) {
                double lo = Double.POSITIVE_INFINITY, hi = 0;
                for (int i = 0; i < iterations.length; i++) {
                    double s = ref.iterations[i] / iterations[i];
                    lo = Math.min(lo, s);
                    hi = Math.max(hi, s);
                }
                return new double[] {lo, hi};
            }
            double min = Arrays.stream(iterations).min().orElse(score), max = Arrays.stream(iterations).max().orElse(score);
            double refMin = Arrays.stream(ref.iterations).min().orElse(ref.score);
            double refMax = Arrays.stream(ref.iterations).max().orElse(ref.score);
            return higherIsBetter() ? new double[] {min / refMax, max / refMin} : new double[] {refMin / max, refMax / min};
        }
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static double[] round2(double[] v) {
        double[] r = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = Math.round(v[i] * 100) / 100.0;
        }
        return r;
    }

    /** args with every {@code -p name=...} replaced by one {@code -p name=values}. */
    static String[] withParam(String[] args, String name, String values) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("-p") && i + 1 < args.length && args[i + 1].startsWith(name + "=")) {
                i++;
                continue;
            }
            if (args[i].startsWith("-p" + name + "=")) {
                continue;
            }
            out.add(args[i]);
        }
        out.add("-p");
        out.add(name + "=" + values);
        return out.toArray(new String[0]);
    }
}
