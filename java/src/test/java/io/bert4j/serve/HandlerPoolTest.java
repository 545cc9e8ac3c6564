package io.bert4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class HandlerPoolTest {
    @Test
    void startsThreadsOnlyForConcurrentWorkAndReusesIdleOnes() throws Exception {
        HandlerPool pool = new HandlerPool(100, 60, TimeUnit.SECONDS, "t");
        try {
            CountDownLatch started = new CountDownLatch(4);
            CountDownLatch release = new CountDownLatch(1);
            for (int i = 0; i < 4; i++) {
                pool.execute(() -> {
                    started.countDown();
                    await(release);
                });
            }
            assertTrue(started.await(10, TimeUnit.SECONDS), "4 blocking tasks run at once");
            assertEquals(4, pool.getPoolSize());
            release.countDown();
            // One task at a time from here on: an idle thread takes each, none is started.
            for (int i = 0; i < 200; i++) {
                CountDownLatch done = new CountDownLatch(1);
                waitIdle(pool, 4);
                pool.execute(done::countDown);
                assertTrue(done.await(10, TimeUnit.SECONDS));
            }
            assertEquals(4, pool.getLargestPoolSize(), "200 sequential tasks started no thread");
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void queuesBeyondTheMaximumAndRunsEverything() throws Exception {
        HandlerPool pool = new HandlerPool(2, 60, TimeUnit.SECONDS, "t");
        try {
            AtomicInteger running = new AtomicInteger();
            AtomicInteger most = new AtomicInteger();
            CountDownLatch done = new CountDownLatch(50);
            for (int i = 0; i < 50; i++) {
                pool.execute(() -> {
                    most.accumulateAndGet(running.incrementAndGet(), Math::max);
                    sleep(2);
                    running.decrementAndGet();
                    done.countDown();
                });
            }
            assertTrue(done.await(30, TimeUnit.SECONDS), "all 50 tasks ran");
            assertEquals(2, most.get(), "never more than 2 at once");
            assertTrue(pool.getLargestPoolSize() <= 2);
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void idleThreadsRetireAndShutdownRefuses() throws Exception {
        HandlerPool pool = new HandlerPool(8, 50, TimeUnit.MILLISECONDS, "t");
        CountDownLatch started = new CountDownLatch(3);
        CountDownLatch release = new CountDownLatch(1);
        for (int i = 0; i < 3; i++) {
            pool.execute(() -> {
                started.countDown();
                await(release);
            });
        }
        assertTrue(started.await(10, TimeUnit.SECONDS));
        release.countDown();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (pool.getPoolSize() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(0, pool.getPoolSize(), "idle threads retired after the keep-alive");
        pool.shutdown();
        RejectedExecutionException e = assertThrows(RejectedExecutionException.class, () -> pool.execute(() -> { }));
        assertTrue(e.getMessage().contains("shutting down"), e.getMessage());
    }

    private static void waitIdle(HandlerPool pool, int threads) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (pool.idleThreads() < threads && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertEquals(threads, pool.idleThreads(), "all threads back waiting for work");
    }

    private static void await(CountDownLatch l) {
        try {
            l.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
