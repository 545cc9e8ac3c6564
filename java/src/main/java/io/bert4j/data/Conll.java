package io.bert4j.data;

import io.bert4j.Bert4jException;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * CoNLL column files for named-entity recognition: one token per line, whitespace-separated
 * columns with the token first and the NER tag in a chosen column (the last by default), a
 * blank line between sentences, {@code -DOCSTART-} lines between documents.
 *
 * <p>Tags are returned in IOB2 (every entity starts with {@code B-}), the scheme seqeval-style
 * entity F1 and bert4j's models use. IOB1 input (the original CoNLL-2003 {@code eng.*} files)
 * is converted: there {@code I-X} starts an entity unless it continues one of type X, and
 * {@code B-X} appears only to split two adjacent X entities.
 */
public final class Conll {
    private Conll() {
    }

    /** The tag column of a file: the last one, whatever the number of columns. */
    public static final int LAST_COLUMN = -1;

    /** The tagging scheme of the input. */
    public enum Scheme {
        /** Decide from the data: IOB1 if some {@code I-X} starts an entity, else IOB2. */
        AUTO,
        IOB1,
        /** Strict: an {@code I-X} that does not continue an X entity is an error. */
        IOB2
    }

    /**
     * One sentence.
     *
     * @param document 0-based index of its document (documents are split by -DOCSTART-)
     * @param line     1-based line number of its first token in the file
     * @param words    the tokens of the first column
     * @param tags     IOB2 tags, one per word
     */
    public record Sentence(int document, int line, List<String> words, List<String> tags) {
        public Sentence {
            words = List.copyOf(words);
            tags = List.copyOf(tags);
            if (words.size() != tags.size()) {
                throw new Bert4jException("sentence at line " + line + " has " + words.size() + " words but "
                        + tags.size() + " tags");
            }
        }
    }

    /**
     * A read file.
     *
     * @param source    the file
     * @param sentences sentences in file order (empty ones are never produced)
     * @param documents number of documents with sentences (split at -DOCSTART- lines; a
     *                  file without them is one document)
     * @param scheme    the input scheme, IOB1 or IOB2 (detected when AUTO was asked for)
     * @param labels    O, then B-/I- pairs by sorted entity type: see {@link #labelList}
     */
    public record Corpus(Path source, List<Sentence> sentences, int documents, Scheme scheme,
                         List<String> labels) {
        public Corpus {
            sentences = List.copyOf(sentences);
            labels = List.copyOf(labels);
        }

        public int tokenCount() {
            return sentences.stream().mapToInt(s -> s.words().size()).sum();
        }

        /** Number of tokens per IOB2 tag, sorted by tag. */
        public Map<String, Integer> tagCounts() {
            Map<String, Integer> counts = new TreeMap<>();
            for (Sentence s : sentences) {
                for (String t : s.tags()) {
                    counts.merge(t, 1, Integer::sum);
                }
            }
            return counts;
        }
    }

    /** Reads a file with the tag in the last column and the scheme detected. */
    public static Corpus read(Path file) {
        return read(file, LAST_COLUMN, Scheme.AUTO);
    }

    /**
     * Reads a CoNLL file.
     *
     * @param tagColumn 0-based column of the NER tag ({@link #LAST_COLUMN} for the last);
     *                  column 0 is always the token, so it must be at least 1
     */
    public static Corpus read(Path file, int tagColumn, Scheme scheme) {
        if (tagColumn == 0 || tagColumn < LAST_COLUMN) {
            throw new Bert4jException("CoNLL tag column must be >= 1 (column 0 is the token) or last, got "
                    + tagColumn);
        }
        if (scheme == null) {
            throw new Bert4jException("CoNLL scheme must not be null (use AUTO)");
        }
        if (!Files.isRegularFile(file)) {
            throw new Bert4jException("CoNLL file " + file + " does not exist or is not a file");
        }
        List<RawSentence> raw = new ArrayList<>();
        // A document is what lies between -DOCSTART- lines; ones without sentences (a file
        // starting with -DOCSTART-, two in a row) are not counted.
        int document = 0;
        boolean documentHasSentences = false;
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            RawSentence current = null;
            String line;
            int lineNo = 0;
            while ((line = in.readLine()) != null) {
                lineNo++;
                if (lineNo == 1 && !line.isEmpty() && line.charAt(0) == '\uFEFF') {
                    line = line.substring(1);
                }
                String trimmed = line.strip();
                if (trimmed.isEmpty()) {
                    current = null;
                    continue;
                }
                String[] cols = trimmed.split("\\s+");
                if (cols[0].equals("-DOCSTART-")) {
                    if (documentHasSentences) {
                        document++;
                        documentHasSentences = false;
                    }
                    current = null;
                    continue;
                }
                int col = tagColumn == LAST_COLUMN ? cols.length - 1 : tagColumn;
                if (cols.length < 2 || col >= cols.length) {
                    throw new Bert4jException(file + ":" + lineNo + ": expected a token and a tag in column "
                            + (tagColumn == LAST_COLUMN ? "last" : tagColumn) + ", found " + cols.length
                            + " column" + (cols.length == 1 ? "" : "s") + ": \"" + trimmed + "\"");
                }
                String tag = cols[col];
                checkShape(tag, file, lineNo);
                if (current == null) {
                    current = new RawSentence(document, lineNo);
                    raw.add(current);
                    documentHasSentences = true;
                }
                current.words.add(cols[0]);
                current.tags.add(tag);
                current.lines.add(lineNo);
            }
        } catch (IOException e) {
            throw new Bert4jException("cannot read CoNLL file " + file + ": " + e.getMessage(), e);
        }

        Scheme detected = scheme;
        if (scheme == Scheme.AUTO) {
            detected = Scheme.IOB2;
            for (RawSentence s : raw) {
                if (firstNonIob2(s.tags) >= 0) {
                    detected = Scheme.IOB1;
                    break;
                }
            }
        } else if (scheme == Scheme.IOB2) {
            for (RawSentence s : raw) {
                int bad = firstNonIob2(s.tags);
                if (bad >= 0) {
                    String prev = bad == 0 ? "the sentence start" : s.tags.get(bad - 1);
                    throw new Bert4jException(file + ":" + s.lines.get(bad) + ": " + s.tags.get(bad) + " follows "
                            + prev + ", which IOB2 does not allow (the file may be IOB1)");
                }
            }
        }
        List<Sentence> sentences = new ArrayList<>(raw.size());
        TreeSet<String> all = new TreeSet<>();
        for (RawSentence s : raw) {
            List<String> tags = detected == Scheme.IOB1 ? iob1ToIob2(s.tags) : s.tags;
            all.addAll(tags);
            sentences.add(new Sentence(s.document, s.firstLine, s.words, tags));
        }
        int documents = sentences.isEmpty() ? 0 : sentences.get(sentences.size() - 1).document() + 1;
        return new Corpus(file, sentences, documents, detected, labelList(all));
    }

    private static final class RawSentence {
        final int document;
        final int firstLine;
        final List<String> words = new ArrayList<>();
        final List<String> tags = new ArrayList<>();
        final List<Integer> lines = new ArrayList<>();

        RawSentence(int document, int firstLine) {
            this.document = document;
            this.firstLine = firstLine;
        }
    }

    private static void checkShape(String tag, Path file, int lineNo) {
        if (tag.equals("O")) {
            return;
        }
        if (tag.length() > 2 && (tag.startsWith("B-") || tag.startsWith("I-"))) {
            return;
        }
        throw new Bert4jException(file + ":" + lineNo + ": unknown NER tag \"" + tag
                + "\" (expected O, B-TYPE or I-TYPE)");
    }

    private static String type(String tag) {
        return tag.equals("O") ? null : tag.substring(2);
    }

    /** Index of the first I-X that does not continue an X entity, or -1. */
    private static int firstNonIob2(List<String> tags) {
        String prevType = null;
        for (int i = 0; i < tags.size(); i++) {
            String t = tags.get(i);
            if (t.startsWith("I-") && !type(t).equals(prevType)) {
                return i;
            }
            prevType = type(t);
        }
        return -1;
    }

    /**
     * IOB1 to IOB2 for one sentence. Already-IOB2 tags come back unchanged, so the conversion
     * is safe on either scheme.
     *
     * @throws Bert4jException for a tag that is not O, B-X or I-X
     */
    public static List<String> iob1ToIob2(List<String> tags) {
        List<String> out = new ArrayList<>(tags.size());
        String prevType = null;
        for (String t : tags) {
            if (t == null || !(t.equals("O") || (t.length() > 2 && (t.startsWith("B-") || t.startsWith("I-"))))) {
                throw new Bert4jException("unknown NER tag \"" + t + "\" (expected O, B-TYPE or I-TYPE)");
            }
            String type = type(t);
            if (t.startsWith("I-") && !type.equals(prevType)) {
                out.add("B-" + type);
            } else {
                out.add(t);
            }
            prevType = type;
        }
        return out;
    }

    /**
     * The label list for a set of IOB2 tags: O first, then for each entity type in sorted
     * order its B- and I- tag (both, even if the data has only one of them), so a model's
     * {@code id2label} does not depend on the order tags happen to appear in.
     */
    public static List<String> labelList(Collection<String> tags) {
        TreeSet<String> types = new TreeSet<>();
        for (String t : tags) {
            if (!t.equals("O")) {
                if (t.length() <= 2 || !(t.startsWith("B-") || t.startsWith("I-"))) {
                    throw new Bert4jException("unknown NER tag \"" + t + "\" (expected O, B-TYPE or I-TYPE)");
                }
                types.add(t.substring(2));
            }
        }
        List<String> out = new ArrayList<>(1 + 2 * types.size());
        out.add("O");
        for (String type : types) {
            out.add("B-" + type);
            out.add("I-" + type);
        }
        return Collections.unmodifiableList(out);
    }
}
