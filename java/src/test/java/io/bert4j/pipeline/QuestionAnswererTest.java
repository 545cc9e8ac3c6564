package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.data.QaAnswers;
import io.bert4j.data.QaFeatures;
import io.bert4j.data.Squad;
import io.bert4j.io.HostTensor;
import io.bert4j.kernels.AutogradSplice;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForQuestionAnswering;
import io.bert4j.model.Tensors;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * QuestionAnswerer on tiny models with the real MiniLM tokenizer. A "planted" model has its
 * attention and feed-forward outputs zeroed and no position/type embeddings, so each token's
 * final hidden state depends only on its id; qa_outputs then read one marker dimension for
 * the start and one for the end, so the answer is known from token ids alone: from the
 * start-marked token to the end-marked token.
 */
class QuestionAnswererTest {
    static final BertConfig CONFIG = BertConfig.of(30522, 32, 2, 2, 64, 512);

    static BertTokenizer tok;
    static Path squad;

    @BeforeAll
    static void setUp() {
        torch.set_num_threads(2);
        tok = BertTokenizer.load(TestModels.defaultModelDir());
    }

    @AfterAll
    static void tearDown() {
        tok.close();
        AutogradSplice.reap();
    }

    /** A model whose start logit is ~56 on token {@code startId}, end logit ~56 on {@code endId}, |x| < ~3 elsewhere. */
    static Path planted(Path dir, int startId, int endId) {
        Map<String, HostTensor> sd;
        try (BertForQuestionAnswering m = BertForQuestionAnswering.random(CONFIG, 1)) {
            sd = new HashMap<>(m.stateDict());
        }
        int v = CONFIG.vocabSize();
        int h = CONFIG.hiddenSize();
        Random r = new Random(7);
        float[] words = new float[v * h];
        for (int t = 0; t < v; t++) {
            // Dims 0 and 1 are the markers; the others noise, so unmarked tokens get ~0 there after LayerNorm.
            for (int d = 2; d < h; d++) {
                words[t * h + d] = (float) r.nextGaussian();
            }
        }
        for (int t : new int[] {startId, endId}) {
            java.util.Arrays.fill(words, t * h, (t + 1) * h, 0f);
        }
        words[startId * h] = 1f;
        words[endId * h + 1] = 1f;
        sd.put("bert.embeddings.word_embeddings.weight", HostTensor.ofFloats(words, v, h));
        zero(sd, "bert.embeddings.position_embeddings.weight");
        zero(sd, "bert.embeddings.token_type_embeddings.weight");
        for (int l = 0; l < CONFIG.numHiddenLayers(); l++) {
            for (String s : List.of("attention.output.dense", "output.dense")) {
                zero(sd, "bert.encoder.layer." + l + "." + s + ".weight");
                zero(sd, "bert.encoder.layer." + l + "." + s + ".bias");
            }
        }
        float[] head = new float[2 * h];
        head[0] = 10f;          // start logit = 10 * dim 0
        head[h + 1] = 10f;      // end logit = 10 * dim 1
        sd.put("qa_outputs.weight", HostTensor.ofFloats(head, 2, h));
        zero(sd, "qa_outputs.bias");
        try (BertForQuestionAnswering m = BertForQuestionAnswering.fromStateDict(CONFIG, sd, 1)) {
            m.save(dir, tok);
        }
        return dir;
    }

    static void zero(Map<String, HostTensor> sd, String key) {
        HostTensor t = sd.get(key);
        assertTrue(t != null, key);
        sd.put(key, HostTensor.ofFloats(new float[Math.toIntExact(t.numel())], t.shape()));
    }

    static int id(String word) {
        int[] ids = tok.encode(word).ids();
        assertEquals(3, ids.length, word + " is one token");
        return ids[1];
    }

    @Test
    void offsetsAreCharsOfTheOriginalContext(@TempDir Path dir) {
        // Accents, case and a symbol before the answer: the uncased tokenizer normalises them,
        // the offsets must still point into the text as given.
        String context = "Ünïcödé ☃ text — the Capital of FRANCE is Paris, the capital of nothing else.";
        try (QuestionAnswerer qa = QuestionAnswerer.load(planted(dir, id("capital"), id("france")))) {
            QuestionAnswerer.Answer a = qa.answer("Which capital?", context);
            int s = context.indexOf("Capital");
            int e = context.indexOf("FRANCE") + "FRANCE".length();
            assertEquals("Capital of FRANCE", a.answer());
            assertEquals(s, a.start());
            assertEquals(e, a.end());
            assertEquals(context.substring(a.start(), a.end()), a.answer());
            assertTrue(a.score() > 0.99, "a sure answer: " + a.score());

            // The second "capital" (after FRANCE) cannot start an answer ending at FRANCE; with
            // a max answer length of 2 tokens "Capital of FRANCE" (3 tokens) is out, so the best
            // is a 1- or 2-token span that keeps one marker.
            QuestionAnswerer short2 = new QuestionAnswerer(qa.model(), qa.tokenizer(),
                    QuestionAnswerer.Options.DEFAULTS.withMaxAnswerLength(2));
            QuestionAnswerer.Answer b = short2.answer("Which capital?", context);
            assertTrue(b.end() - b.start() < "Capital of FRANCE".length(), b.toString());
            assertTrue(b.answer().toLowerCase().contains("capital") || b.answer().toLowerCase().contains("france"),
                    b.toString());

            // Batch: same answers as one at a time, in order; an empty context gives the empty answer.
            List<QuestionAnswerer.Answer> all = qa.answer(List.of(
                    new QuestionAnswerer.Query("q1", "nothing here"),
                    new QuestionAnswerer.Query("Which capital?", context),
                    new QuestionAnswerer.Query("q3", "")));
            assertEquals(3, all.size());
            assertEquals(a, all.get(1));
            assertEquals(new QuestionAnswerer.Answer("", 0, 0, 0.0), all.get(2));
            assertEquals(qa.answer("q1", "nothing here"), all.get(0));
        }
    }

    /** A long real SQuAD context, the windows of 64 tokens: the planted span deep in the context. */
    @Test
    void longContextWindowsAreMerged(@TempDir Path dir) {
        Path file = TestModels.sharedData() == null ? null
                : TestModels.sharedData().resolve("squad_v1.1").resolve("squad-v1.1-dev-articles-00-35.json");
        assumeTrue(file != null && Files.isRegularFile(file), "no SQuAD file");
        Squad.Example longest = null;
        int longestLen = 0;
        String previous = null;
        for (Squad.Example e : Squad.read(file).examples()) {
            if (e.context().equals(previous)) {
                continue;   // the questions of one paragraph share its context
            }
            previous = e.context();
            int n = tok.encode(e.context()).length();
            if (n > longestLen) {
                longest = e;
                longestLen = n;
            }
        }
        String context = longest.context();
        Encoding enc = tok.encode(context);
        int[] ids = enc.ids();
        Map<Integer, Integer> counts = new HashMap<>();
        for (int t = 1; t < ids.length - 1; t++) {
            counts.merge(ids[t], 1, Integer::sum);
        }
        // Start 3/4 into the context; the end 4 tokens later; both ids unique in the context.
        int p = ids.length * 3 / 4;
        while (!(counts.get(ids[p]) == 1 && counts.get(ids[p + 4]) == 1 && ids[p] != ids[p + 4]
                && ids[p] != tok.unkId() && ids[p + 4] != tok.unkId())) {
            p++;
        }
        int startChar = enc.offsets().get(p).start();
        int endChar = enc.offsets().get(p + 4).end();
        QuestionAnswerer.Options opt = QuestionAnswerer.Options.DEFAULTS.withMaxLength(64).withDocStride(16)
                .withBatchSize(3);
        try (QuestionAnswerer base = QuestionAnswerer.load(planted(dir, ids[p], ids[p + 4]))) {
            QuestionAnswerer qa = new QuestionAnswerer(base.model(), base.tokenizer(), opt);
            Squad.Example ex = QuestionAnswerer.example("long", longest.question(), context);
            List<QaFeatures.Feature> fs = QaFeatures.build(tok, ex, 0, 64, 16);
            assertTrue(fs.size() >= 6, "the context needs many 64-token windows: " + fs.size());
            int holding = 0;
            for (QaFeatures.Feature f : fs) {
                if (f.offsets().contains(enc.offsets().get(p)) && f.offsets().contains(enc.offsets().get(p + 4))) {
                    holding++;
                }
            }
            assertTrue(holding >= 1, "some window holds the span");

            QuestionAnswerer.Answer a = qa.answer(longest.question(), context);
            assertEquals(startChar, a.start());
            assertEquals(endChar, a.end());
            assertEquals(context.substring(startChar, endChar), a.answer());
            // Every window that holds the span proposes it; their shares are summed.
            assertTrue(a.score() > 0.99, "merged score " + a.score() + " over " + holding + " windows");
            List<QaAnswers.Prediction> n = qa.nBest(List.of(ex), 100).get(0);
            long copies = n.stream().filter(c -> c.start() == startChar && c.end() == endChar).count();
            assertEquals(holding, copies, "one candidate per window holding the span");

            // Max answer length below the span's 5 tokens: the span is gone.
            QuestionAnswerer tight = new QuestionAnswerer(base.model(), base.tokenizer(), opt.withMaxAnswerLength(4));
            assertTrue(tight.answer(longest.question(), context).end() - tight.answer(longest.question(), context).start()
                    < endChar - startChar);
        }
    }

    /**
     * A random tiny model (positions matter, every window differs): the pipeline's batched,
     * padded, length-sorted run equals per-window forwards composed by hand with QaAnswers.
     */
    @Test
    void batchedWindowsEqualOneByOneForwards(@TempDir Path dir) {
        String context = ("The Normans were the people who in the 10th and 11th centuries gave their name to "
                + "Normandy, a region in France. They were descended from Norse raiders and pirates from "
                + "Denmark, Iceland and Norway who, under their leader Rollo, agreed to swear fealty to King "
                + "Charles III of West Francia. ").repeat(3);
        List<String> questions = List.of("Who was the leader?", "In what country is Normandy located?", "When?");
        try (BertForQuestionAnswering m = BertForQuestionAnswering.random(CONFIG, 3)) {
            m.save(dir, tok);
        }
        QuestionAnswerer.Options opt = QuestionAnswerer.Options.DEFAULTS.withMaxLength(48).withDocStride(8)
                .withBatchSize(4).withNBest(5).withMaxAnswerLength(6);
        try (QuestionAnswerer qa = QuestionAnswerer.load(dir, KernelMode.FUSED, opt)) {
            List<QuestionAnswerer.Query> queries = new ArrayList<>();
            for (String q : questions) {
                queries.add(new QuestionAnswerer.Query(q, q.length() == 5 ? context.substring(0, 120) : context));
            }
            List<QuestionAnswerer.Answer> got = qa.answer(queries);
            for (int i = 0; i < queries.size(); i++) {
                QuestionAnswerer.Query q = queries.get(i);
                Squad.Example ex = QuestionAnswerer.example("q", q.question(), q.context());
                List<QaFeatures.Feature> fs = QaFeatures.build(tok, ex, 0, 48, 8);
                List<float[]> s = new ArrayList<>();
                List<float[]> e = new ArrayList<>();
                for (QaFeatures.Feature f : fs) {
                    try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                        long[] idsL = new long[f.length()];
                        long[] typesL = new long[f.length()];
                        for (int t = 0; t < f.length(); t++) {
                            idsL[t] = f.inputIds()[t];
                            typesL[t] = f.typeIds()[t];
                        }
                        var o = qa.model().forward(Tensors.fromLongs(idsL, 1, f.length()),
                                Tensors.fromLongs(typesL, 1, f.length()), null);
                        s.add(Tensors.toFloatArray(o.startLogits()));
                        e.add(Tensors.toFloatArray(o.endLogits()));
                    }
                }
                QaAnswers.Prediction want = QaAnswers.best(q.context(), fs, s, e, 5, 6);
                assertEquals(want.text(), got.get(i).answer(), "question " + i);
                assertEquals(want.start(), got.get(i).start());
                assertEquals(want.end(), got.get(i).end());
                assertTrue(got.get(i).score() >= want.probability() - 1e-4 && got.get(i).score() <= 1.0);
            }
        }
    }

    @Test
    void badInput(@TempDir Path dir) {
        assertThrows(Bert4jException.class, () -> QuestionAnswerer.Options.DEFAULTS.withDocStride(-1));
        assertThrows(Bert4jException.class, () -> QuestionAnswerer.Options.DEFAULTS.withNBest(0));
        assertThrows(Bert4jException.class, () -> QuestionAnswerer.Options.DEFAULTS.withMaxAnswerLength(0));
        Bert4jException missing = assertThrows(Bert4jException.class, () -> QuestionAnswerer.load(dir.resolve("none")));
        assertTrue(missing.getMessage().contains("none"), missing.getMessage());
        try (BertForQuestionAnswering m = BertForQuestionAnswering.random(CONFIG, 3)) {
            m.save(dir, tok);
        }
        try (QuestionAnswerer qa = QuestionAnswerer.load(dir, KernelMode.FUSED,
                QuestionAnswerer.Options.DEFAULTS.withMaxLength(32).withDocStride(8))) {
            Bert4jException nul = assertThrows(Bert4jException.class, () -> qa.answer(null, "text"));
            assertTrue(nul.getMessage().contains("question 1"), nul.getMessage());
            String longQ = "why ".repeat(40);
            Bert4jException tooLong = assertThrows(Bert4jException.class, () -> qa.answer(List.of(
                    new QuestionAnswerer.Query("ok?", "fine"), new QuestionAnswerer.Query(longQ, "text"))));
            assertTrue(tooLong.getMessage().contains("question 2") && tooLong.getMessage().contains("40 tokens"),
                    tooLong.getMessage());
        }
    }
}
