package io.bert4j.bench;

import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;

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
 */
public final class JmhRatios {
    private JmhRatios() {
    }

    /** Reference impls in order of preference. */
    private static final List<String> REFERENCES = List.of("ort", "sdpa", "torch");

    public static void main(String[] args) throws Exception {
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
                table.add(String.format(Locale.ROOT, "| %s | %s | %.3f %s | %s | %.3f | **%.2f×** | %.2f–%.2f |", name, impl,
                        res.getScore(), res.getScoreUnit(), refName, ref.getScore(), speedup, lo, hi));
            });
        });
        if (!table.isEmpty()) {
            System.out.println();
            System.out.println("| benchmark + shape | impl | score | reference | ref score"
                    + " | speed-up (ref/bert4j) | spread (iteration min/max) |");
            System.out.println("| --- | --- | ---: | --- | ---: | ---: | ---: |");
            table.forEach(System.out::println);
        }
    }
}
