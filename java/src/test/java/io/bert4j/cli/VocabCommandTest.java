package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@code bert4j vocab} as a user runs it. */
class VocabCommandTest {
    @TempDir
    Path tmp;

    record Run(int code, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    static Path wikiValid() {
        Path data = TestModels.sharedData();
        assumeTrue(data != null, "shared data folder not present");
        Path p = data.resolve("wikitext-2-raw").resolve("wiki.valid.raw");
        assumeTrue(Files.isRegularFile(p));
        return p;
    }

    @Test
    void trainsAVocabularyThatLoadsAndCoversTheCorpus() throws IOException {
        Path corpus = wikiValid();
        Path out = tmp.resolve("vocab2k");
        long t0 = System.nanoTime();
        Run r = run("vocab", "--corpus", corpus.toString(), "--size", "2000", "--out", out.toString());
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertEquals(0, r.code(), r.err());
        assertTrue(seconds < 60, "took " + seconds + " s");
        for (String f : List.of("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f);
        }
        List<String> lines = Files.readAllLines(out.resolve("vocab.txt"));
        assertTrue(lines.size() <= 2000 && lines.size() > 1500, "vocab.txt lines: " + lines.size());
        assertEquals(List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"), lines.subList(0, 5));
        assertEquals(lines.size(), new java.util.HashSet<>(lines).size(), "duplicate tokens");
        JsonNode cfg = new ObjectMapper().readTree(out.resolve("tokenizer_config.json").toFile());
        assertTrue(cfg.get("do_lower_case").booleanValue());
        try (BertTokenizer tok = BertTokenizer.load(out)) {
            assertEquals(0, tok.padId());
            assertEquals(1, tok.unkId());
            assertEquals(2, tok.clsId());
            assertEquals(3, tok.sepId());
            assertEquals(4, tok.maskId());
            assertTrue(tok.vocabSize() <= 2000);
            String sample = "Homarus gammarus , known as the European lobster or common lobster , is a species of "
                    + "clawed lobster from the eastern Atlantic Ocean , Mediterranean Sea and parts of the Black Sea .";
            assertTrue(Files.readString(corpus).contains(sample));
            Encoding e = tok.encode(sample);
            for (int id : e.ids()) {
                assertFalse(id == tok.unkId(), "[UNK] in " + e.tokens());
            }
            assertTrue(e.tokens().contains("the"), e.tokens().toString());
            assertEquals(sample.toLowerCase().replace(" ,", ",").replace(" .", "."),
                    tok.decode(e.ids(), true));
        }
    }

    @Test
    void casedVocabularyKeepsCase() throws IOException {
        Path corpus = tmp.resolve("c.txt");
        Files.writeString(corpus, "Alpha beta Gamma.\nAlpha beta.\n\nDelta Épsilon alpha.\n");
        Path out = tmp.resolve("cased");
        Run r = run("vocab", "--corpus", corpus.toString(), "--size", "60", "--out", out.toString(), "--cased",
                "--min-frequency", "1");
        assertEquals(0, r.code(), r.err());
        JsonNode cfg = new ObjectMapper().readTree(out.resolve("tokenizer_config.json").toFile());
        assertFalse(cfg.get("do_lower_case").booleanValue());
        List<String> lines = Files.readAllLines(out.resolve("vocab.txt"));
        assertTrue(lines.contains("A") && lines.contains("a") && lines.contains("É"), lines.toString());
        try (BertTokenizer tok = BertTokenizer.load(out)) {
            Encoding e = tok.encode("Alpha", EncodeOptions.DEFAULT.withAddSpecialTokens(false));
            assertTrue(e.tokens().get(0).startsWith("A"), e.tokens().toString());
        }
    }

    @Test
    void userErrorsAreOneLine() throws IOException {
        Path missing = tmp.resolve("missing.txt");
        Run r = run("vocab", "--corpus", missing.toString(), "--size", "100", "--out", tmp.resolve("o").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("bert4j: error: corpus " + missing) && r.err().contains("does not exist"), r.err());

        Path corpus = tmp.resolve("c.txt");
        Files.writeString(corpus, "some text here.\n");
        Path busy = Files.createDirectory(tmp.resolve("busy"));
        Files.writeString(busy.resolve("keep.txt"), "x");
        r = run("vocab", "--corpus", corpus.toString(), "--size", "100", "--out", busy.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("exists and is not empty"), r.err());
        assertEquals("x", Files.readString(busy.resolve("keep.txt")));

        r = run("vocab", "--corpus", corpus.toString(), "--size", "3", "--out", tmp.resolve("o2").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("vocabulary size must be > 5"), r.err());
    }
}
