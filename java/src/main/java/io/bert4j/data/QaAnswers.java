package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.tokenize.Encoding;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Answers from start/end logits, as run_qa's postprocessing (SQuAD v1: there is always an
 * answer): for each feature of an example, the {@code nBestSize} highest start and end
 * logits are paired; pairs outside the context, reversed, or longer than
 * {@code maxAnswerLength} tokens are dropped; a pair scores {@code start + end logit}; the
 * {@code nBestSize} best over all features are kept and their probabilities are the
 * softmax of their scores.
 *
 * <p>Ties are broken deterministically: equal logits by lower token index, equal scores by
 * feature order, then start, then end.
 */
public final class QaAnswers {
    private QaAnswers() {
    }

    /**
     * A candidate answer.
     *
     * @param start       first char in the context
     * @param end         char after the last one
     * @param score       start logit + end logit
     * @param probability softmax of the score over the kept candidates
     * @param feature     index of the feature (in the list given) it came from
     * @param startToken  its start token in that feature
     * @param endToken    its end token, inclusive
     */
    public record Prediction(String text, int start, int end, double score, double probability, int feature,
                             int startToken, int endToken) {
    }

    /**
     * The candidates of one example, best first; empty when no pair passes the rules.
     *
     * @param context     the example's context
     * @param features    the example's features
     * @param startLogits per feature, one logit per token (longer arrays, from a padded
     *                    batch, are fine: tokens past the feature's length are never chosen)
     * @param endLogits   as startLogits
     */
    public static List<Prediction> nBest(String context, List<QaFeatures.Feature> features,
                                         List<float[]> startLogits, List<float[]> endLogits,
                                         int nBestSize, int maxAnswerLength) {
        if (nBestSize < 1) {
            throw new Bert4jException("QA n-best size must be >= 1, got " + nBestSize);
        }
        if (maxAnswerLength < 1) {
            throw new Bert4jException("QA max answer length must be >= 1, got " + maxAnswerLength);
        }
        if (startLogits.size() != features.size() || endLogits.size() != features.size()) {
            throw new Bert4jException("QA logits are given for " + startLogits.size() + "/" + endLogits.size()
                    + " features but the example has " + features.size());
        }
        List<Prediction> candidates = new ArrayList<>();
        for (int f = 0; f < features.size(); f++) {
            QaFeatures.Feature feature = features.get(f);
            float[] sl = startLogits.get(f);
            float[] el = endLogits.get(f);
            if (sl.length < feature.length() || el.length < feature.length()) {
                throw new Bert4jException("QA logits of feature " + f + " have " + sl.length + "/" + el.length
                        + " values but the feature has " + feature.length() + " tokens");
            }
            List<Encoding.Span> offsets = feature.offsets();
            for (int s : topIndices(sl, feature.length(), nBestSize)) {
                for (int e : topIndices(el, feature.length(), nBestSize)) {
                    if (offsets.get(s) == null || offsets.get(e) == null) {
                        continue;
                    }
                    if (e < s || e - s + 1 > maxAnswerLength) {
                        continue;
                    }
                    int startChar = offsets.get(s).start();
                    int endChar = offsets.get(e).end();
                    if (endChar < startChar || endChar > context.length()) {
                        throw new Bert4jException("QA feature of example " + feature.exampleId()
                                + " has offsets past its context (" + startChar + ".." + endChar + " of "
                                + context.length() + " chars): features and context do not belong together");
                    }
                    candidates.add(new Prediction(context.substring(startChar, endChar), startChar, endChar,
                            (double) sl[s] + el[e], 0, f, s, e));
                }
            }
        }
        candidates.sort(Comparator.comparingDouble(Prediction::score).reversed()
                .thenComparingInt(Prediction::feature)
                .thenComparingInt(Prediction::startToken)
                .thenComparingInt(Prediction::endToken));
        List<Prediction> kept = candidates.subList(0, Math.min(nBestSize, candidates.size()));
        if (kept.isEmpty()) {
            return List.of();
        }
        double max = kept.get(0).score();
        double sum = 0;
        for (Prediction p : kept) {
            sum += Math.exp(p.score() - max);
        }
        List<Prediction> out = new ArrayList<>(kept.size());
        for (Prediction p : kept) {
            out.add(new Prediction(p.text(), p.start(), p.end(), p.score(), Math.exp(p.score() - max) / sum,
                    p.feature(), p.startToken(), p.endToken()));
        }
        return List.copyOf(out);
    }

    /**
     * The best answer of one example; when no pair passes the rules, an empty answer at 0
     * with score 0 and probability 1 (run_qa's "empty" fallback).
     */
    public static Prediction best(String context, List<QaFeatures.Feature> features, List<float[]> startLogits,
                                  List<float[]> endLogits, int nBestSize, int maxAnswerLength) {
        List<Prediction> n = nBest(context, features, startLogits, endLogits, nBestSize, maxAnswerLength);
        return n.isEmpty() ? new Prediction("", 0, 0, 0, 1, -1, -1, -1) : n.get(0);
    }

    /** Indices of the k largest values among the first n, largest first, lower index on ties. */
    static int[] topIndices(float[] values, int n, int k) {
        Integer[] idx = new Integer[n];
        for (int i = 0; i < n; i++) {
            idx[i] = i;
        }
        // Stable sort: equal values keep index order. NaN sorts last (Float.compare puts it highest).
        java.util.Arrays.sort(idx, (a, b) -> {
            float va = values[a];
            float vb = values[b];
            boolean na = Float.isNaN(va);
            boolean nb = Float.isNaN(vb);
            if (na || nb) {
                return Boolean.compare(na, nb);
            }
            return Float.compare(vb, va);
        });
        int m = Math.min(k, n);
        int[] out = new int[m];
        for (int i = 0; i < m; i++) {
            out[i] = idx[i];
        }
        return out;
    }
}
