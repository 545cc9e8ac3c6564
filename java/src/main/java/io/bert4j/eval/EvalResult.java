package io.bert4j.eval;

import java.util.Map;

/**
 * A metric result as a flat, ordered name-to-number view, for printing as one JSON object.
 * Values that are undefined for the input (for example a correlation against a constant
 * series) are {@code NaN} in the map and {@code null} in the JSON, since JSON has no NaN.
 */
public interface EvalResult {
    /** Metric name to value, in a stable order (an unmodifiable insertion-ordered map). */
    Map<String, Double> asMap();

    /** {@link #asMap()} as one JSON object on one line. */
    default String toJson() {
        return Json.object(asMap());
    }
}
