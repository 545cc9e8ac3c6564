package io.bert4j.train;

import io.bert4j.Bert4jException;
import io.bert4j.io.DType;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.model.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW with the update of {@code torch.optim.AdamW} (single-tensor path), done in place with
 * libtorch ops so it runs on whatever device the parameters live on:
 * <pre>
 *   p        *= 1 - lr * wd                       (decoupled decay, before the Adam update)
 *   m         = lerp(m, g, 1 - beta1)
 *   v         = beta2 * v + (1 - beta2) * g * g
 *   denom     = sqrt(v) / sqrt(1 - beta2^t) + eps  (eps after the bias-corrected root)
 *   p        -= lr / (1 - beta1^t) * m / denom
 * </pre>
 * Two parameter groups by name: biases and LayerNorm weights get no decay
 * ({@link #decays(String)}), everything else gets {@code weightDecay}. A parameter whose
 * gradient is undefined is skipped and its step count does not advance, as in torch.
 */
public final class AdamW implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }

    private final List<String> names;
    private final List<Tensor> params;
    private final boolean[] decay;
    private final Tensor[] expAvg;
    private final Tensor[] expAvgSq;
    private final long[] steps;
    private final double weightDecay, beta1, beta2, eps;

    public AdamW(Map<String, Tensor> parameters, double weightDecay, double beta1, double beta2, double eps) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new Bert4jException("AdamW betas must lie in [0, 1), got " + beta1 + ", " + beta2);
        }
        if (!(eps >= 0) || !(weightDecay >= 0)) {
            throw new Bert4jException("AdamW eps and weight decay must be >= 0, got " + eps + ", " + weightDecay);
        }
        this.names = List.copyOf(parameters.keySet());
        this.params = List.copyOf(parameters.values());
        this.weightDecay = weightDecay;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        int n = names.size();
        decay = new boolean[n];
        expAvg = new Tensor[n];
        expAvgSq = new Tensor[n];
        steps = new long[n];
        try (NoGradGuard ng = new NoGradGuard()) {
            for (int i = 0; i < n; i++) {
                decay[i] = decays(names.get(i));
                expAvg[i] = torch.zeros_like(params.get(i));
                expAvg[i].retainReference();
                expAvgSq[i] = torch.zeros_like(params.get(i));
                expAvgSq[i].retainReference();
            }
        }
    }

    /** The torch defaults: betas (0.9, 0.999), eps 1e-8. */
    public AdamW(Map<String, Tensor> parameters, double weightDecay) {
        this(parameters, weightDecay, 0.9, 0.999, 1e-8);
    }

    /** Whether a parameter is in the decayed group: not a bias and not a LayerNorm weight. */
    public static boolean decays(String name) {
        return !(name.endsWith(".bias") || name.equals("bias")
                || name.contains("LayerNorm") || name.contains("layer_norm"));
    }

    /** One update with learning rate {@code lr}, from the gradients currently in the parameters. */
    public void step(double lr) {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (int i = 0; i < params.size(); i++) {
                Tensor p = params.get(i);
                Tensor g = p.grad();
                if (!g.defined()) {
                    continue;
                }
                long t = ++steps[i];
                if (decay[i] && weightDecay != 0) {
                    p.mul_(new Scalar(1 - lr * weightDecay));
                }
                expAvg[i].lerp_(g, new Scalar(1 - beta1));
                expAvgSq[i].mul_(new Scalar(beta2)).addcmul_(g, g, new Scalar(1 - beta2));
                double bc1 = 1 - Math.pow(beta1, t);
                double bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, t));
                Tensor denom = expAvgSq[i].sqrt().div_(new Scalar(bc2Sqrt)).add_(new Scalar(eps));
                p.addcdiv_(expAvg[i], denom, new Scalar(-lr / bc1));
            }
        }
    }

    /** The step count of the first parameter that has taken a step (all agree unless some had no gradient). */
    public long stepCount() {
        return Arrays.stream(steps).max().orElse(0);
    }

    /**
     * Writes the state as safetensors: {@code exp_avg.<name>}, {@code exp_avg_sq.<name>}
     * (float32) and {@code step.<name>} (int64 scalar), so a resumed run continues bit for bit.
     */
    public void save(Path file) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            for (int i = 0; i < names.size(); i++) {
                String n = names.get(i);
                out.put("exp_avg." + n, Tensors.toHost(expAvg[i].cpu()));
                out.put("exp_avg_sq." + n, Tensors.toHost(expAvgSq[i].cpu()));
                ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, steps[i]);
                out.put("step." + n, new HostTensor(DType.I64, new long[0], b));
            }
        }
        SafeTensors.write(file, out, Map.of("format", "bert4j-adamw"));
    }

    /** Restores state written by {@link #save}; every parameter must be present with its shape. */
    public void load(Path file) {
        Map<String, HostTensor> in = new HashMap<>(SafeTensors.read(file));
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (int i = 0; i < names.size(); i++) {
                String n = names.get(i);
                HostTensor m = required(in, "exp_avg." + n, file), v = required(in, "exp_avg_sq." + n, file);
                HostTensor s = required(in, "step." + n, file);
                long[] want = Tensors.shape(params.get(i));
                if (!Arrays.equals(m.shape(), want) || !Arrays.equals(v.shape(), want)) {
                    throw new Bert4jException(file + ": optimizer state for " + n + " has shape "
                            + Arrays.toString(m.shape()) + ", the parameter has " + Arrays.toString(want));
                }
                if (s.dtype() != DType.I64 || s.numel() != 1) {
                    throw new Bert4jException(file + ": step." + n + " is not an int64 scalar");
                }
                expAvg[i].copy_(Tensors.toFloatTensor(m));
                expAvgSq[i].copy_(Tensors.toFloatTensor(v));
                steps[i] = s.data().duplicate().order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            }
        }
        if (!in.isEmpty()) {
            throw new Bert4jException(file + ": optimizer state for unknown parameters: " + in.keySet());
        }
    }

    private static HostTensor required(Map<String, HostTensor> in, String key, Path file) {
        HostTensor h = in.remove(key);
        if (h == null) {
            throw new Bert4jException(file + ": optimizer state lacks " + key);
        }
        return h;
    }

    @Override
    public void close() {
        for (int i = 0; i < expAvg.length; i++) {
            if (expAvg[i] != null) {
                expAvg[i].releaseReference();
                expAvgSq[i].releaseReference();
                expAvg[i] = expAvgSq[i] = null;
            }
        }
    }
}
