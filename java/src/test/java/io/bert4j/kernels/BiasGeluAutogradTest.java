package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.Node;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRefOptional;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * {@link FusedOps#biasGelu} under libtorch autograd: gradients against libtorch's own
 * {@code gelu(x + b)} autograd, a float64 finite-difference check, several and repeated uses
 * in one graph, retained graphs, and memory over many steps.
 *
 * <p>Tolerances (fp32): elementwise |fused - torch| <= 1e-5 |torch| + 1e-6 max|dy| for dx
 * (both sides are fp32 evaluations of gelu' with errors ~1e-6 |dy| against float64; gelu'
 * crosses zero near h = -0.75, so a pure relative bound is meaningless there); for dbias,
 * a column sum of R such terms, 1e-5 |torch| + 1e-6 sum_r |dy|. Normwise, both within 1e-5
 * relative. The measured errors are printed.
 */
class BiasGeluAutogradTest {

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (boolean tanh : new boolean[] {false, true}) {
            b.add(Arguments.of(new long[] {1, 3}, tanh));
            b.add(Arguments.of(new long[] {7, 13}, tanh));
            b.add(Arguments.of(new long[] {97, 1536}, tanh));
            b.add(Arguments.of(new long[] {2, 33, 384}, tanh));
        }
        return b.build();
    }

    @ParameterizedTest(name = "shape {0}, tanh={1}")
    @MethodSource("cases")
    void gradientsMatchLibtorchAutograd(long[] shape, boolean tanh) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(42 + shape[shape.length - 1]);
            long cols = shape[shape.length - 1];
            Tensor x0 = torch.randn(shape).mul(new org.bytedeco.pytorch.Scalar(1.5));
            Tensor b0 = torch.randn(cols);
            Tensor w = torch.randn(shape);

            Tensor x = leaf(x0), b = leaf(b0);
            Tensor y = FusedOps.biasGelu(x, b, tanh);
            assertTrue(y.requires_grad(), "fused output must be part of the graph");
            try (NoGradGuard ng = new NoGradGuard()) {
                assertTrue(torch.equal(y, Kernels.biasGelu(x0, b0, tanh)), "splice must not change the values");
            }
            y.mul(w).sum().backward();

            Tensor xr = leaf(x0), br = leaf(b0);
            torch.gelu(xr.add(br), tanh ? "tanh" : "none").mul(w).sum().backward();

            double maxW = w.abs().max().item_double();
            assertClose("dx " + Kernels.shape(x0) + " tanh=" + tanh, x.grad(), xr.grad(), 1e-6 * maxW);
            Tensor colAbs = w.abs().reshape(-1, cols).sum(new long[] {0});
            assertClose("dbias [" + cols + "] tanh=" + tanh, b.grad(), br.grad(),
                    1e-6 * colAbs.max().item_double());
            assertEquals(0, AutogradSplice.holdingSavedCount(), "saved tensors must be released after backward");
        }
    }

    @Test
    void finiteDifferencesInFloat64() {
        // L(x, b) = sum(w * gelu(x + b)) in float64 (libtorch double); central differences with
        // step 1e-5 have truncation error ~1e-10 here, far below the kernel's fp32 error.
        try (PointerScope scope = new PointerScope()) {
            for (boolean tanh : new boolean[] {false, true}) {
                torch.manual_seed(7);
                Tensor x0 = torch.randn(3, 5).mul(new org.bytedeco.pytorch.Scalar(2.0));
                Tensor b0 = torch.randn(5);
                Tensor w = torch.randn(3, 5);
                Tensor x = leaf(x0), b = leaf(b0);
                FusedOps.biasGelu(x, b, tanh).mul(w).sum().backward();

                Tensor xd = x0.to(ScalarType.Double), bd = b0.to(ScalarType.Double), wd = w.to(ScalarType.Double);
                double h = 1e-5, worst = 0;
                for (int i = 0; i < xd.numel(); i++) {
                    double fd = (loss64(bump(xd, i, h), bd, wd, tanh) - loss64(bump(xd, i, -h), bd, wd, tanh)) / (2 * h);
                    double got = x.grad().reshape(-1).select(0, i).item_double();
                    worst = Math.max(worst, Math.abs(got - fd));
                    assertTrue(Math.abs(got - fd) <= 1e-5 * Math.abs(fd) + 2e-6,
                            "dx[" + i + "] tanh=" + tanh + ": fused " + got + ", finite difference " + fd);
                }
                for (int c = 0; c < bd.numel(); c++) {
                    double fd = (loss64(xd, bump(bd, c, h), wd, tanh) - loss64(xd, bump(bd, c, -h), wd, tanh)) / (2 * h);
                    double got = b.grad().select(0, c).item_double();
                    worst = Math.max(worst, Math.abs(got - fd));
                    assertTrue(Math.abs(got - fd) <= 1e-5 * Math.abs(fd) + 4e-6,
                            "dbias[" + c + "] tanh=" + tanh + ": fused " + got + ", finite difference " + fd);
                }
                System.out.printf("finite differences (float64), tanh=%s: max |fused - fd| %.3g%n", tanh, worst);
            }
        }
    }

    @Test
    void severalOpsAndRepeatedUseInOneGraph() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(3);
            Tensor x0 = torch.randn(6, 4, 32), b10 = torch.randn(32), b20 = torch.randn(32), w0 = torch.randn(32, 32);
            Tensor t1 = torch.randn(6, 4, 32), t2 = torch.randn(6, 4, 32);

            Tensor[] fused = graph(true, x0, b10, b20, w0, t1, t2);
            Tensor[] plain = graph(false, x0, b10, b20, w0, t1, t2);
            String[] names = {"x", "b1", "b2", "W"};
            for (int i = 0; i < names.length; i++) {
                assertClose("graph grad " + names[i], fused[i], plain[i], 1e-5);
            }
        }
    }

    /**
     * x feeds two fused ops (with b1, and with b1 again in tanh form); one output feeds a
     * linear layer and a third fused op; b1 is shared; y1 is used twice. Returns grads of
     * (x, b1, b2, W).
     */
    private static Tensor[] graph(boolean fusedOps, Tensor x0, Tensor b10, Tensor b20, Tensor w0, Tensor t1, Tensor t2) {
        Tensor x = leaf(x0), b1 = leaf(b10), b2 = leaf(b20), w = leaf(w0);
        Tensor y1 = gelu(fusedOps, x, b1, false);                  // [6, 4, 32]
        Tensor y2 = gelu(fusedOps, x, b1, true);                   // same inputs again
        Tensor z = torch.matmul(y1, w.t());                          // [6, 4, 32]
        Tensor y3 = gelu(fusedOps, z, b2, false);                  // a fused op fed by one
        Tensor y4 = gelu(fusedOps, y3, b1, true);                  // chained, b1 a third time
        Tensor loss = y1.mul(t1).sum().add(y2.mul(t2).sum()).add(y4.sum()).add(y1.pow(new org.bytedeco.pytorch.Scalar(2)).mean());
        loss.backward();
        return new Tensor[] {x.grad(), b1.grad(), b2.grad(), w.grad()};
    }

    private static Tensor gelu(boolean fusedOps, Tensor x, Tensor b, boolean tanh) {
        return fusedOps ? FusedOps.biasGelu(x, b, tanh) : torch.gelu(x.add(b), tanh ? "tanh" : "none");
    }

    /**
     * The graph the splice records: x (shaped like y) hangs directly off y's node through its
     * private view, the bias's view is added (broadcast, an empty result) to the sentinel on the
     * node's source edge: no reduction, nothing of x's size.
     */
    @Test
    void inputsAreLinkedThroughTheOutputsNodeWithoutAReduction() {
        try (PointerScope scope = new PointerScope()) {
            Tensor x = leaf(torch.randn(6, 10)), b = leaf(torch.randn(10));
            Tensor y = FusedOps.biasGelu(x, b, false);
            Node node = y.grad_fn();
            assertEquals("IndexAddBackward0", name(node));
            Node viewOfX = node.next_edge(0).function();
            assertEquals("ViewBackward0", name(viewOfX));
            assertEquals(ACCUMULATE, name(viewOfX.next_edge(0).function()));
            Node add = node.next_edge(1).function();
            assertEquals("AddBackward0", name(add));
            assertEquals(ACCUMULATE, name(add.next_edge(0).function()), "the sentinel, a leaf of the splice's own");
            Node viewOfB = add.next_edge(1).function();
            assertEquals("ViewBackward0", name(viewOfB));
            assertEquals(ACCUMULATE, name(viewOfB.next_edge(0).function()));
            // x frozen: nothing on the self edge, the bias still reached
            Tensor y2 = FusedOps.biasGelu(x.detach(), b, false);
            assertFalse(y2.grad_fn().next_edge(0).is_valid(), "a frozen x must get no edge");
            assertEquals("ViewBackward0", name(y2.grad_fn().next_edge(1).function().next_edge(1).function()));
            // bias frozen: the sentinel alone on the source edge
            Tensor y3 = FusedOps.biasGelu(x, b.detach(), false);
            assertEquals("ViewBackward0", name(y3.grad_fn().next_edge(0).function()));
            assertEquals(ACCUMULATE, name(y3.grad_fn().next_edge(1).function()));
        }
    }

    @Test
    void broadcastRuleOfTheSplice() {
        long[] src = {0, 4, 10};
        assertTrue(AutogradSplice.broadcastsTo(new long[] {10}, src));
        assertTrue(AutogradSplice.broadcastsTo(new long[] {4, 10}, src));
        assertTrue(AutogradSplice.broadcastsTo(new long[] {1, 1, 10}, src));
        assertTrue(AutogradSplice.broadcastsTo(new long[] {}, src));
        assertFalse(AutogradSplice.broadcastsTo(new long[] {3, 4, 10}, src), "3 rows do not broadcast to 0");
        assertFalse(AutogradSplice.broadcastsTo(new long[] {5, 10}, src));
        assertFalse(AutogradSplice.broadcastsTo(new long[] {1, 0, 4, 10}, src), "more dimensions than the target");
    }

    private static final String ACCUMULATE = "torch::autograd::AccumulateGrad";

    private static String name(Node node) {
        return node.name().getString();
    }

    /**
     * torch::autograd::grad for one input only: the engine then runs only the nodes on that
     * input's path (for the bias, not x's view, whose hook otherwise runs first), and the splice
     * must still hand out the right gradient and let go of everything once the graph is gone.
     */
    @Test
    void gradForOneInputOnly() {
        AutogradSplice.reap();
        int live = AutogradSplice.liveCount();
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(17);
            Tensor x0 = torch.randn(7, 12), b0 = torch.randn(12), w = torch.randn(7, 12);
            for (int which = 0; which < 2; which++) {
                Tensor x = leaf(x0), b = leaf(b0), xr = leaf(x0), br = leaf(b0);
                Tensor loss = FusedOps.biasGelu(x, b, false).mul(w).sum();
                Tensor lossRef = torch.gelu(xr.add(br)).mul(w).sum();
                Tensor got = torch.grad(new TensorVector(loss), new TensorVector(which == 0 ? x : b)).get(0);
                Tensor want = torch.grad(new TensorVector(lossRef), new TensorVector(which == 0 ? xr : br)).get(0);
                assertClose(which == 0 ? "dx alone" : "dbias alone", got, want, 1e-5);
                assertFalse(x.grad().defined() || b.grad().defined(), "grad() must not accumulate into .grad");
            }
        }
        AutogradSplice.reap();
        assertEquals(live, AutogradSplice.liveCount(), "both splices reaped once their graphs are gone");
    }

    @Test
    void onlyOneInputRequiringGrad() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(5);
            Tensor x0 = torch.randn(9, 16), b0 = torch.randn(16), w = torch.randn(9, 16);
            // bias frozen
            Tensor x = leaf(x0);
            FusedOps.biasGelu(x, b0, false).mul(w).sum().backward();
            Tensor xr = leaf(x0);
            torch.gelu(xr.add(b0)).mul(w).sum().backward();
            assertClose("dx, bias frozen", x.grad(), xr.grad(), 1e-5);
            // x frozen
            Tensor b = leaf(b0);
            FusedOps.biasGelu(x0, b, true).mul(w).sum().backward();
            Tensor br = leaf(b0);
            torch.gelu(x0.add(br), "tanh").mul(w).sum().backward();
            assertClose("dbias, x frozen", b.grad(), br.grad(), 1e-5);
        }
    }

    @Test
    void consumingInputGivesTheSameGradientsAndReusesTheBuffer() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(13);
            Tensor h0 = torch.randn(12, 24), w0 = torch.randn(40, 24), b0 = torch.randn(40), dy = torch.randn(12, 40);
            for (boolean tanh : new boolean[] {false, true}) {
                // x = h W^T, a fresh non-leaf the caller does not read again (as BertModel's FFN)
                Tensor h = leaf(h0), w = leaf(w0), b = leaf(b0);
                Tensor x = h.matmul(w.t());
                long xBuffer = x.data_ptr().address();
                Tensor y = FusedOps.biasGeluConsumingInput(x, b, tanh);
                long over = FusedOps.biasGeluGradsOverSaved();
                y.backward(dy, new BoolOptional(), false, new TensorArrayRefOptional());
                assertEquals(over + 1, FusedOps.biasGeluGradsOverSaved(), "dx written over gelu' (x's buffer)");

                Tensor hr = leaf(h0), wr = leaf(w0), br = leaf(b0);
                Tensor yr = FusedOps.biasGelu(hr.matmul(wr.t()), br, tanh);
                try (NoGradGuard ng = new NoGradGuard()) {
                    assertTrue(torch.equal(y, yr), "same output, tanh=" + tanh);
                }
                yr.backward(dy, new BoolOptional(), false, new TensorArrayRefOptional());
                for (String[] n : new String[][] {{"h"}, {"w"}, {"b"}}) {
                    Tensor got = switch (n[0]) { case "h" -> h.grad(); case "w" -> w.grad(); default -> b.grad(); };
                    Tensor want = switch (n[0]) { case "h" -> hr.grad(); case "w" -> wr.grad(); default -> br.grad(); };
                    assertTrue(torch.equal(got, want), "d" + n[0] + " bitwise the allocating path's, tanh=" + tanh);
                }
                assertEquals(xBuffer, x.data_ptr().address());
                // x's buffer now holds gelu'(x + b): its values are gone, as documented.
                try (NoGradGuard ng = new NoGradGuard()) {
                    Tensor xAgain = h0.matmul(w0.t());
                    assertFalse(torch.equal(x, xAgain), "x's buffer must have been reused");
                }
            }
            // A leaf x is never overwritten (falls back to a new buffer).
            Tensor xl = leaf(torch.randn(4, 40));
            Tensor before = xl.detach().clone();
            FusedOps.biasGeluConsumingInput(xl, torch.randn(40), false).sum().backward();
            assertTrue(torch.equal(xl.detach(), before), "a leaf x must be left alone");
            // Nor a view of another tensor's storage.
            Tensor base = leaf(torch.randn(4, 80)).mul(new org.bytedeco.pytorch.Scalar(1.0));
            Tensor view = base.view(8, 40);
            Tensor baseBefore = base.detach().clone();
            FusedOps.biasGeluConsumingInput(view, torch.randn(40), false).sum().backward();
            assertTrue(torch.equal(base.detach(), baseBefore), "a view x must be left alone");
        }
    }

    @Test
    void retainedGraphBackwardTwiceThenLibtorchRefusesAThird() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(9);
            Tensor x0 = torch.randn(5, 8), b0 = torch.randn(8), w = torch.randn(5, 8);
            Tensor x = leaf(x0), b = leaf(b0);
            Tensor loss = FusedOps.biasGelu(x, b, false).mul(w).sum();
            long over = FusedOps.biasGeluGradsOverSaved();
            loss.backward(new Tensor(), new BoolOptional(true), false, new TensorArrayRefOptional());
            Tensor dx1 = x.grad().clone(), db1 = b.grad().clone();
            assertEquals(1, AutogradSplice.holdingSavedCount(), "retain_graph keeps the saved tensors");
            assertEquals(over, FusedOps.biasGeluGradsOverSaved(), "a retained graph's saved gelu' must stay intact");
            loss.backward(); // accumulates, and frees the graph
            // The second backward ran on the same saved gelu' (dx2 == dx1 bit for bit, so the sum
            // is exactly 2 dx1): the first one did not write its dx over it.
            assertTrue(torch.equal(x.grad(), dx1.mul(new org.bytedeco.pytorch.Scalar(2))), "dx after two backwards");
            assertTrue(torch.equal(b.grad(), db1.mul(new org.bytedeco.pytorch.Scalar(2))), "dbias after two backwards");
            assertEquals(over + 1, FusedOps.biasGeluGradsOverSaved(), "the last backward writes dx over gelu'");
            assertEquals(0, AutogradSplice.holdingSavedCount(), "released after the non-retained backward");
            RuntimeException e = assertThrows(RuntimeException.class, loss::backward);
            assertTrue(e.getMessage().contains("backward through the graph a second time"), e.getMessage());
        }
    }

    @Test
    void doubleBackwardIsRefusedClearly() {
        try (PointerScope scope = new PointerScope()) {
            Tensor x = leaf(torch.randn(4, 8)), b = leaf(torch.randn(8));
            Tensor loss = FusedOps.biasGelu(x, b, false).sum();
            RuntimeException e = assertThrows(RuntimeException.class, () -> loss.backward(new Tensor(),
                    new BoolOptional(true), true, new TensorArrayRefOptional()));
            assertTrue(e.getMessage().contains("double backward (create_graph=true)"), e.getMessage());
        }
    }

    @Test
    void noRecordingWithoutGradModeOrGradInputs() {
        try (PointerScope scope = new PointerScope()) {
            AutogradSplice.reap();
            int before = AutogradSplice.liveCount();
            Tensor x = leaf(torch.randn(3, 8)), b = leaf(torch.randn(8));
            try (NoGradGuard ng = new NoGradGuard()) {
                assertFalse(FusedOps.biasGelu(x, b, false).requires_grad());
            }
            assertFalse(FusedOps.biasGelu(torch.randn(3, 8), torch.randn(8), true).requires_grad());
            assertEquals(before, AutogradSplice.liveCount(), "no splice may be recorded");
        }
    }

    @Test
    void noLeakOver1000Steps() throws Exception {
        Kernels.setNumThreads(2);
        Tensor x0 = torch.randn(64, 384), b0 = torch.randn(384), w = torch.randn(64, 384);
        Tensor xl = leaf(x0), bl = leaf(b0);
        long rssAt200 = 0, pointersAt200 = 0;
        int maxLive = 0;
        for (int step = 0; step < 1000; step++) {
            try (PointerScope scope = new PointerScope()) {
                // two ops per step, each other step a retained graph that is then dropped unused
                Tensor h = torch.matmul(FusedOps.biasGelu(xl, bl, false), torch.eye(384));
                Tensor loss = FusedOps.biasGelu(h, bl, true).mul(w).sum();
                if (step % 2 == 0) {
                    loss.backward(new Tensor(), new BoolOptional(true), false, new TensorArrayRefOptional());
                } else {
                    loss.backward();
                }
                xl.grad().zero_();
                bl.grad().zero_();
            }
            maxLive = Math.max(maxLive, AutogradSplice.liveCount());
            if (step == 199) {
                AutogradSplice.reap();
                rssAt200 = settledRssKiB();
                pointersAt200 = Pointer.totalCount();
            }
        }
        AutogradSplice.reap();
        long rssEnd = settledRssKiB();
        long pointersEnd = Pointer.totalCount();
        System.out.printf("1000 steps: live splices at most %d, %d after the last reap; JavaCPP-tracked native objects %d at step 200, %d at 1000; "
                        + "RSS after GC %d KiB at step 200, %d KiB at 1000 (%+d KiB)%n",
                maxLive, AutogradSplice.liveCount(), pointersAt200, pointersEnd, rssAt200, rssEnd, rssEnd - rssAt200);
        assertTrue(pointersEnd <= pointersAt200 + 8, "native objects grew from " + pointersAt200 + " to " + pointersEnd);
        assertTrue(maxLive <= 4, "graphs of earlier steps must be reaped, saw " + maxLive + " live splices");
        assertEquals(0, AutogradSplice.liveCount(), "all splices reaped once their graphs are gone");
        // 800 steps x 2 ops x ~100 KiB tensors each: leaking one tensor per op would add > 150 MiB.
        // (Without the GC, RSS also grows by Java heap expansion alone: ~13 MiB per 1000 steps.)
        assertTrue(rssEnd - rssAt200 < 32 * 1024, "RSS grew by " + (rssEnd - rssAt200) + " KiB over 800 steps");
    }

    // ---- helpers ----------------------------------------------------------------------------

    private static Tensor leaf(Tensor t) {
        Tensor l = t.detach().clone();
        l.requires_grad_(true);
        return l;
    }

    /** sum(w * gelu(x + b)) in float64. */
    private static double loss64(Tensor x, Tensor b, Tensor w, boolean tanh) {
        try (PointerScope s = new PointerScope()) {
            return torch.gelu(x.add(b), tanh ? "tanh" : "none").mul(w).sum().item_double();
        }
    }

    /** A copy of t with flat element i increased by h. */
    private static Tensor bump(Tensor t, long i, double h) {
        Tensor c = t.clone();
        c.view(-1).select(0, i).add_(new org.bytedeco.pytorch.Scalar(h));
        return c;
    }

    private static void assertClose(String what, Tensor got, Tensor want, double atol) {
        double maxAbs = got.sub(want).abs().max().item_double();
        double norm = got.sub(want).norm().item_double() / Math.max(want.norm().item_double(), 1e-30);
        boolean ok = torch.allclose(got, want, 1e-5, atol, false);
        System.out.printf("%-36s max |fused - torch| %.3g, normwise rel %.3g (atol %.2g)%n", what, maxAbs, norm, atol);
        assertTrue(ok, what + ": max |diff| " + maxAbs + " exceeds 1e-5 rel + " + atol);
        assertTrue(norm <= 1e-5, what + ": normwise relative error " + norm);
    }

    private static long settledRssKiB() throws Exception {
        System.gc();
        Thread.sleep(100);
        return rssKiB();
    }

    private static long rssKiB() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }
}
