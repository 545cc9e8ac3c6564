package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.bert4j.config.BertConfig;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.pipeline.TokenClassifier;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code bert4j ner} on a tiny random token classifier (64 positions): output equals the Java API; errors. */
class NerCommandTest {

    @TempDir
    static Path tmp;
    static Path model;
    static BertTokenizer tokenizer;

    static final List<String> TEXTS = List.of("Angela  Merkel visited Zürich, then Paris!",
            "", "Café   Quux AG hired John Smith-Jones in München.");

    @BeforeAll
    static void setUp() {
        tokenizer = BertTokenizer.load(TestModels.defaultModelDir());
        model = tmp.resolve("tiny-ner");
        Map<Integer, String> labels = Map.of(0, "O", 1, "B-PER", 2, "I-PER", 3, "B-LOC", 4, "I-LOC");
        try (BertForTokenClassification m = BertForTokenClassification.random(
                BertConfig.of(tokenizer.vocabSize(), 32, 2, 2, 64, 64), labels, 17)) {
            m.save(model, tokenizer);
        }
    }

    @AfterAll
    static void tearDown() {
        tokenizer.close();
    }

    @Test
    void printsOneLinePerTextAsTheJavaApi() throws Exception {
        Path input = tmp.resolve("in.txt");
        Files.writeString(input, String.join("\n", TEXTS.subList(1, 3)) + "\n", StandardCharsets.UTF_8);
        try (TokenClassifier tc = TokenClassifier.load(model, KernelMode.FUSED)) {
            for (TokenClassifier.Aggregation a : TokenClassifier.Aggregation.values()) {
                EmbedCommandTest.Run r = EmbedCommandTest.run("ner", "--model", model.toString(), "--aggregation", a.hfName(),
                        TEXTS.get(0), "--input", input.toString());
                assertEquals(0, r.code(), r.err());
                List<JsonNode> lines = EmbedCommandTest.lines(r.out());
                assertEquals(3, lines.size(), r.out());
                for (int i = 0; i < 3; i++) {
                    String text = TEXTS.get(i);
                    assertEquals(text, lines.get(i).get("text").asText());
                    List<TokenClassifier.Entity> api = tc.predict(text, a);
                    JsonNode es = lines.get(i).get("entities");
                    assertEquals(api.size(), es.size(), a + " " + text);
                    for (int j = 0; j < api.size(); j++) {
                        JsonNode e = es.get(j);
                        assertEquals(api.get(j).label(), e.get("label").asText());
                        assertEquals(api.get(j).start(), e.get("start").asInt());
                        assertEquals(api.get(j).end(), e.get("end").asInt());
                        assertEquals(text.substring(e.get("start").asInt(), e.get("end").asInt()), e.get("text").asText());
                        assertEquals(api.get(j).score(), e.get("score").asDouble(), 1e-6);   // batched with padding vs alone
                    }
                }
                if (a == TokenClassifier.Aggregation.NONE) {
                    // a random model tags something in a sentence this long
                    assertTrue(lines.get(0).get("entities").size() > 0, r.out());
                }
            }
        }
        // A small window gives the same tokens and offsets (scores may differ: less context).
        EmbedCommandTest.Run w = EmbedCommandTest.run("ner", "--model", model.toString(), "--aggregation", "none",
                "--window", "6", "--overlap", "2", TEXTS.get(2));
        assertEquals(0, w.code(), w.err());
        assertEquals(1, EmbedCommandTest.lines(w.out()).size());
    }

    @Test
    void badInputIsOneClearLine() throws Exception {
        String m = model.toString();
        expectError(new String[]{"ner", "--model", m, "--aggregation", "longest", "x"}, "unknown aggregation \"longest\"");
        expectError(new String[]{"ner", "--model", m}, "nothing to tag");
        expectError(new String[]{"ner", "--model", m, "--input", tmp.resolve("missing.txt").toString()}, "missing.txt");
        expectError(new String[]{"ner", "--model", tmp.resolve("nomodel").toString(), "x"}, "nomodel");
        expectError(new String[]{"ner", "--model", m, "--window", "65", "x"}, "window max length");
        expectError(new String[]{"ner", "--model", m, "--window", "10", "--overlap", "9", "x"}, "window overlap");
        // A folder without a token-classification head (the default sentence-embedding model).
        expectError(new String[]{"ner", "--model", TestModels.defaultModelDir().toString(), "x"}, "classifier");
        EmbedCommandTest.Run r = EmbedCommandTest.run("ner", "x");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--model"), r.err());
    }

    static void expectError(String[] args, String text) {
        EmbedCommandTest.Run r = EmbedCommandTest.run(args);
        assertEquals(1, r.code(), String.join(" ", args) + ": " + r.out() + r.err());
        assertTrue(r.err().startsWith("bert4j: error: ") && r.err().contains(text), r.err());
        assertEquals("", r.out());
    }
}
