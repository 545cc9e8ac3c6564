package io.bert4j.eval;

import io.bert4j.Bert4jException;

import java.util.TreeSet;

/**
 * Classification metrics over integer class ids (gold and predicted arrays of equal length).
 *
 * <ul>
 *   <li>accuracy: fraction of positions where prediction equals gold;</li>
 *   <li>F1 of one positive label: {@code 2tp / (2tp + fp + fn)}, 0 when that is 0/0 (no positive
 *       label in gold or predictions), as scikit-learn's {@code zero_division} default;</li>
 *   <li>macro-F1: the unweighted mean of per-label F1 over the labels that occur in gold or
 *       predictions (scikit-learn's default label set);</li>
 *   <li>Matthews correlation: Gorodkin's R_K for K classes,
 *       {@code (c*s - sum_k p_k*t_k) / sqrt((s^2 - sum_k p_k^2) * (s^2 - sum_k t_k^2))} with
 *       s samples, c correct, p_k predicted and t_k true counts of class k. For two classes
 *       it equals {@code (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))}. It is 0 when
 *       the denominator is 0 (all gold or all predictions in one class), as scikit-learn.</li>
 * </ul>
 */
public final class ClassificationMetrics {
    private ClassificationMetrics() {
    }

    /**
     * All metrics at once for a task with {@code numLabels} classes (ids {@code 0..numLabels-1};
     * any other id is an error). {@code f1} is the F1 of label 1 when {@code numLabels == 2},
     * and NaN (left out of the map) otherwise.
     */
    public static ClassificationResult evaluate(int[] gold, int[] predicted, int numLabels) {
        if (numLabels < 2) {
            throw new Bert4jException("classification needs at least 2 labels, got numLabels=" + numLabels);
        }
        check(gold, predicted);
        for (int i = 0; i < gold.length; i++) {
            if (gold[i] >= numLabels || predicted[i] >= numLabels) {
                throw new Bert4jException("label id out of range at position " + i + ": gold " + gold[i]
                        + ", predicted " + predicted[i] + " (expected 0.." + (numLabels - 1) + ")");
            }
        }
        return new ClassificationResult(gold.length, numLabels, accuracy(gold, predicted),
                numLabels == 2 ? f1(gold, predicted, 1) : Double.NaN,
                macroF1(gold, predicted), mcc(gold, predicted));
    }

    public static double accuracy(int[] gold, int[] predicted) {
        check(gold, predicted);
        long correct = 0;
        for (int i = 0; i < gold.length; i++) {
            if (gold[i] == predicted[i]) {
                correct++;
            }
        }
        return (double) correct / gold.length;
    }

    /** F1 of label 1 (the binary convention). */
    public static double f1(int[] gold, int[] predicted) {
        return f1(gold, predicted, 1);
    }

    /** F1 treating {@code positive} as the positive label and every other label as negative. */
    public static double f1(int[] gold, int[] predicted, int positive) {
        check(gold, predicted);
        return f1Unchecked(gold, predicted, positive);
    }

    public static double macroF1(int[] gold, int[] predicted) {
        check(gold, predicted);
        TreeSet<Integer> labels = new TreeSet<>();
        for (int i = 0; i < gold.length; i++) {
            labels.add(gold[i]);
            labels.add(predicted[i]);
        }
        double sum = 0;
        for (int label : labels) {
            sum += f1Unchecked(gold, predicted, label);
        }
        return sum / labels.size();
    }

    /** Matthews correlation coefficient, multi-class (Gorodkin's R_K); 0 when undefined. */
    public static double mcc(int[] gold, int[] predicted) {
        long[][] cm = confusionMatrix(gold, predicted, maxLabel(gold, predicted) + 1);
        int k = cm.length;
        double s = gold.length;
        double c = 0;
        double sumPT = 0;
        double sumP2 = 0;
        double sumT2 = 0;
        for (int a = 0; a < k; a++) {
            c += cm[a][a];
            double t = 0; // gold count of class a: row sum
            double p = 0; // predicted count of class a: column sum
            for (int b = 0; b < k; b++) {
                t += cm[a][b];
                p += cm[b][a];
            }
            sumPT += p * t;
            sumP2 += p * p;
            sumT2 += t * t;
        }
        // Doubles, not longs: s^2 times s^2 overflows a long for a few hundred thousand samples.
        double denominator = Math.sqrt((s * s - sumP2) * (s * s - sumT2));
        return denominator == 0 ? 0.0 : (c * s - sumPT) / denominator;
    }

    /**
     * Counts {@code [gold][predicted]}: entry {@code [i][j]} is the number of samples of gold
     * class i predicted as j. Ids must lie in {@code 0..numLabels-1}.
     */
    public static long[][] confusionMatrix(int[] gold, int[] predicted, int numLabels) {
        check(gold, predicted);
        long[][] cm = new long[numLabels][numLabels];
        for (int i = 0; i < gold.length; i++) {
            if (gold[i] >= numLabels || predicted[i] >= numLabels) {
                throw new Bert4jException("label id out of range at position " + i + ": gold " + gold[i]
                        + ", predicted " + predicted[i] + " (expected 0.." + (numLabels - 1) + ")");
            }
            cm[gold[i]][predicted[i]]++;
        }
        return cm;
    }

    private static double f1Unchecked(int[] gold, int[] predicted, int positive) {
        long tp = 0;
        long fp = 0;
        long fn = 0;
        for (int i = 0; i < gold.length; i++) {
            boolean g = gold[i] == positive;
            boolean p = predicted[i] == positive;
            if (g && p) {
                tp++;
            } else if (p) {
                fp++;
            } else if (g) {
                fn++;
            }
        }
        long denominator = 2 * tp + fp + fn;
        return denominator == 0 ? 0.0 : 2.0 * tp / denominator;
    }

    private static int maxLabel(int[] gold, int[] predicted) {
        check(gold, predicted);
        int max = 0;
        for (int i = 0; i < gold.length; i++) {
            max = Math.max(max, Math.max(gold[i], predicted[i]));
        }
        return max;
    }

    /** Equal, non-zero lengths and non-negative ids. */
    static void check(int[] gold, int[] predicted) {
        if (gold == null || predicted == null) {
            throw new Bert4jException("gold and predicted labels must not be null");
        }
        if (gold.length != predicted.length) {
            throw new Bert4jException("gold and predicted labels differ in length: " + gold.length
                    + " gold vs " + predicted.length + " predicted");
        }
        if (gold.length == 0) {
            throw new Bert4jException("cannot score an empty set of predictions");
        }
        for (int i = 0; i < gold.length; i++) {
            if (gold[i] < 0 || predicted[i] < 0) {
                throw new Bert4jException("negative label id at position " + i + ": gold " + gold[i]
                        + ", predicted " + predicted[i]);
            }
        }
    }
}
