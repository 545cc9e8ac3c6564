package io.bert4j.pretrain.data;

import io.bert4j.tokenize.BertTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PretrainingDataStreamTest {
    static BertTokenizer tok;
    static Corpus wiki;

    @TempDir
    Path tmp;

    @BeforeAll
    static void setUp() {
        tok = DataTestSupport.tokenizer();
        wiki = Corpus.open(DataTestSupport.wikiValid());
    }

    /** |observed - n p| <= 4 sd of Binomial(n, p): a false failure has probability ~6e-5. */
    static void assertBinomial(String what, long observed, long n, double p) {
        double sd = Math.sqrt(n * p * (1 - p));
        double dev = Math.abs(observed - n * p);
        assertTrue(dev <= 4 * sd, what + ": " + observed + " of " + n + ", expected " + n * p + " +- 4 sd (" + 4 * sd + ")");
    }

    static boolean same(PretrainingBatch a, PretrainingBatch b) {
        return a.batchSize() == b.batchSize() && a.seqLen() == b.seqLen() && Arrays.equals(a.inputIds(), b.inputIds())
                && Arrays.equals(a.tokenTypeIds(), b.tokenTypeIds()) && Arrays.equals(a.attentionMask(), b.attentionMask())
                && Arrays.equals(a.mlmLabels(), b.mlmLabels()) && Arrays.equals(a.nspLabels(), b.nspLabels());
    }

    @Test
    void instancesFitAndHaveSpecialTokensInPlace() {
        for (int maxLen : new int[] {16, 128}) {
            InstanceBuilder b = new InstanceBuilder(tok, maxLen, 0.1, 50, 50);
            int n = 0;
            int shorter = 0;
            int random = 0;
            for (Iterator<TrainingInstance> it = b.instances(wiki, 7); it.hasNext(); ) {
                TrainingInstance in = it.next();
                int[] ids = in.inputIds();
                int[] types = in.tokenTypeIds();
                assertTrue(ids.length <= maxLen && ids.length >= 5, "length " + ids.length);
                assertEquals(tok.clsId(), ids[0]);
                assertEquals(tok.sepId(), ids[ids.length - 1]);
                int firstSep = -1;
                for (int p = 0; p < ids.length; p++) {
                    if (ids[p] == tok.sepId()) {
                        firstSep = p;
                        break;
                    }
                }
                assertTrue(firstSep >= 2 && firstSep <= ids.length - 3, "A and B each have >= 1 token");
                for (int p = 1; p < ids.length - 1; p++) {
                    assertTrue(p == firstSep || (ids[p] != tok.sepId() && ids[p] != tok.clsId() && ids[p] != tok.padId()));
                    assertEquals(p <= firstSep ? 0 : 1, types[p], "token type at " + p);
                }
                assertEquals(1, types[ids.length - 1]);
                assertEquals(0, types[0]);
                if (ids.length < maxLen - maxLen / 4) {
                    shorter++;
                }
                random += in.nspLabel();
                n++;
            }
            assertTrue(n > 1000, "instances: " + n);
            assertTrue(shorter > 0, "shortSeqProb produced no short instances");
            // NSP: P(random) = 0.5 per instance, within 4 sd.
            assertBinomial("random-next instances at maxSeqLen " + maxLen, random, n, 0.5);
        }
    }

    @Test
    void maskingStatisticsMatchBert() {
        PretrainingDataStream s = new PretrainingDataStream(wiki, tok, PretrainingDataStream.Options.defaults(128, 32, 3));
        long eligible = 0, selected = 0, masked = 0, unchanged = 0, replaced = 0;
        int mask = tok.maskId();
        while (selected < 25_000) {
            PretrainingBatch b = s.next();
            for (int i = 0; i < b.batchSize(); i++) {
                int rowSelected = 0;
                for (int p = 0; p < b.seqLen(); p++) {
                    int k = i * b.seqLen() + p;
                    long label = b.mlmLabels()[k];
                    long id = b.inputIds()[k];
                    if (b.attentionMask()[k] == 0) {
                        assertEquals(Masker.IGNORE_INDEX, label);
                        assertEquals(tok.padId(), id);
                        continue;
                    }
                    boolean special = (id == tok.clsId() || id == tok.sepId()) && label == Masker.IGNORE_INDEX;
                    if (!special) {
                        eligible++;
                    }
                    if (label == Masker.IGNORE_INDEX) {
                        continue;
                    }
                    assertFalse(label == tok.clsId() || label == tok.sepId() || label == tok.padId(), "special selected");
                    selected++;
                    rowSelected++;
                    if (id == mask) {
                        masked++;
                    } else if (id == label) {
                        unchanged++;
                    } else {
                        replaced++;
                        assertFalse(id == tok.clsId() || id == tok.sepId() || id == tok.padId() || id == tok.unkId());
                    }
                }
                assertTrue(rowSelected >= 1 && rowSelected <= Masker.defaultMaxPredictions(128), "per row: " + rowSelected);
            }
        }
        // Each bound: 4 standard deviations of the binomial with the BERT probability.
        assertBinomial("selected of non-special", selected, eligible, 0.15);
        assertBinomial("[MASK] of selected", masked, selected, 0.8);
        assertBinomial("random of selected", replaced, selected, 0.1);
        assertBinomial("unchanged of selected", unchanged, selected, 0.1);
    }

    @Test
    void wholeWordMaskingSelectsWholeWords() {
        InstanceBuilder ib = new InstanceBuilder(tok, 64, 0.1, 20, 20);
        Masker m = new Masker(tok, 0.15, 10, true);
        int checked = 0;
        int multiPiece = 0;
        Iterator<TrainingInstance> it = ib.instances(wiki, 1);
        for (int idx = 0; idx < 400 && it.hasNext(); idx++) {
            int[] ids = it.next().inputIds();
            Masker.Masked mk = m.mask(ids, 5, 0, idx);
            for (int p = 1; p < ids.length; p++) {
                boolean cont = tok.idToToken(ids[p]).startsWith("##");
                if (cont && ids[p - 1] != tok.sepId() && ids[p - 1] != tok.clsId()) {
                    // A "##" piece is predicted exactly when the token before it (same word) is.
                    assertEquals(mk.labels()[p - 1] != Masker.IGNORE_INDEX, mk.labels()[p] != Masker.IGNORE_INDEX,
                            "word split by masking at " + p + " in instance " + idx);
                    if (mk.labels()[p] != Masker.IGNORE_INDEX) {
                        multiPiece++;
                    }
                }
            }
            checked++;
        }
        assertTrue(checked > 100);
        assertTrue(multiPiece > 0, "no multi-piece word was ever masked");
    }

    @Test
    void sameSeedSameBatchesDifferentSeedDifferent() {
        PretrainingDataStream.Options o = PretrainingDataStream.Options.defaults(64, 8, 11);
        PretrainingDataStream a = new PretrainingDataStream(wiki, tok, o);
        PretrainingDataStream b = new PretrainingDataStream(wiki, tok, o);
        PretrainingDataStream c = new PretrainingDataStream(wiki, tok, o.withSeed(12));
        int differ = 0;
        for (int i = 0; i < 5; i++) {
            PretrainingBatch x = a.next();
            assertTrue(same(x, b.next()), "batch " + i);
            if (!same(x, c.next())) {
                differ++;
            }
        }
        assertEquals(5, differ);
    }

    @Test
    void resumeGivesTheSameBatchesAcrossEpochs() throws IOException {
        Corpus small = Corpus.open(DataTestSupport.plainCorpus(tmp, 40));
        PretrainingDataStream.Options o = PretrainingDataStream.Options.defaults(32, 6, 5).withBuffers(8, 8);
        PretrainingDataStream full = new PretrainingDataStream(small, tok, o);
        List<PretrainingBatch> batches = new ArrayList<>();
        List<PretrainingDataStream.Position> positions = new ArrayList<>();
        while (batches.size() < 400 && full.position().epoch() < 3) {
            positions.add(full.position());
            batches.add(full.next());
        }
        assertEquals(3, full.position().epoch(), "the test should cross several epochs");
        assertTrue(batches.size() > 10);
        // Epochs differ: epoch 1 does not repeat epoch 0 (reshuffled pairs and fresh masks).
        int epoch1 = positions.indexOf(new PretrainingDataStream.Position(1, 0));
        assertTrue(epoch1 > 0);
        assertFalse(same(batches.get(0), batches.get(epoch1)));
        for (int k : new int[] {0, 1, epoch1 - 1, epoch1, epoch1 + 1, batches.size() - 2}) {
            PretrainingDataStream.Position p = PretrainingDataStream.Position.parse(positions.get(k).toString());
            PretrainingDataStream resumed = new PretrainingDataStream(small, tok, o, p);
            assertEquals(p, resumed.position());
            for (int j = k; j < Math.min(k + 3, batches.size()); j++) {
                assertTrue(same(batches.get(j), resumed.next()), "resumed at " + p + ": batch " + j + " differs");
            }
        }
        // A position past the end of its epoch cannot come from position(): refused, not silently moved.
        PretrainingDataStream.Position bad = new PretrainingDataStream.Position(0, epoch1);
        io.bert4j.Bert4jException e = org.junit.jupiter.api.Assertions.assertThrows(io.bert4j.Bert4jException.class,
                () -> new PretrainingDataStream(small, tok, o, bad));
        assertTrue(e.getMessage().contains("cannot resume at 0:" + epoch1), e.getMessage());
    }

    @Test
    void batchesArePaddedToTheLongest() {
        PretrainingDataStream s = new PretrainingDataStream(wiki, tok, PretrainingDataStream.Options.defaults(48, 16, 2));
        for (int n = 0; n < 10; n++) {
            PretrainingBatch b = s.next();
            int longest = 0;
            for (int i = 0; i < b.batchSize(); i++) {
                int len = 0;
                for (long v : b.row(b.attentionMask(), i)) {
                    len += (int) v;
                }
                longest = Math.max(longest, len);
                long[] ids = b.row(b.inputIds(), i);
                assertEquals(tok.clsId(), ids[0]);
                assertEquals(tok.sepId(), ids[len - 1]);
                assertTrue(b.nspLabels()[i] == 0 || b.nspLabels()[i] == 1);
            }
            assertEquals(longest, b.seqLen());
            assertTrue(b.seqLen() <= 48);
            assertEquals(b.batchSize() * b.seqLen(), b.inputIds().length);
        }
    }

    @Test
    void evaluationBatchesAreFixed() {
        Corpus held = wiki.split(5).heldOut();
        PretrainingDataStream.Options o = PretrainingDataStream.Options.defaults(64, 16, 9);
        List<PretrainingBatch> a = PretrainingDataStream.evaluationBatches(held, tok, o, 4);
        List<PretrainingBatch> b = PretrainingDataStream.evaluationBatches(held, tok, o, 4);
        assertEquals(4, a.size());
        for (int i = 0; i < a.size(); i++) {
            assertTrue(same(a.get(i), b.get(i)), "eval batch " + i);
        }
    }
}
