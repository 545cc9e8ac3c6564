package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.model.Tensors;
import io.bert4j.pipeline.TokenClassifier.Aggregation;
import io.bert4j.pipeline.TokenClassifier.Entity;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link TokenClassifier} on tiny models with the real MiniLM tokenizer (uncased, accents
 * stripped: offsets must still point into the original text).
 *
 * <p>The "designed" model has every encoder sub-layer's output projection zeroed and no
 * position/type embeddings, so each layer is the identity followed by LayerNorm and a token's
 * hidden state depends on its id only; its word embeddings put a spike in the dimension of the
 * label the token should get, and the classifier reads those dimensions. Predictions are then
 * known per token, and the expected entities are worked out here from the model's own logits
 * with HF's pipeline rules (words found by HF's {@code ##} test, independent of the
 * tokenizer's word ids that the pipeline uses). The random model (context-dependent) checks
 * windows and batching.
 */
class TokenClassifierTest {

    @TempDir
    static Path tmp;
    static BertTokenizer tokenizer;
    static Path designedDir;
    static TokenClassifier designed;
    static BertForTokenClassification random;

    static final List<String> LABELS = List.of("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "MISC");
    static final int H = 32;

    // token -> {label, spike strength}; every other token gets "O" with strength 1
    static final Map<String, Object[]> DESIGN = new LinkedHashMap<>();

    static {
        DESIGN.put("zurich", new Object[]{"B-LOC", 3.0});
        DESIGN.put("angela", new Object[]{"B-PER", 3.0});
        DESIGN.put("mer", new Object[]{"I-PER", 2.5});
        DESIGN.put("##kel", new Object[]{"I-PER", 2.0});
        DESIGN.put("-", new Object[]{"I-PER", 1.5});
        DESIGN.put("schmidt", new Object[]{"I-PER", 3.0});
        DESIGN.put("##lor", new Object[]{"B-ORG", 4.0});
        DESIGN.put("##be", new Object[]{"I-ORG", 1.6});
        DESIGN.put("paris", new Object[]{"B-LOC", 3.0});
        DESIGN.put("munchen", new Object[]{"B-LOC", 2.2});
        DESIGN.put("cafe", new Object[]{"MISC", 2.0});
        DESIGN.put("qu", new Object[]{"MISC", 2.0});
        DESIGN.put("##ux", new Object[]{"MISC", 1.8});
    }

    // Accents, punctuation glued to words, runs of spaces, a leading/trailing blank.
    static final String TEXT = "  Hello   Zürichberg,  said Angela  Merkel-Schmidt at Glorbex in Paris München!!  Café Quux. ";

    static final Map<Integer, String> ID2LABEL = new HashMap<>();

    @BeforeAll
    static void setUp() {
        for (int i = 0; i < LABELS.size(); i++) {
            ID2LABEL.put(i, LABELS.get(i));
        }
        tokenizer = BertTokenizer.load(TestModels.defaultModelDir());
        BertConfig config = BertConfig.of(tokenizer.vocabSize(), H, 2, 2, 64, 64);
        designedDir = tmp.resolve("designed");
        try (BertForTokenClassification m = BertForTokenClassification.random(config, ID2LABEL, 5)) {
            design(m);
            m.save(designedDir, tokenizer);
        }
        designed = TokenClassifier.load(designedDir, KernelMode.FUSED);
        random = BertForTokenClassification.random(config, BertConfig.defaultId2Label(5), 9);
        random.train(false);
    }

    @AfterAll
    static void tearDown() {
        designed.close();
        random.close();
        tokenizer.close();
    }

    static void design(BertForTokenClassification m) {
        Map<String, Tensor> p = m.parameters();
        int v = m.config().vocabSize();
        float[] emb = new float[v * H];
        Random rnd = new Random(3);
        for (int id = 0; id < v; id++) {
            for (int d = 0; d < H; d++) {
                emb[id * H + d] = (float) (0.1 * rnd.nextGaussian());
            }
            emb[id * H] += 1.5f;   // "O"
        }
        for (Map.Entry<String, Object[]> e : DESIGN.entrySet()) {
            int id = tokenizer.tokenToId(e.getKey());
            assertTrue(id >= 0, e.getKey());
            emb[id * H] -= 1.5f;
            emb[id * H + LABELS.indexOf((String) e.getValue()[0])] += (float) (double) (Double) e.getValue()[1];
        }
        float[] cls = new float[LABELS.size() * H];
        for (int l = 0; l < LABELS.size(); l++) {
            cls[l * H + l] = 2.0f;
        }
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            p.get("bert.embeddings.word_embeddings.weight").copy_(Tensors.fromFloats(emb, v, H));
            p.get("bert.embeddings.position_embeddings.weight").zero_();
            p.get("bert.embeddings.token_type_embeddings.weight").zero_();
            for (String k : p.keySet()) {
                if (k.contains("attention.output.dense") || (k.contains(".output.dense") && !k.contains("attention"))) {
                    p.get(k).zero_();
                }
            }
            p.get("classifier.weight").copy_(Tensors.fromFloats(cls, LABELS.size(), H));
            p.get("classifier.bias").zero_();
        }
    }

    // ------------------------------------------------------------------ reference

    /** A token before aggregation, as HF's gather_pre_entities builds it. */
    record Pre(String token, int start, int end, double[] probs, boolean subword) {
    }

    /** Per content token probabilities from one forward pass over the whole text (≤ 64 tokens). */
    static List<Pre> pre(BertForTokenClassification model, String text) {
        Encoding enc = tokenizer.encode(text);
        int s = enc.length();
        float[] logits;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            logits = Tensors.toFloatArray(model.forward(Tensors.fromLongs(enc.idsAsLong(), 1, s),
                    Tensors.fromLongs(new long[s], 1, s), null).logits());
        }
        int n = model.numLabels();
        List<Pre> out = new ArrayList<>();
        for (int t = 1; t < s - 1; t++) {
            double[] pr = new double[n];
            double max = Double.NEGATIVE_INFINITY;
            for (int l = 0; l < n; l++) {
                max = Math.max(max, logits[t * n + l]);
            }
            double sum = 0;
            for (int l = 0; l < n; l++) {
                pr[l] = Math.exp(logits[t * n + l] - max);
                sum += pr[l];
            }
            for (int l = 0; l < n; l++) {
                pr[l] /= sum;
            }
            String token = enc.tokens().get(t);
            int start = enc.offsets().get(t).start();
            int end = enc.offsets().get(t).end();
            // HF: a sub-word when the token's string and its source text differ in length ("##").
            boolean sub = token.length() != end - start;
            out.add(new Pre(token, start, end, pr, sub));
        }
        return out;
    }

    static int argmax(double[] p) {
        int b = 0;
        for (int i = 1; i < p.length; i++) {
            if (p[i] > p[b]) {
                b = i;
            }
        }
        return b;
    }

    record Tagged(String label, int start, int end, double score) {
    }

    static List<Entity> expected(List<Pre> pres, String text, Aggregation agg, List<String> labels) {
        List<Tagged> tagged = new ArrayList<>();
        if (agg == Aggregation.NONE || agg == Aggregation.SIMPLE) {
            for (Pre p : pres) {
                int b = argmax(p.probs);
                tagged.add(new Tagged(labels.get(b), p.start, p.end, p.probs[b]));
            }
        } else {
            List<List<Pre>> words = new ArrayList<>();
            for (Pre p : pres) {
                if (words.isEmpty() || !p.subword) {
                    words.add(new ArrayList<>());
                }
                words.get(words.size() - 1).add(p);
            }
            for (List<Pre> w : words) {
                double[] scores;
                if (agg == Aggregation.FIRST) {
                    scores = w.get(0).probs;
                } else if (agg == Aggregation.MAX) {
                    scores = w.get(0).probs;
                    for (Pre p : w) {
                        if (Arrays.stream(p.probs).max().getAsDouble() > Arrays.stream(scores).max().getAsDouble()) {
                            scores = p.probs;
                        }
                    }
                } else {
                    scores = new double[labels.size()];
                    for (Pre p : w) {
                        for (int l = 0; l < scores.length; l++) {
                            scores[l] += p.probs[l] / w.size();
                        }
                    }
                }
                int b = argmax(scores);
                tagged.add(new Tagged(labels.get(b), w.get(0).start, w.get(w.size() - 1).end, scores[b]));
            }
        }
        List<Entity> out = new ArrayList<>();
        if (agg == Aggregation.NONE) {
            for (Tagged t : tagged) {
                if (!t.label.equals("O")) {
                    out.add(new Entity(t.label, t.start, t.end, text.substring(t.start, t.end), t.score));
                }
            }
            return out;
        }
        List<List<Tagged>> groups = new ArrayList<>();
        for (Tagged t : tagged) {
            if (!groups.isEmpty()) {
                List<Tagged> g = groups.get(groups.size() - 1);
                String[] cur = bi(t.label);
                String[] last = bi(g.get(g.size() - 1).label);
                if (cur[1].equals(last[1]) && !cur[0].equals("B")) {
                    g.add(t);
                    continue;
                }
            }
            groups.add(new ArrayList<>(List.of(t)));
        }
        for (List<Tagged> g : groups) {
            String l = g.get(0).label;
            String type = l.contains("-") ? l.split("-", 2)[1] : l;
            if (type.equals("O")) {
                continue;
            }
            double mean = g.stream().mapToDouble(Tagged::score).average().getAsDouble();
            int s = g.get(0).start;
            int e = g.get(g.size() - 1).end;
            out.add(new Entity(type, s, e, text.substring(s, e), mean));
        }
        return out;
    }

    /** HF's get_tag: B-X / I-X, and anything else counts as I- of itself. */
    static String[] bi(String label) {
        if (label.startsWith("B-")) {
            return new String[]{"B", label.substring(2)};
        }
        if (label.startsWith("I-")) {
            return new String[]{"I", label.substring(2)};
        }
        return new String[]{"I", label};
    }

    static void assertEntities(List<Entity> want, List<Entity> got, String what) {
        assertEquals(want.size(), got.size(), what + ": " + got);
        for (int i = 0; i < want.size(); i++) {
            Entity w = want.get(i);
            Entity g = got.get(i);
            assertEquals(w.label(), g.label(), what + " #" + i);
            assertEquals(w.start(), g.start(), what + " #" + i);
            assertEquals(w.end(), g.end(), what + " #" + i);
            assertEquals(w.text(), g.text(), what + " #" + i);
            assertEquals(w.score(), g.score(), 1e-6, what + " #" + i);
        }
    }

    static List<String> texts(List<Entity> es) {
        return es.stream().map(e -> e.label() + ":" + e.text()).toList();
    }

    // ------------------------------------------------------------------ tests

    @Test
    void designedModelPredictsTheDesignedLabels() {
        // The premise of the other tests: each token's argmax is the label designed for it.
        for (Pre p : pre(designed.model(), TEXT)) {
            Object[] d = DESIGN.get(p.token);
            String want = d == null ? "O" : (String) d[0];
            assertEquals(want, LABELS.get(argmax(p.probs)), p.token);
        }
    }

    @Test
    void everyStrategyMatchesHfRulesOnTheModelsLogits() {
        List<Pre> pres = pre(designed.model(), TEXT);
        for (Aggregation a : Aggregation.values()) {
            assertEntities(expected(pres, TEXT, a, LABELS), designed.predict(TEXT, a), a.toString());
        }
    }

    @Test
    void groupingAndOffsetsAsDesigned() {
        // Tokens: zurich ##berg | angela mer ##kel - schmidt | g ##lor ##be ##x | paris munchen | cafe qu ##ux
        assertEquals(List.of("LOC:Zürich", "PER:Angela  Merkel-Schmidt", "ORG:lorbe", "LOC:Paris", "LOC:München",
                "MISC:Café Quux"), texts(designed.predict(TEXT, Aggregation.SIMPLE)));
        assertEquals(List.of("B-LOC:Zürich", "B-PER:Angela", "I-PER:Mer", "I-PER:kel", "I-PER:-", "I-PER:Schmidt",
                "B-ORG:lor", "I-ORG:be", "B-LOC:Paris", "B-LOC:München", "MISC:Café", "MISC:Qu", "MISC:ux"),
                texts(designed.predict(TEXT, Aggregation.NONE)));
        // Word-level: Zürichberg is one word (its first token is B-LOC); Glorbex starts with an
        // "O" token, so FIRST drops it while MAX follows its strongest token (B-ORG).
        List<String> first = texts(designed.predict(TEXT, Aggregation.FIRST));
        assertEquals(List.of("LOC:Zürichberg", "PER:Angela  Merkel-Schmidt", "LOC:Paris", "LOC:München",
                "MISC:Café Quux"), first);
        List<String> max = texts(designed.predict(TEXT, Aggregation.MAX));
        assertEquals(List.of("LOC:Zürichberg", "PER:Angela  Merkel-Schmidt", "ORG:Glorbex", "LOC:Paris",
                "LOC:München", "MISC:Café Quux"), max);
        for (Aggregation a : Aggregation.values()) {
            for (Entity e : designed.predict(TEXT, a)) {
                assertEquals(TEXT.substring(e.start(), e.end()), e.text());
                assertTrue(e.score() > 0 && e.score() <= 1, e.toString());
            }
        }
        // AVERAGE on Glorbex: the mean of its four tokens' probability vectors decides.
        List<Pre> pres = pre(designed.model(), TEXT);
        double[] avg = new double[LABELS.size()];
        int glor = TEXT.indexOf("Glorbex");
        for (Pre p : pres) {
            if (p.start >= glor && p.end <= glor + 7) {
                for (int l = 0; l < avg.length; l++) {
                    avg[l] += p.probs[l] / 4;
                }
            }
        }
        String avgLabel = LABELS.get(argmax(avg));
        boolean glorbexEntity = designed.predict(TEXT, Aggregation.AVERAGE).stream()
                .anyMatch(e -> e.text().equals("Glorbex") && e.label().equals(avgLabel.replaceFirst("^[BI]-", ""))
                        && Math.abs(e.score() - avg[argmax(avg)]) < 1e-6);
        assertEquals(!avgLabel.equals("O"), glorbexEntity, "average label " + avgLabel);
    }

    @Test
    void emptyAndBlankTextsHaveNoEntities() {
        assertEquals(List.of(), designed.predict(""));
        assertEquals(List.of(), designed.predict("   \t "));
        assertEquals(List.of(List.of(), List.of()), designed.predictBatch(List.of("", " "), Aggregation.FIRST));
    }

    @Test
    void longTextsAreWindowedNotTruncated() {
        // Far over the model's 64 positions. The designed model is context-free, so windows must
        // give exactly the per-token probabilities of the text's tokens, whatever the cut.
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 12; i++) {
            sb.append(TEXT);
        }
        String longText = sb.toString();
        Encoding enc = tokenizer.encode(longText);
        assertTrue(enc.length() > 3 * 64, "tokens: " + enc.length());
        List<Pre> pres = new ArrayList<>();
        // Reference: each TEXT copy separately (context-free model), offsets shifted.
        for (int i = 0; i < 12; i++) {
            int shift = i * TEXT.length();
            for (Pre p : pre(designed.model(), TEXT)) {
                pres.add(new Pre(p.token, p.start + shift, p.end + shift, p.probs, p.subword));
            }
        }
        assertEquals(enc.length() - 2, pres.size());
        assertEquals(64, designed.maxLength());
        try {
            for (int[] w : new int[][]{{64, designed.overlap()}, {9, 3}, {5, 0}, {7, 4}}) {
                designed.setWindow(w[0], w[1]);
                for (Aggregation a : Aggregation.values()) {
                    assertEntities(expected(pres, longText, a, LABELS), designed.predict(longText, a),
                            a + " window " + Arrays.toString(w));
                }
            }
        } finally {
            designed.setWindow(64, 15);
        }
        assertEquals(15, designed.overlap());
    }

    @Test
    void eachTokenTakesTheWindowWhereItHasMostContext() {
        // A context-dependent model: a token's probabilities must be those of the window chosen
        // by the rule (nearer-side context, text ends unlimited), computed here window by window.
        String text = "The quick brown fox jumps over the lazy dog near Zürich, while Angela Merkel watches from Paris.";
        Encoding enc = tokenizer.encode(text);
        int n = enc.length() - 2;
        int maxLen = 10;
        int ov = 4;
        int span = maxLen - 2;
        List<int[]> windows = new ArrayList<>();
        for (int s = 0; ; s += span - ov) {
            int e = Math.min(n, s + span);
            windows.add(new int[]{s, e});
            if (e == n) {
                break;
            }
        }
        assertTrue(windows.size() >= 3);
        double[][] want = new double[n][];
        int[] bestCtx = new int[n];
        Arrays.fill(bestCtx, -1);
        for (int[] w : windows) {
            int len = w[1] - w[0] + 2;
            long[] ids = new long[len];
            ids[0] = tokenizer.clsId();
            ids[len - 1] = tokenizer.sepId();
            for (int k = w[0]; k < w[1]; k++) {
                ids[k - w[0] + 1] = enc.ids()[k + 1];
            }
            float[] logits;
            try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                logits = Tensors.toFloatArray(random.forward(Tensors.fromLongs(ids, 1, len),
                        Tensors.fromLongs(new long[len], 1, len), null).logits());
            }
            for (int k = w[0]; k < w[1]; k++) {
                int left = w[0] == 0 ? Integer.MAX_VALUE : k - w[0];
                int right = w[1] == n ? Integer.MAX_VALUE : w[1] - 1 - k;
                if (Math.min(left, right) > bestCtx[k]) {
                    bestCtx[k] = Math.min(left, right);
                    want[k] = TokenClassifier.softmax(logits, (k - w[0] + 1) * 5, 5);
                }
            }
        }
        TokenClassifier tc = new TokenClassifier(random, tokenizer);
        tc.setWindow(maxLen, ov);
        List<Entity> got = tc.predict(text, Aggregation.NONE);   // LABEL_k: nothing is "O", one result per token
        assertEquals(n, got.size());
        for (int k = 0; k < n; k++) {
            int b = argmax(want[k]);
            assertEquals("LABEL_" + b, got.get(k).label(), "token " + k);
            assertEquals(want[k][b], got.get(k).score(), 1e-5, "token " + k);
            assertEquals(enc.offsets().get(k + 1).start(), got.get(k).start());
        }
        // And the window really matters for this model: the unwindowed run differs somewhere.
        TokenClassifier whole = new TokenClassifier(random, tokenizer);
        List<Entity> full = whole.predict(text, Aggregation.NONE);
        double diff = 0;
        for (int k = 0; k < n; k++) {
            diff = Math.max(diff, Math.abs(full.get(k).score() - got.get(k).score()));
        }
        assertTrue(diff > 1e-4, "windowed == unwindowed, the test would not see a wrong window: " + diff);
    }

    @Test
    void batchEqualsOneByOne() {
        TokenClassifier tc = new TokenClassifier(random, tokenizer);
        tc.setWindow(16, 5);
        List<String> texts = new ArrayList<>(List.of("Short one.", TEXT, "", "Another text, in Paris and Zürich with Angela Merkel at Siemens AG.",
                TEXT + TEXT));
        for (int i = 0; i < 14; i++) {   // more windows than one model batch
            texts.add("Sentence number " + i + " mentions Berlin.");
        }
        for (Aggregation a : Aggregation.values()) {
            List<List<Entity>> batch = tc.predictBatch(texts, a);
            assertEquals(texts.size(), batch.size());
            for (int i = 0; i < texts.size(); i++) {
                List<Entity> one = tc.predict(texts.get(i), a);
                assertEquals(one.size(), batch.get(i).size(), a + " text " + i);
                for (int j = 0; j < one.size(); j++) {
                    assertEquals(one.get(j).label(), batch.get(i).get(j).label());
                    assertEquals(one.get(j).start(), batch.get(i).get(j).start());
                    assertEquals(one.get(j).end(), batch.get(i).get(j).end());
                    assertEquals(one.get(j).score(), batch.get(i).get(j).score(), 1e-5);
                }
            }
        }
    }

    @Test
    void torchKernelsAgree() {
        try (TokenClassifier t = TokenClassifier.load(designedDir, KernelMode.TORCH)) {
            for (Aggregation a : Aggregation.values()) {
                List<Entity> x = t.predict(TEXT, a);
                List<Entity> y = designed.predict(TEXT, a);
                assertEquals(texts(y), texts(x));
                for (int i = 0; i < x.size(); i++) {
                    assertEquals(y.get(i).score(), x.get(i).score(), 1e-5);
                }
            }
        }
    }

    @Test
    void badInputIsAClearError() {
        Bert4jException e = assertThrows(Bert4jException.class, () -> Aggregation.parse("longest"));
        assertTrue(e.getMessage().contains("longest") && e.getMessage().contains("average"), e.getMessage());
        assertEquals(Aggregation.AVERAGE, Aggregation.parse("Average"));
        e = assertThrows(Bert4jException.class, () -> designed.setWindow(65, 4));
        assertTrue(e.getMessage().contains("64"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> designed.setWindow(10, 8));
        assertTrue(e.getMessage().contains("overlap"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> designed.predictBatch(Arrays.asList("a", null), Aggregation.NONE));
        assertTrue(e.getMessage().contains("text 1"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> TokenClassifier.load(tmp.resolve("nope"), KernelMode.TORCH));
        assertTrue(e.getMessage().contains("nope"), e.getMessage());
        assertEquals(64, designed.maxLength());
    }
}
