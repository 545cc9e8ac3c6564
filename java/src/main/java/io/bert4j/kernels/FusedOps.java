package io.bert4j.kernels;

import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/**
 * Autograd-aware fused ops: the native forward, and, when grad mode is on and an input
 * requires grad, the native backward spliced into libtorch autograd
 * ({@link AutogradSplice}), so an ordinary {@code loss.backward()} runs it. With grad mode off
 * or no input requiring grad they are the plain native forward ({@link Kernels}).
 */
public final class FusedOps {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }

    private FusedOps() {}

    /**
     * {@code gelu(x + bias)}, differentiable in x and bias. x is not modified.
     *
     * <p>Under autograd the forward also writes {@code gelu'(x + bias)}, the tensor the backward
     * multiplies by (no erf or exp there), and keeps it until the backward: one [..., cols]
     * buffer for the life of the graph, as libtorch's {@code gelu} keeps its input. A caller
     * that is done with x can let that buffer be x's own: {@link #biasGeluConsumingInput}.
     *
     * @param x float32, CPU, [..., cols] (made contiguous if it is not)
     * @param bias float32, CPU, [cols]
     * @param tanh false: exact erf GELU; true: tanh approximation
     */
    public static Tensor biasGelu(Tensor x, Tensor bias, boolean tanh) {
        return biasGelu(x, bias, tanh, false);
    }

    /**
     * {@link #biasGelu} for an x the caller will not read again, e.g. a GEMM output computed
     * just for this op: under autograd, {@code gelu'(x + bias)} is written over x's buffer
     * instead of a new one (x's values are gone afterwards; nothing of autograd's may hold them:
     * libtorch's linear layers do not save their output). A leaf or a view x is never
     * overwritten (a new buffer is used). Without autograd it is {@link #biasGelu} and x is
     * left alone.
     */
    public static Tensor biasGeluConsumingInput(Tensor x, Tensor bias, boolean tanh) {
        return biasGelu(x, bias, tanh, true);
    }

    private static Tensor biasGelu(Tensor x, Tensor bias, boolean tanh, boolean consume) {
        boolean record = GradMode.is_enabled() && (x.requires_grad() || bias.requires_grad());
        if (!record) {
            return Kernels.biasGelu(x.is_contiguous() ? x : x.contiguous(), bias, tanh);
        }
        // Only a tensor of its own (not a leaf, not a view of another tensor's storage).
        boolean overwrite = consume && x.is_contiguous() && !x.is_leaf() && !x.is_view();
        if (overwrite) {
            INPUTS_REUSED.incrementAndGet();
        }
        Kernels.BiasGeluTrain fwd;
        try (NoGradGuard noGrad = new NoGradGuard()) {
            // The kernel only reads x and bias through their pointers; when it writes gelu' over
            // x, the buffer is handed out through a detached alias (no history to save).
            Tensor xd = overwrite ? x.detach() : x.is_contiguous() ? x : x.contiguous();
            Tensor bd = bias.is_contiguous() ? bias : bias.contiguous();
            fwd = Kernels.biasGeluTrain(xd, bd, tanh, overwrite);
        }
        return AutogradSplice.attach("biasGelu", fwd.y(), new Tensor[] {x, bias}, new Tensor[] {fwd.dgelu()},
                (g, saved, needs, lastUse) -> {
                    // dx is needed for dbias anyway (dbias = dx summed over rows). The saved
                    // derivative is this op's own buffer (new, or x's in the consuming case): on
                    // its last use dx is written over it instead of a new [rows, cols] buffer.
                    if (lastUse) {
                        GRADS_OVER_SAVED.incrementAndGet();
                    }
                    Kernels.BiasGeluGrads grads = Kernels.biasGeluBackwardSaved(g, saved[0], needs[1], lastUse);
                    return new Tensor[] {grads.dx(), grads.dbias()};
                });
    }

    /**
     * Fused multi-head attention {@code dropout(softmax(scale q kᵀ + mask)) v} → [B, NH, S, D],
     * differentiable in q, k and v (the mask is a constant). The native forward runs on the
     * strided views as given (e.g. {@code qkv[B, S, 3, NH, D].select(2, i).transpose(1, 2)}); in
     * training the native backward is spliced into autograd and regenerates the dropout mask
     * from the same {@code (seed, offset)}, so nothing of size [S × S] is kept.
     *
     * <p>The result is a [B, NH, S, D] tensor laid out as [B, S, NH, D] memory, so
     * {@code out.transpose(1, 2).reshape(B, S, NH * D)} is free. Gradients reach q, k, v
     * contiguous in [B, NH, S, D] order; autograd maps them back through the views.
     *
     * @param q float32 CPU [B, NH, S, D] (head_dim contiguous); k, v likewise with Sk keys
     * @param additiveMask float32 [B, 1, 1, Sk] (0 = attend, -inf = hidden), or null
     * @param dropoutP attention-probability dropout in [0, 1); 0 = off
     * @param seed Philox key of the dropout mask; {@code offset} selects the stream (use a
     *     fresh offset per call)
     */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor additiveMask, double scale,
                                   double dropoutP, long seed, long offset) {
        boolean record = GradMode.is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
        Tensor mask = additiveMask == null ? null : additiveMask.detach();
        if (!record) {
            return Attention.forward(q, k, v, null, mask, scale, dropoutP, seed, offset).out();
        }
        ATTENTION_SPLICES.incrementAndGet();
        Tensor qd = q.detach(), kd = k.detach(), vd = v.detach();
        Attention.Result r;
        Tensor y;
        try (NoGradGuard noGrad = new NoGradGuard()) {
            r = Attention.forward(qd, kd, vd, null, mask, scale, dropoutP, seed, offset);
            // The kernel's out is a transpose view of [B, S, NH, D] memory, created without grad
            // mode: libtorch refuses an in-place op with grad on such a view (and would route
            // gradients through the base). detach() gives a non-view alias of the same memory
            // and strides, which the splice can modify in place.
            y = r.out().detach();
        }
        Tensor[] saved = mask == null
                ? new Tensor[] {qd, kd, vd, r.out(), r.lse()}
                : new Tensor[] {qd, kd, vd, r.out(), r.lse(), mask};
        return AutogradSplice.attach("attention", y, new Tensor[] {q, k, v}, saved,
                (g, s, needs, lastUse) -> {
                    Attention.Grads gr = Attention.backward(s[0], s[1], s[2], s[3], g, s[4], null,
                            s.length > 5 ? s[5] : null, scale, dropoutP, seed, offset);
                    return new Tensor[] {gr.dq(), gr.dk(), gr.dv()};
                });
    }

    /**
     * Packed (padding-free) multi-head self-attention within each sequence → [T, NH, D]
     * (contiguous), differentiable in q, k and v: sequence s is tokens
     * {@code [cuSeqlens[s], cuSeqlens[s+1])}. As {@link #attention}, the native backward is spliced
     * into autograd in training and regenerates the dropout mask from {@code (seed, offset)}.
     *
     * @param q float32 CPU [T, NH, D] (head_dim contiguous; views of a [T, 3, NH, D] QKV are fine)
     * @param cuSeqlens int32 CPU contiguous [N + 1], 0 = cu[0] <= ... <= cu[N] = T
     * @param maxSeqlen the longest sequence
     */
    public static Tensor attentionVarlen(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens, long maxSeqlen,
                                         double scale, double dropoutP, long seed, long offset) {
        boolean record = GradMode.is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
        if (!record) {
            return Attention.forwardVarlen(q, k, v, cuSeqlens, maxSeqlen, scale, dropoutP, seed, offset).out();
        }
        ATTENTION_SPLICES.incrementAndGet();
        Tensor qd = q.detach(), kd = k.detach(), vd = v.detach();
        Tensor cu = cuSeqlens.detach();
        Attention.Result r;
        try (NoGradGuard noGrad = new NoGradGuard()) {
            r = Attention.forwardVarlen(qd, kd, vd, cu, maxSeqlen, scale, dropoutP, seed, offset);
        }
        Tensor y = r.out().detach(); // a fresh [T, NH, D] buffer; the saved out aliases it (values unchanged)
        return AutogradSplice.attach("attentionVarlen", y, new Tensor[] {q, k, v},
                new Tensor[] {qd, kd, vd, r.out(), r.lse(), cu},
                (g, s, needs, lastUse) -> {
                    Attention.Grads gr = Attention.backwardVarlen(s[0], s[1], s[2], s[3], g, s[4], s[5],
                            maxSeqlen, scale, dropoutP, seed, offset);
                    return new Tensor[] {gr.dq(), gr.dk(), gr.dv()};
                });
    }

    private static final java.util.concurrent.atomic.AtomicLong INPUTS_REUSED =
            new java.util.concurrent.atomic.AtomicLong();
    private static final java.util.concurrent.atomic.AtomicLong GRADS_OVER_SAVED =
            new java.util.concurrent.atomic.AtomicLong();

    /**
     * How many bias + GELU backward calls have written dx over their saved derivative (the
     * graph was not retained) so far, for tests that must prove the backward allocates no
     * [rows, cols] buffer.
     */
    public static long biasGeluGradsOverSaved() {
        return GRADS_OVER_SAVED.get();
    }

    /**
     * How many {@link #biasGeluConsumingInput} calls under autograd have written the derivative
     * over their input so far (for tests that must prove the model saves that buffer).
     */
    public static long biasGeluInputsReused() {
        return INPUTS_REUSED.get();
    }

    private static final java.util.concurrent.atomic.AtomicLong ATTENTION_SPLICES =
            new java.util.concurrent.atomic.AtomicLong();

    /**
     * How many attention calls have been spliced into an autograd graph so far (for tests that
     * must prove the fused backward is in use, not silently bypassed).
     */
    public static long attentionSplices() {
        return ATTENTION_SPLICES.get();
    }
}
