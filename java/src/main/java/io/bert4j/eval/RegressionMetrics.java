package io.bert4j.eval;

import io.bert4j.Bert4jException;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * Correlation metrics for regression (STS-B style scores).
 *
 * <ul>
 *   <li>Pearson: {@code sum((x-mx)(y-my)) / sqrt(sum((x-mx)^2) * sum((y-my)^2))};</li>
 *   <li>Spearman: Pearson of the ranks, where tied values share the average of the ranks they
 *       span (so 1, 2, 2, 3 ranks as 1, 2.5, 2.5, 4).</li>
 * </ul>
 * Both are NaN when either series is constant (zero variance), matching SciPy; the JSON view
 * writes that as {@code null}. Non-finite inputs are rejected.
 */
public final class RegressionMetrics {
    private RegressionMetrics() {
    }

    public static RegressionResult evaluate(double[] gold, double[] predicted) {
        double p = pearson(gold, predicted); // validates before gold.length is read
        return new RegressionResult(gold.length, p, spearman(gold, predicted));
    }

    public static double pearson(double[] x, double[] y) {
        check(x, y);
        int n = x.length;
        double mx = 0;
        double my = 0;
        for (int i = 0; i < n; i++) {
            mx += x[i];
            my += y[i];
        }
        mx /= n;
        my /= n;
        // Two passes (means first) rather than the sum-of-squares shortcut, which cancels badly
        // when the values are large relative to their spread.
        double sxy = 0;
        double sxx = 0;
        double syy = 0;
        for (int i = 0; i < n; i++) {
            double dx = x[i] - mx;
            double dy = y[i] - my;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
        if (sxx == 0 || syy == 0) {
            return Double.NaN;
        }
        double r = sxy / Math.sqrt(sxx * syy);
        // Rounding can push |r| a hair past 1 for perfectly correlated data.
        return Math.max(-1.0, Math.min(1.0, r));
    }

    public static double spearman(double[] x, double[] y) {
        check(x, y);
        return pearson(averageRanks(x), averageRanks(y));
    }

    /** 1-based ranks, ties given the mean of the ranks they occupy. */
    public static double[] averageRanks(double[] values) {
        int n = values.length;
        Integer[] order = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.comparingDouble(i -> values[i]));
        double[] ranks = new double[n];
        int i = 0;
        while (i < n) {
            int j = i;
            while (j + 1 < n && values[order[j + 1]] == values[order[i]]) {
                j++;
            }
            // Positions i..j (0-based) hold ranks i+1..j+1; their mean is (i+j)/2 + 1.
            double rank = (i + j) / 2.0 + 1.0;
            for (int k = i; k <= j; k++) {
                ranks[order[k]] = rank;
            }
            i = j + 1;
        }
        return ranks;
    }

    private static void check(double[] x, double[] y) {
        if (x == null || y == null) {
            throw new Bert4jException("gold and predicted values must not be null");
        }
        if (x.length != y.length) {
            throw new Bert4jException("gold and predicted values differ in length: " + x.length
                    + " gold vs " + y.length + " predicted");
        }
        if (x.length == 0) {
            throw new Bert4jException("cannot score an empty set of predictions");
        }
        for (int i = 0; i < x.length; i++) {
            if (!Double.isFinite(x[i]) || !Double.isFinite(y[i])) {
                throw new Bert4jException("non-finite value at position " + i + ": gold " + x[i]
                        + ", predicted " + y[i]);
            }
        }
    }
}
