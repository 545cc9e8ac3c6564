package io.bert4j.bench;

import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The inputs every benchmark and the comparison harness share, so bert4j and ONNX Runtime
 * always see the same token ids: real SST-2 sentences (GLUE train, from {@code shared/data}),
 * or a fixed synthetic text when that folder is absent.
 */
public final class Workloads {
    private Workloads() {
    }

    /** Used only when SST-2 is not found; then every number says "synthetic" in its notes. */
    static final String SYNTHETIC = "the quick brown fox jumps over the lazy dog while a patient reviewer "
            + "writes that the film is a charming , if slightly overlong , study of memory and loss .";

    private static volatile List<String> sst2;
    private static volatile Path sst2Source;

    /** Where SST-2's train.tsv is: -Dbert4j.shared.data, $BERT4J_SHARED_DATA, or shared/data above the working dir. */
    static Path sst2File() {
        List<Path> roots = new ArrayList<>();
        String prop = System.getProperty("bert4j.shared.data");
        if (prop != null && !prop.isBlank()) {
            roots.add(Path.of(prop));
        }
        String env = System.getenv("BERT4J_SHARED_DATA");
        if (env != null && !env.isBlank()) {
            roots.add(Path.of(env));
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            roots.add(d.resolve("shared").resolve("data"));
        }
        for (Path r : roots) {
            Path f = r.resolve("sst2").resolve("train.tsv");
            if (Files.isRegularFile(f)) {
                return f;
            }
        }
        return null;
    }

    /** SST-2 train sentences in file order (header skipped), or empty when the file is absent. */
    public static List<String> sst2() {
        if (sst2 == null) {
            synchronized (Workloads.class) {
                if (sst2 == null) {
                    Path f = sst2File();
                    List<String> out = new ArrayList<>();
                    if (f != null) {
                        try {
                            List<String> lines = Files.readAllLines(f, StandardCharsets.UTF_8);
                            for (int i = 1; i < lines.size(); i++) {
                                String line = lines.get(i);
                                int tab = line.indexOf('\t');
                                String s = (tab >= 0 ? line.substring(0, tab) : line).trim();
                                if (!s.isEmpty()) {
                                    out.add(s);
                                }
                            }
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    }
                    sst2Source = f;
                    sst2 = List.copyOf(out);
                }
            }
        }
        return sst2;
    }

    /** A line saying where the text came from, for reports. */
    public static String textSource() {
        sst2();
        return sst2Source != null ? "SST-2 train (" + sst2Source + ")" : "synthetic text (SST-2 not found)";
    }

    /**
     * {@code batch} rows of exactly {@code seq} tokens ([CLS] ... [SEP], no padding): row i is
     * SST-2 sentences from a row-specific starting point, joined until long enough, then
     * truncated to {@code seq}.
     */
    public static List<Encoding> fixedLength(BertTokenizer tok, int batch, int seq) {
        List<String> sentences = sst2();
        EncodeOptions opts = EncodeOptions.DEFAULT.withMaxLength(seq).withTruncation(EncodeOptions.Truncation.LONGEST_FIRST);
        List<Encoding> rows = new ArrayList<>(batch);
        for (int r = 0; r < batch; r++) {
            StringBuilder text = new StringBuilder();
            int next = sentences.isEmpty() ? 0 : (r * 997) % sentences.size();
            // ~1.3 tokens per word on this text; overshoot, then let truncation cut exactly.
            while (text.length() < seq * 8) {
                text.append(sentences.isEmpty() ? SYNTHETIC : sentences.get(next)).append(' ');
                next = sentences.isEmpty() ? 0 : (next + 1) % sentences.size();
            }
            Encoding e = tok.encode(text.toString(), opts);
            if (e.length() != seq) {
                throw new IllegalStateException("row " + r + " came out " + e.length() + " tokens long, wanted " + seq);
            }
            rows.add(e);
        }
        return rows;
    }

    /**
     * {@code count} batches of {@code size} real SST-2 sentences of varying lengths, sampled
     * at an even stride through the file (deterministic).
     */
    public static List<List<String>> sentenceBatches(int count, int size) {
        List<String> sentences = sst2();
        List<List<String>> out = new ArrayList<>(count);
        int n = count * size;
        for (int b = 0; b < count; b++) {
            List<String> batch = new ArrayList<>(size);
            for (int i = 0; i < size; i++) {
                int k = b * size + i;
                batch.add(sentences.isEmpty() ? SYNTHETIC.substring(0, 20 + (k * 37) % 120)
                        : sentences.get((int) ((long) k * sentences.size() / n)));
            }
            out.add(List.copyOf(batch));
        }
        return out;
    }

    /**
     * {@code count} consecutive SST-2 train sentences from {@code start}: neighbours in the file
     * vary in length as a stream of user texts does, where an even stride would smooth it out.
     */
    public static List<String> consecutiveSentences(int start, int count) {
        List<String> sentences = sst2();
        List<String> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int k = start + i;
            out.add(sentences.isEmpty() ? SYNTHETIC.substring(0, 20 + (k * 37) % 120)
                    : sentences.get(k % sentences.size()));
        }
        return List.copyOf(out);
    }

    /** Encodings padded to the longest as flat row-major int64 arrays, ready for either runtime. */
    public record Inputs(long[] ids, long[] typeIds, long[] mask, int batch, int seq) {
        public static Inputs of(List<Encoding> encodings, int padId) {
            int b = encodings.size();
            int s = 0;
            for (Encoding e : encodings) {
                s = Math.max(s, e.length());
            }
            long[] ids = new long[b * s];
            long[] types = new long[b * s];
            long[] mask = new long[b * s];
            for (int i = 0; i < b; i++) {
                Encoding e = encodings.get(i);
                for (int j = 0; j < s; j++) {
                    int k = i * s + j;
                    if (j < e.length()) {
                        ids[k] = e.ids()[j];
                        types[k] = e.typeIds()[j];
                        mask[k] = e.attentionMask()[j];
                    } else {
                        ids[k] = padId;
                    }
                }
            }
            return new Inputs(ids, types, mask, b, s);
        }

        public int realTokens() {
            int n = 0;
            for (long m : mask) {
                n += (int) m;
            }
            return n;
        }
    }
}
