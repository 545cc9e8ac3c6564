package io.bert4j.bench;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Inputs and the libtorch references shared by the kernel benchmarks and {@link AttentionMemory}. */
final class KernelInputs {
    static {
        io.bert4j.NativeSetup.ensure(); // JMH forks: OpenMP settings before libtorch loads
    }

    private KernelInputs() {
    }

    /** heads 12; head_dim 32 (all-MiniLM-L6-v2, hidden 384) or 64 (BERT-base, hidden 768). */
    static int headDim(String model) {
        return switch (model) {
            case "minilm" -> 32;
            case "base" -> 64;
            default -> throw new IllegalArgumentException("model must be minilm or base, got " + model);
        };
    }

    /** FFN intermediate width: 1536 (MiniLM) or 3072 (BERT-base). */
    static int intermediate(String model) {
        return 4 * 12 * headDim(model);
    }

    /**
     * A realistic right-padded batch: sequence b has {@code S - b*S/(2B)} valid keys, so the
     * longest is full and the shortest about half full.
     */
    static long[] validLengths(int batch, int seq) {
        long[] lens = new long[batch];
        for (int b = 0; b < batch; b++) {
            lens[b] = seq - (long) b * seq / (2L * batch);
        }
        return lens;
    }

    /** int32 [B] key lengths (the fused kernel's native form of a padding mask). */
    static Tensor keyLengths(long[] lens) {
        Tensor t = torch.zeros(lens.length).to(ScalarType.Int);
        for (int i = 0; i < lens.length; i++) {
            t.select(0, i).fill_(new Scalar(lens[i]));
        }
        return t;
    }

    /** Boolean [B, 1, 1, S] padding mask for SDPA: true = attend (j < len[b]). */
    static Tensor boolMask(long[] lens, int seq) {
        Tensor m = torch.ones(lens.length, 1, 1, seq);
        for (int b = 0; b < lens.length; b++) {
            if (lens[b] < seq) {
                m.select(0, b).narrow(2, lens[b], seq - lens[b]).fill_(new Scalar(0.0));
            }
        }
        return m.to(ScalarType.Bool);
    }

    static Tensor sdpa(Tensor q, Tensor k, Tensor v, Tensor boolMask, double scale) {
        return torch.scaled_dot_product_attention(q, k, v,
                boolMask == null ? new TensorOptional() : new TensorOptional(boolMask),
                0.0, false, new DoubleOptional(scale), false);
    }

    /** The composed (math) reference softmax(scale·QKᵀ)V: materialises [B, H, S, S]. */
    static Tensor composed(Tensor q, Tensor k, Tensor v, double scale) {
        return composed(q, k, v, null, scale);
    }

    /** softmax(scale·QKᵀ + additiveMask)V; additiveMask float [B, 1, 1, S] or null. */
    static Tensor composed(Tensor q, Tensor k, Tensor v, Tensor additiveMask, double scale) {
        Tensor s = q.matmul(k.transpose(-2, -1)).mul(new Scalar(scale)); // [B, H, S, S]
        if (additiveMask != null) {
            s = s.add(additiveMask);
        }
        return torch.softmax(s, -1).matmul(v);                          // [B, H, S, D]
    }

    /** Additive float [B, 1, 1, S] padding mask: 0 for j < len[b], -inf after. */
    static Tensor additiveMask(long[] lens, int seq) {
        Tensor m = torch.zeros(lens.length, 1, 1, seq);
        for (int b = 0; b < lens.length; b++) {
            if (lens[b] < seq) {
                m.select(0, b).narrow(2, lens[b], seq - lens[b]).fill_(new Scalar(Double.NEGATIVE_INFINITY));
            }
        }
        return m;
    }
}
