package io.bert4j.bench;

import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs JMH with the usual command-line options (e.g. {@code EncoderBenchmark -p batch=1}) and
 * then prints, per benchmark and shape, each bert4j variant against ONNX Runtime measured in
 * the same run: the score ratio bert4j/ORT, and which is faster.
 */
public final class JmhRatios {
    private JmhRatios() {
    }

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
        System.out.println();
        System.out.println("bert4j vs ONNX Runtime (same JMH run; ratio = bert4j score / ORT score)");
        System.out.printf("%-58s %-6s %14s %14s %10s  %s%n", "benchmark", "impl", "score", "ORT", "ratio", "");
        groups.forEach((name, byImpl) -> {
            Result<?> ref = byImpl.get("ort");
            byImpl.forEach((impl, res) -> {
                if (impl.equals("ort") || ref == null) {
                    return;
                }
                double ratio = res.getScore() / ref.getScore();
                boolean higherIsBetter = res.getScoreUnit().endsWith("/s");  // ops/s: throughput; ms/op: time
                boolean bertFaster = higherIsBetter ? ratio > 1 : ratio < 1;
                double factor = bertFaster ? (higherIsBetter ? ratio : 1 / ratio) : (higherIsBetter ? 1 / ratio : ratio);
                System.out.printf("%-58s %-6s %8.2f±%-5.2f %8.2f±%-5.2f %10.3f  %s %.2fx faster (%s)%n", name, impl,
                        res.getScore(), res.getScoreError(), ref.getScore(), ref.getScoreError(), ratio,
                        bertFaster ? "bert4j" : "ORT", factor, res.getScoreUnit());
            });
        });
    }
}
