package io.bert4j.train;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/** Gradient clipping by global L2 norm, as {@code torch.nn.utils.clip_grad_norm_}. */
public final class GradClip {
    private GradClip() {
    }

    /**
     * Scales every defined gradient by {@code maxNorm / (norm + 1e-6)} when that factor is
     * below 1, where {@code norm} is the L2 norm over all gradients together. With
     * {@code maxNorm <= 0} nothing is scaled. Returns the norm before clipping (NaN or
     * infinite if a gradient is; then nothing is scaled).
     */
    public static double clipGlobalNorm(Collection<Tensor> params, double maxNorm) {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            List<Tensor> grads = new ArrayList<>();
            TensorVector norms = new TensorVector();
            for (Tensor p : params) {
                Tensor g = p.grad();
                if (g.defined()) {
                    grads.add(g);
                    norms.push_back(g.norm());
                }
            }
            if (grads.isEmpty()) {
                return 0;
            }
            // Norm of the per-tensor norms: one device sync for the whole model.
            double total = torch.stack(norms).norm().item_double();
            if (!Double.isFinite(total) || maxNorm <= 0) {
                return total;
            }
            double coef = maxNorm / (total + 1e-6);
            if (coef < 1) {
                Scalar s = new Scalar(coef);
                for (Tensor g : grads) {
                    g.mul_(s);
                }
            }
            return total;
        }
    }
}
