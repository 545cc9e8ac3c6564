package io.bert4j.serve;

import io.bert4j.Bert4jException;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.ToIntFunction;

/**
 * Dynamic batching for many request threads sharing one model: {@link #submit} queues an item and
 * returns its future at once; one worker thread takes the oldest item, waits at most
 * {@code maxWait} for more to arrive, and runs everything that fits in the token budget
 * ({@code maxBatchTokens}, each item costing {@code cost(item)} tokens) as one batch, answering
 * each item's future with its own result. A lone item is never delayed beyond {@code maxWait}; an
 * item larger than the budget runs as a batch of its own.
 *
 * <p>Backpressure instead of collapse: with {@code maxQueued} items already waiting, {@link
 * #submit} fails at once with {@link Overloaded} (an HTTP server answers 429). A future cancelled
 * while its item is still queued (a caller's timeout) is dropped from the batch. If the batch
 * function throws, every item of that batch fails with the exception. {@link #close()} refuses new
 * items, finishes the queued ones, then stops the worker.
 *
 * @param <I> an item (e.g. a tokenized text)
 * @param <O> its result
 */
public final class DynamicBatcher<I, O> implements AutoCloseable {

    /** {@link #submit} while {@code maxQueued} items are already waiting. */
    public static final class Overloaded extends Bert4jException {
        public Overloaded(String message) {
            super(message);
        }
    }

    /** {@link #submit} after {@link #close()}. */
    public static final class Closed extends Bert4jException {
        public Closed(String message) {
            super(message);
        }
    }

    /** Counters since creation, read without stopping the worker. */
    public record Stats(long submitted, long rejected, long batches, long items, long tokens, int queued) {
    }

    private record Pending<I, O>(I item, int cost, long arrivedNanos, CompletableFuture<O> future) {
    }

    private final Function<List<I>, List<O>> batchFn;
    private final ToIntFunction<I> cost;
    private final int maxBatchTokens;
    private final long maxWaitNanos;
    private final int maxQueued;
    private final boolean waitOnlyForAnnounced;
    private int announced;  // items on their way (announce() minus arrived()); guarded by queue
    private final ArrayDeque<Pending<I, O>> queue = new ArrayDeque<>();
    private final Thread worker;
    private boolean closed;
    private final AtomicLong submitted = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final AtomicLong batches = new AtomicLong();
    private final AtomicLong items = new AtomicLong();
    private final AtomicLong tokens = new AtomicLong();
    private final List<java.util.function.IntConsumer> batchListeners = new java.util.concurrent.CopyOnWriteArrayList<>();

    /**
     * @param batchFn runs one batch; returns one result per item, in order
     * @param cost an item's cost in tokens (at least 1)
     * @param maxBatchTokens the token budget of a batch (at least 1)
     * @param maxWait how long the oldest item may wait for company (zero: batch only what is queued)
     * @param maxQueued items allowed to wait before {@link #submit} refuses (at least 1)
     * @param name the worker thread's name
     */
    public DynamicBatcher(Function<List<I>, List<O>> batchFn, ToIntFunction<I> cost, int maxBatchTokens,
                          Duration maxWait, int maxQueued, String name) {
        this(batchFn, cost, maxBatchTokens, maxWait, maxQueued, false, name);
    }

    /**
     * @param waitOnlyForAnnounced true: the oldest item waits for company (up to {@code maxWait})
     *     only while other items are on their way, announced by callers through {@link #announce()}
     *     (e.g. requests still being tokenized); with none announced a batch starts at once, so a
     *     lone request never pays the wait. False: it always waits up to {@code maxWait}.
     * @see #DynamicBatcher(Function, ToIntFunction, int, Duration, int, String)
     */
    public DynamicBatcher(Function<List<I>, List<O>> batchFn, ToIntFunction<I> cost, int maxBatchTokens,
                          Duration maxWait, int maxQueued, boolean waitOnlyForAnnounced, String name) {
        this.waitOnlyForAnnounced = waitOnlyForAnnounced;
        this.batchFn = Objects.requireNonNull(batchFn, "batchFn");
        this.cost = Objects.requireNonNull(cost, "cost");
        if (maxBatchTokens < 1) {
            throw new Bert4jException("max batch tokens must be at least 1, got " + maxBatchTokens);
        }
        if (maxWait.isNegative()) {
            throw new Bert4jException("max wait must not be negative, got " + maxWait);
        }
        if (maxQueued < 1) {
            throw new Bert4jException("max queued must be at least 1, got " + maxQueued);
        }
        this.maxBatchTokens = maxBatchTokens;
        this.maxWaitNanos = maxWait.toNanos();
        this.maxQueued = maxQueued;
        this.worker = new Thread(this::run, name);
        this.worker.setDaemon(true);
        this.worker.start();
    }

    /**
     * Says that a caller is preparing items it will submit (or give up on); pair every call with
     * one {@link #arrived()} after its submit (or failure). Only used with
     * {@code waitOnlyForAnnounced}.
     */
    public void announce() {
        synchronized (queue) {
            announced++;
        }
    }

    /** Ends an {@link #announce()}: the caller's items are queued, or will not come. */
    public void arrived() {
        synchronized (queue) {
            announced = Math.max(0, announced - 1);
            queue.notifyAll();
        }
    }

    /** Calls {@code listener} with the item count of every batch run (for metrics). */
    public void onBatch(java.util.function.IntConsumer listener) {
        batchListeners.add(listener);
    }

    /**
     * Queues one item. The future completes with its result, or exceptionally with the batch's
     * failure; cancelling it before its batch starts drops the item.
     *
     * @throws Overloaded when {@code maxQueued} items are already waiting
     * @throws Closed after {@link #close()}
     */
    public CompletableFuture<O> submit(I item) {
        int c = cost.applyAsInt(item);
        if (c < 1) {
            throw new Bert4jException("an item must cost at least 1 token, got " + c);
        }
        CompletableFuture<O> f = new CompletableFuture<>();
        synchronized (queue) {
            if (closed) {
                throw new Closed("the batcher is shut down");
            }
            if (queue.size() >= maxQueued) {
                rejected.incrementAndGet();
                throw new Overloaded("overloaded: " + queue.size() + " items already queued (max " + maxQueued + ")");
            }
            queue.addLast(new Pending<>(item, c, System.nanoTime(), f));
            submitted.incrementAndGet();
            queue.notifyAll();
        }
        return f;
    }

    /**
     * Queues several items at once (one request): all are accepted or none. Refused when they
     * would take the queue past {@code maxQueued}, unless the queue is empty.
     */
    public List<CompletableFuture<O>> submitAll(List<I> all) {
        int[] costs = new int[all.size()];
        for (int i = 0; i < costs.length; i++) {
            costs[i] = cost.applyAsInt(all.get(i));
            if (costs[i] < 1) {
                throw new Bert4jException("an item must cost at least 1 token, got " + costs[i]);
            }
        }
        List<CompletableFuture<O>> out = new ArrayList<>(all.size());
        synchronized (queue) {
            if (closed) {
                throw new Closed("the batcher is shut down");
            }
            // A request larger than the limit is still taken when nothing is waiting.
            if (!queue.isEmpty() && queue.size() + all.size() > maxQueued) {
                rejected.incrementAndGet();
                throw new Overloaded("overloaded: " + queue.size() + " items queued, " + all.size()
                        + " more would exceed the limit of " + maxQueued);
            }
            long now = System.nanoTime();
            for (int i = 0; i < costs.length; i++) {
                CompletableFuture<O> f = new CompletableFuture<>();
                queue.addLast(new Pending<>(all.get(i), costs[i], now, f));
                out.add(f);
            }
            submitted.addAndGet(all.size());
            queue.notifyAll();
        }
        return out;
    }

    public Stats stats() {
        int q;
        synchronized (queue) {
            q = queue.size();
        }
        return new Stats(submitted.get(), rejected.get(), batches.get(), items.get(), tokens.get(), q);
    }

    /** Items waiting now. */
    public int queued() {
        synchronized (queue) {
            return queue.size();
        }
    }

    private void run() {
        while (true) {
            List<Pending<I, O>> batch = nextBatch();
            if (batch == null) {
                return;
            }
            if (batch.isEmpty()) {
                continue;
            }
            List<I> in = new ArrayList<>(batch.size());
            long t = 0;
            for (Pending<I, O> p : batch) {
                in.add(p.item());
                t += p.cost();
            }
            batches.incrementAndGet();
            items.addAndGet(batch.size());
            tokens.addAndGet(t);
            for (java.util.function.IntConsumer l : batchListeners) {
                l.accept(batch.size());
            }
            try {
                List<O> out = batchFn.apply(in);
                if (out == null || out.size() != in.size()) {
                    throw new IllegalStateException("the batch function returned "
                            + (out == null ? "null" : out.size() + " results") + " for " + in.size() + " items");
                }
                for (int i = 0; i < batch.size(); i++) {
                    batch.get(i).future().complete(out.get(i));
                }
            } catch (Throwable e) {
                for (Pending<I, O> p : batch) {
                    p.future().completeExceptionally(e);
                }
                if (e instanceof Error err && !(e instanceof AssertionError)) {
                    throw err;
                }
            }
        }
    }

    /**
     * The next batch: waits for a first item, then until the budget is full, or the oldest item
     * has waited {@code maxWait}, or (with {@code waitOnlyForAnnounced}) no more items are on their way. Null when closed and drained; empty when every taken item had
     * been cancelled.
     */
    private List<Pending<I, O>> nextBatch() {
        synchronized (queue) {
            try {
                while (queue.isEmpty()) {
                    if (closed) {
                        return null;
                    }
                    queue.wait();
                }
                long deadline = queue.peekFirst().arrivedNanos() + maxWaitNanos;
                while (!closed && budgetLeft() > 0 && (!waitOnlyForAnnounced || announced > 0)) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        break;
                    }
                    TimeUnit.NANOSECONDS.timedWait(queue, left);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                closed = true;
            }
            List<Pending<I, O>> batch = new ArrayList<>();
            int used = 0;
            while (!queue.isEmpty()) {
                Pending<I, O> p = queue.peekFirst();
                if (p.future().isDone()) {          // cancelled by its caller while waiting
                    queue.pollFirst();
                    continue;
                }
                if (!batch.isEmpty() && used + p.cost() > maxBatchTokens) {
                    break;
                }
                queue.pollFirst();
                batch.add(p);
                used += p.cost();
            }
            return batch;
        }
    }

    /** Budget left if every live queued item joined the batch (negative: over budget). Holds the lock. */
    private long budgetLeft() {
        long used = 0;
        for (Pending<I, O> p : queue) {
            if (!p.future().isDone()) {
                used += p.cost();
                if (used >= maxBatchTokens) {
                    return 0;
                }
            }
        }
        return maxBatchTokens - used;
    }

    /** Refuses new items, runs the queued ones, and waits for the worker to finish. */
    @Override
    public void close() {
        synchronized (queue) {
            closed = true;
            queue.notifyAll();
        }
        try {
            worker.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
