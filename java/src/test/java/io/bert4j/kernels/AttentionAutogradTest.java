package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRefOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

/**
 * {@link FusedOps#attention} under libtorch autograd, with q, k, v as the model makes them:
 * strided views {@code qkv[B, S, 3, NH, D].select(2, i).transpose(1, 2)} of one fused QKV
 * buffer, so the gradient checked is the one that reaches that buffer through the views.
 *
 * <p>Reference: libtorch autograd of {@code scaled_dot_product_attention} (fp32) on an
 * identical buffer, with padding masks. Tolerance (fp32): normwise relative difference of
 * dL/dqkv at most 1e-5, and elementwise {@code |fused - torch| <= 1e-5 |torch| + 1e-5 max|torch|}
 * (a floor: entries near zero carry the absolute rounding error of their row sums, ~1e-7 of
 * the largest gradient here). Both sides are fp32 evaluations with ~1e-6 relative error
 * against float64 (see AttentionTest), so 1e-5 leaves an order of magnitude of margin.
 * With dropout, the fused backward is checked against float64 central differences of a
 * reference that applies the kernel's own keep mask ({@link Attention#dropoutKeep}).
 */
class AttentionAutogradTest {

    static Stream<Arguments> shapes() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (long s : new long[] {1, 7, 97, 128}) {
            for (long d : new long[] {32, 64}) {
                b.add(Arguments.of(s, d));
            }
        }
        return b.build();
    }

    /** q, k, v as [B, NH, S, D] views of qkv [B, S, 3, NH, D]. */
    static Tensor[] views(Tensor qkv) {
        return new Tensor[] {qkv.select(2, 0).transpose(1, 2), qkv.select(2, 1).transpose(1, 2),
                qkv.select(2, 2).transpose(1, 2)};
    }

    static Tensor leaf(Tensor t) {
        Tensor l = t.detach().clone();
        l.requires_grad_(true);
        return l;
    }

    @ParameterizedTest(name = "seq {0}, head_dim {1}")
    @MethodSource("shapes")
    void gradientsThroughQkvViewsMatchSdpaAutograd(long s, long d) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(100 + s * 7 + d);
            long b = 3, nh = 4;
            long[] lens = {s, Math.max(1, s - 3), Math.max(1, s / 2)};
            Tensor mask = AttentionTest.paddingMask(s, lens);               // [B, 1, 1, S]
            double scale = 1.0 / Math.sqrt(d);
            Tensor qkv0 = torch.randn(b, s, 3, nh, d);
            Tensor w = torch.randn(b, nh, s, d);

            Tensor qkv = leaf(qkv0);
            Tensor[] f = views(qkv);
            long before = FusedOps.attentionSplices();
            Tensor out = FusedOps.attention(f[0], f[1], f[2], mask, scale, 0.0, 0, 0);
            assertEquals(before + 1, FusedOps.attentionSplices(), "the call must be spliced");
            assertTrue(out.requires_grad(), "fused output must be part of the graph");
            assertEquals(4, out.dim());
            try (NoGradGuard ng = new NoGradGuard()) {
                Tensor[] fv = views(qkv0);
                Tensor plain = Attention.forward(fv[0], fv[1], fv[2], null, mask, scale, 0, 0, 0).out();
                assertTrue(torch.equal(out, plain), "the splice must not change the values");
            }
            // The model's use: back to [B, S, H] (free for the kernel's layout), then a loss.
            out.transpose(1, 2).reshape(b, s, nh * d).mul(w.transpose(1, 2).reshape(b, s, nh * d)).sum().backward();

            Tensor qkvR = leaf(qkv0);
            Tensor[] r = views(qkvR);
            AttentionTest.sdpa(r[0], r[1], r[2], mask, scale).mul(w).sum().backward();

            String[] names = {"dq", "dk", "dv"};
            if (s == 1) {
                // One key: softmax is identically 1, so dq and dk are exactly 0 in exact
                // arithmetic (dS = P (dP - rowsum(dO o O)) with dP = dO.v = dO.O). libtorch happens
                // to give exact zeros; the kernel holds rounding noise, which must be negligible
                // next to the gradient's scale (its dv).
                double gScale = qkvR.grad().select(2, 2).abs().max().item_double();
                for (int i = 0; i < 2; i++) {
                    double noise = qkv.grad().select(2, i).abs().max().item_double();
                    System.out.printf("s=1 d=%d %s: true value 0, fused rounding noise %.3g (max |dv| %.3g)%n",
                            d, names[i], noise, gScale);
                    assertTrue(noise <= 1e-5 * gScale, "s=1 " + names[i] + " noise " + noise + " vs max |dv| " + gScale);
                }
            }
            for (int i = s == 1 ? 2 : 0; i < 3; i++) {
                assertClose("s=" + s + " d=" + d + " " + names[i], qkv.grad().select(2, i), qkvR.grad().select(2, i));
            }
            assertEquals(0, AutogradSplice.holdingSavedCount(), "saved tensors must be released after backward");
        }
    }

    @Test
    void qkvAlsoUsedElsewhereAndOnlySomeInputsRequiringGrad() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(11);
            long b = 2, s = 9, nh = 2, d = 32;
            Tensor mask = AttentionTest.paddingMask(s, 9, 5);
            Tensor qkv0 = torch.randn(b, s, 3, nh, d), w = torch.randn(b, nh, s, d), c = torch.randn(b, s, 3, nh, d);
            // qkv feeds the attention and a second term; the fused op's share must add to it.
            Tensor[] grads = new Tensor[2];
            for (int fused = 0; fused < 2; fused++) {
                Tensor qkv = leaf(qkv0);
                Tensor[] v = views(qkv);
                Tensor out = fused == 1 ? FusedOps.attention(v[0], v[1], v[2], mask, 0.3, 0, 0, 0)
                        : AttentionTest.sdpa(v[0], v[1], v[2], mask, 0.3);
                out.mul(w).sum().add(qkv.mul(c).sum()).add(out.pow(new Scalar(2)).mean()).backward();
                grads[fused] = qkv.grad();
            }
            assertClose("qkv used twice", grads[1], grads[0]);

            // Only v requires grad (q, k frozen constants).
            Tensor q = torch.randn(b, nh, s, d), k = torch.randn(b, nh, s, d);
            Tensor vf = leaf(torch.randn(b, nh, s, d)), vr = leaf(vf);
            FusedOps.attention(q, k, vf, mask, 0.2, 0, 0, 0).mul(w).sum().backward();
            AttentionTest.sdpa(q, k, vr, mask, 0.2).mul(w).sum().backward();
            assertClose("dv, q and k frozen", vf.grad(), vr.grad());
        }
    }

    @Test
    void retainedGraphBackwardTwice() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(13);
            Tensor qkv = leaf(torch.randn(2, 6, 3, 2, 32));
            Tensor[] v = views(qkv);
            Tensor loss = FusedOps.attention(v[0], v[1], v[2], null, 0.25, 0.2, 5, 6).sum();
            loss.backward(new Tensor(), new BoolOptional(true), false, new TensorArrayRefOptional());
            Tensor g1 = qkv.grad().clone();
            loss.backward();
            assertClose("second backward accumulates the same gradient", qkv.grad(), g1.mul(new Scalar(2)));
            assertEquals(0, AutogradSplice.holdingSavedCount());
        }
    }

    @Test
    void dropoutBackwardMatchesFiniteDifferencesOfItsOwnForward() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(21);
            long b = 1, nh = 2, s = 5, d = 4;
            double p = 0.3, scale = 0.5;
            long seed = 987654321L, offset = 17;
            Tensor qkv0 = torch.randn(b, s, 3, nh, d);
            Tensor dout = torch.randn(b, nh, s, d);
            Tensor mask = AttentionTest.paddingMask(s, 4);

            Tensor qkv = leaf(qkv0);
            Tensor[] v = views(qkv);
            Tensor out = FusedOps.attention(v[0], v[1], v[2], mask, scale, p, seed, offset);
            out.mul(dout).sum().backward();

            Tensor keep = AttentionTest.keepFactors(b, nh, s, s, seed, offset, p);
            Tensor q64 = qkv0.to(ScalarType.Double), dout64 = dout.to(ScalarType.Double);
            Tensor[] v64 = views(q64);
            Tensor ref = AttentionTest.composed(v64[0], v64[1], v64[2], mask, keep, scale);
            double fe = AttentionTest.relErr(out.detach(), ref);
            System.out.printf("dropout p=%.1f forward (spliced) vs float64 with the kernel's mask: %.3g%n", p, fe);
            assertTrue(fe < 1e-5, "forward " + fe);
            assertTrue(keep.eq(new Scalar(0)).sum().item_long() > 0, "the mask must drop something");

            Tensor flat = q64.view(-1);
            Tensor fd = torch.zeros(flat.numel()).to(ScalarType.Double);
            double eps = 1e-6;
            for (long i = 0; i < flat.numel(); i++) {
                double x0 = flat.select(0, i).item_double();
                flat.select(0, i).fill_(new Scalar(x0 + eps));
                double up = AttentionTest.composed(v64[0], v64[1], v64[2], mask, keep, scale).mul(dout64).sum().item_double();
                flat.select(0, i).fill_(new Scalar(x0 - eps));
                double dn = AttentionTest.composed(v64[0], v64[1], v64[2], mask, keep, scale).mul(dout64).sum().item_double();
                flat.select(0, i).fill_(new Scalar(x0));
                fd.select(0, i).fill_(new Scalar((up - dn) / (2 * eps)));
            }
            double e = AttentionTest.relErr(qkv.grad(), fd.view(b, s, 3, nh, d));
            System.out.printf("dropout p=%.1f dL/dqkv (spliced backward) vs float64 finite differences: %.3g%n", p, e);
            assertTrue(e < 1e-5, "dropout backward vs finite differences " + e);
        }
    }

    @Test
    void noRecordingWithoutGradModeOrGradInputs() {
        try (PointerScope scope = new PointerScope()) {
            AutogradSplice.reap();
            int live = AutogradSplice.liveCount();
            long splices = FusedOps.attentionSplices();
            Tensor qkv = leaf(torch.randn(1, 4, 3, 2, 32));
            Tensor[] v = views(qkv);
            try (NoGradGuard ng = new NoGradGuard()) {
                assertFalse(FusedOps.attention(v[0], v[1], v[2], null, 0.2, 0, 0, 0).requires_grad());
            }
            Tensor[] c = views(torch.randn(1, 4, 3, 2, 32));
            assertFalse(FusedOps.attention(c[0], c[1], c[2], null, 0.2, 0.1, 1, 2).requires_grad());
            assertEquals(live, AutogradSplice.liveCount(), "no splice may be recorded");
            assertEquals(splices, FusedOps.attentionSplices());
        }
    }

    @Test
    void noLeakOverManyIterations() throws Exception {
        Kernels.setNumThreads(2);
        torch.manual_seed(3);
        Tensor qkvLeaf = leaf(torch.randn(2, 32, 3, 4, 32));
        Tensor mask = AttentionTest.paddingMask(32, 32, 20);
        long pointersAt100 = 0;
        int maxLive = 0;
        for (int step = 0; step < 600; step++) {
            try (PointerScope scope = new PointerScope()) {
                Tensor[] v = views(qkvLeaf);
                // two attention calls per step, dropout on; each third step a retained graph dropped unused
                Tensor o1 = FusedOps.attention(v[0], v[1], v[2], mask, 0.2, 0.1, 7, 2L * step);
                Tensor o2 = FusedOps.attention(o1, v[1], v[2], mask, 0.2, 0.1, 7, 2L * step + 1);
                Tensor loss = o2.sum();
                if (step % 3 == 0) {
                    loss.backward(new Tensor(), new BoolOptional(true), false, new TensorArrayRefOptional());
                } else {
                    loss.backward();
                }
                qkvLeaf.grad().zero_();
            }
            maxLive = Math.max(maxLive, AutogradSplice.liveCount());
            if (step == 99) {
                AutogradSplice.reap();
                pointersAt100 = Pointer.totalCount();
            }
        }
        AutogradSplice.reap();
        long pointersEnd = Pointer.totalCount();
        System.out.printf("600 steps x 2 attention splices: live at most %d, %d after the last reap; "
                + "JavaCPP-tracked native objects %d at step 100, %d at 600%n",
                maxLive, AutogradSplice.liveCount(), pointersAt100, pointersEnd);
        assertTrue(maxLive <= 4, "graphs of earlier steps must be reaped, saw " + maxLive);
        assertEquals(0, AutogradSplice.liveCount());
        assertTrue(pointersEnd <= pointersAt100 + 8, "native objects grew from " + pointersAt100 + " to " + pointersEnd);
    }

    /** Normwise relative <= 1e-5 and elementwise 1e-5 relative with a floor of 1e-5 max|want|. */
    static void assertClose(String what, Tensor got, Tensor want) {
        double mag = want.abs().max().item_double();
        double maxAbs = got.sub(want).abs().max().item_double();
        double norm = got.sub(want).norm().item_double() / Math.max(want.norm().item_double(), 1e-30);
        System.out.printf("%-28s max |fused - torch| %.3g (max |torch| %.3g), normwise rel %.3g%n", what, maxAbs, mag, norm);
        assertTrue(torch.allclose(got, want, 1e-5, 1e-5 * mag, false), what + ": max |diff| " + maxAbs);
        assertTrue(norm <= 1e-5, what + ": normwise relative " + norm);
    }
}
