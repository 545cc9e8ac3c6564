package io.bert4j.eval;

import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ClassificationMetricsTest {
    private static final double EPS = 1e-12;

    /*
     * Binary case worked by hand. Position by position (gold, predicted):
     *   0 (1,1) TP   1 (1,1) TP   2 (1,0) FN   3 (1,1) TP   4 (0,0) TN
     *   5 (0,1) FP   6 (0,0) TN   7 (0,0) TN   8 (0,1) FP   9 (1,1) TP
     * TP=4 FN=1 FP=2 TN=3, n=10.
     *   accuracy = (4+3)/10 = 0.7
     *   F1(label 1) = 2*4 / (2*4 + 2 + 1) = 8/11
     *   F1(label 0): tp=TN=3, fp=FN=1, fn=FP=2 -> 6/(6+1+2) = 2/3
     *   macro-F1 = (8/11 + 2/3)/2 = (24/33 + 22/33)/2 = 23/33
     *   MCC = (4*3 - 2*1) / sqrt((4+2)(4+1)(3+2)(3+1)) = 10/sqrt(600) = 1/sqrt(6)
     *   Gorodkin form: s=10, c=7, t=(5,5), p=(4,6): (70 - (20+30)) / sqrt((100-52)(100-50))
     *                  = 20/sqrt(2400) = 1/sqrt(6) as well.
     */
    private static final int[] GOLD2 = {1, 1, 1, 1, 0, 0, 0, 0, 0, 1};
    private static final int[] PRED2 = {1, 1, 0, 1, 0, 1, 0, 0, 1, 1};

    @Test
    void binaryHandWorked() {
        assertArrayEquals(new long[] {3, 2}, ClassificationMetrics.confusionMatrix(GOLD2, PRED2, 2)[0]);
        assertArrayEquals(new long[] {1, 4}, ClassificationMetrics.confusionMatrix(GOLD2, PRED2, 2)[1]);
        ClassificationResult r = ClassificationMetrics.evaluate(GOLD2, PRED2, 2);
        assertEquals(10, r.count());
        assertEquals(0.7, r.accuracy(), EPS);
        assertEquals(8.0 / 11, r.f1(), EPS);
        assertEquals(2.0 / 3, ClassificationMetrics.f1(GOLD2, PRED2, 0), EPS);
        assertEquals(23.0 / 33, r.macroF1(), EPS);
        assertEquals(1 / Math.sqrt(6), r.mcc(), EPS);
    }

    /*
     * Three classes, gold (0,0,1,1,2,2), predicted (0,1,1,1,2,0).
     *   correct at positions 0,2,3,4: c=4, s=6, accuracy 4/6
     *   gold counts t=(2,2,2), predicted counts p=(2,3,1)
     *   MCC = (4*6 - (4+6+2)) / sqrt((36-(4+9+1)) * (36-12)) = 12/sqrt(22*24) = 12/sqrt(528) = 3/sqrt(33)
     *   F1: label 0 tp=1 fp=1 fn=1 -> 2/4; label 1 tp=2 fp=1 fn=0 -> 4/5; label 2 tp=1 fp=0 fn=1 -> 2/3
     *   macro-F1 = (1/2 + 4/5 + 2/3)/3 = (15+24+20)/90 = 59/90
     */
    @Test
    void threeClassHandWorked() {
        int[] gold = {0, 0, 1, 1, 2, 2};
        int[] pred = {0, 1, 1, 1, 2, 0};
        ClassificationResult r = ClassificationMetrics.evaluate(gold, pred, 3);
        assertEquals(4.0 / 6, r.accuracy(), EPS);
        assertEquals(3 / Math.sqrt(33), r.mcc(), EPS);
        assertEquals(59.0 / 90, r.macroF1(), EPS);
        assertTrue(Double.isNaN(r.f1()));
        assertFalse(r.asMap().containsKey("f1"));
        assertEquals(java.util.List.of("accuracy", "macro_f1", "mcc"), java.util.List.copyOf(r.asMap().keySet()));
    }

    @Test
    void multiClassMccEqualsBinaryFormulaOnTwoClasses() {
        Random rnd = new Random(7);
        for (int trial = 0; trial < 50; trial++) {
            int n = 1 + rnd.nextInt(200);
            int[] g = new int[n];
            int[] p = new int[n];
            long tp = 0, tn = 0, fp = 0, fn = 0;
            for (int i = 0; i < n; i++) {
                g[i] = rnd.nextInt(2);
                p[i] = rnd.nextDouble() < 0.7 ? g[i] : rnd.nextInt(2);
                if (g[i] == 1 && p[i] == 1) tp++;
                else if (g[i] == 0 && p[i] == 0) tn++;
                else if (p[i] == 1) fp++;
                else fn++;
            }
            double den = Math.sqrt((double) (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
            double expected = den == 0 ? 0 : (tp * tn - fp * fn) / den;
            assertEquals(expected, ClassificationMetrics.mcc(g, p), 1e-12, "trial " + trial);
        }
    }

    @Test
    void perfectInvertedAndSymmetric() {
        int[] gold = {0, 1, 1, 0, 1, 0, 0};
        int[] inverted = new int[gold.length];
        for (int i = 0; i < gold.length; i++) {
            inverted[i] = 1 - gold[i];
        }
        ClassificationResult perfect = ClassificationMetrics.evaluate(gold, gold, 2);
        assertEquals(1.0, perfect.accuracy());
        assertEquals(1.0, perfect.f1());
        assertEquals(1.0, perfect.macroF1());
        assertEquals(1.0, perfect.mcc(), EPS);
        assertEquals(-1.0, ClassificationMetrics.mcc(gold, inverted), EPS);
        assertEquals(0.0, ClassificationMetrics.accuracy(gold, inverted));

        Random rnd = new Random(3);
        int[] a = rnd.ints(300, 0, 4).toArray();
        int[] b = rnd.ints(300, 0, 4).toArray();
        // MCC, accuracy and macro-F1 do not depend on which side is called gold.
        assertEquals(ClassificationMetrics.mcc(a, b), ClassificationMetrics.mcc(b, a), EPS);
        assertEquals(ClassificationMetrics.accuracy(a, b), ClassificationMetrics.accuracy(b, a), EPS);
        assertEquals(ClassificationMetrics.macroF1(a, b), ClassificationMetrics.macroF1(b, a), EPS);
        // Renaming the classes consistently on both sides changes nothing either.
        int[] ra = new int[300];
        int[] rb = new int[300];
        for (int i = 0; i < 300; i++) {
            ra[i] = 3 - a[i];
            rb[i] = 3 - b[i];
        }
        assertEquals(ClassificationMetrics.mcc(a, b), ClassificationMetrics.mcc(ra, rb), EPS);
    }

    @Test
    void undefinedCasesGiveZero() {
        int[] gold = {0, 1, 0, 1};
        int[] allZero = {0, 0, 0, 0};
        // All predictions in one class: MCC's denominator is 0, reported as 0.
        assertEquals(0.0, ClassificationMetrics.mcc(gold, allZero));
        assertEquals(0.0, ClassificationMetrics.mcc(allZero, allZero));
        // No positive label anywhere: F1 of label 1 is 0/0, reported as 0.
        assertEquals(0.0, ClassificationMetrics.f1(allZero, allZero));
        // macro-F1 counts only labels that occur: here just label 0, perfectly.
        assertEquals(1.0, ClassificationMetrics.macroF1(allZero, allZero));
    }

    @Test
    void badInput() {
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> ClassificationMetrics.evaluate(new int[] {0, 1}, new int[] {0}, 2));
        assertTrue(e.getMessage().contains("differ in length"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> ClassificationMetrics.accuracy(new int[0], new int[0]));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        e = assertThrows(Bert4jException.class,
                () -> ClassificationMetrics.evaluate(new int[] {0, 2}, new int[] {0, 1}, 2));
        assertTrue(e.getMessage().contains("out of range at position 1"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> ClassificationMetrics.mcc(new int[] {0, -1}, new int[] {0, 1}));
        assertTrue(e.getMessage().contains("negative"), e.getMessage());
        assertThrows(Bert4jException.class, () -> ClassificationMetrics.evaluate(new int[] {0}, new int[] {0}, 1));
        assertThrows(Bert4jException.class, () -> ClassificationMetrics.f1(null, new int[] {0}));
    }

    @Test
    void jsonView() {
        ClassificationResult r = new ClassificationResult(4, 2, 0.75, 0.5, 0.625, Double.NaN);
        assertEquals("{\"accuracy\":0.75,\"f1\":0.5,\"macro_f1\":0.625,\"mcc\":null}", r.toJson());
    }
}
