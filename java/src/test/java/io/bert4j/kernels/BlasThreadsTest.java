package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.NativeSetup;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas_nolapack;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The single-threaded OpenBLAS scope around libtorch's CPU attention: it really changes
 * OpenBLAS's thread count (read back from OpenBLAS), restores it when the last holder leaves,
 * counts holders across threads, and tolerates a second close.
 */
class BlasThreadsTest {
    private int before;

    @BeforeEach
    void setUp() {
        NativeSetup.ensure();
        torch.set_num_threads(2); // libtorch, and with it OpenBLAS, loaded
        assertTrue(BlasThreads.openBlas(), "the presets' BLAS is OpenBLAS: the scope must be active");
        before = BlasThreads.current();
        // Set through the presets' own helper (which calls openblas_set_num_threads), read back
        // through bert4j's lookup: both reach the OpenBLAS libtorch uses. (The helper's getter
        // returns its own cached value, so it cannot serve as the read-back.)
        Loader.load(openblas_nolapack.class);
        openblas_nolapack.blas_set_num_threads(3);
        assertEquals(3, BlasThreads.current());
        openblas_nolapack.blas_set_num_threads(2);
        assertEquals(2, BlasThreads.current());
    }

    @AfterEach
    void tearDown() {
        NativeEnv.bert4j_openblas_threads(before);
    }

    @Test
    void scopeSetsOneThreadAndRestores() {
        try (BlasThreads.Scope s = BlasThreads.singleThreaded()) {
            assertEquals(1, BlasThreads.current());
        }
        assertEquals(2, BlasThreads.current());
    }

    @Test
    void secondCloseIsHarmless() {
        BlasThreads.Scope outer = BlasThreads.singleThreaded();
        BlasThreads.Scope inner = BlasThreads.singleThreaded();
        inner.close();
        inner.close(); // must not release the outer holder's count
        assertEquals(1, BlasThreads.current(), "outer scope still open");
        outer.close();
        assertEquals(2, BlasThreads.current());
    }

    @Test
    void lastHolderAcrossThreadsRestores() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger seenInside = new AtomicInteger(-1);
        Thread other = new Thread(() -> {
            try (BlasThreads.Scope s = BlasThreads.singleThreaded()) {
                entered.countDown();
                release.await(10, TimeUnit.SECONDS);
                seenInside.set(BlasThreads.current());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        other.start();
        assertTrue(entered.await(10, TimeUnit.SECONDS));
        try (BlasThreads.Scope mine = BlasThreads.singleThreaded()) {
            assertEquals(1, BlasThreads.current());
        }
        assertEquals(1, BlasThreads.current(), "the other thread still holds the scope");
        release.countDown();
        other.join(10_000);
        assertEquals(1, seenInside.get());
        assertEquals(2, BlasThreads.current(), "restored by the last holder");
    }
}
