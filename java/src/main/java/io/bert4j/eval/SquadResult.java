package io.bert4j.eval;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** SQuAD v1.1 scores over {@code count} questions, both in percent (0 to 100). */
public record SquadResult(int count, double exactMatch, double f1) implements EvalResult {

    /** Keys {@code exact_match}, {@code f1}. */
    @Override
    public Map<String, Double> asMap() {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("exact_match", exactMatch);
        m.put("f1", f1);
        return Collections.unmodifiableMap(m);
    }
}
