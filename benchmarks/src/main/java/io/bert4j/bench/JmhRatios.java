package io.bert4j.bench;

import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
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
        Collection<RunResult> results = new Runner(new CommandLineOptions(args)).run();
        Map<String, Map<String, Result<?>>> groups = new LinkedHashMap<>();
        for (RunResult r : results) {
            var p = r.getParams();
            String impl = p.getParam("impl");
            if (impl == null) {
                continue;
            }
            List<String> key = new ArrayList<>();
            for (String k : p.getParamsKeys()) {
                if (!k.equals("impl")) {
                    key.add(k + "=" + p.getParam(k));
                }
            }
            String name = p.getBenchmark().replaceFirst("^.*\\.(\\w+\\.\\w+)$", "$1") + " " + String.join(" ", key);
            groups.computeIfAbsent(name, n -> new LinkedHashMap<>()).put(impl, r.getPrimaryResult());
        }
        List<String> table = new ArrayList<>();
        System.out.println();
        System.out.println("bert4j vs reference (same JMH run; ratio = bert4j score / reference score)");
        System.out.printf("%-70s %-6s %-5s %14s %14s %8s  %s%n", "benchmark", "impl", "ref", "score", "ref score", "ratio", "");
        groups.forEach((name, byImpl) -> {
            String refName = REFERENCES.stream().filter(byImpl::containsKey).findFirst().orElse(null);
            if (refName == null) {
                return;
            }
            Result<?> ref = byImpl.get(refName);
            byImpl.forEach((impl, res) -> {
                if (impl.equals(refName)) {
                    return;  // bert4j's torch mode is not a reference when ORT is present
                }
                double ratio = res.getScore() / ref.getScore();
                boolean higherIsBetter = res.getScoreUnit().endsWith("/s");  // ops/s: throughput; ms/op: time
                double speedup = higherIsBetter ? ratio : 1 / ratio;          // > 1: bert4j faster
                var rs = res.getStatistics();
                var fs = ref.getStatistics();
                double lo = higherIsBetter ? rs.getMin() / fs.getMax() : fs.getMin() / rs.getMax();
                double hi = higherIsBetter ? rs.getMax() / fs.getMin() : fs.getMax() / rs.getMin();
                System.out.printf(Locale.ROOT, "%-70s %-6s %-5s %8.3f±%-5.3f %8.3f±%-5.3f %8.3f  %s %.2fx faster; speed-up %.2fx [%.2f–%.2f] (%s)%n",
                        name, impl, refName, res.getScore(), res.getScoreError(), ref.getScore(), ref.getScoreError(), ratio,
                        speedup >= 1 ? "bert4j" : refName, speedup >= 1 ? speedup : 1 / speedup, speedup, lo, hi, res.getScoreUnit());
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
                        res.getScore(), res.getScoreUnit(), refName, ref.getScore(), speedup, lo, hi, verdict));
            });
        });
        if (!table.isEmpty()) {
            System.out.println();
            System.out.println("| benchmark + shape | impl | score | reference | ref score"
                    + " | speed-up (ref/bert4j) | spread (iteration min/max) | expectation |");
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
}
