package io.bert4j.bench;

import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertModel;
import io.bert4j.model.Tensors;
import io.bert4j.train.AdamW;
import io.bert4j.train.GradClip;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.Random;

/**
 * One full training step of a BertModel, as bert4j's Trainer does it: forward in training mode
 * (dropout on), a loss, backward, global gradient clipping at 1.0, an AdamW update, zeroed
 * gradients. The loss is the MSE between the mean-pooled last hidden state and a fixed random
 * target: a sentence-embedding regression objective that needs no head the imported model lacks.
 * The kernel mode is switched per call so fused and torch steps can alternate on one model.
 */
final class TrainStep implements AutoCloseable {
    static final double LR = 1e-5;

    private final BertModel model;
    private final Workloads.Inputs in;
    private final Tensor target;    // [B, H]
    private final AdamW opt;

    TrainStep(BertModel model, Workloads.Inputs in, long seed) {
        this.model = model;
        this.in = in;
        int h = model.config().hiddenSize();
        float[] t = new float[in.batch() * h];
        Random r = new Random(seed);
        for (int i = 0; i < t.length; i++) {
            t[i] = (float) (0.05 * r.nextGaussian());      // the scale of MiniLM's per-dimension means
        }
        target = Tensors.fromFloats(t, in.batch(), h);
        model.setTrainable(true);
        opt = new AdamW(model.parameters(), 0.01);
    }

    /** Forward, loss and backward only (gradients left in place); returns the loss. */
    private double lossAndBackward() {
        try (PointerScope scope = new PointerScope()) {
            Tensor ids = Tensors.fromLongs(in.ids(), in.batch(), in.seq());
            Tensor types = Tensors.fromLongs(in.typeIds(), in.batch(), in.seq());
            Tensor mask = Tensors.fromLongs(in.mask(), in.batch(), in.seq());
            Tensor h = model.forward(ids, types, mask).lastHiddenState();             // [B, S, H]
            // Every row is exactly S tokens (no padding), so the masked mean is the plain mean.
            Tensor pooled = h.sum(new long[]{1}, false, null).div(new org.bytedeco.pytorch.Scalar((double) in.seq()));
            Tensor loss = torch.mse_loss(pooled, target);
            loss.backward();
            return loss.item_double();
        }
    }

    /** One timed training step with the given kernels; returns the loss before the update. */
    double step(KernelMode mode) {
        model.setKernels(mode);
        model.train(true);
        double loss = lossAndBackward();
        GradClip.clipGlobalNorm(model.parameters().values(), 1.0);
        opt.step(LR);
        zeroGrads();
        return loss;
    }

    /**
     * Loss and gradient norm with the given kernels, dropout off, no update: the parity check
     * between kernel modes on identical weights.
     */
    double[] lossAndGradNorm(KernelMode mode) {
        model.setKernels(mode);
        model.train(false);
        double loss = lossAndBackward();
        double norm;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            double sq = 0;
            for (Tensor p : model.parameters().values()) {
                Tensor g = p.grad();
                if (g.defined()) {
                    double n = g.norm().item_double();
                    sq += n * n;
                }
            }
            norm = Math.sqrt(sq);
        }
        zeroGrads();
        return new double[]{loss, norm};
    }

    private void zeroGrads() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (Tensor p : model.parameters().values()) {
                Tensor g = p.grad();
                if (g.defined()) {
                    g.zero_();
                }
            }
        }
    }

    @Override
    public void close() {
        opt.close();
    }
}
