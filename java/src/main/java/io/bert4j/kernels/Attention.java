package io.bert4j.kernels;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Checked entry points to the fused CPU attention kernels (fp32) over libtorch tensors.
 *
 * <p>{@code out = dropout(softmax(scale * q kᵀ + mask, keys < keyLength)) v}, computed tile by
 * tile (no [seq_q x seq_k] matrix); {@code lse} is the per-row log-sum-exp the backward needs.
 * Dropout regenerates its mask from {@code (seed, offset)} (Philox, see
 * {@link #dropoutKeep}), so pass the same values to the backward.
 *
 * <p>Layouts: q, k, v may be any strided views whose last dimension (head_dim) is
 * contiguous, e.g. {@code [B, S, H, D].transpose(1, 2)} of a projection output or slices of a
 * fused QKV {@code [B, S, 3, H, D]} buffer; nothing is copied. {@code out} is returned as a
 * [B, H, S, D] view of [B, S, H, D] memory, so {@code out.transpose(1, 2).reshape(B, S, H*D)}
 * is free. Results carry no autograd history; splice them into a graph with a hook (see the
 * design notes).
 */
public final class Attention {
    private Attention() {}

    /** Forward result: out [B, H, Sq, D] (varlen: [T, H, D]) and lse [B, H, Sq] (varlen: [H, T]). */
    public record Result(Tensor out, Tensor lse) {}

    /** Gradients, shaped (and, when dense, laid out) like q, k, v. */
    public record Grads(Tensor dq, Tensor dk, Tensor dv) {}

    /**
     * @param q float32 CPU [B, H, Sq, D], head_dim contiguous
     * @param k float32 CPU [B, H, Sk, D]
     * @param v float32 CPU [B, H, Sk, D]
     * @param keyLengths int32 CPU [B] (keys {@code j >= keyLengths[b]} are invisible), or null
     * @param additiveMask float32 CPU, 4-D, broadcastable to [B, H, Sq, Sk] (size 1 or full in
     *     each of the first three dimensions; last dimension Sk with stride 1), added to the
     *     scaled scores ({@code -inf} hides a key); or null. A boolean mask must be converted
     *     first, e.g. {@code zeros.masked_fill(mask.logical_not(), -inf)}.
     * @param dropoutP dropout probability in [0, 1); 0 = off
     */
    public static Result forward(Tensor q, Tensor k, Tensor v, Tensor keyLengths, Tensor additiveMask,
                                 double scale, double dropoutP, long seed, long offset) {
        final String op = "Attention.forward";
        Dense d = Dense.of(op, q, k, v, keyLengths, additiveMask);
        Tensor out = torch.empty(d.b, d.sq, d.h, d.dim).transpose(1, 2); // [B, H, Sq, D] view of [B, Sq, H, D]
        Tensor lse = torch.empty(d.b, d.h, d.sq);                         // [B, H, Sq]
        int status = NativeKernels.bert4j_attention_forward_f32(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                out.data_ptr(), lse.data_ptr(), d.b, d.h, d.sq, d.sk, d.dim,
                strides3(q), strides3(k), strides3(v), strides3(out),
                ptr(keyLengths), ptr(additiveMask), d.maskStrides, (float) scale, (float) dropoutP, seed, offset);
        check(op, status);
        return new Result(out, lse);
    }

    /**
     * Gradients of {@link #forward} with respect to q, k, v, given {@code dout} (like out) and
     * the forward's {@code out} and {@code lse}. Same mask, scale and dropout arguments as the
     * forward. Keys beyond a key length get zero gradient.
     */
    public static Grads backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                                 Tensor keyLengths, Tensor additiveMask, double scale, double dropoutP,
                                 long seed, long offset) {
        final String op = "Attention.backward";
        Dense d = Dense.of(op, q, k, v, keyLengths, additiveMask);
        String qShape = "[" + d.b + ", " + d.h + ", " + d.sq + ", " + d.dim + "]";
        requireShape(op, "out", out, qShape, d.b, d.h, d.sq, d.dim);
        requireShape(op, "dout", dout, qShape, d.b, d.h, d.sq, d.dim);
        requireLse(op, lse, d.b, d.h, d.sq);
        Tensor dq = torch.empty_like(q);
        Tensor dk = torch.empty_like(k);
        Tensor dv = torch.empty_like(v);
        int status = NativeKernels.bert4j_attention_backward_f32(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                out.data_ptr(), dout.data_ptr(), lse.data_ptr(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                d.b, d.h, d.sq, d.sk, d.dim, strides3(q), strides3(k), strides3(v), strides3(out),
                strides3(dout), strides3(dq), strides3(dk), strides3(dv),
                ptr(keyLengths), ptr(additiveMask), d.maskStrides, (float) scale, (float) dropoutP, seed, offset);
        check(op, status);
        return new Grads(dq, dk, dv);
    }

    /**
     * Packed (padding-free) self-attention within each sequence: sequence s is tokens
     * {@code [cuSeqlens[s], cuSeqlens[s+1])}.
     *
     * @param q float32 CPU [T, H, D] (head_dim contiguous; views of a [T, 3, H, D] QKV are fine)
     * @param cuSeqlens int32 CPU contiguous [N + 1], 0 = cu[0] <= ... <= cu[N] = T
     * @param maxSeqlen bound on every sequence length (it also enters the dropout index)
     */
    public static Result forwardVarlen(Tensor q, Tensor k, Tensor v, Tensor cuSeqlens, long maxSeqlen,
                                       double scale, double dropoutP, long seed, long offset) {
        final String op = "Attention.forwardVarlen";
        Varlen d = Varlen.of(op, q, k, v, cuSeqlens);
        Tensor out = torch.empty(d.t, d.h, d.dim); // [T, H, D]
        Tensor lse = torch.empty(d.h, d.t);        // [H, T]
        int status = NativeKernels.bert4j_attention_varlen_forward_f32(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                out.data_ptr(), lse.data_ptr(), cuSeqlens.data_ptr(), d.n, d.t, maxSeqlen, d.h, d.dim,
                strides2(q), strides2(k), strides2(v), strides2(out), (float) scale, (float) dropoutP, seed, offset);
        check(op, status);
        return new Result(out, lse);
    }

    /** Gradients of {@link #forwardVarlen}; out and dout [T, H, D], lse [H, T]. */
    public static Grads backwardVarlen(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dout, Tensor lse,
                                       Tensor cuSeqlens, long maxSeqlen, double scale, double dropoutP,
                                       long seed, long offset) {
        final String op = "Attention.backwardVarlen";
        Varlen d = Varlen.of(op, q, k, v, cuSeqlens);
        String shape = "[" + d.t + ", " + d.h + ", " + d.dim + "]";
        requireShape(op, "out", out, shape, d.t, d.h, d.dim);
        requireShape(op, "dout", dout, shape, d.t, d.h, d.dim);
        requireFloat(op, "lse", lse, "[" + d.h + ", " + d.t + "]");
        if (lse.dim() != 2 || lse.size(0) != d.h || lse.size(1) != d.t || !lse.is_contiguous()) {
            throw new Bert4jException(op + ": lse must be a contiguous [" + d.h + ", " + d.t
                    + "] tensor (the forward's), got " + Kernels.shape(lse));
        }
        Tensor dq = torch.empty(d.t, d.h, d.dim);
        Tensor dk = torch.empty(d.t, d.h, d.dim);
        Tensor dv = torch.empty(d.t, d.h, d.dim);
        int status = NativeKernels.bert4j_attention_varlen_backward_f32(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                out.data_ptr(), dout.data_ptr(), lse.data_ptr(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                cuSeqlens.data_ptr(), d.n, d.t, maxSeqlen, d.h, d.dim, strides2(q), strides2(k), strides2(v),
                strides2(out), strides2(dout), strides2(dq), strides2(dk), strides2(dv),
                (float) scale, (float) dropoutP, seed, offset);
        check(op, status);
        return new Grads(dq, dk, dv);
    }

    /** Whether element {@code idx} survives dropout with probability p (the kernels' own rule). */
    public static boolean dropoutKeep(long seed, long offset, long idx, double p) {
        return NativeKernels.bert4j_dropout_keep(seed, offset, idx, (float) p) != 0;
    }

    // ---- argument checks ------------------------------------------------------------------

    private record Dense(long b, long h, long sq, long sk, long dim, long[] maskStrides) {
        static Dense of(String op, Tensor q, Tensor k, Tensor v, Tensor keyLengths, Tensor mask) {
            requireFloat(op, "q", q, "[B, H, Sq, D]");
            if (q.dim() != 4) {
                throw new Bert4jException(op + ": q must have shape [B, H, Sq, D], got " + Kernels.shape(q));
            }
            long b = q.size(0), h = q.size(1), sq = q.size(2), dim = q.size(3);
            requireFloat(op, "k", k, "[" + b + ", " + h + ", Sk, " + dim + "]");
            if (k.dim() != 4 || k.size(0) != b || k.size(1) != h || k.size(3) != dim) {
                throw new Bert4jException(op + ": k must have shape [" + b + ", " + h + ", Sk, " + dim
                        + "] to match q " + Kernels.shape(q) + ", got " + Kernels.shape(k));
            }
            long sk = k.size(2);
            String kShape = "[" + b + ", " + h + ", " + sk + ", " + dim + "]";
            requireShape(op, "v", v, kShape, b, h, sk, dim);
            requireInnerContiguous(op, "q", q);
            requireInnerContiguous(op, "k", k);
            if (keyLengths != null) {
                if (!keyLengths.defined() || !Kernels.hasScalarType(keyLengths, ScalarType.Int)
                        || !keyLengths.is_cpu() || keyLengths.dim() != 1 || keyLengths.size(0) != b
                        || !keyLengths.is_contiguous()) {
                    throw new Bert4jException(op + ": keyLengths must be a contiguous int32 CPU tensor [" + b
                            + "], got " + describe(keyLengths));
                }
            }
            long[] maskStrides = null;
            if (mask != null) {
                String want = "broadcastable to [" + b + ", " + h + ", " + sq + ", " + sk + "]";
                requireFloat(op, "additiveMask", mask, want);
                long[] full = {b, h, sq, sk};
                boolean ok = mask.dim() == 4 && mask.size(3) == sk;
                for (int i = 0; ok && i < 3; i++) ok = mask.size(i) == full[i] || mask.size(i) == 1;
                if (!ok) {
                    throw new Bert4jException(op + ": additiveMask must be 4-D " + want
                            + " (size 1 or full in the first three dimensions, Sk last), got " + Kernels.shape(mask));
                }
                if (sk > 1 && mask.stride(3) != 1) {
                    throw new Bert4jException(op + ": additiveMask must be contiguous along keys (stride 1 in "
                            + "the last dimension), got strides " + strides(mask) + " (call .contiguous())");
                }
                maskStrides = new long[3];
                for (int i = 0; i < 3; i++) maskStrides[i] = mask.size(i) == 1 ? 0 : mask.stride(i);
            }
            return new Dense(b, h, sq, sk, dim, maskStrides);
        }
    }

    private record Varlen(long t, long h, long dim, long n) {
        static Varlen of(String op, Tensor q, Tensor k, Tensor v, Tensor cuSeqlens) {
            requireFloat(op, "q", q, "[T, H, D]");
            if (q.dim() != 3) {
                throw new Bert4jException(op + ": q must have shape [T, H, D], got " + Kernels.shape(q));
            }
            long t = q.size(0), h = q.size(1), dim = q.size(2);
            String shape = "[" + t + ", " + h + ", " + dim + "]";
            requireShape(op, "k", k, shape, t, h, dim);
            requireShape(op, "v", v, shape, t, h, dim);
            requireInnerContiguous(op, "q", q);
            if (cuSeqlens == null || cuSeqlens.isNull() || !cuSeqlens.defined()
                    || !Kernels.hasScalarType(cuSeqlens, ScalarType.Int) || !cuSeqlens.is_cpu()
                    || cuSeqlens.dim() != 1 || cuSeqlens.size(0) < 1 || !cuSeqlens.is_contiguous()) {
                throw new Bert4jException(op + ": cuSeqlens must be a contiguous int32 CPU tensor [num_seqs + 1], got "
                        + describe(cuSeqlens));
            }
            return new Varlen(t, h, dim, cuSeqlens.size(0) - 1);
        }
    }

    private static void requireFloat(String op, String name, Tensor t, String expectedShape) {
        if (t == null || t.isNull() || !t.defined()) {
            throw new Bert4jException(op + ": " + name + " is null (expected a float32 CPU tensor " + expectedShape + ")");
        }
        if (!Kernels.hasScalarType(t, ScalarType.Float)) {
            throw new Bert4jException(op + ": " + name + " must be float32, got "
                    + t.dtype().name().getString() + " " + Kernels.shape(t));
        }
        if (!t.is_cpu()) {
            throw new Bert4jException(op + ": " + name + " must be on the CPU, got device "
                    + t.device().str().getString() + " (CUDA tensors go through the CUDA kernels)");
        }
    }

    private static void requireShape(String op, String name, Tensor t, String expected, long... sizes) {
        requireFloat(op, name, t, expected);
        boolean ok = t.dim() == sizes.length;
        for (int i = 0; ok && i < sizes.length; i++) ok = t.size(i) == sizes[i];
        if (!ok) {
            throw new Bert4jException(op + ": " + name + " must have shape " + expected + ", got " + Kernels.shape(t));
        }
        requireInnerContiguous(op, name, t);
    }

    private static void requireInnerContiguous(String op, String name, Tensor t) {
        int last = (int) t.dim() - 1;
        if (t.size(last) > 1 && t.stride(last) != 1) {
            throw new Bert4jException(op + ": " + name + " must be contiguous in head_dim (stride 1 in the last "
                    + "dimension), got shape " + Kernels.shape(t) + " with strides " + strides(t));
        }
        for (int i = 0; i < last; i++) {
            if (t.stride(i) < 0) {
                throw new Bert4jException(op + ": " + name + " has a negative stride: " + strides(t));
            }
        }
    }

    private static void requireLse(String op, Tensor lse, long b, long h, long sq) {
        String want = "[" + b + ", " + h + ", " + sq + "]";
        requireFloat(op, "lse", lse, want);
        if (lse.dim() != 3 || lse.size(0) != b || lse.size(1) != h || lse.size(2) != sq || !lse.is_contiguous()) {
            throw new Bert4jException(op + ": lse must be a contiguous " + want
                    + " tensor (the forward's), got " + Kernels.shape(lse) + " with strides " + strides(lse));
        }
    }

    private static String describe(Tensor t) {
        if (t == null || t.isNull() || !t.defined()) return "null";
        return t.dtype().name().getString() + " " + Kernels.shape(t) + " on " + t.device().str().getString()
                + (t.is_contiguous() ? "" : " (not contiguous)");
    }

    private static long[] strides3(Tensor t) {
        return new long[] {t.stride(0), t.stride(1), t.stride(2)};
    }

    /** Varlen [T, H, D]: {token, head}. */
    private static long[] strides2(Tensor t) {
        return new long[] {t.stride(0), t.stride(1)};
    }

    private static Pointer ptr(Tensor t) {
        return t == null ? null : t.data_ptr();
    }

    private static String strides(Tensor t) {
        StringBuilder sb = new StringBuilder("[");
        for (int d = 0; d < t.dim(); d++) sb.append(d == 0 ? "" : ", ").append(t.stride(d));
        return sb.append(']').toString();
    }

    private static void check(String op, int status) {
        if (status != NativeKernels.BERT4J_OK) {
            throw new Bert4jException(op + ": native kernel failed (status " + status + "): "
                    + NativeKernels.bert4j_last_error());
        }
    }
}
