package io.bert4j.eval;

import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RegressionMetricsTest {
    private static final double EPS = 1e-12;

    /*
     * x=(1,2,3), y=(1,2,5): means 2 and 8/3; deviations (-1,0,1) and (-5/3,-2/3,7/3).
     * sxy = 5/3 + 0 + 7/3 = 4; sxx = 2; syy = (25+4+49)/9 = 26/3.
     * r = 4 / sqrt(2 * 26/3) = sqrt(16*3/52) = sqrt(12/13). Ranks are (1,2,3) on both sides: Spearman 1.
     */
    @Test
    void pearsonHandWorked() {
        double[] x = {1, 2, 3};
        double[] y = {1, 2, 5};
        assertEquals(Math.sqrt(12.0 / 13), RegressionMetrics.pearson(x, y), EPS);
        assertEquals(1.0, RegressionMetrics.spearman(x, y), EPS);
    }

    /*
     * x=(1,2,3,4), y=(1,3,2,4) are their own ranks. Deviations from 2.5: (-1.5,-.5,.5,1.5) and
     * (-1.5,.5,-.5,1.5): sxy = 2.25 - .25 - .25 + 2.25 = 4, sxx = syy = 5, rho = 0.8.
     * The no-ties shortcut agrees: 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60 = 0.8.
     */
    @Test
    void spearmanHandWorked() {
        assertEquals(0.8, RegressionMetrics.spearman(new double[] {1, 2, 3, 4}, new double[] {1, 3, 2, 4}), EPS);
        // Scaled and shifted data of the same order give the same rho.
        assertEquals(0.8, RegressionMetrics.spearman(new double[] {0.1, 0.2, 0.3, 0.4}, new double[] {10, 30, 20, 40}), EPS);
    }

    @Test
    void averageRanksWithTies() {
        assertArrayEquals(new double[] {1, 2.5, 2.5, 4}, RegressionMetrics.averageRanks(new double[] {10, 20, 20, 30}));
        // 1 is smallest (rank 1); the three 3s share ranks 2,3,4 -> 3.
        assertArrayEquals(new double[] {3, 1, 3, 3}, RegressionMetrics.averageRanks(new double[] {3, 1, 3, 3}));
        assertArrayEquals(new double[] {2, 2, 2}, RegressionMetrics.averageRanks(new double[] {5, 5, 5}));
    }

    @Test
    void invariants() {
        Random rnd = new Random(11);
        int n = 500;
        double[] x = new double[n];
        double[] y = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = rnd.nextGaussian();
            // Rounded to quarters so that there are many ties (like STS-B scores).
            y[i] = Math.round((x[i] + 0.8 * rnd.nextGaussian()) * 4) / 4.0;
        }
        double rho = RegressionMetrics.spearman(x, y);
        double r = RegressionMetrics.pearson(x, y);
        assertTrue(rho > 0.5 && rho < 1, "rho " + rho);
        // Spearman is unchanged by strictly increasing transforms of either side.
        double[] ex = new double[n];
        double[] cy = new double[n];
        for (int i = 0; i < n; i++) {
            ex[i] = Math.exp(x[i]);
            cy[i] = y[i] * y[i] * y[i] + 5;
        }
        assertEquals(rho, RegressionMetrics.spearman(ex, cy), EPS);
        // Pearson is unchanged by positive affine transforms; both are symmetric.
        double[] ax = new double[n];
        for (int i = 0; i < n; i++) {
            ax[i] = 3 * x[i] - 7;
        }
        assertEquals(r, RegressionMetrics.pearson(ax, y), 1e-12);
        assertEquals(r, RegressionMetrics.pearson(y, x), EPS);
        assertEquals(rho, RegressionMetrics.spearman(y, x), EPS);
        // Perfect and reversed predictions.
        double[] neg = new double[n];
        for (int i = 0; i < n; i++) {
            neg[i] = -x[i];
        }
        assertEquals(1.0, RegressionMetrics.pearson(x, x), EPS);
        assertEquals(-1.0, RegressionMetrics.pearson(x, neg), EPS);
        assertEquals(-1.0, RegressionMetrics.spearman(x, neg), EPS);
    }

    @Test
    void constantSeriesIsNanAndJsonNull() {
        RegressionResult r = RegressionMetrics.evaluate(new double[] {1, 2, 3}, new double[] {2, 2, 2});
        assertTrue(Double.isNaN(r.pearson()));
        assertTrue(Double.isNaN(r.spearman()));
        assertEquals("{\"pearson\":null,\"spearman\":null}", r.toJson());
        assertEquals("{\"pearson\":1.0,\"spearman\":1.0}",
                RegressionMetrics.evaluate(new double[] {1, 2, 3}, new double[] {2, 4, 6}).toJson());
    }

    @Test
    void badInput() {
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> RegressionMetrics.evaluate(new double[] {1, 2}, new double[] {1}));
        assertTrue(e.getMessage().contains("differ in length"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> RegressionMetrics.pearson(new double[0], new double[0]));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        e = assertThrows(Bert4jException.class,
                () -> RegressionMetrics.spearman(new double[] {1, Double.NaN}, new double[] {1, 2}));
        assertTrue(e.getMessage().contains("non-finite value at position 1"), e.getMessage());
        assertThrows(Bert4jException.class, () -> RegressionMetrics.evaluate(null, new double[] {1}));
    }
}
