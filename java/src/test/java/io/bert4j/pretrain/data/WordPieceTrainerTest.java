package io.bert4j.pretrain.data;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

class WordPieceTrainerTest {

    static List<String> specialsPlus(String... rest) {
        List<String> out = new java.util.ArrayList<>(WordPieceTrainer.SPECIAL_TOKENS);
        out.addAll(List.of(rest));
        return out;
    }

    @Test
    void preTokenizesLikeBertBasicTokenizer() {
        assertEquals(List.of("hello", ",", "world", "!", "naive"), WordPieceTrainer.preTokenize("Héllo, World! naïve", true));
        assertEquals(List.of("Héllo", ",", "World", "!"), WordPieceTrainer.preTokenize("Héllo,\tWorld!", false));
        assertEquals(List.of("a", "中", "文", "b"), WordPieceTrainer.preTokenize("a中文b", true));
        assertEquals(List.of("x", "y"), WordPieceTrainer.preTokenize("x\u0000 \u200by", true));
    }

    @Test
    void mergesMostFrequentPairsWithContinuationPrefix() {
        // "ab" x3, "cd" x1: alphabet a c ##b ##d; merge (a, ##b) count 3, then (c, ##d) count 1.
        WordPieceTrainer t = new WordPieceTrainer(11, true, 1);
        t.addText("ab ab AB cd");
        assertEquals(specialsPlus("a", "c", "##b", "##d", "ab", "cd"), t.train());

        t = new WordPieceTrainer(10, true, 1);  // room for one merge only
        t.addText("ab ab AB cd");
        assertEquals(specialsPlus("a", "c", "##b", "##d", "ab"), t.train());

        t = new WordPieceTrainer(50, true, 2);  // (c, ##d) occurs once: below min frequency
        t.addText("ab ab AB cd");
        assertEquals(specialsPlus("a", "c", "##b", "##d", "ab"), t.train());
    }

    @Test
    void continuationPiecesMergeIntoContinuationPieces() {
        // "xbc" x2, "ybc" x2: (##b, ##c) occurs 4 times, more than any word-initial pair.
        WordPieceTrainer t = new WordPieceTrainer(11, true, 1);
        t.addText("xbc xbc ybc ybc");
        List<String> v = t.train();
        assertEquals("##bc", v.get(9));  // specials 0-4, alphabet 5-8, first merge 9
    }
}
