package io.bert4j.eval;

import java.util.Map;

/** The one JSON shape the results need: a flat object of numbers; written by hand to keep NaN as null. */
final class Json {
    private Json() {
    }

    static String object(Map<String, Double> values) {
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        for (Map.Entry<String, Double> e : values.entrySet()) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            string(sb, e.getKey());
            sb.append(':');
            Double v = e.getValue();
            // Double.toString gives "1.0E-5" style for small values, which is valid JSON number syntax.
            sb.append(v == null || !Double.isFinite(v) ? "null" : Double.toString(v));
        }
        return sb.append('}').toString();
    }

    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
