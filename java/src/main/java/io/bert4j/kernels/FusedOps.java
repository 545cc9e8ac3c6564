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
    private FusedOps() {}

    /**
     * {@code gelu(x + bias)}, differentiable in x and bias.
     *
     * @param x float32, CPU, [..., cols] (made contiguous if it is not)
     * @param bias float32, CPU, [cols]
     * @param tanh false: exact erf GELU; true: tanh approximation
     */
    public static Tensor biasGelu(Tensor x, Tensor bias, boolean tanh) {
        boolean record = GradMode.is_enabled() && (x.requires_grad() || bias.requires_grad());
        if (!record) {
            return Kernels.biasGelu(x.is_contiguous() ? x : x.contiguous(), bias, tanh);
        }
        Tensor xd = x.detach();
        Tensor bd = bias.detach();
        if (!xd.is_contiguous()) {
            xd = xd.contiguous();
        }
        if (!bd.is_contiguous()) {
            bd = bd.contiguous();
        }
        Tensor y;
        try (NoGradGuard noGrad = new NoGradGuard()) {
            y = Kernels.biasGelu(xd, bd, tanh);
        }
        return AutogradSplice.attach("biasGelu", y, new Tensor[] {x, bias}, new Tensor[] {xd, bd},
                (g, saved, needs) -> {
                    // dx is needed for dbias anyway (dbias = dx summed over rows).
                    Kernels.BiasGeluGrads grads = Kernels.biasGeluBackward(g, saved[0], saved[1], tanh, needs[1]);
                    return new Tensor[] {grads.dx(), grads.dbias()};
                });
    }
}
