package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.bert4j.config.BertConfig;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.pipeline.FillMask;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code bert4j fill-mask} on a tiny random BertForPreTraining folder (max 32 positions), and its errors. */
class FillMaskCommandTest {

    @TempDir
    static Path tmp;
    static Path model;
    static BertTokenizer tokenizer;

    @BeforeAll
    static void setUp() {
        tokenizer = BertTokenizer.load(TestModels.defaultModelDir());
        model = tmp.resolve("tiny-mlm");
        try (BertForPreTraining m = BertForPreTraining.random(BertConfig.of(tokenizer.vocabSize(), 32, 2, 2, 64, 32), 21)) {
            m.save(model, tokenizer);
        }
    }

    static EmbedCommandTest.Run run(String... args) {
        return EmbedCommandTest.run(args);
    }

    static void checkRanked(List<JsonNode> preds, int k) {
        assertEquals(k, preds.size());
        double prev = Double.POSITIVE_INFINITY;
        for (JsonNode p : preds) {
            double s = p.get("score").asDouble();
            assertTrue(s > 0 && s <= 1, "score " + s);
            assertTrue(s <= prev, "descending");
            prev = s;
            int token = p.get("token").asInt();
            assertEquals(tokenizer.decode(new int[]{token}), p.get("token_str").asText());
            assertTrue(p.get("sequence").isTextual());
        }
    }

    @Test
    void printsTopKLinesSortedByScore() throws Exception {
        EmbedCommandTest.Run r = run("fill-mask", "--model", model.toString(), "--top-k", "4",
                "The capital of France is [MASK].");
        assertEquals(0, r.code(), r.err());
        List<JsonNode> lines = EmbedCommandTest.lines(r.out());
        checkRanked(lines, 4);
        for (JsonNode p : lines) {
            String seq = p.get("sequence").asText();
            assertFalse(seq.contains("[MASK]") || seq.contains("[CLS]"), seq);
            assertTrue(seq.startsWith("the capital of france is"), seq);
        }
        // Same as the Java API, in both kernel modes.
        for (KernelMode mode : KernelMode.values()) {
            try (FillMask fm = FillMask.load(model, mode)) {
                List<FillMask.Prediction> api = fm.predict("The capital of France is [MASK].", 4).get(0);
                for (int i = 0; i < 4; i++) {
                    assertEquals(api.get(i).token(), lines.get(i).get("token").asInt(), mode.toString());
                    assertEquals(api.get(i).score(), lines.get(i).get("score").asDouble(), 1e-5);
                }
            }
        }
    }

    @Test
    void severalMasksGiveOneArrayLinePerMask() throws Exception {
        EmbedCommandTest.Run r = run("fill-mask", "--model", model.toString(), "--top-k", "3",
                "[MASK] is a [MASK] city.", "Hello [MASK]!");
        assertEquals(0, r.code(), r.err());
        List<JsonNode> lines = EmbedCommandTest.lines(r.out());
        assertEquals(2 + 3, lines.size());
        for (int i = 0; i < 2; i++) {
            assertTrue(lines.get(i).isArray());
            List<JsonNode> preds = new java.util.ArrayList<>();
            lines.get(i).forEach(preds::add);
            checkRanked(preds, 3);
            assertTrue(preds.get(0).get("sequence").asText().contains("[MASK]"), "other mask kept, as HF");
        }
        checkRanked(lines.subList(2, 5), 3);
    }

    /** A config vocabulary padded past the tokenizer's: ids the tokenizer cannot decode are never candidates. */
    @Test
    void paddedVocabularyOnlyPredictsTokenizerIds() {
        int vocab = tokenizer.vocabSize();
        Path dir = tmp.resolve("padded-vocab");
        BertConfig cfg = BertConfig.of(vocab + 6, 32, 1, 2, 64, 32);
        java.util.Map<String, io.bert4j.io.HostTensor> sd;
        try (BertForPreTraining m = BertForPreTraining.randomMaskedLM(cfg, 22)) {
            sd = m.stateDict();
        }
        float[] bias = new float[vocab + 6];
        for (int i = vocab; i < bias.length; i++) bias[i] = 10f;   // the padding ids would win every argmax
        sd.put("cls.predictions.bias", io.bert4j.io.HostTensor.ofFloats(bias, bias.length));
        try (BertForPreTraining m = BertForPreTraining.fromStateDict(cfg, sd, null)) {
            m.save(dir, tokenizer);
        }
        try (FillMask fm = FillMask.load(dir, KernelMode.FUSED)) {
            List<FillMask.Prediction> preds = fm.predict("a [MASK] b", 3).get(0);
            assertEquals(3, preds.size());
            for (FillMask.Prediction p : preds) {
                assertTrue(p.token() < vocab, "token " + p.token());
                assertTrue(p.score() < 0.01, "the padding ids hold nearly all the probability: " + p.score());
            }
        }
    }

    @Test
    void errors() {
        EmbedCommandTest.Run r = run("fill-mask", "--model", model.toString(), "no mask here");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("bert4j: error: no [MASK] token in the text"), r.err());

        r = run("fill-mask", "--model", model.toString(), "word ".repeat(40) + "[MASK]");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("tokens long, over the model's limit of 32"), r.err());

        r = run("fill-mask", "--model", model.toString(), "--top-k", "0", "a [MASK]");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("--top-k must be at least 1"), r.err());

        // The default sentence-transformers model has an encoder only.
        r = run("fill-mask", "--model", TestModels.defaultModelDir().toString(), "a [MASK]");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("no masked-language-model head") && r.err().contains("cls.predictions.bias"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());

        r = run("fill-mask", "--model", tmp.resolve("nope").toString(), "a [MASK]");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("model folder not found"), r.err());
    }
}
