package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NerFeaturesTest {

    static BertTokenizer tok;

    @BeforeAll
    static void load() {
        tok = BertTokenizer.load(TestModels.defaultModelDir());
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void handMadeSentence() {
        List<String> labels = Conll.labelList(List.of("B-ORG", "B-MISC", "B-PER"));
        Map<String, Integer> l2i = NerFeatures.labelToId(labels);
        List<String> words = List.of("EU", "rejects", "German", "call", "by", "Ouattara", "U.S.-based");
        List<String> tags = List.of("B-ORG", "O", "B-MISC", "O", "O", "B-PER", "O");
        NerFeatures.Feature f = NerFeatures.encode(tok, words, tags, l2i, 64);
        assertEquals(false, f.truncated());
        // Token ids equal an independent encode of the space-joined words.
        Encoding plain = tok.encode(String.join(" ", words));
        assertArrayEquals(plain.ids(), f.inputIds());
        int[] first = f.firstTokenOfWord();
        for (int w = 0; w < words.size(); w++) {
            assertEquals((int) l2i.get(tags.get(w)), f.labels()[first[w]]);
        }
        // "Ouattara" and "U.S.-based" are several tokens; only the first is labelled, and the
        // pieces of "U.S.-based" stay one word although BERT's pre-tokenizer splits it.
        long labelled = 0;
        for (int l : f.labels()) {
            labelled += l != NerFeatures.IGNORE ? 1 : 0;
        }
        assertEquals(words.size(), labelled);
        assertTrue(f.length() > words.size() + 4, "some words are several tokens: " + plain.tokens());
        assertEquals(-1, f.wordIndex()[0]);
        assertEquals(-1, f.wordIndex()[f.length() - 1]);
        assertEquals(6, f.wordIndex()[f.length() - 2]);
        assertEquals(NerFeatures.IGNORE, f.labels()[0]);

        // Without tags: same tokens, nothing labelled.
        NerFeatures.Feature u = NerFeatures.encode(tok, words, null, null, 64);
        assertArrayEquals(f.inputIds(), u.inputIds());
        assertArrayEquals(f.wordIndex(), u.wordIndex());
        for (int l : u.labels()) {
            assertEquals(NerFeatures.IGNORE, l);
        }
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> NerFeatures.encode(tok, List.of("x"), List.of("B-FOO"), l2i, 64));
        assertTrue(e.getMessage().contains("B-FOO"), e.getMessage());
        assertThrows(Bert4jException.class, () -> NerFeatures.encode(tok, List.of("x", "y"), List.of("O"), l2i, 64));
    }

    @Test
    void realSentencesAlignAndRoundTrip() {
        Conll.Corpus c = Conll.read(ConllTest.conll("valid.txt"));
        Map<String, Integer> l2i = NerFeatures.labelToId(c.labels());
        List<List<String>> words = new ArrayList<>();
        List<List<String>> tags = new ArrayList<>();
        for (Conll.Sentence s : c.sentences()) {
            words.add(s.words());
            tags.add(s.tags());
        }
        for (int maxLength : new int[] {128, 24}) {
            List<NerFeatures.Feature> fs = NerFeatures.encodeAll(tok, words, tags, l2i, maxLength);
            assertEquals(words.size(), fs.size());
            int truncated = 0;
            int expectTruncated = 0;
            Random rnd = new Random(7);
            for (int i = 0; i < fs.size(); i++) {
                NerFeatures.Feature f = fs.get(i);
                List<String> ws = words.get(i);
                String joined = String.join(" ", ws);
                int fullLength = tok.encode(joined).length();
                expectTruncated += fullLength > maxLength ? 1 : 0;
                truncated += f.truncated() ? 1 : 0;
                assertEquals(fullLength > maxLength, f.truncated(), "sentence " + i);
                assertTrue(f.length() <= maxLength);
                assertEquals(ws.size(), f.wordCount());

                // Every labelled token is the first token of its word; every word with a
                // token has exactly one labelled token; words with tokens are a prefix.
                int[] perWord = new int[ws.size()];
                int[] first = f.firstTokenOfWord();
                for (int t = 0; t < f.length(); t++) {
                    if (f.labels()[t] != NerFeatures.IGNORE) {
                        int w = f.wordIndex()[t];
                        perWord[w]++;
                        assertEquals(first[w], t, "sentence " + i + " word " + w);
                        assertEquals((int) l2i.get(tags.get(i).get(w)), f.labels()[t]);
                    }
                }
                boolean cut = false;
                for (int w = 0; w < ws.size(); w++) {
                    assertEquals(first[w] >= 0 ? 1 : 0, perWord[w], "sentence " + i + " word " + w);
                    if (first[w] < 0) {
                        cut = true;
                    } else {
                        assertTrue(!cut, "sentence " + i + ": word " + w + " has a token after a cut word");
                    }
                }
                // (A truncated sentence may keep all words when only the last word's later
                // sub-tokens were cut.)
                assertTrue(f.truncated() || !cut, "sentence " + i);

                // Independent check of the word assignment: each token's text is part of its
                // word (lower-cased, as the uncased vocabulary sees it).
                Encoding enc = tok.encode(joined);
                for (int t = 0; t < f.length() - 1; t++) {
                    int w = f.wordIndex()[t];
                    if (w >= 0) {
                        String piece = enc.offsets().get(t).of(joined);
                        assertTrue(ws.get(w).contains(piece), "sentence " + i + " token " + piece + " in " + ws.get(w));
                        String tokenText = enc.tokens().get(t).replace("##", "");
                        assertTrue(tokenText.equals("[UNK]")
                                        || stripAccents(ws.get(w).toLowerCase(Locale.ROOT)).contains(tokenText),
                                tokenText + " in " + ws.get(w));
                    }
                }

                // Round trip: gold ids on labelled tokens, noise elsewhere -> the word tags.
                int[] pred = new int[f.length() + 5];
                for (int t = 0; t < pred.length; t++) {
                    pred[t] = t < f.length() && f.labels()[t] != NerFeatures.IGNORE ? f.labels()[t]
                            : rnd.nextInt(c.labels().size());
                }
                List<String> back = NerFeatures.wordTags(f, pred, c.labels());
                for (int w = 0; w < ws.size(); w++) {
                    if (first[w] >= 0) {
                        assertEquals(tags.get(i).get(w), back.get(w));
                    } else {
                        assertNull(back.get(w));
                    }
                }
            }
            assertEquals(expectTruncated, truncated);
            assertEquals(truncated, NerFeatures.countTruncated(fs));
            if (maxLength == 24) {
                assertTrue(truncated > 100, "maxLength 24 cuts many sentences: " + truncated);
            }
            System.out.printf("NerFeaturesTest: valid.txt maxLength %d: %d of %d sentences truncated%n",
                    maxLength, truncated, fs.size());
        }
    }

    private static String stripAccents(String s) {
        return java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFD).replaceAll("\\p{M}", "");
    }
}
