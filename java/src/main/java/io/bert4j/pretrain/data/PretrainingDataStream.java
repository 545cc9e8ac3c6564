package io.bert4j.pretrain.data;

import io.bert4j.Bert4jException;
import io.bert4j.tokenize.BertTokenizer;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * An endless, resumable stream of pretraining batches over a corpus.
 *
 * <p>Epoch {@code k} is one pass of {@link InstanceBuilder} with seed {@code seed + k} (so
 * pairs, NSP negatives and order change every epoch), and each instance is masked by
 * {@link Masker} with (seed, k, instance index in the epoch): masks are dynamic, never baked
 * in. Batches do not cross epochs; an epoch's last batch may be smaller.
 *
 * <p>{@link #position()} is the (epoch, batch) of the batch {@link #next()} returns next. A
 * stream built with that position returns exactly the batches the original stream would
 * have returned from there on (it regenerates the epoch and skips, without masking, the
 * batches before the position).
 *
 * <p>Not thread-safe: one consumer.
 */
public final class PretrainingDataStream implements Iterator<PretrainingBatch> {

    /**
     * Settings of the stream.
     *
     * @param maxSeqLen        longest instance, specials included
     * @param batchSize        instances per batch
     * @param seed             the run's seed
     * @param shortSeqProb     chance of a shorter target length per chunk (0.1)
     * @param maskProb         fraction of tokens predicted (0.15)
     * @param maxPredictions   cap on predicted tokens per instance (round(0.15 * maxSeqLen))
     * @param wholeWordMasking mask whole words
     * @param documentBuffer   documents held for shuffling and NSP negatives (1000)
     * @param instanceBuffer   instances held for shuffling (1000)
     */
    public record Options(int maxSeqLen, int batchSize, long seed, double shortSeqProb, double maskProb,
                          int maxPredictions, boolean wholeWordMasking, int documentBuffer, int instanceBuffer) {
        public Options {
            if (batchSize < 1) {
                throw new Bert4jException("batchSize must be >= 1, got " + batchSize);
            }
        }

        /** BERT's defaults for the given sequence length, batch size and seed. */
        public static Options defaults(int maxSeqLen, int batchSize, long seed) {
            return new Options(maxSeqLen, batchSize, seed, 0.1, 0.15, Masker.defaultMaxPredictions(maxSeqLen),
                    false, 1000, 1000);
        }

        public Options withWholeWordMasking(boolean v) {
            return new Options(maxSeqLen, batchSize, seed, shortSeqProb, maskProb, maxPredictions, v,
                    documentBuffer, instanceBuffer);
        }

        public Options withSeed(long v) {
            return new Options(maxSeqLen, batchSize, v, shortSeqProb, maskProb, maxPredictions, wholeWordMasking,
                    documentBuffer, instanceBuffer);
        }

        public Options withBuffers(int documents, int instances) {
            return new Options(maxSeqLen, batchSize, seed, shortSeqProb, maskProb, maxPredictions, wholeWordMasking,
                    documents, instances);
        }
    }

    /**
     * Where a stream stands: the epoch and the index within it of the next batch. Its
     * {@link #toString()} form ({@code "epoch:batch"}) is what {@link #parse} reads, for
     * checkpoints.
     */
    public record Position(int epoch, long batch) {
        public Position {
            if (epoch < 0 || batch < 0) {
                throw new Bert4jException("data stream position must be non-negative, got epoch " + epoch
                        + ", batch " + batch);
            }
        }

        public static final Position START = new Position(0, 0);

        public static Position parse(String s) {
            int colon = s.indexOf(':');
            try {
                return new Position(Integer.parseInt(s.substring(0, colon)), Long.parseLong(s.substring(colon + 1)));
            } catch (RuntimeException e) {
                throw new Bert4jException("not a data stream position (expected \"epoch:batch\"): \"" + s + "\"");
            }
        }

        @Override
        public String toString() {
            return epoch + ":" + batch;
        }
    }

    private final Corpus corpus;
    private final Options options;
    private final InstanceBuilder builder;
    private final Masker masker;
    private final int padId;

    private int epoch;
    private long batchInEpoch;
    private long instanceInEpoch;
    private Iterator<TrainingInstance> instances;

    /** A stream from the start (epoch 0, batch 0). */
    public PretrainingDataStream(Corpus corpus, BertTokenizer tokenizer, Options options) {
        this(corpus, tokenizer, options, Position.START);
    }

    /**
     * A stream resuming at {@code position}. Fails if the corpus has fewer than two documents,
     * or if the position's epoch has fewer batches than it says.
     */
    public PretrainingDataStream(Corpus corpus, BertTokenizer tokenizer, Options options, Position position) {
        corpus.requireNspDocuments();
        this.corpus = corpus;
        this.options = options;
        this.builder = new InstanceBuilder(tokenizer, options.maxSeqLen(), options.shortSeqProb(),
                options.documentBuffer(), options.instanceBuffer());
        this.masker = new Masker(tokenizer, options.maskProb(), options.maxPredictions(), options.wholeWordMasking());
        this.padId = tokenizer.padId();
        startEpoch(position.epoch());
        for (long b = 0; b < position.batch(); b++) {
            nextBatch(false);
            // position() never names the batch after an epoch's last one: it moves to the next epoch.
            if (epoch != position.epoch()) {
                throw new Bert4jException("cannot resume at " + position + ": epoch " + position.epoch() + " of "
                        + corpus.name() + " has only " + (b + 1) + " batches of " + options.batchSize()
                        + " (was the corpus or a setting changed?)");
            }
        }
    }

    public Options options() {
        return options;
    }

    /** The position of the batch {@link #next()} returns next. */
    public Position position() {
        return new Position(epoch, batchInEpoch);
    }

    /** Always true: the stream starts a new epoch when one ends. */
    @Override
    public boolean hasNext() {
        return true;
    }

    @Override
    public PretrainingBatch next() {
        return nextBatch(true);
    }

    private void startEpoch(int e) {
        epoch = e;
        batchInEpoch = 0;
        instanceInEpoch = 0;
        instances = builder.instances(corpus, options.seed() + e);
        if (!instances.hasNext()) {
            throw new Bert4jException("corpus " + corpus.name() + " yields no training instances");
        }
    }

    private PretrainingBatch nextBatch(boolean materialize) {
        List<TrainingInstance> batch = new ArrayList<>(options.batchSize());
        List<Masker.Masked> masked = new ArrayList<>(options.batchSize());
        for (int taken = 0; taken < options.batchSize() && instances.hasNext(); taken++) {
            TrainingInstance in = instances.next();
            if (materialize) {
                batch.add(in);
                masked.add(masker.mask(in.inputIds(), options.seed(), epoch, instanceInEpoch));
            }
            instanceInEpoch++;
        }
        batchInEpoch++;
        // Look ahead, so position() after an epoch's last batch already names the next epoch.
        if (!instances.hasNext()) {
            startEpoch(epoch + 1);
        }
        return materialize ? PretrainingBatch.of(batch, masked, padId) : null;
    }

    /**
     * A fixed evaluation set: the batches of epoch 0 of {@code corpus} (typically a
     * {@link Corpus#split held-out split}), at most {@code maxBatches} of them. The same
     * arguments give the same instances and the same masks every time, so evaluation losses
     * are comparable across a run.
     */
    public static List<PretrainingBatch> evaluationBatches(Corpus corpus, BertTokenizer tokenizer, Options options,
                                                           int maxBatches) {
        PretrainingDataStream s = new PretrainingDataStream(corpus, tokenizer, options);
        List<PretrainingBatch> out = new ArrayList<>();
        while (out.size() < maxBatches && s.epoch == 0) {
            out.add(s.next());
        }
        return out;
    }
}
