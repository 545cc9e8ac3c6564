package io.bert4j.eval;

import io.bert4j.Bert4jException;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Entity-level precision, recall and F1 over IOB2 tag sequences (one list of tags per
 * sentence), counted the way seqeval counts them. An entity is a (sentence, start, end, type)
 * span; a predicted entity is correct only if gold has an entity with the same span and type.
 * Per type: precision = correct / predicted, recall = correct / gold, F1 their harmonic mean,
 * each 0 when its denominator is 0. The micro average sums the three counts over all types.
 *
 * <p>Tags must be {@code O}, {@code B-TYPE} or {@code I-TYPE} with a non-empty TYPE (which may
 * itself contain {@code -}); anything else ({@code X-PER}, {@code E-PER}, {@code B-}, a bare
 * {@code PER}) is rejected. Entities never cross a sentence boundary: the end of a sentence
 * closes any open entity.
 *
 * <p>The two modes differ only in tags that break the IOB2 rules:
 * <ul>
 *   <li>{@link Mode#DEFAULT} (seqeval's default, compatible with conlleval): an entity starts at
 *       every {@code B-T} and at every {@code I-T} that does not continue an entity of type T,
 *       that is, an {@code I-T} after {@code O}, at the start of a sentence, or after a tag of
 *       another type. So {@code O I-PER I-PER} is one PER entity over tokens 1..2, and
 *       {@code B-PER I-LOC} is a PER entity (token 0) followed by a LOC entity (token 1).</li>
 *   <li>{@link Mode#STRICT} (seqeval's {@code mode='strict', scheme=IOB2}): an entity is exactly
 *       a {@code B-T} followed by the longest run of {@code I-T}. An {@code I-} that does not
 *       continue such a run belongs to no entity and is ignored: {@code O I-PER I-PER} has no
 *       entity, and {@code B-PER I-LOC} has only the PER entity at token 0.</li>
 * </ul>
 * On valid IOB2 input both modes give the same entities.
 */
public final class EntityMetrics {
    private EntityMetrics() {
    }

    /** How tags that break the IOB2 rules are read; see the class comment. */
    public enum Mode {
        /** seqeval default / conlleval: a stray {@code I-T} starts a new entity. */
        DEFAULT,
        /** seqeval strict IOB2: a stray {@code I-T} is not part of any entity. */
        STRICT
    }

    /** Tokens {@code start} (inclusive) to {@code end} (exclusive) of sentence {@code sentence}. */
    public record Entity(int sentence, int start, int end, String type) {
    }

    /** Default-mode scores. */
    public static EntityResult evaluate(List<List<String>> gold, List<List<String>> predicted) {
        return evaluate(gold, predicted, Mode.DEFAULT);
    }

    /**
     * Scores {@code predicted} against {@code gold}: the same number of sentences, each of the
     * same length, at least one token in all.
     */
    public static EntityResult evaluate(List<List<String>> gold, List<List<String>> predicted, Mode mode) {
        if (gold == null || predicted == null || mode == null) {
            throw new Bert4jException("gold, predicted and mode must not be null");
        }
        if (gold.size() != predicted.size()) {
            throw new Bert4jException("gold and predicted differ in number of sentences: " + gold.size()
                    + " gold vs " + predicted.size() + " predicted");
        }
        long tokens = 0;
        for (int s = 0; s < gold.size(); s++) {
            if (gold.get(s).size() != predicted.get(s).size()) {
                throw new Bert4jException("sentence " + s + ": gold has " + gold.get(s).size()
                        + " tags but predicted has " + predicted.get(s).size());
            }
            tokens += gold.get(s).size();
        }
        if (tokens == 0) {
            throw new Bert4jException("cannot score an empty set of sentences (no tags)");
        }
        Set<Entity> goldEntities = new HashSet<>(corpusEntities(gold, mode, "gold"));
        Set<Entity> predictedEntities = new HashSet<>(corpusEntities(predicted, mode, "predicted"));

        Map<String, int[]> counts = new TreeMap<>(); // type -> {gold, predicted, correct}
        for (Entity e : goldEntities) {
            counts.computeIfAbsent(e.type(), t -> new int[3])[0]++;
        }
        for (Entity e : predictedEntities) {
            int[] c = counts.computeIfAbsent(e.type(), t -> new int[3]);
            c[1]++;
            if (goldEntities.contains(e)) {
                c[2]++;
            }
        }
        Map<String, EntityResult.Score> perType = new TreeMap<>();
        int g = 0;
        int p = 0;
        int ok = 0;
        for (Map.Entry<String, int[]> e : counts.entrySet()) {
            int[] c = e.getValue();
            perType.put(e.getKey(), new EntityResult.Score(c[0], c[1], c[2]));
            g += c[0];
            p += c[1];
            ok += c[2];
        }
        return new EntityResult(mode, perType, new EntityResult.Score(g, p, ok));
    }

    /** The entities of one sentence (reported as sentence 0). */
    public static List<Entity> entities(List<String> tags, Mode mode) {
        List<Entity> out = new ArrayList<>();
        sentenceEntities(tags, 0, mode, "input", out);
        return out;
    }

    /**
     * Converts one sentence from IOB1 to IOB2. In IOB1 an {@code I-T} starts an entity unless
     * the previous token is of the same type T, and {@code B-T} appears only to split two
     * adjacent entities of type T. In IOB2 every entity starts with {@code B-}. So an
     * {@code I-T} becomes {@code B-T} when the previous tag is {@code O}, of another type, or
     * absent (sentence start); every {@code B-T} stays {@code B-T}; {@code O} stays.
     */
    public static List<String> iob1ToIob2(List<String> tags) {
        List<String> out = new ArrayList<>(tags.size());
        String prevType = null;
        for (int i = 0; i < tags.size(); i++) {
            String tag = tags.get(i);
            char prefix = prefix(tag, "input", 0, i);
            String type = prefix == 'O' ? null : tag.substring(2);
            if (prefix == 'I' && !type.equals(prevType)) {
                out.add("B-" + type);
            } else {
                out.add(tag);
            }
            prevType = type;
        }
        return List.copyOf(out);
    }

    private static List<Entity> corpusEntities(List<List<String>> sentences, Mode mode, String which) {
        List<Entity> out = new ArrayList<>();
        for (int s = 0; s < sentences.size(); s++) {
            sentenceEntities(sentences.get(s), s, mode, which, out);
        }
        return out;
    }

    private static void sentenceEntities(List<String> tags, int sentence, Mode mode, String which, List<Entity> out) {
        int n = tags.size();
        char[] prefixes = new char[n];
        String[] types = new String[n];
        for (int i = 0; i < n; i++) {
            prefixes[i] = prefix(tags.get(i), which, sentence, i);
            types[i] = prefixes[i] == 'O' ? null : tags.get(i).substring(2);
        }
        if (mode == Mode.STRICT) {
            int i = 0;
            while (i < n) {
                if (prefixes[i] == 'B') {
                    int j = i + 1;
                    while (j < n && prefixes[j] == 'I' && types[j].equals(types[i])) {
                        j++;
                    }
                    out.add(new Entity(sentence, i, j, types[i]));
                    i = j;
                } else {
                    i++; // O, or an I- that continues nothing: not part of an entity
                }
            }
            return;
        }
        int start = -1; // start of the open entity, -1 when none
        String type = null;
        for (int i = 0; i <= n; i++) {
            // Position n is a virtual O that closes an entity running to the sentence end.
            char p = i < n ? prefixes[i] : 'O';
            String t = i < n ? types[i] : null;
            if (start >= 0 && (p != 'I' || !t.equals(type))) {
                out.add(new Entity(sentence, start, i, type));
                start = -1;
            }
            if (p == 'B' || (p == 'I' && start < 0)) {
                start = i;
                type = t;
            }
        }
    }

    /** 'O', 'B' or 'I'; anything that is not O / B-TYPE / I-TYPE is an error naming where it is. */
    private static char prefix(String tag, String which, int sentence, int token) {
        if (tag != null) {
            if (tag.equals("O")) {
                return 'O';
            }
            if (tag.length() > 2 && (tag.charAt(0) == 'B' || tag.charAt(0) == 'I') && tag.charAt(1) == '-') {
                return tag.charAt(0);
            }
        }
        throw new Bert4jException("unknown tag '" + tag + "' in " + which + " sentence " + sentence + ", token "
                + token + " (expected O, B-TYPE or I-TYPE)");
    }
}
