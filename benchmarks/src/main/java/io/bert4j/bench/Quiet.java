package io.bert4j.bench;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Waits until this process's other threads are idle, so a timed call does not share the cores
 * with a previous call's leftovers. ONNX Runtime's intra-op workers (spin-wait on, its default)
 * keep spinning after a run returns: measured on 2 cores, about one core for 5-30 ms after each
 * MiniLM forward, which slowed the next call of whatever ran after it by up to 2x when the
 * harness waited a fixed 10 ms. Linux only: reads the on-CPU time of every thread from
 * {@code /proc/self/task/TID/schedstat}; elsewhere it falls back to the fixed minimum wait.
 */
final class Quiet {
    /** Length of one observation window, ms. */
    static final int WINDOW_MS = 5;
    /** A window is quiet when the other threads ran less than this much CPU time in it, ns (10% of a core). */
    static final long QUIET_NS = WINDOW_MS * 100_000L;
    /** Never wait longer than this, ms (a thread that never stops, e.g. a busy GC, must not hang the run). */
    static final int MAX_MS = 1_000;

    private static final Path TASKS = Path.of("/proc/self/task");
    private static final boolean AVAILABLE = Files.isDirectory(TASKS);

    private long waits;
    private long totalMs;
    private long maxMs;
    private long capped;

    /**
     * Sleeps {@code minMs}, then watches windows of {@link #WINDOW_MS} until one is quiet (or
     * {@link #MAX_MS} have passed). Returns the ms waited.
     */
    long await(int minMs) {
        long t0 = System.nanoTime();
        sleep(minMs);
        if (AVAILABLE) {
            long self = selfTid();
            long before = othersCpuNs(self);
            while (true) {
                sleep(WINDOW_MS);
                long after = othersCpuNs(self);
                if (after - before < QUIET_NS) {
                    break;
                }
                if ((System.nanoTime() - t0) / 1_000_000 >= MAX_MS) {
                    capped++;
                    break;
                }
                before = after;
            }
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        waits++;
        totalMs += ms;
        maxMs = Math.max(maxMs, ms);
        return ms;
    }

    /** One line for the report: how the waits went. */
    String summary() {
        if (!AVAILABLE) {
            return "fixed wait only (/proc/self/task is not readable here)";
        }
        return String.format(java.util.Locale.ROOT, "%d waits, mean %.1f ms, max %d ms, %d hit the %d ms cap",
                waits, waits == 0 ? 0.0 : (double) totalMs / waits, maxMs, capped, MAX_MS);
    }

    private static void sleep(int ms) {
        if (ms <= 0) {
            return;
        }
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    private static long selfTid() {
        try {
            return Long.parseLong(Files.readSymbolicLink(Path.of("/proc/thread-self")).getFileName().toString());
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** Sum of on-CPU ns of every thread but {@code self}; threads that exit between list and read are skipped. */
    private static long othersCpuNs(long self) {
        long sum = 0;
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(TASKS)) {
            for (Path task : tasks) {
                String name = task.getFileName().toString();
                if (name.equals(Long.toString(self))) {
                    continue;
                }
                try {
                    String s = Files.readString(task.resolve("schedstat"));
                    int sp = s.indexOf(' ');
                    sum += Long.parseLong(sp < 0 ? s.trim() : s.substring(0, sp));
                } catch (IOException | NumberFormatException e) {
                    // the thread exited meanwhile
                }
            }
        } catch (IOException e) {
            return 0;
        }
        return sum;
    }
}
