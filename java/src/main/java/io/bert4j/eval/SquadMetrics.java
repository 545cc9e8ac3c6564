package io.bert4j.eval;

import io.bert4j.Bert4jException;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * SQuAD v1.1 exact match and F1, as defined by the official v1.1 evaluation script.
 *
 * <p>Answers are compared after normalisation, in this order: lowercase (as Python's
 * {@code str.lower()}, including its rule for the final sigma); delete every character
 * of the ASCII punctuation set {@code !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~} (Python's
 * {@code string.punctuation}); replace each whole word {@code a}, {@code an}, {@code the} by a
 * space; split on whitespace and join with single spaces. "Word" and "whitespace" follow
 * Python 3's Unicode rules: a word character is a letter, a number (decimal, letter or other
 * number) or {@code _}; whitespace includes the no-break spaces U+00A0, U+2007, U+202F and
 * U+0085 (which Java's {@link Character#isWhitespace} leaves out), and SQuAD text contains them.
 * Character properties come from the JDK's Unicode tables, so a character assigned in a later
 * Unicode version than the JDK knows may be classed differently than by a newer Python.
 *
 * <p>Exact match is 1 when the normalised strings are equal. F1 is over the normalised tokens:
 * with {@code same} the size of the multiset intersection, precision = same / |prediction|,
 * recall = same / |reference|, and F1 = 0 when {@code same} is 0. So a prediction and a
 * reference that both normalise to nothing (say "the" and "a") have EM 1 but F1 0, as in v1.1.
 * A question with several references takes the maximum over them, separately for EM and F1.
 */
public final class SquadMetrics {
    private SquadMetrics() {
    }

    private static final String PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /**
     * Dataset-level EM and F1 in percent: {@code predictions.get(i)} is scored against the
     * reference answers {@code references.get(i)} (at least one each).
     */
    public static SquadResult evaluate(List<String> predictions, List<List<String>> references) {
        if (predictions == null || references == null) {
            throw new Bert4jException("predictions and references must not be null");
        }
        if (predictions.size() != references.size()) {
            throw new Bert4jException("predictions and references differ in length: " + predictions.size()
                    + " predictions vs " + references.size() + " questions");
        }
        if (predictions.isEmpty()) {
            throw new Bert4jException("cannot score an empty set of predictions");
        }
        double em = 0;
        double f1 = 0;
        for (int i = 0; i < predictions.size(); i++) {
            List<String> refs = references.get(i);
            if (refs == null || refs.isEmpty()) {
                throw new Bert4jException("question " + i + " has no reference answers");
            }
            String prediction = predictions.get(i);
            if (prediction == null) {
                throw new Bert4jException("question " + i + " has no prediction (null)");
            }
            em += exactMatch(prediction, refs);
            f1 += f1(prediction, refs);
        }
        int n = predictions.size();
        return new SquadResult(n, 100.0 * em / n, 100.0 * f1 / n);
    }

    /** Maximum exact match (0 or 1) over the references. */
    public static double exactMatch(String prediction, List<String> references) {
        double best = 0;
        for (String r : references) {
            best = Math.max(best, exactMatch(prediction, r));
        }
        return best;
    }

    /** Maximum token F1 over the references. */
    public static double f1(String prediction, List<String> references) {
        double best = 0;
        for (String r : references) {
            best = Math.max(best, f1(prediction, r));
        }
        return best;
    }

    public static double exactMatch(String prediction, String reference) {
        return normalize(prediction).equals(normalize(reference)) ? 1.0 : 0.0;
    }

    public static double f1(String prediction, String reference) {
        List<String> p = tokens(prediction);
        List<String> r = tokens(reference);
        Map<String, Integer> counts = new HashMap<>();
        for (String t : r) {
            counts.merge(t, 1, Integer::sum);
        }
        int same = 0;
        for (String t : p) {
            Integer c = counts.get(t);
            if (c != null && c > 0) {
                same++;
                counts.put(t, c - 1);
            }
        }
        if (same == 0) {
            return 0.0;
        }
        double precision = (double) same / p.size();
        double recall = (double) same / r.size();
        return 2 * precision * recall / (precision + recall);
    }

    /** The normalised tokens of {@code text} (the words of {@link #normalize}). */
    public static List<String> tokens(String text) {
        String n = normalize(text);
        return n.isEmpty() ? List.of() : List.of(n.split(" "));
    }

    /** The official SQuAD answer normalisation; see the class comment. */
    public static String normalize(String text) {
        if (text == null) {
            throw new Bert4jException("cannot normalise a null answer");
        }
        String lower = pythonLower(text);
        StringBuilder noPunct = new StringBuilder(lower.length());
        for (int i = 0; i < lower.length(); i++) {
            char c = lower.charAt(i);
            if (PUNCTUATION.indexOf(c) < 0) {
                noPunct.append(c);
            }
        }
        String s = noPunct.toString();
        // Article removal works on maximal runs of word characters, which is what the regex
        // \b(a|an|the)\b matches in Python: the article must be a whole word on its own.
        StringBuilder noArticles = new StringBuilder(s.length());
        int i = 0;
        while (i < s.length()) {
            int cp = s.codePointAt(i);
            if (!isWordChar(cp)) {
                noArticles.appendCodePoint(cp);
                i += Character.charCount(cp);
                continue;
            }
            int j = i;
            while (j < s.length() && isWordChar(s.codePointAt(j))) {
                j += Character.charCount(s.codePointAt(j));
            }
            String word = s.substring(i, j);
            noArticles.append(word.equals("a") || word.equals("an") || word.equals("the") ? " " : word);
            i = j;
        }
        List<String> words = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        s = noArticles.toString();
        for (int k = 0; k < s.length(); ) {
            int cp = s.codePointAt(k);
            if (isSpace(cp)) {
                if (word.length() > 0) {
                    words.add(word.toString());
                    word.setLength(0);
                }
            } else {
                word.appendCodePoint(cp);
            }
            k += Character.charCount(cp);
        }
        if (word.length() > 0) {
            words.add(word.toString());
        }
        return String.join(" ", words);
    }

    /**
     * Python's {@code str.lower()}. Java's full lowercasing agrees with it except for where a
     * capital sigma counts as word-final (lowercased to a final sigma): Python applies the
     * Unicode rule "preceded by a cased letter and not followed by one, skipping
     * case-ignorable characters in between", Java decides by word boundaries. So texts with
     * U+03A3 are lowercased piece by piece with that rule applied to each sigma.
     */
    static String pythonLower(String text) {
        if (text.indexOf('\u03A3') < 0) {
            return text.toLowerCase(Locale.ROOT);
        }
        StringBuilder sb = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            if (cp == 0x03A3) {
                sb.append(isFinalSigma(text, i) ? '\u03C2' : '\u03C3');
            } else {
                // One code point on its own: full mappings (U+0130 -> "i" + dot) without context.
                sb.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT));
            }
            i += Character.charCount(cp);
        }
        return sb.toString();
    }

    private static boolean isFinalSigma(String s, int at) {
        int i = at;
        boolean casedBefore = false;
        while (i > 0) {
            int cp = s.codePointBefore(i);
            i -= Character.charCount(cp);
            if (!isCaseIgnorable(cp)) {
                casedBefore = isCased(cp);
                break;
            }
        }
        if (!casedBefore) {
            return false;
        }
        int j = at + 1;
        while (j < s.length()) {
            int cp = s.codePointAt(j);
            j += Character.charCount(cp);
            if (!isCaseIgnorable(cp)) {
                return !isCased(cp);
            }
        }
        return true;
    }

    /** Unicode "Cased": lowercase, uppercase or titlecase (Java's predicates include Other_Lowercase/Uppercase). */
    private static boolean isCased(int cp) {
        return Character.isLowerCase(cp) || Character.isUpperCase(cp) || Character.isTitleCase(cp);
    }

    /**
     * Unicode "Case_Ignorable": general category Mn, Me, Cf, Lm or Sk, or word-break class
     * MidLetter, MidNumLet or Single_Quote (listed by code point; Java has no API for them).
     */
    private static boolean isCaseIgnorable(int cp) {
        switch (Character.getType(cp)) {
            case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.FORMAT,
                    Character.MODIFIER_LETTER, Character.MODIFIER_SYMBOL -> {
                return true;
            }
            default -> {
                return switch (cp) {
                    case '\'', '.', ':', 0x00B7, 0x0387, 0x055F, 0x05F4, 0x2018, 0x2019, 0x2024, 0x2027,
                            0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A -> true;
                    default -> false;
                };
            }
        }
    }

    /** Python 3's {@code \w} for str patterns: alphanumeric (letters and all numbers) or underscore. */
    private static boolean isWordChar(int cp) {
        if (cp == '_' || Character.isLetter(cp)) {
            return true;
        }
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }

    /** Python's {@code str.isspace()}: Java whitespace plus the no-break spaces and NEL. */
    private static boolean isSpace(int cp) {
        return Character.isWhitespace(cp) || cp == 0x00A0 || cp == 0x2007 || cp == 0x202F || cp == 0x0085;
    }
}
