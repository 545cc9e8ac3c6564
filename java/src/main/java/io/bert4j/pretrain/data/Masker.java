package io.bert4j.pretrain.data;

import io.bert4j.Bert4jException;
import io.bert4j.tokenize.BertTokenizer;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Dynamic MLM masking, as in BERT: of the {@code n} non-special positions of an instance,
 * {@code maskProb * n} are selected, rounded down or up at random so that the expected count
 * is exact (at least 1, at most {@code maxPredictions}); a
 * selected position becomes [MASK] with probability 0.8, a random non-special token with
 * probability 0.1, and stays unchanged with probability 0.1. Labels hold the original id at
 * selected positions and {@link #IGNORE_INDEX} elsewhere (the value PyTorch's cross entropy
 * skips).
 *
 * <p>With whole-word masking, a word (a token and the {@code ##} pieces that follow it) is
 * selected or skipped as a unit, and words that would overshoot the count are skipped, as in
 * Google's implementation.
 *
 * <p>The result depends only on (seed, epoch, index) and the instance, so masks are fresh
 * every epoch yet any batch can be regenerated exactly (resuming, fixed evaluation masks).
 * Instances are never modified. Thread-safe.
 */
public final class Masker {
    /** Label of positions that are not predicted. */
    public static final int IGNORE_INDEX = -100;

    private final double maskProb;
    private final int maxPredictions;
    private final boolean wholeWord;
    private final int maskId;
    private final boolean[] special;      // by id: never selected, never used as a random replacement
    private final boolean[] continuation; // by id: a "##" piece
    private final int[] randomPool;       // ids a selected token may be replaced by

    /**
     * @param maskProb       fraction of non-special positions to predict (BERT: 0.15)
     * @param maxPredictions cap on predicted positions per instance (BERT: round(0.15 * maxSeqLen))
     * @param wholeWord      select whole words rather than single tokens
     */
    public Masker(BertTokenizer tokenizer, double maskProb, int maxPredictions, boolean wholeWord) {
        if (!(maskProb > 0 && maskProb < 1)) {
            throw new Bert4jException("maskProb must be in (0, 1), got " + maskProb);
        }
        if (maxPredictions < 1) {
            throw new Bert4jException("maxPredictions must be >= 1, got " + maxPredictions);
        }
        this.maskProb = maskProb;
        this.maxPredictions = maxPredictions;
        this.wholeWord = wholeWord;
        this.maskId = tokenizer.maskId();
        int v = tokenizer.vocabSize();
        this.special = new boolean[v];
        this.continuation = new boolean[v];
        for (int id : new int[] {tokenizer.padId(), tokenizer.unkId(), tokenizer.clsId(), tokenizer.sepId(), maskId}) {
            special[id] = true;
        }
        int[] pool = new int[v];
        int n = 0;
        for (int id = 0; id < v; id++) {
            String tok;
            try {
                tok = tokenizer.idToToken(id);
            } catch (Bert4jException gap) {
                special[id] = true;  // no token has this id: never emit it
                continue;
            }
            continuation[id] = tok.startsWith("##");
            if (!special[id]) {
                pool[n++] = id;
            }
        }
        if (n == 0) {
            throw new Bert4jException("the vocabulary has no non-special tokens to mask with");
        }
        this.randomPool = Arrays.copyOf(pool, n);
    }

    /** The default cap for a sequence length: round(0.15 * maxSeqLen), at least 1. */
    public static int defaultMaxPredictions(int maxSeqLen) {
        return Math.max(1, (int) Math.round(0.15 * maxSeqLen));
    }

    /**
     * A masked copy of the input and its labels.
     *
     * @param inputIds an instance's ids (special tokens are recognised by id and left alone)
     * @param seed     the run's seed
     * @param epoch    the epoch (fresh masks per epoch)
     * @param index    the instance's index within the epoch
     */
    public Masked mask(int[] inputIds, long seed, long epoch, long index) {
        SplittableRandom rng = Seeds.random(seed, Seeds.MASKING, epoch, index);
        int n = inputIds.length;
        // Candidate units: word start positions (word = start .. next start - 1).
        int[] starts = new int[n + 1];
        int[] ends = new int[n + 1];
        int units = 0;
        int eligible = 0;
        for (int p = 0; p < n; p++) {
            int id = inputIds[p];
            if (id < 0 || id >= special.length) {
                throw new Bert4jException("token id " + id + " at position " + p + " is outside the vocabulary (size "
                        + special.length + ")");
            }
            if (special[id]) {
                continue;
            }
            eligible++;
            boolean joins = wholeWord && continuation[id] && units > 0 && ends[units - 1] == p;
            if (joins) {
                ends[units - 1] = p + 1;
            } else {
                starts[units] = p;
                ends[units] = p + 1;
                units++;
            }
        }
        int[] labels = new int[n];
        Arrays.fill(labels, IGNORE_INDEX);
        int[] out = inputIds.clone();
        if (eligible == 0) {
            return new Masked(out, labels);
        }
        // Randomized rounding: the expected count is exactly maskProb * eligible, where plain
        // rounding would bias it (e.g. 125 * 0.15 = 18.75 -> 19 on every full-length instance).
        double want = eligible * maskProb;
        int toPredict = (int) Math.floor(want);
        if (rng.nextDouble() < want - toPredict) {
            toPredict++;
        }
        toPredict = Math.min(maxPredictions, Math.max(1, toPredict));
        int[] order = new int[units];
        for (int u = 0; u < units; u++) {
            order[u] = u;
        }
        for (int u = units - 1; u > 0; u--) {
            int r = rng.nextInt(u + 1);
            int t = order[u];
            order[u] = order[r];
            order[r] = t;
        }
        boolean[] selected = new boolean[n];
        int count = 0;
        for (int k = 0; k < units && count < toPredict; k++) {
            int u = order[k];
            int len = ends[u] - starts[u];
            if (count + len > toPredict) {
                continue;  // would overshoot: try a shorter word
            }
            for (int p = starts[u]; p < ends[u]; p++) {
                selected[p] = true;
            }
            count += len;
        }
        // Replacement draws in position order, so they do not depend on the selection order.
        for (int p = 0; p < n; p++) {
            if (!selected[p]) {
                continue;
            }
            labels[p] = inputIds[p];
            double r = rng.nextDouble();
            if (r < 0.8) {
                out[p] = maskId;
            } else if (r < 0.9) {
                out[p] = randomPool[rng.nextInt(randomPool.length)];
            }
            // else: unchanged, but still predicted
        }
        return new Masked(out, labels);
    }

    /**
     * A masked instance.
     *
     * @param inputIds the model input, with [MASK]/random/unchanged tokens at selected positions
     * @param labels   the original id at selected positions, {@link #IGNORE_INDEX} elsewhere
     */
    public record Masked(int[] inputIds, int[] labels) {
    }
}
