package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.model.Tensors;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Named-entity recognition (token classification) with the aggregation strategies of HF's
 * {@code TokenClassificationPipeline}, giving entities with character offsets into the
 * original text.
 *
 * <p>Per token, {@code score} is the softmax probability of the predicted label. Special
 * tokens are skipped, and results labelled {@code O} are dropped (HF's default
 * {@code ignore_labels}). The strategies, as HF documents them:
 * <ul>
 * <li>{@link Aggregation#NONE}: one result per token, labelled with the model's own label
 *     ({@code B-PER}, {@code I-PER}, ...).</li>
 * <li>{@link Aggregation#SIMPLE}: tokens grouped: a token joins the previous group when it has
 *     the same entity type and does not start with {@code B-}; the group's label is the type
 *     ({@code PER}) and its score the mean of its tokens' scores.</li>
 * <li>{@link Aggregation#FIRST}, {@link Aggregation#AVERAGE}, {@link Aggregation#MAX}: first a
 *     word takes one label: that of its first token; the argmax of its tokens' averaged
 *     probability vectors (score = that average); or that of its token with the highest score.
 *     Words are then grouped as in SIMPLE. A word never ends up split between entities.</li>
 * </ul>
 * Words are the tokenizer's pre-tokens (BERT: split on whitespace and punctuation), read from
 * the encoding's word ids. For BERT's WordPiece that is HF's rule that a {@code ##} token
 * continues the word before it (HF detects {@code ##} by comparing the token's length with its
 * source text's, which misfires only where normalisation changes a word's length).
 *
 * <p><b>Long texts</b> are split, not truncated: when a text has more tokens than
 * {@link #maxLength()} (default: the model's {@code max_position_embeddings}, lowered to the
 * tokenizer's {@code model_max_length} when that is set and smaller), it is cut into windows
 * of {@code maxLength - 2} tokens (plus [CLS]/[SEP]) that overlap by {@link #overlap()}
 * tokens, and each token takes its probabilities from the window where it has the most
 * context on its nearer side (so an overlap is split down the middle). The aggregation then
 * runs over the whole text as if it had been one sequence: entities are never cut at a
 * window edge, offsets stay those of the original text. Truncating would silently lose
 * entities, which is the worse failure for NER.
 *
 * <p>Thread-safe for predictions; {@link #setWindow} applies to later calls.
 *
 * <pre>{@code
 * try (TokenClassifier ner = TokenClassifier.load(Path.of("my-ner-model"), KernelMode.FUSED)) {
 *     for (TokenClassifier.Entity e : ner.predict("Angela Merkel visited Paris.", TokenClassifier.Aggregation.FIRST)) {
 *         System.out.println(e.label() + " " + e.text() + " [" + e.start() + ", " + e.end() + ") " + e.score());
 *     }
 * }
 * }</pre>
 */
public final class TokenClassifier implements AutoCloseable {

    /** HF's {@code aggregation_strategy} values. */
    public enum Aggregation {
        NONE, SIMPLE, FIRST, AVERAGE, MAX;

        /** Parses HF's lower-case names ("none", "simple", ...), case-insensitively. */
        public static Aggregation parse(String name) {
            for (Aggregation a : values()) {
                if (a.name().equalsIgnoreCase(name == null ? "" : name.trim())) {
                    return a;
                }
            }
            throw new Bert4jException("unknown aggregation \"" + name + "\": expected one of none, simple, first, average, max");
        }

        public String hfName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * One result: an entity (or, for {@link Aggregation#NONE}, a token).
     *
     * @param label the entity type for grouped strategies ({@code PER}), the model's label for NONE ({@code B-PER})
     * @param start first UTF-16 char in the original text
     * @param end   one past the last char; {@code text.substring(start, end)} is {@link #text}
     * @param text  the covered part of the original text (spacing and case as given)
     * @param score softmax probability (NONE), or the mean over the grouped tokens / words
     */
    public record Entity(String label, int start, int end, String text, double score) {
    }

    /** Windows run through the model this many at a time. */
    private static final int BATCH = 16;

    private final BertForTokenClassification model;
    private final BertTokenizer tokenizer;
    private final boolean owns;
    private final String[] labels;
    private final int modelLimit;
    private volatile int maxLength;
    private volatile int overlap;

    /** Wraps a model and tokenizer the caller keeps owning (close them yourself). Put the model in eval mode. */
    public TokenClassifier(BertForTokenClassification model, BertTokenizer tokenizer) {
        this(model, tokenizer, false);
    }

    private TokenClassifier(BertForTokenClassification model, BertTokenizer tokenizer, boolean owns) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.owns = owns;
        Map<Integer, String> id2label = model.id2label();
        this.labels = new String[model.numLabels()];
        for (int i = 0; i < labels.length; i++) {
            labels[i] = id2label.get(i);
        }
        int limit = model.config().maxPositionEmbeddings();
        int tokMax = tokenizer.settings().modelMaxLength();
        if (tokMax > 0 && tokMax < limit) {
            limit = tokMax;
        }
        if (limit < 3) {
            throw new Bert4jException("the model takes at most " + limit + " tokens; token classification needs at least 3 ([CLS], a token, [SEP])");
        }
        this.modelLimit = limit;
        this.maxLength = limit;
        this.overlap = defaultOverlap(limit);
    }

    private static int defaultOverlap(int maxLength) {
        // A quarter of the window: enough context on both sides of a cut for typical entities.
        return Math.min((maxLength - 2) / 4, 128);
    }

    /** Loads a token-classification folder (BertForTokenClassification + tokenizer) in eval mode; closing closes both. */
    public static TokenClassifier load(Path dir, KernelMode kernels) {
        BertForTokenClassification model = BertForTokenClassification.load(dir);
        try {
            BertTokenizer tok = BertTokenizer.load(dir);
            try {
                if (tok.vocabSize() > model.config().vocabSize()) {
                    throw new Bert4jException(dir + ": the tokenizer has " + tok.vocabSize()
                            + " tokens but config.json says vocab_size " + model.config().vocabSize());
                }
                model.setKernels(kernels);
                model.train(false);
                return new TokenClassifier(model, tok, true);
            } catch (RuntimeException e) {
                tok.close();
                throw e;
            }
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    public BertForTokenClassification model() {
        return model;
    }

    public BertTokenizer tokenizer() {
        return tokenizer;
    }

    /** Tokens per window, [CLS] and [SEP] included. */
    public int maxLength() {
        return maxLength;
    }

    /** Tokens shared by consecutive windows of a long text. */
    public int overlap() {
        return overlap;
    }

    /**
     * Sets the window for long texts: at most {@code maxLength} tokens per model call (3 to the
     * model's limit), consecutive windows sharing {@code overlap} tokens (0 to maxLength - 3).
     */
    public synchronized void setWindow(int maxLength, int overlap) {
        if (maxLength < 3 || maxLength > modelLimit) {
            throw new Bert4jException("window max length must be in [3, " + modelLimit + "] (the model's limit), got "
                    + maxLength);
        }
        if (overlap < 0 || overlap > maxLength - 3) {
            throw new Bert4jException("window overlap must be in [0, " + (maxLength - 3) + "] for max length "
                    + maxLength + " (each window must move on by at least one token), got " + overlap);
        }
        this.maxLength = maxLength;
        this.overlap = overlap;
    }

    /** Entities of one text, with {@link Aggregation#SIMPLE}. */
    public List<Entity> predict(String text) {
        return predict(text, Aggregation.SIMPLE);
    }

    public List<Entity> predict(String text, Aggregation aggregation) {
        return predictBatch(List.of(text), aggregation).get(0);
    }

    /** Entities of each text, in input order; windows of all texts share model calls. */
    public List<List<Entity>> predictBatch(List<String> texts, Aggregation aggregation) {
        if (aggregation == null) {
            throw new Bert4jException("aggregation must not be null");
        }
        for (int i = 0; i < texts.size(); i++) {
            if (texts.get(i) == null) {
                throw new Bert4jException("text " + i + " is null");
            }
        }
        int maxLen;
        int ov;
        synchronized (this) {
            maxLen = maxLength;
            ov = overlap;
        }
        List<Encoding> encs = texts.isEmpty() ? List.of() : tokenizer.encodeBatch(texts, EncodeOptions.DEFAULT);
        // Content tokens per text (no special tokens), and the windows over them.
        List<int[]> content = new ArrayList<>(texts.size());
        List<Window> windows = new ArrayList<>();
        for (int i = 0; i < encs.size(); i++) {
            Encoding e = encs.get(i);
            List<Integer> idx = new ArrayList<>();
            for (int t = 0; t < e.length(); t++) {
                if (e.specialTokensMask()[t] == 0 && e.attentionMask()[t] == 1) {
                    idx.add(t);
                }
            }
            int[] c = idx.stream().mapToInt(Integer::intValue).toArray();
            content.add(c);
            int span = maxLen - 2;
            int step = span - ov;
            for (int s = 0; s < c.length; s += step) {
                int end = Math.min(c.length, s + span);
                windows.add(new Window(i, s, end));
                if (end == c.length) {
                    break;
                }
            }
        }
        // probs.get(i)[k] = probability vector of content token k of text i.
        List<double[][]> probs = new ArrayList<>(texts.size());
        List<int[]> bestContext = new ArrayList<>(texts.size());
        for (int[] c : content) {
            probs.add(new double[c.length][]);
            int[] ctx = new int[c.length];
            Arrays.fill(ctx, -1);
            bestContext.add(ctx);
        }
        for (int from = 0; from < windows.size(); from += BATCH) {
            List<Window> chunk = windows.subList(from, Math.min(from + BATCH, windows.size()));
            run(chunk, encs, content, probs, bestContext);
        }
        List<List<Entity>> out = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            out.add(aggregate(texts.get(i), encs.get(i), content.get(i), probs.get(i), aggregation));
        }
        return out;
    }

    /** Content tokens [start, end) of text {@code text}. */
    private record Window(int text, int start, int end) {
    }

    private void run(List<Window> chunk, List<Encoding> encs, List<int[]> content, List<double[][]> probs,
                     List<int[]> bestContext) {
        int b = chunk.size();
        int s = 0;
        for (Window w : chunk) {
            s = Math.max(s, w.end - w.start + 2);
        }
        long[] ids = new long[b * s];
        long[] types = new long[b * s];
        long[] mask = new long[b * s];
        int pad = tokenizer.padId();
        for (int r = 0; r < b; r++) {
            Window w = chunk.get(r);
            int[] src = encs.get(w.text).ids();
            int[] c = content.get(w.text);
            int n = w.end - w.start + 2;
            for (int j = 0; j < s; j++) {
                int k = r * s + j;
                if (j < n) {
                    ids[k] = j == 0 ? tokenizer.clsId() : j == n - 1 ? tokenizer.sepId() : src[c[w.start + j - 1]];
                    mask[k] = 1;
                } else {
                    ids[k] = pad;
                }
            }
        }
        int nl = labels.length;
        float[] logits;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            Tensor out = model.forward(Tensors.fromLongs(ids, b, s), Tensors.fromLongs(types, b, s),
                    Tensors.fromLongs(mask, b, s)).logits();                                  // [B, S, L]
            logits = Tensors.toFloatArray(out);
        }
        for (int r = 0; r < b; r++) {
            Window w = chunk.get(r);
            int total = content.get(w.text).length;
            double[][] p = probs.get(w.text);
            int[] ctx = bestContext.get(w.text);
            for (int k = w.start; k < w.end; k++) {
                // Context on the nearer side; the text's own ends count as unlimited context.
                int left = w.start == 0 ? Integer.MAX_VALUE : k - w.start;
                int right = w.end == total ? Integer.MAX_VALUE : w.end - 1 - k;
                int c = Math.min(left, right);
                if (c > ctx[k]) {
                    ctx[k] = c;
                    p[k] = softmax(logits, (r * s + (k - w.start + 1)) * nl, nl);
                }
            }
        }
    }

    /** HF's softmax: exp(x - max) / sum, in double. */
    static double[] softmax(float[] logits, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double[] p = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            p[i] = Math.exp(logits[off + i] - max);
            sum += p[i];
        }
        for (int i = 0; i < n; i++) {
            p[i] /= sum;
        }
        return p;
    }

    private static int argmax(double[] p) {
        int best = 0;
        for (int i = 1; i < p.length; i++) {
            if (p[i] > p[best]) {
                best = i;
            }
        }
        return best;
    }

    /** A token or word with its chosen label, before grouping. */
    private record Piece(String label, int start, int end, double score) {
    }

    private List<Entity> aggregate(String text, Encoding enc, int[] content, double[][] probs, Aggregation agg) {
        List<Piece> pieces = new ArrayList<>();
        if (agg == Aggregation.NONE || agg == Aggregation.SIMPLE) {
            for (int k = 0; k < content.length; k++) {
                int t = content[k];
                int best = argmax(probs[k]);
                pieces.add(new Piece(labels[best], enc.offsets().get(t).start(), enc.offsets().get(t).end(), probs[k][best]));
            }
        } else {
            int k = 0;
            while (k < content.length) {
                int end = k + 1;
                Integer word = enc.wordIds().get(content[k]);
                while (end < content.length && word != null && word.equals(enc.wordIds().get(content[end]))) {
                    end++;
                }
                pieces.add(word(enc, content, probs, k, end, agg));
                k = end;
            }
        }
        List<Entity> out = new ArrayList<>();
        if (agg == Aggregation.NONE) {
            for (Piece p : pieces) {
                if (!"O".equals(p.label)) {
                    out.add(new Entity(p.label, p.start, p.end, text.substring(p.start, p.end), p.score));
                }
            }
            return out;
        }
        // Grouping: a piece continues the group when it has the group's type and is not a B-.
        int g = 0;
        while (g < pieces.size()) {
            int end = g + 1;
            String type = type(pieces.get(g).label);
            while (end < pieces.size() && !pieces.get(end).label.startsWith("B-")
                    && type(pieces.get(end).label).equals(type)) {
                end++;
            }
            String groupLabel = groupLabel(pieces.get(g).label);
            if (!"O".equals(groupLabel)) {
                double sum = 0;
                for (int i = g; i < end; i++) {
                    sum += pieces.get(i).score;
                }
                int start = pieces.get(g).start;
                int stop = pieces.get(end - 1).end;
                out.add(new Entity(groupLabel, start, stop, text.substring(start, stop), sum / (end - g)));
            }
            g = end;
        }
        return out;
    }

    /** One word (content tokens [from, to)) under FIRST, AVERAGE or MAX. */
    private Piece word(Encoding enc, int[] content, double[][] probs, int from, int to, Aggregation agg) {
        int start = enc.offsets().get(content[from]).start();
        int end = enc.offsets().get(content[to - 1]).end();
        double[] chosen;
        if (agg == Aggregation.FIRST) {
            chosen = probs[from];
        } else if (agg == Aggregation.MAX) {
            // The token whose best probability is highest; the first one on ties (as Python's max).
            chosen = probs[from];
            for (int k = from + 1; k < to; k++) {
                if (probs[k][argmax(probs[k])] > chosen[argmax(chosen)]) {
                    chosen = probs[k];
                }
            }
        } else {
            chosen = new double[labels.length];
            for (int k = from; k < to; k++) {
                for (int l = 0; l < chosen.length; l++) {
                    chosen[l] += probs[k][l];
                }
            }
            for (int l = 0; l < chosen.length; l++) {
                chosen[l] /= (to - from);
            }
        }
        int best = argmax(chosen);
        return new Piece(labels[best], start, end, chosen[best]);
    }

    /** Entity type for the grouping test: B-X and I-X are X; a label without B-/I- is itself. */
    private static String type(String label) {
        return label.startsWith("B-") || label.startsWith("I-") ? label.substring(2) : label;
    }

    /** The group's reported label: what follows the first '-', as HF reports it. */
    private static String groupLabel(String label) {
        int dash = label.indexOf('-');
        return dash >= 0 ? label.substring(dash + 1) : label;
    }

    @Override
    public void close() {
        if (owns) {
            model.close();
            tokenizer.close();
        }
    }
}
