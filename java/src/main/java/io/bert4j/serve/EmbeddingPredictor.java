package io.bert4j.serve;

import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.pipeline.Embedder;
import io.bert4j.pipeline.Pooling;
import io.bert4j.tokenize.Encoding;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A thread-safe sentence-embedding predictor for many request threads: each call tokenizes and
 * validates its texts on the caller's thread, then hands them to a {@link DynamicBatcher}, which
 * runs texts arriving together as one padding-free batch (up to {@code maxBatchTokens} tokens,
 * waiting at most {@code maxWait} for company while other calls are still tokenizing) and answers
 * each text individually. Native memory
 * is scoped per batch. Results equal {@link Bert#embed} of the same texts within float rounding.
 *
 * <pre>{@code
 * try (Bert bert = Bert.loadDefault();
 *      EmbeddingPredictor p = new EmbeddingPredictor(bert, EmbeddingPredictor.Settings.DEFAULTS)) {
 *     float[][] v = p.embed(List.of("I like eating apples."), true);   // from any thread
 * }
 * }</pre>
 */
public final class EmbeddingPredictor implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }


    /**
     * @param maxBatchTokens token budget of one batch
     * @param maxWait how long the first text of a batch may wait for others, while other calls
     *     are still tokenizing theirs (with none on the way a batch starts at once)
     * @param maxQueued texts allowed to wait; beyond that a call fails at once with
     *     {@link DynamicBatcher.Overloaded}
     * @param timeout how long a call waits for its answer before failing with
     *     {@link TimeoutException} (its texts are dropped if still queued)
     * @param truncate cut texts over the model's limit instead of refusing them
     * @param batching false: every call runs its own forward pass on its own thread (no batcher;
     *     for comparison), with no queue limit or timeout
     */
    public record Settings(int maxBatchTokens, Duration maxWait, int maxQueued, Duration timeout, boolean truncate,
                           boolean batching) {
        public static final Settings DEFAULTS = new Settings(8192, Duration.ofMillis(2), 1024, Duration.ofSeconds(30), false, true);

        public Settings(int maxBatchTokens, Duration maxWait, int maxQueued, Duration timeout, boolean truncate) {
            this(maxBatchTokens, maxWait, maxQueued, timeout, truncate, true);
        }

        public Settings withBatching(boolean b) {
            return new Settings(maxBatchTokens, maxWait, maxQueued, timeout, truncate, b);
        }

        public Settings withMaxBatchTokens(int n) {
            return new Settings(n, maxWait, maxQueued, timeout, truncate, batching);
        }

        public Settings withMaxWait(Duration d) {
            return new Settings(maxBatchTokens, d, maxQueued, timeout, truncate, batching);
        }

        public Settings withMaxQueued(int n) {
            return new Settings(maxBatchTokens, maxWait, n, timeout, truncate, batching);
        }

        public Settings withTimeout(Duration d) {
            return new Settings(maxBatchTokens, maxWait, maxQueued, d, truncate, batching);
        }

        public Settings withTruncate(boolean t) {
            return new Settings(maxBatchTokens, maxWait, maxQueued, timeout, t, batching);
        }
    }

    private final Embedder embedder;
    private final Pooling pooling;
    private final int limit;
    private final Settings settings;
    private final DynamicBatcher<Encoding, float[]> batcher;

    /**
     * Also prepares {@code bert}'s model for inference ({@link io.bert4j.model.BertModel#prepareInference}):
     * set its kernels and int8 mode before this.
     */
    public EmbeddingPredictor(Bert bert, Settings settings) {
        this.embedder = bert.embedder();
        this.pooling = embedder.defaultPooling();
        this.limit = embedder.lengthLimit();
        this.settings = settings;
        if (settings.maxBatchTokens() < limit) {
            throw new Bert4jException("max batch tokens " + settings.maxBatchTokens()
                    + " is below the model's longest input (" + limit + " tokens)");
        }
        // Pack the small-batch weights now rather than inside the first few requests.
        bert.model().prepareInference();
        // A batch waits for company only while other calls are still tokenizing: a lone request
        // (concurrency 1) starts at once instead of paying maxWait.
        this.batcher = new DynamicBatcher<>(
                batch -> Arrays.asList(embedder.embedBatch(batch, pooling, false)),
                Encoding::length, settings.maxBatchTokens(), settings.maxWait(), settings.maxQueued(), true,
                "bert4j-embed-batcher");
    }

    /** The batcher's counters (for metrics). */
    public DynamicBatcher<Encoding, float[]> batcher() {
        return batcher;
    }

    /** The pooling applied (the model's sentence-transformers setting, else mean). */
    public Pooling pooling() {
        return pooling;
    }

    /** The longest input in tokens (longer ones are refused, or cut with {@code truncate}). */
    public int maxLength() {
        return limit;
    }

    /**
     * Embeds {@code texts}; safe to call from many threads at once.
     *
     * @throws InputTooLong when a text is over the model's limit and truncation is off
     * @throws DynamicBatcher.Overloaded when too many texts are already waiting
     * @throws TimeoutException when the answer took longer than the configured timeout
     */
    public float[][] embed(List<String> texts, boolean normalize) throws TimeoutException {
        return embedCounted(texts, normalize).vectors();
    }

    /** Vectors and the number of tokens the model ran on (after any truncation). */
    public record Embeddings(float[][] vectors, int tokens) {
    }

    /** {@link #embed}, also reporting the tokens embedded (e.g. for usage counts), tokenizing once. */
    public Embeddings embedCounted(List<String> texts, boolean normalize) throws TimeoutException {
        if (texts.isEmpty()) {
            throw new Bert4jException("nothing to embed: the list of texts is empty");
        }
        EmbedOptions opts = settings.truncate() ? EmbedOptions.DEFAULTS.withMaxLength(limit) : EmbedOptions.DEFAULTS;
        if (settings.batching()) {
            batcher.announce(); // tokenizing: a batch starting now may wait for these texts
        }
        List<Encoding> enc;
        List<CompletableFuture<float[]>> futures = null;
        try {
            try {
                enc = embedder.encode(texts, opts);
            } catch (Bert4jException e) {
                if (e.getMessage().contains("over the model's limit")) {
                    throw new InputTooLong(e.getMessage());
                }
                throw e;
            }
            if (settings.batching()) {
                futures = batcher.submitAll(enc);
            }
        } finally {
            if (settings.batching()) {
                batcher.arrived();
            }
        }
        int tokens = 0;
        for (Encoding e : enc) {
            tokens += e.length();
        }
        if (!settings.batching()) {
            float[][] out = embedder.embedBatch(enc, pooling, false);
            if (normalize) {
                for (int i = 0; i < out.length; i++) {
                    out[i] = normalized(out[i]);
                }
            }
            return new Embeddings(out, tokens);
        }
        long deadline = System.nanoTime() + settings.timeout().toNanos();
        float[][] out = new float[texts.size()][];
        try {
            for (int i = 0; i < out.length; i++) {
                long left = deadline - System.nanoTime();
                out[i] = futures.get(i).get(Math.max(0, left), TimeUnit.NANOSECONDS);
                if (normalize) {
                    out[i] = normalized(out[i]);
                }
            }
        } catch (TimeoutException e) {
            futures.forEach(f -> f.cancel(false));
            throw new TimeoutException("no answer within " + settings.timeout().toMillis() + " ms");
        } catch (InterruptedException e) {
            futures.forEach(f -> f.cancel(false));
            Thread.currentThread().interrupt();
            throw new Bert4jException("interrupted while waiting for embeddings", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            throw new Bert4jException("embedding failed: " + c, c);
        }
        return new Embeddings(out, tokens);
    }

    static float[] normalized(float[] v) {
        double n = 0;
        for (float x : v) {
            n += (double) x * x;
        }
        double inv = 1.0 / Math.max(Math.sqrt(n), 1e-12);
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] * inv);
        }
        return out;
    }

    /** A text over the model's limit while truncation is off (an HTTP server answers 413). */
    public static final class InputTooLong extends Bert4jException {
        public InputTooLong(String message) {
            super(message);
        }
    }

    /** Refuses new calls, answers the queued texts, stops the batching thread. */
    @Override
    public void close() {
        batcher.close();
    }
}
