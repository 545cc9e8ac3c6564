package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class QaAnswersTest {

    static BertTokenizer tok;
    static Squad.Example example;          // a real example whose context needs several windows
    static List<QaFeatures.Feature> features;

    @BeforeAll
    static void load() {
        Squad.Dataset squad = Squad.read(SquadTest.squadFile());
        tok = BertTokenizer.load(TestModels.defaultModelDir());
        for (int i = 0; i < squad.examples().size() && example == null; i++) {
            List<QaFeatures.Feature> fs = QaFeatures.build(tok, squad.examples().get(i), i, 128, 32);
            // Two windows at least, and the answer inside the second.
            if (fs.size() >= 3 && fs.get(1).startPosition() > 0) {
                example = squad.examples().get(i);
                features = fs;
            }
        }
        assertTrue(example != null, "an example with 3 windows and the answer in window 1");
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    /** Small noise logits, so planted values decide; padded past each feature like a batch. */
    static List<float[]> noise(long seed) {
        Random r = new Random(seed);
        List<float[]> out = new ArrayList<>();
        for (QaFeatures.Feature f : features) {
            float[] a = new float[130];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) r.nextGaussian() * 0.1f;
            }
            out.add(a);
        }
        return out;
    }

    @Test
    void plantedAnswerIsFound() {
        QaFeatures.Feature f = features.get(1);
        List<float[]> s = noise(1);
        List<float[]> e = noise(2);
        s.get(1)[f.startPosition()] = 8;
        e.get(1)[f.endPosition()] = 7;
        QaAnswers.Prediction p = QaAnswers.best(example.context(), features, s, e, 20, 30);
        Squad.Answer gold = example.answers().get(0);
        assertEquals(gold.text(), p.text(), "the labelled span of this example is exactly its answer");
        assertEquals(gold.start(), p.start());
        assertEquals(gold.end(), p.end());
        assertEquals(1, p.feature());
        assertEquals(s.get(1)[f.startPosition()] + (double) e.get(1)[f.endPosition()], p.score(), 1e-9);

        List<QaAnswers.Prediction> n = QaAnswers.nBest(example.context(), features, s, e, 20, 30);
        assertEquals(20, n.size());
        double sum = 0;
        for (int i = 0; i < n.size(); i++) {
            sum += n.get(i).probability();
            if (i > 0) {
                assertTrue(n.get(i - 1).score() >= n.get(i).score());
            }
            QaAnswers.Prediction c = n.get(i);
            assertEquals(example.context().substring(c.start(), c.end()), c.text());
            assertTrue(c.endToken() >= c.startToken() && c.endToken() - c.startToken() < 30);
        }
        assertEquals(1, sum, 1e-9);
        assertTrue(n.get(0).probability() > 0.99);
    }

    /** Logits of -100 everywhere, so only planted positions can win. */
    static List<float[]> low() {
        List<float[]> out = new ArrayList<>();
        for (QaFeatures.Feature f : features) {
            float[] a = new float[130];
            java.util.Arrays.fill(a, -100);
            out.add(a);
        }
        return out;
    }

    @Test
    void rulesAreHonoured() {
        QaFeatures.Feature f = features.get(1);
        int s0 = f.startPosition();
        int e0 = f.endPosition();
        int maxLen = e0 - s0 + 1;
        assertTrue(s0 > f.contextStart() + 1 && e0 + 1 < f.length() - 1, "test setup");
        String gold = example.answers().get(0).text();

        // Context only: [CLS], question tokens, the final [SEP] and batch padding are higher.
        List<float[]> s = low();
        List<float[]> e = low();
        s.get(1)[s0] = 10;
        e.get(1)[e0] = 5;
        s.get(1)[0] = 50;
        e.get(1)[0] = 50;
        s.get(1)[1] = 40;
        e.get(1)[2] = 40;
        s.get(1)[f.length() - 1] = 45;
        e.get(1)[f.length() - 1] = 45;
        s.get(1)[129] = 60;  // past the feature: logits of a padded batch
        e.get(1)[129] = 60;
        QaAnswers.Prediction p = QaAnswers.best(example.context(), features, s, e, 20, 30);
        assertEquals(s0, p.startToken());
        assertEquals(e0, p.endToken());
        assertEquals(gold, p.text());
        // n-best 1 sees only [CLS] / padding as top start and end: nothing survives, and the
        // empty fallback comes back.
        QaAnswers.Prediction none = QaAnswers.best(example.context(), features, s, e, 1, 30);
        assertEquals("", none.text());
        assertEquals(-1, none.feature());
        assertTrue(QaAnswers.nBest(example.context(), features, s, e, 1, 30).isEmpty());

        // End before start: (b, a) scores 60 but is reversed; (b, e0) is too long.
        s = low();
        e = low();
        s.get(1)[s0] = 10;
        e.get(1)[e0] = 5;
        int a = f.contextStart();
        int b = f.contextStart() + 1;
        s.get(1)[b] = 30;
        e.get(1)[a] = 30;
        p = QaAnswers.best(example.context(), features, s, e, 20, maxLen);
        assertEquals(gold, p.text());
        assertEquals(1, p.feature());

        // Too long: (s0, e0 + 1) scores higher but has maxLen + 1 tokens.
        s = low();
        e = low();
        s.get(1)[s0] = 10;
        e.get(1)[e0] = 5;
        e.get(1)[e0 + 1] = 20;
        p = QaAnswers.best(example.context(), features, s, e, 20, maxLen);
        assertEquals(e0, p.endToken());
        assertEquals(gold, p.text());
        p = QaAnswers.best(example.context(), features, s, e, 20, maxLen + 1);
        assertEquals(e0 + 1, p.endToken());
        assertEquals(example.context().substring(f.offsets().get(s0).start(), f.offsets().get(e0 + 1).end()),
                p.text());
    }

    @Test
    void tiesAreDeterministic() {
        // The same context tokens are in windows 0 and 1 (stride overlap): plant equal
        // logits on one such token in both; the earlier window wins.
        QaFeatures.Feature f0 = features.get(0);
        QaFeatures.Feature f1 = features.get(1);
        int t1 = f1.contextStart();  // first context token of window 1 = a token of window 0
        int t0 = -1;
        for (int t = f0.contextStart(); t < f0.length() - 1; t++) {
            if (f0.offsets().get(t).equals(f1.offsets().get(t1))) {
                t0 = t;
            }
        }
        assertTrue(t0 > 0, "windows overlap");
        List<float[]> s = noise(5);
        List<float[]> e = noise(6);
        for (float[] a : s) {
            java.util.Arrays.fill(a, 0);
        }
        for (float[] a : e) {
            java.util.Arrays.fill(a, 0);
        }
        s.get(0)[t0] = 3;
        e.get(0)[t0] = 3;
        s.get(1)[t1] = 3;
        e.get(1)[t1] = 3;
        List<QaAnswers.Prediction> n = QaAnswers.nBest(example.context(), features, s, e, 5, 30);
        assertEquals(0, n.get(0).feature());
        assertEquals(1, n.get(1).feature());
        assertEquals(n.get(0).text(), n.get(1).text());
        assertEquals(n.get(0).probability(), n.get(1).probability(), 0);
        // All-equal logits: lowest indices first, and the same result on every call.
        assertArrayEquals(new int[] {0, 1, 2}, QaAnswers.topIndices(new float[] {1, 1, 1, 1}, 4, 3));
        assertArrayEquals(new int[] {2, 0, 1}, QaAnswers.topIndices(new float[] {1, 1, 2, Float.NaN}, 4, 3));
        assertEquals(n, QaAnswers.nBest(example.context(), features, s, e, 5, 30));
    }

    @Test
    void badInput() {
        List<float[]> s = noise(7);
        assertThrows(Bert4jException.class,
                () -> QaAnswers.best(example.context(), features, s.subList(0, 1), s, 20, 30));
        assertThrows(Bert4jException.class, () -> QaAnswers.best(example.context(), features, s, s, 0, 30));
        List<float[]> shortLogits = new ArrayList<>(s);
        shortLogits.set(0, new float[3]);
        assertThrows(Bert4jException.class,
                () -> QaAnswers.best(example.context(), features, shortLogits, s, 20, 30));
        assertThrows(Bert4jException.class, () -> QaAnswers.best("short", features, s, s, 20, 30));
    }
}
