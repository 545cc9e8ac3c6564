package io.bert4j.serve;

import java.util.concurrent.LinkedTransferQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The HTTP handler threads of {@link BertServer}: a thread is started only when a request finds
 * no idle one (up to {@code max}), idle threads retire after {@code keepAlive}, and beyond
 * {@code max} busy threads requests wait in a queue.
 *
 * <p>Why not a fixed pool of {@code max} threads: {@link ThreadPoolExecutor} with
 * {@code core = max} starts a new thread for each of the first {@code max} requests even while
 * others sit idle, so a server allowing 1,024 requests in flight ran 1,032 handler threads at 64
 * concurrent clients, and its queue handed requests to them in turn: every thread's stack, local
 * buffers and allocator caches stayed warm, ~110 MB of stacks alone, and resident memory kept
 * growing as each of them met new paths. Here the thread count follows the concurrency actually
 * seen.
 */
final class HandlerPool extends ThreadPoolExecutor {
    /**
     * Hands a task to a thread already waiting for one, or declines (so the pool starts a thread);
     * once the pool is at its maximum the rejection handler queues the task for the next free one.
     */
    private static final class Handoff extends LinkedTransferQueue<Runnable> {
        @Override
        public boolean offer(Runnable r) {
            return tryTransfer(r);
        }

        void enqueue(Runnable r) {
            super.offer(r);
        }
    }

    HandlerPool(int max, long keepAlive, TimeUnit unit, String threadName) {
        super(0, max, keepAlive, unit, new Handoff(), r -> {
            Thread t = new Thread(r, threadName);
            t.setDaemon(true);
            return t;
        }, (r, pool) -> {
            if (pool.isShutdown()) {
                throw new RejectedExecutionException("the server is shutting down");
            }
            ((Handoff) pool.getQueue()).enqueue(r);
        });
    }

    /** Threads waiting for a request. */
    int idleThreads() {
        return ((Handoff) getQueue()).getWaitingConsumerCount();
    }
}
