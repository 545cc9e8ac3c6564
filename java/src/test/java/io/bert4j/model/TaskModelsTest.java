package io.bert4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.kernels.AutogradSplice;
import io.bert4j.kernels.KernelMode;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;
import io.bert4j.train.AdamW;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fine-tuning models on a tiny random config (vocabulary 100, hidden 32, 2 layers, 2
 * heads, intermediate 64): HF key names and config.json, save/load, from_pretrained-style
 * head initialisation, losses against hand-composed libtorch, kernel modes, a short training
 * run, bad input. One test loads the real default model.
 */
class TaskModelsTest {
    static final BertConfig CONFIG = BertConfig.of(100, 32, 2, 2, 64, 64);
    static final int B = 4;
    static final int S = 10;
    static final Map<Integer, String> LABELS3 = Map.of(0, "neg", 1, "neu", 2, "pos");
    static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void setUp() {
        torch.set_num_threads(2);
    }

    @AfterAll
    static void tearDown() {
        AutogradSplice.reap();
    }

    record Inputs(Tensor ids, Tensor types, Tensor mask) {
    }

    /** Seeded batch with padding in the last row and two segments. */
    static Inputs inputs(long seed) {
        Random r = new Random(seed);
        long[] ids = new long[B * S], types = new long[B * S], mask = new long[B * S];
        for (int b = 0; b < B; b++) {
            int len = b == B - 1 ? S - 3 : S;
            for (int s = 0; s < S; s++) {
                int i = b * S + s;
                ids[i] = s < len ? 5 + r.nextInt(95) : 0;
                types[i] = s < len && s >= len / 2 ? 1 : 0;
                mask[i] = s < len ? 1 : 0;
            }
        }
        return new Inputs(Tensors.fromLongs(ids, B, S), Tensors.fromLongs(types, B, S), Tensors.fromLongs(mask, B, S));
    }

    /** HF's encoder keys under bert., written out from HF's module naming. */
    static Set<String> encoderKeys(int layers, boolean pooler) {
        Set<String> k = new HashSet<>();
        for (String e : List.of("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                "LayerNorm.weight", "LayerNorm.bias")) {
            k.add("bert.embeddings." + e);
        }
        for (int i = 0; i < layers; i++) {
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                    "output.LayerNorm")) {
                k.add("bert.encoder.layer." + i + "." + m + ".weight");
                k.add("bert.encoder.layer." + i + "." + m + ".bias");
            }
        }
        if (pooler) {
            k.add("bert.pooler.dense.weight");
            k.add("bert.pooler.dense.bias");
        }
        return k;
    }

    static Set<String> plus(Set<String> a, String... more) {
        Set<String> out = new HashSet<>(a);
        out.addAll(List.of(more));
        return out;
    }

    static JsonNode readConfig(Path dir) throws Exception {
        return JSON.readTree(dir.resolve("config.json").toFile());
    }

    // ------------------------------------------------------------------ keys, config, save/load

    @Test
    void savedKeysShapesAndConfigAreHfs(@TempDir Path tmp) throws Exception {
        Path seq = tmp.resolve("seq"), reg = tmp.resolve("reg"), tok = tmp.resolve("tok"), qa = tmp.resolve("qa");
        try (var m = BertForSequenceClassification.random(CONFIG, LABELS3, 1)) {
            assertEquals(List.of(), m.newlyInitialized());
            m.save(seq, null);
        }
        try (var m = BertForSequenceClassification.random(CONFIG, Map.of(0, "score"), 1)) {
            assertTrue(m.isRegression());
            m.save(reg, null);
        }
        try (var m = BertForTokenClassification.random(CONFIG, Map.of(0, "O", 1, "B-PER", 2, "I-PER", 3, "B-LOC", 4, "I-LOC"), 1)) {
            m.save(tok, null);
        }
        try (var m = BertForQuestionAnswering.random(CONFIG, 1)) {
            m.save(qa, null);
        }
        Map<String, HostTensor> sd = SafeTensors.read(seq.resolve("model.safetensors"));
        assertEquals(plus(encoderKeys(2, true), "classifier.weight", "classifier.bias"), sd.keySet());
        assertArrayEquals(new long[]{3, 32}, sd.get("classifier.weight").shape());
        assertArrayEquals(new long[]{3}, sd.get("classifier.bias").shape());
        assertArrayEquals(new long[]{32, 32}, sd.get("bert.pooler.dense.weight").shape());
        sd = SafeTensors.read(reg.resolve("model.safetensors"));
        assertArrayEquals(new long[]{1, 32}, sd.get("classifier.weight").shape());
        sd = SafeTensors.read(tok.resolve("model.safetensors"));
        assertEquals(plus(encoderKeys(2, false), "classifier.weight", "classifier.bias"), sd.keySet());
        assertArrayEquals(new long[]{5, 32}, sd.get("classifier.weight").shape());
        assertArrayEquals(new long[]{5}, sd.get("classifier.bias").shape());
        sd = SafeTensors.read(qa.resolve("model.safetensors"));
        assertEquals(plus(encoderKeys(2, false), "qa_outputs.weight", "qa_outputs.bias"), sd.keySet());
        assertArrayEquals(new long[]{2, 32}, sd.get("qa_outputs.weight").shape());
        assertArrayEquals(new long[]{2}, sd.get("qa_outputs.bias").shape());

        JsonNode c = readConfig(seq);
        assertEquals("BertForSequenceClassification", c.get("architectures").get(0).asText());
        assertEquals(1, c.get("architectures").size());
        assertEquals("neu", c.get("id2label").get("1").asText());
        assertEquals(3, c.get("id2label").size());
        assertEquals(2, c.get("label2id").get("pos").asInt());
        assertEquals("single_label_classification", c.get("problem_type").asText());
        c = readConfig(reg);
        assertEquals("regression", c.get("problem_type").asText());
        assertEquals("score", c.get("id2label").get("0").asText());
        c = readConfig(tok);
        assertEquals("BertForTokenClassification", c.get("architectures").get(0).asText());
        assertEquals("B-LOC", c.get("id2label").get("3").asText());
        assertEquals(4, c.get("label2id").get("I-LOC").asInt());
        assertFalse(c.hasNonNull("problem_type"), "HF's token classifier has no problem_type");
        c = readConfig(qa);
        assertEquals("BertForQuestionAnswering", c.get("architectures").get(0).asText());
        assertEquals(2, c.get("id2label").size());
    }

    @Test
    void saveLoadGivesIdenticalLogits(@TempDir Path tmp) {
        Inputs in = inputs(3);
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            try (var m = BertForSequenceClassification.random(CONFIG, LABELS3, 2)) {
                m.save(tmp.resolve("seq"), null);
                try (var back = BertForSequenceClassification.load(tmp.resolve("seq"))) {
                    assertEquals(List.of(), back.warnings());
                    assertEquals(List.of(), back.newlyInitialized());
                    assertEquals(LABELS3, back.id2label());
                    assertTrue(m.forward(in.ids(), in.types(), in.mask()).logits()
                            .equal(back.forward(in.ids(), in.types(), in.mask()).logits()));
                }
                // fromPretrained of a folder of the same task restores the head too.
                try (var back = BertForSequenceClassification.fromPretrained(tmp.resolve("seq"), null, 99)) {
                    assertEquals(List.of(), back.newlyInitialized());
                    assertTrue(m.forward(in.ids(), in.types(), in.mask()).logits()
                            .equal(back.forward(in.ids(), in.types(), in.mask()).logits()));
                }
            }
            try (var m = BertForTokenClassification.random(CONFIG, LABELS3, 2)) {
                m.save(tmp.resolve("tok"), null);
                try (var back = BertForTokenClassification.load(tmp.resolve("tok"))) {
                    assertEquals(List.of(), back.warnings());
                    assertTrue(m.forward(in.ids(), in.types(), in.mask()).logits()
                            .equal(back.forward(in.ids(), in.types(), in.mask()).logits()));
                }
            }
            try (var m = BertForQuestionAnswering.random(CONFIG, 2)) {
                m.save(tmp.resolve("qa"), null);
                m.save(tmp.resolve("qa"), null);   // over an existing model folder: replaced
                try (var back = BertForQuestionAnswering.load(tmp.resolve("qa"))) {
                    assertEquals(List.of(), back.warnings());
                    var a = m.forward(in.ids(), in.types(), in.mask());
                    var b = back.forward(in.ids(), in.types(), in.mask());
                    assertTrue(a.startLogits().equal(b.startLogits()));
                    assertTrue(a.endLogits().equal(b.endLogits()));
                }
            }
        }
    }

    @Test
    void fromPretrainedInitialisesWhatIsMissingAsHfAndIgnoresWhatHfIgnores(@TempDir Path tmp) {
        Path pre = tmp.resolve("pre");
        try (var p = BertForPreTraining.random(CONFIG, 5)) {
            p.save(pre, null);
        }
        Inputs in = inputs(4);
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var seq = BertForSequenceClassification.fromPretrained(pre, 3, 11);
             var seqAgain = BertForSequenceClassification.fromPretrained(pre, 3, 11);
             var seqOther = BertForSequenceClassification.fromPretrained(pre, 3, 12);
             var tok = BertForTokenClassification.fromPretrained(pre, 3, 11);
             var qa = BertForQuestionAnswering.fromPretrained(pre, 11);
             var enc = BertForPreTraining.load(pre)) {
            // The pretraining folder has a pooler: only the classifier is new.
            assertEquals(List.of("classifier.weight", "classifier.bias"), seq.newlyInitialized());
            assertEquals(List.of("classifier.weight", "classifier.bias"), tok.newlyInitialized());
            assertEquals(List.of("qa_outputs.weight", "qa_outputs.bias"), qa.newlyInitialized());
            // cls.* heads are reported as unused; the pooler is not, for the pooler-less architectures.
            for (List<String> w : List.of(seq.warnings(), tok.warnings(), qa.warnings())) {
                String s = w.toString();
                assertTrue(s.contains("cls.seq_relationship.weight") && s.contains("newly initialized"), s);
                assertFalse(s.contains("pooler"), s);
            }
            // The encoder is the checkpoint's.
            var want = enc.forward(in.ids(), in.types(), in.mask()).lastHiddenState();
            assertTrue(want.equal(tok.forward(in.ids(), in.types(), in.mask()).lastHiddenState()));
            assertTrue(want.equal(qa.forward(in.ids(), in.types(), in.mask()).lastHiddenState()));
            assertTrue(enc.encoder().forward(in.ids(), in.types(), in.mask()).pooled()
                    .equal(seq.forward(in.ids(), in.types(), in.mask()).pooled()));
            // New head: HF's init (Normal(0, 0.02), zero bias), reproducible from the seed.
            Map<String, HostTensor> a = seq.stateDict(), b = seqAgain.stateDict(), c = seqOther.stateDict();
            float[] w = a.get("classifier.weight").toFloatArray();
            assertArrayEquals(w, b.get("classifier.weight").toFloatArray());
            assertFalse(java.util.Arrays.equals(w, c.get("classifier.weight").toFloatArray()));
            for (float x : a.get("classifier.bias").toFloatArray()) assertEquals(0f, x);
            double sq = 0;
            for (float x : w) sq += (double) x * x;
            assertEquals(0.02, Math.sqrt(sq / w.length), 0.006, "std of the new classifier");   // 96 draws
            // And the head is really used: logits = classifier(pooled) in eval mode.
            var o = seq.forward(in.ids(), in.types(), in.mask());
            Tensor byHand = torch.linear(o.pooled(), seq.parameters().get("classifier.weight"),
                    new TensorOptional(seq.parameters().get("classifier.bias")));
            assertTrue(byHand.equal(o.logits()));
        }

        // A sequence-classification folder lends its 3-row classifier to a 3-label token model
        // (same key, same shape, as HF); its pooler is ignored without a warning.
        Path seqDir = tmp.resolve("seq");
        try (var s = BertForSequenceClassification.fromPretrained(pre, LABELS3, 1)) {
            s.save(seqDir, null);
        }
        try (var t = BertForTokenClassification.fromPretrained(seqDir, null, 2)) {
            assertEquals(List.of(), t.warnings());
            assertEquals(List.of(), t.newlyInitialized());
            assertEquals(LABELS3, t.id2label());
        }
        // Asking for as many labels as the folder has keeps its names and head (HF's num_labels=).
        try (var s = BertForSequenceClassification.fromPretrained(seqDir, 3, 1)) {
            assertEquals(LABELS3, s.id2label());
            assertEquals(List.of(), s.newlyInitialized());
        }
        // A head of another size is an error unless re-initialisation is asked for.
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> BertForSequenceClassification.fromPretrained(seqDir, 5, 1));
        assertTrue(e.getMessage().contains("classifier.weight has 3 output(s) but 5"), e.getMessage());
        try (var s = BertForSequenceClassification.fromPretrained(seqDir, BertConfig.defaultId2Label(5), true, 1)) {
            assertEquals(List.of("classifier.weight", "classifier.bias"), s.newlyInitialized());
            assertEquals(5, s.numLabels());
        }
        // load() wants a fine-tuned folder.
        e = assertThrows(Bert4jException.class, () -> BertForQuestionAnswering.load(pre));
        assertTrue(e.getMessage().contains("no qa_outputs head"), e.getMessage());
    }

    @Test
    void defaultModelLoadsWithNewPoolerAndHeadsAndTheSameEncoder(@TempDir Path tmp) throws Exception {
        Path dir = TestModels.defaultModelDir();
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             Bert bert = Bert.load(dir, KernelMode.TORCH);   // the task models' default kernels
             var seq = BertForSequenceClassification.fromPretrained(dir, 2, 7);
             var tok = BertForTokenClassification.fromPretrained(dir, 9, 7);
             var qa = BertForQuestionAnswering.fromPretrained(dir, 7)) {
            assertEquals(List.of("bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
                    "classifier.bias"), seq.newlyInitialized());
            assertEquals(List.of("classifier.weight", "classifier.bias"), tok.newlyInitialized());
            assertEquals(List.of("qa_outputs.weight", "qa_outputs.bias"), qa.newlyInitialized());
            assertTrue(seq.warnings().toString().contains("bert.pooler.dense.weight"), seq.warnings().toString());
            BertTokenizer tokenizer = bert.tokenizer();
            Encoding enc = tokenizer.encodePair("Who wrote it?", "The book was written by a cat.");
            int n = enc.ids().length;
            Tensor ids = Tensors.fromLongs(enc.idsAsLong(), 1, n);
            long[] types = new long[n];
            for (int i = 0; i < n; i++) types[i] = enc.typeIds()[i];
            Tensor tt = Tensors.fromLongs(types, 1, n);
            Tensor want = bert.model().forward(ids, tt, null).lastHiddenState();
            assertTrue(want.equal(seq.encoder().forward(ids, tt, null).lastHiddenState()));
            assertTrue(want.equal(tok.forward(ids, tt, null).lastHiddenState()));
            assertTrue(want.equal(qa.forward(ids, tt, null).lastHiddenState()));
            assertArrayEquals(new long[]{1, n, 9}, Tensors.shape(tok.forward(ids, tt, null).logits()));
            assertArrayEquals(new long[]{1, 2}, Tensors.shape(seq.forward(ids, tt, null).logits()));

            // Saved with the tokenizer, the folder is a complete HF model that loads back.
            seq.save(tmp.resolve("out"), tokenizer);
            assertTrue(Files.isRegularFile(tmp.resolve("out").resolve("tokenizer.json")));
            try (var back = BertForSequenceClassification.load(tmp.resolve("out"))) {
                assertTrue(seq.forward(ids, tt, null).logits().equal(back.forward(ids, tt, null).logits()));
            }
        }
    }

    // ------------------------------------------------------------------ losses

    /** -log_softmax(logits)[target] per row, by hand from libtorch's log_softmax. */
    static double[] nll(Tensor logits, long[] targets) {
        Tensor lp = logits.log_softmax(1);
        double[] out = new double[targets.length];
        for (int i = 0; i < targets.length; i++) {
            out[i] = -lp.select(0, i).select(0, targets[i]).item_double();
        }
        return out;
    }

    @Test
    void sequenceLossesEqualHandComposedOnes() {
        Inputs in = inputs(5);
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var m = BertForSequenceClassification.random(CONFIG, LABELS3, 3);
             var r = BertForSequenceClassification.random(CONFIG, Map.of(0, "score"), 3)) {
            long[] labels = {2, 0, -100, 1};
            var l = m.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(labels, B));
            Tensor logits = m.forward(in.ids(), in.types(), in.mask()).logits();
            assertTrue(logits.equal(l.logits()));
            double[] per = nll(logits, new long[]{2, 0, 0, 1});
            double want = (per[0] + per[1] + per[3]) / 3;
            assertEquals(want, l.loss().item_double(), 1e-6);
            assertEquals(3, l.count());
            long[] arg = new long[B];
            for (int i = 0; i < B; i++) arg[i] = logits.select(0, i).argmax().item_long();
            long hits = 0;
            for (int i : new int[]{0, 1, 3}) if (arg[i] == labels[i]) hits++;
            assertEquals(hits, l.correct());

            float[] y = {0.5f, -1f, 2f, 0.25f};
            var lr = r.loss(in.ids(), in.types(), in.mask(), Tensors.fromFloats(y, B));
            float[] pred = Tensors.toFloatArray(r.forward(in.ids(), in.types(), in.mask()).logits());
            assertEquals(B, pred.length);
            double mse = 0;
            for (int i = 0; i < B; i++) mse += (pred[i] - y[i]) * (double) (pred[i] - y[i]);
            assertEquals(mse / B, lr.loss().item_double(), 1e-6);
        }
    }

    @Test
    void tokenLossIgnoresMinus100AndAveragesOverLabelledTokens() {
        Inputs in = inputs(6);
        Random rnd = new Random(6);
        long[] labels = new long[B * S];
        for (int i = 0; i < labels.length; i++) labels[i] = rnd.nextInt(4) == 0 ? -100 : rnd.nextInt(3);
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var m = BertForTokenClassification.random(CONFIG, LABELS3, 4)) {
            var l = m.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(labels, B, S));
            Tensor flat = m.forward(in.ids(), in.types(), in.mask()).logits().reshape(-1, 3);
            long[] safe = labels.clone();
            for (int i = 0; i < safe.length; i++) if (safe[i] < 0) safe[i] = 0;
            double[] per = nll(flat, safe);
            double sum = 0;
            long n = 0, hits = 0;
            for (int i = 0; i < labels.length; i++) {
                if (labels[i] == -100) continue;
                sum += per[i];
                n++;
                if (flat.select(0, i).argmax().item_long() == labels[i]) hits++;
            }
            assertTrue(n > 0 && n < labels.length);
            assertEquals(sum / n, l.loss().item_double(), 1e-6);
            assertEquals(n, l.count());
            assertEquals(hits, l.correct());
        }
    }

    @Test
    void qaLossClampsPositionsAndIgnoresThosePastTheSequenceAsHf() {
        Inputs in = inputs(7);
        // Example 1: start before the sequence (clamped to 0); example 2: end past it (ignored);
        // example 3: start far past it (ignored).
        long[] start = {3, -4, 5, S + 7};
        long[] end = {6, 2, S + 1, 4};
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var m = BertForQuestionAnswering.random(CONFIG, 5)) {
            var l = m.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(start, B), Tensors.fromLongs(end, B));
            var o = m.forward(in.ids(), in.types(), in.mask());
            assertArrayEquals(new long[]{B, S}, Tensors.shape(o.startLogits()));
            double[] ps = nll(o.startLogits(), new long[]{3, 0, 5, 0});
            double[] pe = nll(o.endLogits(), new long[]{6, 2, 0, 4});
            double startLoss = (ps[0] + ps[1] + ps[2]) / 3;   // example 3's start ignored
            double endLoss = (pe[0] + pe[1] + pe[3]) / 3;     // example 2's end ignored
            assertEquals((startLoss + endLoss) / 2, l.loss().item_double(), 1e-6);
            assertEquals(3, l.count());
            // The head really is qa_outputs on the last hidden state: start = channel 0.
            Tensor both = torch.linear(o.lastHiddenState(), m.parameters().get("qa_outputs.weight"),
                    new TensorOptional(m.parameters().get("qa_outputs.bias")));
            assertTrue(both.select(2, 0).equal(o.startLogits()));
            assertTrue(both.select(2, 1).equal(o.endLogits()));
            // All ignored: a zero loss rather than NaN.
            var none = m.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(new long[]{S, S, S, S}, B),
                    Tensors.fromLongs(new long[]{S + 1, S, 99, S}, B));
            assertEquals(0.0, none.loss().item_double());
            assertEquals(0, none.count());
        }
    }

    // ------------------------------------------------------------------ kernels, dropout, training

    /** Loss and gradients of every parameter, in one kernel mode. */
    static Map<String, Tensor> grads(Map<String, Tensor> params, Supplier<Tensor> loss) {
        for (Tensor p : params.values()) {
            if (p.grad().defined()) p.grad().zero_();
        }
        Tensor l = loss.get();
        l.backward();
        Map<String, Tensor> out = new HashMap<>();
        params.forEach((k, v) -> out.put(k, v.grad().clone()));
        return out;
    }

    static double relErr(Tensor a, Tensor b) {
        double n = b.norm().item_double();
        return a.sub(b).norm().item_double() / Math.max(n, 1e-12);
    }

    /**
     * Parameters whose gradient is zero in exact arithmetic: key biases (a shift of every
     * attention score of a query), and for question answering the qa_outputs bias and the last
     * LayerNorm bias, which shift every position's start (end) logit alike before the softmax
     * over positions.
     */
    static boolean vanishes(String model, String key) {
        return key.endsWith("attention.self.key.bias")
                || model.equals("qa") && (key.equals("qa_outputs.bias")
                || key.equals("bert.encoder.layer." + (CONFIG.numHiddenLayers() - 1) + ".output.LayerNorm.bias"));
    }

    @Test
    void fusedAndTorchKernelsGiveTheSameLogitsAndGradients() {
        Inputs in = inputs(8);
        Random rnd = new Random(8);
        long[] tokLabels = new long[B * S];
        for (int i = 0; i < tokLabels.length; i++) tokLabels[i] = rnd.nextInt(5) == 0 ? -100 : rnd.nextInt(3);
        try (PointerScope scope = new PointerScope();
             var seq = BertForSequenceClassification.random(CONFIG, LABELS3, 9);
             var tok = BertForTokenClassification.random(CONFIG, LABELS3, 9);
             var qa = BertForQuestionAnswering.random(CONFIG, 9)) {
            Tensor seqLabels = Tensors.fromLongs(new long[]{0, 1, 2, 1}, B);
            Tensor tl = Tensors.fromLongs(tokLabels, B, S);
            Tensor st = Tensors.fromLongs(new long[]{1, 2, 3, 0}, B), en = Tensors.fromLongs(new long[]{2, 4, 3, 6}, B);
            record Case(String name, Map<String, Tensor> params, java.util.function.Consumer<KernelMode> kernels,
                        java.util.function.Consumer<Boolean> train, Supplier<Tensor[]> lossAndLogits) {
            }
            List<Case> cases = new ArrayList<>();
            cases.add(new Case("seq", seq.parameters(), seq::setKernels, t -> seq.train(t), () -> {
                var l = seq.loss(in.ids(), in.types(), in.mask(), seqLabels);
                return new Tensor[]{l.loss(), l.logits()};
            }));
            cases.add(new Case("tok", tok.parameters(), tok::setKernels, t -> tok.train(t), () -> {
                var l = tok.loss(in.ids(), in.types(), in.mask(), tl);
                return new Tensor[]{l.loss(), l.logits()};
            }));
            cases.add(new Case("qa", qa.parameters(), qa::setKernels, t -> qa.train(t), () -> {
                var l = qa.loss(in.ids(), in.types(), in.mask(), st, en);
                return new Tensor[]{l.loss(), torch.stack(new org.bytedeco.pytorch.TensorVector(l.startLogits(), l.endLogits()))};
            }));
            seq.setTrainable(true);
            tok.setTrainable(true);
            qa.setTrainable(true);
            seq.setDropout(0, 0);
            tok.setDropout(0, 0);
            qa.setDropout(0, 0);
            for (Case c : cases) {
                c.train().accept(true);
                Map<KernelMode, Tensor> logits = new HashMap<>();
                Map<KernelMode, Map<String, Tensor>> g = new HashMap<>();
                for (KernelMode mode : KernelMode.values()) {
                    c.kernels().accept(mode);
                    Tensor[] out = new Tensor[1];
                    g.put(mode, grads(c.params(), () -> {
                        Tensor[] r = c.lossAndLogits().get();
                        out[0] = r[1].detach();
                        return r[0];
                    }));
                    logits.put(mode, out[0]);
                }
                double le = relErr(logits.get(KernelMode.FUSED), logits.get(KernelMode.TORCH));
                assertTrue(le < 1e-5, c.name() + ": logits relative error " + le);
                for (String k : c.params().keySet()) {
                    Tensor gt = g.get(KernelMode.TORCH).get(k);
                    if (vanishes(c.name(), k)) {
                        // Softmax ignores a shift shared by every entry, so these gradients are 0 up
                        // to rounding in both modes: no relative comparison is meaningful.
                        assertTrue(gt.norm().item_double() < 1e-6 && g.get(KernelMode.FUSED).get(k).norm().item_double() < 1e-6,
                                c.name() + ": gradient of " + k + " should vanish");
                        continue;
                    }
                    assertTrue(gt.norm().item_double() > 0, c.name() + ": zero gradient for " + k);
                    double ge = relErr(g.get(KernelMode.FUSED).get(k), gt);
                    assertTrue(ge < 1e-4, c.name() + ": gradient of " + k + " relative error " + ge);
                }
            }
        }
    }

    @Test
    void classifierDropoutIsTrainingOnlyAndReproducible() {
        Inputs in = inputs(9);
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var m = BertForSequenceClassification.random(CONFIG.withClassifierDropout(0.5), LABELS3, 10)) {
            Tensor eval = m.forward(in.ids(), in.types(), in.mask()).logits();
            m.train(true);
            m.setDropout(0, 0, 0.5);
            m.setDropoutSeed(3);
            Tensor a = m.forward(in.ids(), in.types(), in.mask()).logits();
            m.setDropoutSeed(3);
            Tensor b = m.forward(in.ids(), in.types(), in.mask()).logits();
            assertTrue(a.equal(b), "same seed, same masks");
            assertFalse(a.equal(eval), "dropout changed the logits");
            m.setDropout(0, 0, 0);
            assertTrue(m.forward(in.ids(), in.types(), in.mask()).logits().equal(eval));
        }
        // HF's question-answering head has no dropout, whatever classifier_dropout says.
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var qa = BertForQuestionAnswering.random(CONFIG.withClassifierDropout(0.5), 10)) {
            Tensor eval = qa.forward(in.ids(), in.types(), in.mask()).startLogits();
            qa.train(true);
            qa.setDropout(0, 0);
            assertTrue(qa.forward(in.ids(), in.types(), in.mask()).startLogits().equal(eval));
        }
    }

    @Test
    void aFewAdamWStepsOverfitATinyBatch() {
        Inputs in = inputs(10);
        Random rnd = new Random(10);
        long[] tokLabels = new long[B * S];
        for (int i = 0; i < tokLabels.length; i++) tokLabels[i] = rnd.nextInt(3);
        Tensor seqLabels = Tensors.fromLongs(new long[]{0, 1, 2, 1}, B);
        Tensor tl = Tensors.fromLongs(tokLabels, B, S);
        Tensor st = Tensors.fromLongs(new long[]{1, 2, 3, 0}, B), en = Tensors.fromLongs(new long[]{2, 4, 3, 6}, B);
        Tensor y = Tensors.fromFloats(new float[]{1f, -1f, 0.5f, 2f}, B);
        try (var seq = BertForSequenceClassification.random(CONFIG, LABELS3, 11);
             var reg = BertForSequenceClassification.random(CONFIG, Map.of(0, "score"), 11);
             var tok = BertForTokenClassification.random(CONFIG, LABELS3, 11);
             var qa = BertForQuestionAnswering.random(CONFIG, 11)) {
            List<Object[]> runs = List.of(
                    new Object[]{"seq", seq.parameters(), (Supplier<Tensor>) () -> seq.loss(in.ids(), in.types(), in.mask(), seqLabels).loss()},
                    new Object[]{"reg", reg.parameters(), (Supplier<Tensor>) () -> reg.loss(in.ids(), in.types(), in.mask(), y).loss()},
                    new Object[]{"tok", tok.parameters(), (Supplier<Tensor>) () -> tok.loss(in.ids(), in.types(), in.mask(), tl).loss()},
                    new Object[]{"qa", qa.parameters(), (Supplier<Tensor>) () -> qa.loss(in.ids(), in.types(), in.mask(), st, en).loss()});
            seq.setTrainable(true);
            reg.setTrainable(true);
            tok.setTrainable(true);
            qa.setTrainable(true);
            seq.train(true).setDropout(0, 0);
            reg.train(true).setDropout(0, 0);
            tok.train(true).setDropout(0, 0);
            qa.train(true).setDropout(0, 0);
            for (Object[] run : runs) {
                @SuppressWarnings("unchecked") Map<String, Tensor> params = (Map<String, Tensor>) run[1];
                @SuppressWarnings("unchecked") Supplier<Tensor> loss = (Supplier<Tensor>) run[2];
                double first = 0, last = 0;
                try (AdamW opt = new AdamW(params, 0.01)) {
                    for (int step = 0; step < 15; step++) {
                        try (PointerScope scope = new PointerScope()) {
                            for (Tensor p : params.values()) {
                                if (p.grad().defined()) p.grad().zero_();
                            }
                            Tensor l = loss.get();
                            l.backward();
                            double v = l.item_double();
                            if (step == 0) first = v;
                            last = v;
                            opt.step(5e-3);
                        }
                    }
                }
                assertTrue(last < 0.5 * first, run[0] + ": loss " + first + " -> " + last);
            }
        }
    }

    // ------------------------------------------------------------------ bad input

    @Test
    void badInputIsAClearError(@TempDir Path tmp) throws Exception {
        Inputs in = inputs(12);
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             var seq = BertForSequenceClassification.random(CONFIG, LABELS3, 13);
             var tok = BertForTokenClassification.random(CONFIG, LABELS3, 13);
             var qa = BertForQuestionAnswering.random(CONFIG, 13)) {
            Bert4jException e = assertThrows(Bert4jException.class,
                    () -> seq.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(new long[]{0, 1, 2}, 3)));
            assertTrue(e.getMessage().contains("labels must be [4]"), e.getMessage());
            e = assertThrows(Bert4jException.class,
                    () -> seq.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(new long[]{0, 3, 1, 1}, B)));
            assertTrue(e.getMessage().contains("[0, 3)") && e.getMessage().contains("got 3"), e.getMessage());
            e = assertThrows(Bert4jException.class,
                    () -> seq.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(new long[]{0, -1, 1, 1}, B)));
            assertTrue(e.getMessage().contains("got -1"), e.getMessage());
            e = assertThrows(Bert4jException.class,
                    () -> seq.loss(in.ids(), in.types(), in.mask(), Tensors.fromFloats(new float[]{0, 1, 1, 0}, B)));
            assertTrue(e.getMessage().contains("integer class ids"), e.getMessage());

            e = assertThrows(Bert4jException.class,
                    () -> tok.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(new long[B * (S - 1)], B, S - 1)));
            assertTrue(e.getMessage().contains("shape of input_ids"), e.getMessage());
            long[] bad = new long[B * S];
            bad[7] = 3;
            e = assertThrows(Bert4jException.class,
                    () -> tok.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(bad, B, S)));
            assertTrue(e.getMessage().contains("[0, 3)"), e.getMessage());
            bad[7] = -7;
            assertThrows(Bert4jException.class, () -> tok.loss(in.ids(), in.types(), in.mask(), Tensors.fromLongs(bad, B, S)));

            e = assertThrows(Bert4jException.class, () -> qa.loss(in.ids(), in.types(), in.mask(),
                    Tensors.fromLongs(new long[]{1, 2}, 2), Tensors.fromLongs(new long[]{1, 2, 3, 4}, B)));
            assertTrue(e.getMessage().contains("start_positions must be [4]"), e.getMessage());
        }

        e(() -> BertForSequenceClassification.random(CONFIG, Map.of(0, "a", 2, "b"), 1), "without gaps");
        e(() -> BertForTokenClassification.random(CONFIG, Map.of(1, "a", 2, "b"), 1), "without gaps");
        e(() -> BertForSequenceClassification.random(CONFIG, Map.of(0, "a", 1, "a"), 1), "distinct");
        e(() -> BertForSequenceClassification.random(CONFIG, Map.of(), 1), "at least one label");
        // A folder whose config.json has non-contiguous ids.
        Path dir = tmp.resolve("gappy");
        try (var m = BertForSequenceClassification.random(CONFIG, LABELS3, 1)) {
            m.save(dir, null);
        }
        ObjectMapper om = new ObjectMapper();
        var cfg = (com.fasterxml.jackson.databind.node.ObjectNode) om.readTree(dir.resolve("config.json").toFile());
        cfg.putObject("id2label").put("0", "neg").put("1", "neu").put("3", "pos");
        Files.writeString(dir.resolve("config.json"), om.writeValueAsString(cfg));
        Bert4jException ex = assertThrows(Bert4jException.class, () -> BertForSequenceClassification.load(dir));
        assertTrue(ex.getMessage().contains("without gaps") && ex.getMessage().contains(dir.toString()), ex.getMessage());
        // Multi-label classification is not supported: said so, not trained as something else.
        cfg.putObject("id2label").put("0", "neg").put("1", "neu").put("2", "pos");
        cfg.put("problem_type", "multi_label_classification");
        Files.writeString(dir.resolve("config.json"), om.writeValueAsString(cfg));
        ex = assertThrows(Bert4jException.class, () -> BertForSequenceClassification.load(dir));
        assertTrue(ex.getMessage().contains("multi_label_classification"), ex.getMessage());
        assertNotNull(ex.getMessage());
    }

    @Test
    void configLabelsFollowHf(@TempDir Path tmp) {
        BertConfig plain = CONFIG;
        assertEquals(2, plain.numLabels(), "HF's default num_labels");
        assertEquals(Map.of(0, "LABEL_0", 1, "LABEL_1"), plain.labels());
        // Ids given out of order come back in id order; label2id is the inverse.
        Map<Integer, String> shuffled = new java.util.LinkedHashMap<>();
        shuffled.put(2, "c");
        shuffled.put(0, "a");
        shuffled.put(1, "b");
        BertConfig c = plain.withId2Label(shuffled).withProblemType(BertConfig.SINGLE_LABEL);
        assertEquals(List.of(0, 1, 2), new ArrayList<>(c.id2label().keySet()));
        assertEquals(Map.of("a", 0, "b", 1, "c", 2), c.label2id());
        assertEquals(3, c.numLabels());
        c.write(tmp.resolve("config.json"));
        BertConfig back = BertConfig.read(tmp.resolve("config.json"));
        assertEquals(c.id2label(), back.id2label());
        assertEquals(BertConfig.SINGLE_LABEL, back.problemType());
        assertEquals(3, back.numLabels());
        e(() -> plain.withId2Label(Map.of(0, "a", 1, "b", 3, "d")), "without gaps");
        e(() -> BertConfig.defaultId2Label(0), "must be > 0");
    }

    static void e(org.junit.jupiter.api.function.Executable x, String text) {
        Bert4jException ex = assertThrows(Bert4jException.class, x);
        assertTrue(ex.getMessage().contains(text), ex.getMessage());
    }
}
