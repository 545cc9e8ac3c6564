package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.kernels.AutogradSplice;
import io.bert4j.kernels.FusedOps;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.Batch;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Training with both fused ops, bias+GELU and attention (native forwards and backwards
 * spliced into autograd), against plain libtorch ops (SDPA, gelu), on the real
 * all-MiniLM-L6-v2 weights and a padded batch of real sentences: outputs, every parameter
 * gradient, and a 20-step SGD loss trajectory.
 *
 * <p>Both models are in training mode ({@code train(true)}, grad mode on, every parameter
 * requiring grad) with both dropout probabilities set to 0, so both paths are deterministic
 * and differ only in the kernels. Each fused forward must splice one attention per layer
 * ({@link FusedOps#attentionSplices}), so the comparison cannot pass by silently falling back
 * to SDPA.
 *
 * <p>Loss: masked mean pooling of the last hidden state, a dot product with a fixed random
 * vector, squared error to fixed random targets, averaged over the batch.
 *
 * <p>Tolerances: the two paths differ only in the GELU and attention evaluations (each
 * ~1e-6 from float64, see BiasGeluTest and AttentionTest), which 6 layers propagate: outputs within 1e-5 relative
 * (elementwise, with an absolute floor of 1e-5 max|out|, and normwise); every parameter
 * gradient within 1e-4 relative (normwise per tensor, and elementwise with a floor of
 * 1e-4 max|grad| of that tensor); loss trajectory within 1e-4 relative at every step.
 */
class FusedTrainingEquivalenceTest {
    static Bert fused;
    static Bert plain;

    static final List<String> TEXTS = List.of(
            "The quick brown fox jumps over the lazy dog.",
            "I like eating apples.",
            "A committee reviewed the proposal and, after a long debate, voted to approve the budget.",
            "Hello, world!",
            "Straße und Größe; café naïve résumé.",
            "Numbers such as 3.14159 and 2,718 appear in the text too.");

    @BeforeAll
    static void load() {
        torch.set_num_threads(2);
        fused = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
        plain = Bert.load(TestModels.defaultModelDir(), KernelMode.TORCH);
        assertEquals(KernelMode.FUSED, fused.model().kernels());
        assertEquals(KernelMode.TORCH, plain.model().kernels());
        for (Bert b : new Bert[] {fused, plain}) {
            b.model().setTrainable(true);
            b.model().train(true);
            b.model().setDropout(0.0, 0.0);
            assertTrue(b.model().isTraining());
        }
    }

    @AfterAll
    static void close() {
        if (fused != null) fused.close();
        if (plain != null) plain.close();
        AutogradSplice.reap();
    }

    private static Batch batch(Bert bert) {
        List<Encoding> enc = new ArrayList<>();
        for (String t : TEXTS) {
            enc.add(bert.tokenizer().encode(t));
        }
        return Batch.of(enc, bert.tokenizer().padId());
    }

    /** Fixed direction r [H] and targets [B], the same for both models. */
    private static Tensor[] lossInputs(long hidden, long batch) {
        torch.manual_seed(2026);
        Tensor r = torch.randn(hidden).div(new Scalar(Math.sqrt(hidden)));
        Tensor targets = torch.randn(batch);
        return new Tensor[] {r, targets};
    }

    private static Tensor[] forwardLoss(Bert bert, Batch b, Tensor r, Tensor targets) {
        long splices = FusedOps.attentionSplices();
        long reused = FusedOps.biasGeluInputsReused();
        Tensor h = bert.model().forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).lastHiddenState(); // [B, S, H]
        long expected = bert.model().kernels() == KernelMode.FUSED ? bert.config().numHiddenLayers() : 0;
        assertEquals(expected, FusedOps.attentionSplices() - splices,
                "fused attention splices in one " + bert.model().kernels() + " training forward");
        // Each layer's FFN hands its GEMM output to the fused bias + GELU, which keeps gelu' in that
        // buffer rather than a new one (so the equivalence below also covers that path).
        assertEquals(expected, FusedOps.biasGeluInputsReused() - reused,
                "bias + GELU calls reusing their GEMM output in one " + bert.model().kernels() + " training forward");
        Tensor m = b.attentionMask().to(torch.ScalarType.Float).unsqueeze(-1);                      // [B, S, 1]
        Tensor pooled = h.mul(m).sum(new long[] {1}).div(m.sum(new long[] {1}));                    // [B, H]
        Tensor loss = pooled.matmul(r).sub(targets).pow(new Scalar(2)).mean();
        return new Tensor[] {h, loss};
    }

    private static void zeroGrads(Bert bert) {
        for (Tensor p : bert.model().parameters().values()) {
            Tensor g = p.grad();
            if (g.defined()) {
                g.zero_();
            }
        }
    }

    @Test
    void outputsAndEveryParameterGradientMatch() {
        try (PointerScope scope = new PointerScope()) {
            Batch bf = batch(fused), bp = batch(plain);
            assertTrue(bf.attentionMask().sum().item_long() < bf.attentionMask().numel(), "the batch must be padded");
            Tensor[] li = lossInputs(fused.config().hiddenSize(), bf.batchSize());
            zeroGrads(fused);
            zeroGrads(plain);
            Tensor[] f = forwardLoss(fused, bf, li[0], li[1]);
            Tensor[] p = forwardLoss(plain, bp, li[0], li[1]);
            assertTrue(f[0].requires_grad() && f[1].requires_grad());

            double outAbs = f[0].sub(p[0]).abs().max().item_double();
            double outNorm = f[0].sub(p[0]).norm().item_double() / p[0].norm().item_double();
            double outMax = p[0].abs().max().item_double();
            System.out.printf("last hidden state %s: max |fused - torch| %.3g (max |out| %.3g), normwise rel %.3g%n",
                    java.util.Arrays.toString(Tensors.shape(p[0])), outAbs, outMax, outNorm);
            assertTrue(torch.allclose(f[0], p[0], 1e-5, 1e-5 * outMax, false), "outputs differ by " + outAbs);
            assertTrue(outNorm <= 1e-5, "outputs: normwise " + outNorm);
            double lf = f[1].item_double(), lp = p[1].item_double();
            assertTrue(Math.abs(lf - lp) <= 1e-5 * Math.abs(lp), "loss " + lf + " vs " + lp);

            long over = FusedOps.biasGeluGradsOverSaved();
            f[1].backward();
            // Not retained: every layer's bias + GELU backward writes dx over its saved gelu'.
            assertEquals(fused.config().numHiddenLayers(), FusedOps.biasGeluGradsOverSaved() - over,
                    "bias + GELU backwards writing dx over the saved derivative");
            p[1].backward();
            Map<String, Tensor> fp = fused.model().parameters(), pp = plain.model().parameters();
            double worstNorm = 0;
            String worstName = "";
            int checked = 0, noiseOnly = 0;
            for (Map.Entry<String, Tensor> e : pp.entrySet()) {
                Tensor gp = e.getValue().grad(), gf = fp.get(e.getKey()).grad();
                assertTrue(gp.defined() && gf.defined(), e.getKey() + ": no gradient");
                if (e.getKey().endsWith("attention.self.key.bias")) {
                    // Exactly zero in exact arithmetic: it adds q.b_k to every score of a query
                    // row, and softmax is shift-invariant. Both paths hold rounding noise only,
                    // so check that it is negligible next to the key weight's gradient.
                    double scale = pp.get(e.getKey().replace(".bias", ".weight")).grad().abs().max().item_double();
                    double noise = Math.max(gp.abs().max().item_double(), gf.abs().max().item_double());
                    assertTrue(noise <= 1e-5 * scale, e.getKey() + ": " + noise + " vs key weight grad " + scale);
                    noiseOnly++;
                    checked++;
                    continue;
                }
                double ref = gp.norm().item_double();
                assertTrue(ref > 0, e.getKey() + ": zero gradient");
                double rel = gf.sub(gp).norm().item_double() / ref;
                if (rel > worstNorm) {
                    worstNorm = rel;
                    worstName = e.getKey();
                }
                double gMax = gp.abs().max().item_double();
                assertTrue(torch.allclose(gf, gp, 1e-4, 1e-4 * gMax, false),
                        e.getKey() + ": max |fused - torch| " + gf.sub(gp).abs().max().item_double() + " (max |grad| " + gMax + ")");
                assertTrue(rel <= 1e-4, e.getKey() + ": normwise relative " + rel);
                checked++;
            }
            System.out.printf("gradients of all %d parameters: worst normwise relative difference %.3g (%s); "
                    + "%d key biases (true gradient 0) hold only rounding noise%n", checked, worstNorm, worstName, noiseOnly);
            assertEquals(fused.model().parameters().size(), checked);
        }
    }

    @Test
    void twentyStepSgdTrajectoriesMatch() {
        double lr = 0.05;
        double[] lf = train(fused, lr), lp = train(plain, lr);
        double worst = 0;
        for (int i = 0; i < lf.length; i++) {
            worst = Math.max(worst, Math.abs(lf[i] - lp[i]) / Math.abs(lp[i]));
        }
        System.out.printf("SGD lr %.2g, 20 steps: loss %.6f -> %.6f (fused) vs %.6f -> %.6f (torch), worst relative difference %.3g%n",
                lr, lf[0], lf[19], lp[0], lp[19], worst);
        assertTrue(lp[19] < 0.9 * lp[0], "the loss should go down: " + lp[0] + " -> " + lp[19]);
        for (int i = 0; i < lf.length; i++) {
            assertTrue(Math.abs(lf[i] - lp[i]) <= 1e-4 * Math.abs(lp[i]),
                    "step " + i + ": fused loss " + lf[i] + " vs torch " + lp[i]);
        }
    }

    /** 20 steps of plain SGD on a private copy of the weights (the shared models stay as loaded). */
    private static double[] train(Bert bert, double lr) {
        Map<String, Tensor> params = bert.model().parameters();
        List<Tensor> original = new ArrayList<>();
        try (NoGradGuard ng = new NoGradGuard()) {
            for (Tensor p : params.values()) {
                Tensor c = p.clone();
                c.retainReference();
                original.add(c);
            }
        }
        double[] losses = new double[20];
        try {
            Batch b = batch(bert);
            Tensor[] li = lossInputs(bert.config().hiddenSize(), b.batchSize());
            for (int step = 0; step < 20; step++) {
                try (PointerScope scope = new PointerScope()) {
                    zeroGrads(bert);
                    Tensor loss = forwardLoss(bert, b, li[0], li[1])[1];
                    losses[step] = loss.item_double();
                    loss.backward();
                    try (NoGradGuard ng = new NoGradGuard()) {
                        for (Tensor p : params.values()) {
                            p.sub_(p.grad().mul(new Scalar(lr)));
                        }
                    }
                }
            }
        } finally {
            try (NoGradGuard ng = new NoGradGuard()) {
                int i = 0;
                for (Tensor p : params.values()) {
                    p.copy_(original.get(i));
                    original.get(i++).releaseReference();
                }
            }
            zeroGrads(bert);
        }
        return losses;
    }
}
