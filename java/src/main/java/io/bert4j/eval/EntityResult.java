package io.bert4j.eval;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Entity-level scores: one {@link Score} per entity type (sorted by type name) and their micro
 * average (counts summed over types).
 */
public record EntityResult(EntityMetrics.Mode mode, Map<String, Score> perType, Score micro) implements EvalResult {

    public EntityResult {
        perType = Collections.unmodifiableMap(new TreeMap<>(perType));
    }

    /**
     * Counts for one type (or all types): {@code gold} entities, {@code predicted} entities and
     * {@code correct} predicted entities that match a gold entity in span and type.
     */
    public record Score(int gold, int predicted, int correct) {
        public double precision() {
            return predicted == 0 ? 0.0 : (double) correct / predicted;
        }

        public double recall() {
            return gold == 0 ? 0.0 : (double) correct / gold;
        }

        /** {@code 2 * correct / (gold + predicted)}, the harmonic mean of precision and recall. */
        public double f1() {
            return gold + predicted == 0 ? 0.0 : 2.0 * correct / (gold + predicted);
        }
    }

    /**
     * Keys {@code precision}, {@code recall}, {@code f1} (micro), then for each type T
     * {@code T_precision}, {@code T_recall}, {@code T_f1}, {@code T_support} (gold count).
     */
    @Override
    public Map<String, Double> asMap() {
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("precision", micro.precision());
        m.put("recall", micro.recall());
        m.put("f1", micro.f1());
        for (Map.Entry<String, Score> e : perType.entrySet()) {
            Score s = e.getValue();
            m.put(e.getKey() + "_precision", s.precision());
            m.put(e.getKey() + "_recall", s.recall());
            m.put(e.getKey() + "_f1", s.f1());
            m.put(e.getKey() + "_support", (double) s.gold());
        }
        return Collections.unmodifiableMap(m);
    }
}
