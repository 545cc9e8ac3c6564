package io.bert4j.eval;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Classification scores over {@code count} samples of a {@code numLabels}-class task.
 * {@code f1} is the F1 of label 1 for a binary task and NaN otherwise (then left out of the
 * map); {@code macroF1} is always set.
 */
public record ClassificationResult(int count, int numLabels, double accuracy, double f1, double macroF1, double mcc)
        implements EvalResult {

    /** Keys {@code accuracy}, {@code f1} (binary only), {@code macro_f1}, {@code mcc}. */
    @Override
    public Map<String, Double> asMap() {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("accuracy", accuracy);
        if (numLabels == 2) {
            m.put("f1", f1);
        }
        m.put("macro_f1", macroF1);
        m.put("mcc", mcc);
        return Collections.unmodifiableMap(m);
    }
}
