package io.bert4j.eval;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** Pearson and Spearman correlation over {@code count} pairs; NaN when a series is constant. */
public record RegressionResult(int count, double pearson, double spearman) implements EvalResult {

    /** Keys {@code pearson}, {@code spearman}. */
    @Override
    public Map<String, Double> asMap() {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("pearson", pearson);
        m.put("spearman", spearman);
        return Collections.unmodifiableMap(m);
    }
}
