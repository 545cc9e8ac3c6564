package io.bert4j.train;

import io.bert4j.Bert4jException;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.function.Function;
import java.util.function.ToIntFunction;

/**
 * Endless batches over an in-memory dataset, epoch after epoch, for fine-tuning: each epoch is a
 * fresh seeded shuffle, optionally grouped by length so that a batch holds examples of similar
 * length and pads little when each batch is padded only to its own longest example.
 *
 * <p>Length grouping follows the usual "megabatch" scheme: after the shuffle, the examples are cut
 * into chunks of {@value #GROUP_BATCHES} batches, each chunk is sorted by length (longest first) and
 * cut into batches, and the order of all the epoch's batches is shuffled again, so long and short
 * batches alternate and the data stays well mixed across the epoch.
 *
 * <p>The order of epoch {@code e} is a pure function of (seed, e, lengths), so {@link #position()}
 * ({@code "epoch:index"}, the index of the next batch within its epoch) is all a checkpoint needs:
 * reopening at it gives exactly the batches that would have followed. The last batch of an epoch
 * may be smaller (nothing is dropped).
 *
 * <p>{@code collate} turns the examples of one batch into the batch (tensors, padded to the batch's
 * own longest example); it runs inside {@link #next()}, thus inside the trainer's per-step scope.
 *
 * @param <E> the example type
 * @param <B> the batch type
 */
public final class EpochBatches<E, B> implements DataSource<B> {
    /** Batches per length-sorted chunk. */
    public static final int GROUP_BATCHES = 50;

    private final List<E> examples;
    private final int batchSize;
    private final long seed;
    private final int[] lengths; // null: no length grouping
    private final Function<List<E>, B> collate;
    private long epoch;
    private int index;
    private int[][] plan; // the current epoch's batches, as example indices

    /**
     * @param examples  the dataset (not copied; must not change while in use)
     * @param batchSize examples per batch
     * @param seed      seed of the per-epoch shuffles
     * @param length    an example's length in tokens for length grouping, or null for a plain shuffle
     * @param collate   builds a batch from its examples
     * @param position  where to start: null or "" for the beginning, or a {@link #position()} string
     */
    public EpochBatches(List<E> examples, int batchSize, long seed, ToIntFunction<E> length,
                        Function<List<E>, B> collate, String position) {
        if (examples.isEmpty()) {
            throw new Bert4jException("no training examples");
        }
        if (batchSize < 1) {
            throw new Bert4jException("batch size must be >= 1, got " + batchSize);
        }
        this.examples = examples;
        this.batchSize = batchSize;
        this.seed = seed;
        this.collate = collate;
        if (length != null) {
            lengths = new int[examples.size()];
            for (int i = 0; i < lengths.length; i++) {
                lengths[i] = length.applyAsInt(examples.get(i));
            }
        } else {
            lengths = null;
        }
        long[] at = parsePosition(position);
        if (at[1] > batchesPerEpoch()) {
            throw new Bert4jException("data position " + position + " is beyond the " + batchesPerEpoch()
                    + " batches of an epoch; was the checkpoint written with other data or another batch size?");
        }
        epoch = at[0];
        index = (int) at[1];
        plan = plan(epoch);
    }

    private static long[] parsePosition(String position) {
        if (position == null || position.isEmpty()) {
            return new long[] {0, 0};
        }
        int colon = position.indexOf(':');
        try {
            if (colon > 0) {
                long e = Long.parseLong(position.substring(0, colon));
                long i = Long.parseLong(position.substring(colon + 1));
                if (e >= 0 && i >= 0) {
                    return new long[] {e, i};
                }
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new Bert4jException("bad data position '" + position + "' (expected epoch:index)");
    }

    /** Batches in one epoch: ceil(examples / batchSize). */
    public int batchesPerEpoch() {
        return batchesPerEpoch(examples.size(), batchSize);
    }

    public static int batchesPerEpoch(int examples, int batchSize) {
        return (examples + batchSize - 1) / batchSize;
    }

    /**
     * Optimizer steps in one epoch when each step takes {@code accumulation} batches: rounded up, so
     * that an epoch's last batches still make a step (its missing micro-batches come from the next epoch).
     */
    public static long stepsPerEpoch(int examples, int batchSize, int accumulation) {
        return Math.max(1, (batchesPerEpoch(examples, batchSize) + accumulation - 1) / accumulation);
    }

    /** The epoch of the next batch (0-based). */
    public long epoch() {
        return index >= plan.length ? epoch + 1 : epoch;
    }

    @Override
    public B next() {
        if (index >= plan.length) {
            epoch++;
            index = 0;
            plan = plan(epoch);
        }
        int[] ids = plan[index++];
        List<E> batch = new ArrayList<>(ids.length);
        for (int i : ids) {
            batch.add(examples.get(i));
        }
        return collate.apply(batch);
    }

    @Override
    public String position() {
        // At the end of an epoch this already names the next one: "2:0" rather than "1:33".
        return index >= plan.length ? (epoch + 1) + ":0" : epoch + ":" + index;
    }

    /** The example indices of each batch of epoch {@code e}, in order. Package-private for tests. */
    int[][] plan(long e) {
        int n = examples.size();
        Random r = new Random(Trainer.stepSeed(seed, e)); // decorrelated per epoch, like the trainer's step seeds
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        shuffle(order, r);
        int batches = batchesPerEpoch();
        int[][] out = new int[batches][];
        if (lengths == null) {
            for (int b = 0; b < batches; b++) {
                out[b] = Arrays.copyOfRange(order, b * batchSize, Math.min(n, (b + 1) * batchSize));
            }
            return out;
        }
        int chunk = GROUP_BATCHES * batchSize;
        Integer[] boxed = new Integer[n];
        for (int i = 0; i < n; i++) {
            boxed[i] = order[i];
        }
        // Stable sort: ties keep the shuffled order, so the result is still a function of the seed.
        Comparator<Integer> longestFirst = Comparator.comparingInt((Integer i) -> lengths[i]).reversed();
        for (int s = 0; s < n; s += chunk) {
            Arrays.sort(boxed, s, Math.min(n, s + chunk), longestFirst);
        }
        for (int b = 0; b < batches; b++) {
            int from = b * batchSize, to = Math.min(n, (b + 1) * batchSize);
            out[b] = new int[to - from];
            for (int i = from; i < to; i++) {
                out[b][i - from] = boxed[i];
            }
        }
        shuffle(out, r);
        return out;
    }

    private static void shuffle(int[] a, Random r) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }

    private static void shuffle(int[][] a, Random r) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int[] t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
}
