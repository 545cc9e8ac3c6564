package io.bert4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** The batching core of the server, with a plain function standing in for the batch step. */
class DynamicBatcherTest {

    /** Doubles every item and records each batch. */
    static final class Recorder {
        final List<List<Integer>> batches = Collections.synchronizedList(new ArrayList<>());

        List<Integer> run(List<Integer> in) {
            batches.add(List.copyOf(in));
            List<Integer> out = new ArrayList<>();
            for (int x : in) {
                out.add(2 * x);
            }
            return out;
        }
    }

    @Test
    void concurrentCallersGetTheirOwnAnswersInSharedBatches() throws Exception {
        Recorder rec = new Recorder();
        int callers = 64, perCaller = 20;
        try (DynamicBatcher<Integer, Integer> b = new DynamicBatcher<>(rec::run, x -> 1, 32, Duration.ofMillis(5), 10_000, "test")) {
            ExecutorService pool = Executors.newFixedThreadPool(callers);
            CountDownLatch start = new CountDownLatch(1);
            List<Future<Boolean>> results = new ArrayList<>();
            for (int c = 0; c < callers; c++) {
                int caller = c;
                results.add(pool.submit(() -> {
                    start.await();
                    for (int i = 0; i < perCaller; i++) {
                        int x = caller * 1000 + i;
                        if (b.submit(x).get(10, TimeUnit.SECONDS) != 2 * x) {
                            return false;
                        }
                    }
                    return true;
                }));
            }
            start.countDown();
            for (Future<Boolean> r : results) {
                assertTrue(r.get(60, TimeUnit.SECONDS), "a caller got someone else's answer");
            }
            pool.shutdown();
            DynamicBatcher.Stats s = b.stats();
            assertEquals(callers * perCaller, s.items());
            int biggest = rec.batches.stream().mapToInt(List::size).max().orElse(0);
            System.out.printf("%d items in %d batches, largest %d%n", s.items(), s.batches(), biggest);
            assertTrue(s.batches() < s.items() / 2, "requests arriving together must share batches: " + s);
            assertTrue(biggest <= 32, "a batch exceeded the token budget: " + biggest);
        }
    }

    @Test
    void theTokenBudgetBoundsABatchAndAnOversizedItemRunsAlone() throws Exception {
        Recorder rec = new Recorder();
        CountDownLatch release = new CountDownLatch(1);
        // The first batch blocks until everything else is queued, so the grouping is deterministic.
        try (DynamicBatcher<Integer, Integer> b = new DynamicBatcher<>(in -> {
            if (in.contains(0)) {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
            return rec.run(in);
        }, x -> x == 99 ? 500 : 10, 25, Duration.ZERO, 100, "test")) {
            List<CompletableFuture<Integer>> fs = new ArrayList<>();
            fs.add(b.submit(0));
            Thread.sleep(100); // the worker has taken item 0 and waits on the latch
            for (int x : new int[] {1, 2, 99, 3, 4}) {
                fs.add(b.submit(x));
            }
            release.countDown();
            for (CompletableFuture<Integer> f : fs) {
                f.get(10, TimeUnit.SECONDS);
            }
            assertEquals(List.of(List.of(0), List.of(1, 2), List.of(99), List.of(3, 4)), rec.batches);
        }
    }

    @Test
    void aFullQueueRefusesAtOnceAndRecovers() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (DynamicBatcher<Integer, Integer> b = new DynamicBatcher<>(in -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            return in;
        }, x -> 1, 1, Duration.ZERO, 3, "test")) {
            CompletableFuture<Integer> running = b.submit(0);
            Thread.sleep(100);                      // taken by the worker: the queue is empty again
            List<CompletableFuture<Integer>> queued = List.of(b.submit(1), b.submit(2), b.submit(3));
            DynamicBatcher.Overloaded e = assertThrows(DynamicBatcher.Overloaded.class, () -> b.submit(4));
            assertTrue(e.getMessage().contains("3 items already queued"), e.getMessage());
            assertThrows(DynamicBatcher.Overloaded.class, () -> b.submitAll(List.of(5)));
            assertEquals(2, b.stats().rejected());
            release.countDown();
            assertEquals(0, running.get(10, TimeUnit.SECONDS));
            for (int i = 0; i < 3; i++) {
                assertEquals(i + 1, queued.get(i).get(10, TimeUnit.SECONDS));
            }
            assertEquals(7, b.submit(7).get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void aFailingBatchFailsItsItemsAndTheNextBatchStillRuns() throws Exception {
        try (DynamicBatcher<Integer, Integer> b = new DynamicBatcher<>(in -> {
            if (in.contains(13)) {
                throw new IllegalArgumentException("unlucky");
            }
            return in;
        }, x -> 1, 100, Duration.ZERO, 100, "test")) {
            ExecutionException e = assertThrows(ExecutionException.class, () -> b.submit(13).get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof IllegalArgumentException && e.getCause().getMessage().equals("unlucky"));
            assertEquals(5, b.submit(5).get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void aCancelledItemIsDroppedAndCloseDrainsTheQueue() throws Exception {
        Recorder rec = new Recorder();
        CountDownLatch release = new CountDownLatch(1);
        DynamicBatcher<Integer, Integer> b = new DynamicBatcher<>(in -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            return rec.run(in);
        }, x -> 1, 100, Duration.ZERO, 100, "test");
        CompletableFuture<Integer> first = b.submit(1);
        Thread.sleep(100);
        CompletableFuture<Integer> cancelled = b.submit(2);
        CompletableFuture<Integer> kept = b.submit(3);
        cancelled.cancel(false);                    // e.g. its caller timed out
        Thread closer = new Thread(b::close);
        closer.start();
        Thread.sleep(100);
        assertThrows(DynamicBatcher.Closed.class, () -> b.submit(4));
        release.countDown();
        closer.join(10_000);
        assertEquals(2, first.get(1, TimeUnit.SECONDS));
        assertEquals(6, kept.get(1, TimeUnit.SECONDS), "close() must finish the queued items");
        assertEquals(List.of(List.of(1), List.of(3)), rec.batches);
    }

    @Test
    void withWaitOnlyForAnnouncedALoneItemStartsAtOnceAndAnnouncedOnesAreWaitedFor() throws Exception {
        List<Integer> sizes = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
        // A wait far longer than the test: only the announcement rule can end it early.
        try (DynamicBatcher<Integer, Integer> b = new DynamicBatcher<>(in -> {
            sizes.add(in.size());
            return in;
        }, x -> 1, 32, Duration.ofSeconds(60), 100, true, "test")) {
            long t0 = System.nanoTime();
            assertEquals(7, b.submit(7).get(10, TimeUnit.SECONDS));
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5), "a lone item did not wait for maxWait");
            assertEquals(List.of(1), sizes);

            // One caller announced: the first item waits for it, and both run as one batch.
            b.announce();
            java.util.concurrent.CompletableFuture<Integer> first = b.submit(1);
            Thread.sleep(200);
            assertFalse(first.isDone(), "the batch started while an announced item was on its way");
            java.util.concurrent.CompletableFuture<Integer> second = b.submit(2);
            b.arrived();
            assertEquals(1, first.get(10, TimeUnit.SECONDS));
            assertEquals(2, second.get(10, TimeUnit.SECONDS));
            assertEquals(List.of(1, 2), sizes);

            // An announcement that ends without an item (the caller failed) releases the wait.
            b.announce();
            java.util.concurrent.CompletableFuture<Integer> third = b.submit(3);
            Thread.sleep(100);
            assertFalse(third.isDone());
            b.arrived();
            assertEquals(3, third.get(10, TimeUnit.SECONDS));
            assertEquals(List.of(1, 2, 1), sizes);
        }
    }

    @Test
    void badSettingsAreClearErrors() {
        assertThrows(io.bert4j.Bert4jException.class, () -> new DynamicBatcher<Integer, Integer>(in -> in, x -> 1, 0, Duration.ZERO, 1, "t"));
        assertThrows(io.bert4j.Bert4jException.class, () -> new DynamicBatcher<Integer, Integer>(in -> in, x -> 1, 1, Duration.ofMillis(-1), 1, "t"));
        assertThrows(io.bert4j.Bert4jException.class, () -> new DynamicBatcher<Integer, Integer>(in -> in, x -> 1, 1, Duration.ZERO, 0, "t"));
    }
}
