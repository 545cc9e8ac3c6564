package io.bert4j.data;

import io.bert4j.Bert4jException;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * A GLUE-style TSV file read into memory: a header line naming the columns, then one example
 * per line. (Package {@code io.bert4j.data} holds the readers for fine-tuning data sets.)
 *
 * <p>The format is the one GLUE's files use and its readers assume: fields are split on tabs
 * only, with no CSV quoting, so a {@code "} is an ordinary character (MRPC and STS-B have
 * unbalanced quotes); a leading UTF-8 byte-order mark is dropped (MRPC starts with one); a CR
 * before each LF is dropped; blank lines are skipped. Every other line must have exactly as
 * many fields as the header, or reading fails with the file, line number and field counts.
 *
 * <p>{@link Columns} chooses the text column, an optional second text (a sentence pair, fed to
 * the model as segment B) and an optional label column. Column sets for the shared data:
 * <ul>
 *   <li>SST-2 ({@link Columns#defaults()}): header {@code text, label} (GLUE's own copy says
 *       {@code sentence}; the default accepts either); labels {@code 0}/{@code 1}.</li>
 *   <li>MRPC ({@link Columns#MRPC}): header {@code Quality, #1 ID, #2 ID, #1 String, #2 String};
 *       text {@code #1 String}, pair {@code #2 String}, label {@code Quality} (0/1).</li>
 *   <li>STS-B ({@link Columns#STSB}): header {@code index, genre, filename, year, old_index,
 *       source1, source2, sentence1, sentence2, score}; text {@code sentence1}, pair
 *       {@code sentence2}, label {@code score}, a float 0 to 5 read with {@link #floatLabels()}.</li>
 * </ul>
 * Texts are kept exactly as in the file (SST-2 sentences end with a space); labels are
 * stripped of surrounding whitespace.
 *
 * <pre>{@code
 * GlueTsv train = GlueTsv.read(Path.of("sst2/train.tsv"));
 * GlueTsv.Split<GlueTsv.Example> s = GlueTsv.split(train.examples(), 0.1, 42);
 * List<String> labels = train.labelSet();                  // ["0", "1"]
 * }</pre>
 *
 * @param file     the file read (named in later errors)
 * @param header   the column names, in file order
 * @param columns  the columns used, with the default text column resolved
 * @param examples the examples, in file order
 */
public record GlueTsv(Path file, List<String> header, Columns columns, List<Example> examples) {

    public GlueTsv {
        header = List.copyOf(header);
        examples = List.copyOf(examples);
    }

    /**
     * Which columns to use, by header name. {@code text == null} means {@code sentence} if the
     * header has it, else {@code text}; {@code pair == null} means single texts;
     * {@code label == null} means the file has no labels (for example a test file).
     */
    public record Columns(String text, String pair, String label) {
        /** Text {@code sentence} or {@code text}, no pair, label {@code label} (SST-2, CoLA). */
        public static Columns defaults() {
            return new Columns(null, null, "label");
        }

        /** MRPC: {@code #1 String} / {@code #2 String}, label {@code Quality}. */
        public static final Columns MRPC = new Columns("#1 String", "#2 String", "Quality");
        /** STS-B: {@code sentence1} / {@code sentence2}, float label {@code score}. */
        public static final Columns STSB = new Columns("sentence1", "sentence2", "score");
    }

    /**
     * One row: its 1-based line number in the file, the text, the pair text (null without a
     * pair column) and the label as written (null without a label column).
     */
    public record Example(int line, String text, String pair, String label) {
    }

    /** Examples split into a training and a validation part. */
    public record Split<T>(List<T> train, List<T> validation) {
        public Split {
            train = List.copyOf(train);
            validation = List.copyOf(validation);
        }
    }

    /** Reads {@code file} with {@link Columns#defaults()}. */
    public static GlueTsv read(Path file) {
        return read(file, Columns.defaults());
    }

    public static GlueTsv read(Path file, Columns columns) {
        String content = decode(file);
        List<String> header = null;
        int textIdx = -1;
        int pairIdx = -1;
        int labelIdx = -1;
        Columns resolved = null;
        List<Example> examples = new ArrayList<>();
        int lineNo = 0;
        int pos = 0;
        // Walk the text with indexOf rather than split("\n") so that no array of all lines
        // sits beside the examples.
        while (pos < content.length()) {
            int nl = content.indexOf('\n', pos);
            int end = nl < 0 ? content.length() : nl;
            String line = content.substring(pos, end > pos && content.charAt(end - 1) == '\r' ? end - 1 : end);
            pos = end + 1;
            lineNo++;
            if (line.isBlank()) {
                continue;
            }
            String[] fields = line.split("\t", -1);
            if (header == null) {
                header = List.of(fields);
                Set<String> seen = new HashSet<>();
                for (String h : fields) {
                    if (!seen.add(h)) {
                        throw error(file, lineNo, "header names column '" + h + "' twice");
                    }
                }
                String text = columns.text();
                if (text == null) {
                    text = header.contains("sentence") ? "sentence" : "text";
                    if (!header.contains(text)) {
                        throw error(file, lineNo, "no text column: the header has neither 'sentence' nor 'text' "
                                + "(columns: " + header + "); name the text column");
                    }
                }
                textIdx = column(file, lineNo, header, text, "text");
                pairIdx = columns.pair() == null ? -1 : column(file, lineNo, header, columns.pair(), "pair");
                labelIdx = columns.label() == null ? -1 : column(file, lineNo, header, columns.label(), "label");
                resolved = new Columns(text, columns.pair(), columns.label());
                continue;
            }
            if (fields.length != header.size()) {
                throw error(file, lineNo, "expected " + header.size() + " tab-separated fields as in the header, found "
                        + fields.length);
            }
            String label = null;
            if (labelIdx >= 0) {
                label = fields[labelIdx].strip();
                if (label.isEmpty()) {
                    throw error(file, lineNo, "empty label in column '" + columns.label() + "'");
                }
            }
            examples.add(new Example(lineNo, fields[textIdx], pairIdx < 0 ? null : fields[pairIdx], label));
        }
        if (header == null) {
            throw new Bert4jException(file + ": empty file, expected a header line");
        }
        return new GlueTsv(file, header, resolved, examples);
    }

    /**
     * The distinct labels, sorted numerically if all are integers (so "2" precedes "10"),
     * else as strings: the order in which to number classes.
     */
    public List<String> labelSet() {
        requireLabels();
        Set<String> distinct = new HashSet<>();
        for (Example e : examples) {
            distinct.add(e.label());
        }
        List<String> out = new ArrayList<>(distinct);
        boolean allInts = out.stream().allMatch(s -> INTEGER.matcher(s).matches());
        if (allInts) {
            out.sort((a, b) -> new BigInteger(a).compareTo(new BigInteger(b)));
        } else {
            out = new ArrayList<>(new TreeSet<>(out));
        }
        return List.copyOf(out);
    }

    /** The labels as numbers, for regression; a label that is not a finite decimal number is an error naming its line. */
    public float[] floatLabels() {
        requireLabels();
        float[] out = new float[examples.size()];
        for (int i = 0; i < out.length; i++) {
            Example e = examples.get(i);
            // A plain decimal pattern first: Float.parseFloat also takes "NaN", "1f" and hex.
            float v = DECIMAL.matcher(e.label()).matches() ? Float.parseFloat(e.label()) : Float.NaN;
            if (!Float.isFinite(v)) {
                throw error(file, e.line(), "label '" + e.label() + "' in column '" + columns.label()
                        + "' is not a finite number");
            }
            out[i] = v;
        }
        return out;
    }

    /**
     * Splits {@code items} into train and validation with {@code validationFraction} of them
     * (rounded, at least one, leaving at least one) in validation; see {@link #split(List, int, long)}.
     */
    public static <T> Split<T> split(List<T> items, double validationFraction, long seed) {
        if (!(validationFraction > 0 && validationFraction < 1)) {
            throw new Bert4jException("validation fraction must be between 0 and 1 (exclusive), got "
                    + validationFraction);
        }
        int n = items.size();
        int count = (int) Math.min(n - 1, Math.max(1, Math.round(n * validationFraction)));
        return split(items, count, seed);
    }

    /**
     * Splits {@code items} into train and validation with {@code validationCount} items in
     * validation, chosen by a seeded shuffle: the same items and seed always give the same
     * split. Both parts keep the input order, so shuffling for training stays the trainer's job.
     */
    public static <T> Split<T> split(List<T> items, int validationCount, long seed) {
        int n = items.size();
        if (validationCount < 1 || validationCount >= n) {
            throw new Bert4jException("validation count must be between 1 and " + (n - 1) + " for " + n
                    + " examples (both parts non-empty), got " + validationCount);
        }
        int[] perm = new int[n];
        for (int i = 0; i < n; i++) {
            perm[i] = i;
        }
        // Fisher-Yates written out with java.util.Random, whose sequence is fixed by its
        // specification, so a seed names the same split on every JVM and version.
        Random rnd = new Random(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        boolean[] inValidation = new boolean[n];
        for (int i = 0; i < validationCount; i++) {
            inValidation[perm[i]] = true;
        }
        List<T> train = new ArrayList<>(n - validationCount);
        List<T> validation = new ArrayList<>(validationCount);
        for (int i = 0; i < n; i++) {
            (inValidation[i] ? validation : train).add(items.get(i));
        }
        return new Split<>(train, validation);
    }

    private static final Pattern INTEGER = Pattern.compile("[+-]?\\d+");
    private static final Pattern DECIMAL = Pattern.compile("[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?");

    private void requireLabels() {
        if (columns.label() == null) {
            throw new Bert4jException(file + ": read without a label column, so there are no labels");
        }
    }

    private static int column(Path file, int line, List<String> header, String name, String role) {
        int idx = header.indexOf(name);
        if (idx < 0) {
            throw error(file, line, "no " + role + " column '" + name + "' in the header (columns: " + header + ")");
        }
        return idx;
    }

    private static String decode(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new Bert4jException("cannot read " + file + ": " + e.getMessage(), e);
        }
        int offset = bytes.length >= 3 && (bytes[0] & 0xff) == 0xEF && (bytes[1] & 0xff) == 0xBB
                && (bytes[2] & 0xff) == 0xBF ? 3 : 0;
        try {
            // Strict decoding: silently replacing bad bytes would corrupt texts without notice.
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes, offset, bytes.length - offset))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new Bert4jException(file + ": not valid UTF-8 (" + e.getMessage() + ")", e);
        }
    }

    private static Bert4jException error(Path file, int line, String problem) {
        return new Bert4jException(file + ":" + line + ": " + problem);
    }

    @Override
    public String toString() {
        return "GlueTsv[" + file + ", columns " + Arrays.asList(columns.text(), columns.pair(), columns.label())
                + ", " + examples.size() + " examples]";
    }
}
