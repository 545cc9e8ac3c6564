package io.bert4j.kernels;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.util.function.Supplier;

/**
 * Checked entry points to the native kernels over libtorch tensors: every argument is
 * validated here (dtype, device, shape, contiguity) with a message naming it, and a
 * non-zero native status becomes a {@link Bert4jException} carrying the native message.
 */
public final class Kernels {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }

    /**
     * float32 / int64 CPU options for new tensors, shared by the kernels and the autograd
     * splice instead of one object per call; retained once, so no caller's PointerScope can
     * free them.
     */
    static final org.bytedeco.pytorch.TensorOptions FLOAT_OPTIONS = retained(ScalarType.Float);
    static final org.bytedeco.pytorch.TensorOptions LONG_OPTIONS = retained(ScalarType.Long);

    private static org.bytedeco.pytorch.TensorOptions retained(ScalarType type) {
        org.bytedeco.pytorch.TensorOptions o = new org.bytedeco.pytorch.TensorOptions(type);
        o.retainReference();
        return o;
    }

    private Kernels() {}

    /**
     * {@code gelu(x + bias)} fused in one pass: bias broadcast over all leading dimensions.
     * Forward only: the result does not record autograd history ({@link FusedOps#biasGelu} is
     * the autograd-aware op).
     *
     * @param x float32, CPU, contiguous, shape [..., cols] (at least one dimension)
     * @param bias float32, CPU, contiguous, shape [cols]
     * @param approximateTanh false: exact erf GELU (HF "gelu", torch approximate="none");
     *     true: tanh approximation (HF "gelu_new", torch approximate="tanh")
     * @return a new float32 tensor shaped like x
     */
    public static Tensor biasGelu(Tensor x, Tensor bias, boolean approximateTanh) {
        final String op = "biasGelu";
        long[] rc = checkBiasGeluArgs(op, "x", x, bias);
        Tensor y = torch.empty_like(x); // contiguous like x: row stride = cols
        int status = NativeKernels.bert4j_bias_gelu_forward_f32(x.data_ptr(), bias.data_ptr(),
                y.data_ptr(), rc[0], rc[1], rc[1], rc[1], approximate(approximateTanh));
        check(op, status);
        return y;
    }

    /** Gradients of {@link #biasGelu}: {@code dx} shaped like x, {@code dbias} [cols] or null. */
    public record BiasGeluGrads(Tensor dx, Tensor dbias) {
    }

    /**
     * Backward of {@link #biasGelu}: {@code dx = dy * gelu'(x + bias)} and, when
     * {@code withBiasGrad}, {@code dbias = dx summed over all leading dimensions} (accumulated
     * in double, deterministic for any thread count). Forward math only: nothing is recorded
     * for autograd.
     *
     * @param dy float32, CPU, contiguous, shaped like x
     * @param x the forward's input (before the bias), float32, CPU, contiguous, [..., cols]
     * @param bias float32, CPU, contiguous, [cols]
     */
    public static BiasGeluGrads biasGeluBackward(Tensor dy, Tensor x, Tensor bias,
                                                 boolean approximateTanh, boolean withBiasGrad) {
        final String op = "biasGeluBackward";
        long[] rc = checkBiasGeluArgs(op, "x", x, bias);
        requireFloatCpuContiguous(op, "dy", dy, () -> shape(x));
        if (!sameShape(dy, x)) {
            throw new Bert4jException(op + ": dy must have the shape of x " + shape(x) + ", got " + shape(dy));
        }
        Tensor dx = torch.empty_like(x);
        Tensor dbias = withBiasGrad ? torch.empty_like(bias) : null;
        int status = NativeKernels.bert4j_bias_gelu_backward_f32(dy.data_ptr(), x.data_ptr(),
                bias.data_ptr(), dx.data_ptr(), withBiasGrad ? dbias.data_ptr() : null,
                rc[0], rc[1], rc[1], rc[1], rc[1], approximate(approximateTanh));
        check(op, status);
        return new BiasGeluGrads(dx, dbias);
    }

    /** {@link #biasGeluTrain}'s result: the op's output and the derivative its backward needs. */
    public record BiasGeluTrain(Tensor y, Tensor dgelu) {
    }

    /**
     * The training forward of {@link #biasGelu}: {@code y} (bitwise {@link #biasGelu}'s) and
     * {@code dgelu = gelu'(x + bias)}, shaped like x, which {@link #biasGeluBackwardSaved} turns
     * into the gradients without evaluating GELU again. Costs one more [..., cols] write than
     * the plain forward and saves the backward its erf and exp. Nothing is recorded for autograd.
     *
     * @param overwriteX false: dgelu is a new tensor; true: dgelu is written over x's own buffer
     *     (and returned as x), for a caller that will not read x again — no extra memory
     */
    public static BiasGeluTrain biasGeluTrain(Tensor x, Tensor bias, boolean approximateTanh, boolean overwriteX) {
        final String op = "biasGeluTrain";
        long[] rc = checkBiasGeluArgs(op, "x", x, bias);
        Tensor y = torch.empty_like(x);
        Tensor dgelu = overwriteX ? x : torch.empty_like(x);
        int status = NativeKernels.bert4j_bias_gelu_forward_train_f32(x.data_ptr(), bias.data_ptr(),
                y.data_ptr(), dgelu.data_ptr(), rc[0], rc[1], rc[1], rc[1], rc[1], approximate(approximateTanh));
        check(op, status);
        return new BiasGeluTrain(y, dgelu);
    }

    /**
     * Backward from {@link #biasGeluTrain}'s derivative: {@code dx = dy * dgelu} and, when
     * {@code withBiasGrad}, {@code dbias = dx summed over all leading dimensions} (in double,
     * deterministic for any thread count; bitwise {@link #biasGeluBackward}'s on AVX2 and
     * AVX-512 CPUs).
     *
     * @param dy float32, CPU, contiguous, shaped like dgelu
     * @param dgelu float32, CPU, contiguous, [..., cols]
     */
    public static BiasGeluGrads biasGeluBackwardSaved(Tensor dy, Tensor dgelu, boolean withBiasGrad) {
        return biasGeluBackwardSaved(dy, dgelu, withBiasGrad, false);
    }

    /**
     * {@link #biasGeluBackwardSaved(Tensor, Tensor, boolean)}, optionally writing dx over
     * dgelu's buffer (returned as dx) for a caller that will not read dgelu again: the
     * backward then allocates nothing of dgelu's size. dy is never written.
     */
    public static BiasGeluGrads biasGeluBackwardSaved(Tensor dy, Tensor dgelu, boolean withBiasGrad,
                                                      boolean overwriteDgelu) {
        final String op = "biasGeluBackwardSaved";
        long[] rc = rowsCols(op, "dgelu", dgelu);
        long rows = rc[0], cols = rc[1];
        requireFloatCpuContiguous(op, "dy", dy, () -> shape(dgelu));
        if (!sameShape(dy, dgelu)) {
            throw new Bert4jException(op + ": dy must have the shape of dgelu " + shape(dgelu) + ", got " + shape(dy));
        }
        Tensor dx = overwriteDgelu ? dgelu : torch.empty_like(dgelu);
        Tensor dbias = withBiasGrad
                ? torch.empty(new long[] {cols}, FLOAT_OPTIONS, null)
                : null;
        int status = NativeKernels.bert4j_gelu_backward_saved_f32(dy.data_ptr(), dgelu.data_ptr(), dx.data_ptr(),
                withBiasGrad ? dbias.data_ptr() : null, rows, cols, cols, cols, cols);
        check(op, status);
        return new BiasGeluGrads(dx, dbias);
    }

    /**
     * Rows of x scaled to max |value| = 1, for a GEMM whose activation quantization is per tensor
     * (bert4j's int8 linear layers): returns {xs [rows, cols], s [rows]} with
     * {@code xs[r] = x[r] / s[r]}, {@code s[r] = max(max |x[r]|, 1e-12)}; rows = all leading
     * dimensions of x. Undone by {@link #rowScaleEpilogue}.
     */
    public static Tensor[] rowScalePrologue(Tensor x) {
        final String op = "rowScalePrologue";
        requireFloatCpuContiguous(op, "x", x, "[..., cols]");
        if (x.dim() < 1) {
            throw new Bert4jException(op + ": x must have at least 1 dimension");
        }
        long cols = x.size(x.dim() - 1);
        long rows = x.numel() / Math.max(cols, 1);
        Tensor xs = torch.empty(new long[]{rows, cols}, FLOAT_OPTIONS, null);
        Tensor s = torch.empty(new long[]{rows}, FLOAT_OPTIONS, null);
        check(op, NativeKernels.bert4j_rowscale_prologue_f32(x.data_ptr(), xs.data_ptr(), s.data_ptr(),
                rows, cols, cols, cols));
        return new Tensor[]{xs, s};
    }

    /**
     * In place on y [rows, cols]: {@code y[r, c] = y[r, c] * s[r] * colScale[c] + bias[c]}
     * (bias may be null). Returns y.
     */
    public static Tensor rowScaleEpilogue(Tensor y, Tensor s, Tensor colScale, Tensor bias) {
        final String op = "rowScaleEpilogue";
        requireFloatCpuContiguous(op, "y", y, "[rows, cols]");
        if (y.dim() != 2) {
            throw new Bert4jException(op + ": y must be [rows, cols], got " + shape(y));
        }
        long rows = y.size(0), cols = y.size(1);
        requireFloatCpuContiguous(op, "s", s, () -> "[" + rows + "]");
        requireFloatCpuContiguous(op, "colScale", colScale, () -> "[" + cols + "]");
        if (s.numel() != rows || colScale.numel() != cols) {
            throw new Bert4jException(op + ": s must have " + rows + " and colScale " + cols + " elements, got "
                    + shape(s) + " and " + shape(colScale));
        }
        if (bias != null) {
            requireFloatCpuContiguous(op, "bias", bias, () -> "[" + cols + "]");
            if (bias.numel() != cols) {
                throw new Bert4jException(op + ": bias must have " + cols + " elements, got " + shape(bias));
            }
        }
        check(op, NativeKernels.bert4j_rowscale_epilogue_f32(y.data_ptr(), s.data_ptr(), colScale.data_ptr(),
                bias == null ? null : bias.data_ptr(), rows, cols, cols));
        return y;
    }

    /**
     * Packs a linear layer's weight once for {@link #linearPacked}: the result is a float32 1-D
     * CPU tensor in a layout private to the native library (panels of output columns), owned by
     * the caller. Packing copies: later changes to {@code weight} are not seen.
     *
     * @param weight float32, CPU, contiguous, [n, k] (a PyTorch Linear weight: out x in)
     */
    public static Tensor packLinear(Tensor weight) {
        final String op = "packLinear";
        requireLinearWeight(op, weight);
        long n = weight.size(0), k = weight.size(1);
        Tensor packed = torch.empty(new long[] {packedLinearSize(op, n, k)},
                FLOAT_OPTIONS, null);
        check(op, NativeKernels.bert4j_linear_pack_f32(weight.data_ptr(), n, k, k, packed.data_ptr()));
        return packed;
    }

    /** A linear layer's weight as the packers take it: float32, CPU, contiguous, [n, k]. */
    private static void requireLinearWeight(String op, Tensor weight) {
        requireFloatCpuContiguous(op, "weight", weight, "[n, k]");
        if (weight.dim() != 2) {
            throw new Bert4jException(op + ": weight must have shape [n, k] (out_features, in_features), got "
                    + shape(weight));
        }
    }

    /** Floats {@link #packLinear} returns for an [n, k] weight. */
    public static long packedLinearSize(long n, long k) {
        return packedLinearSize("packedLinearSize", n, k);
    }

    private static long packedLinearSize(String op, long n, long k) {
        long[] floats = new long[1];
        check(op, NativeKernels.bert4j_linear_packed_size_f32(n, k, floats));
        return floats[0];
    }

    /**
     * {@code y = x . weight^T + bias} with a weight packed by {@link #packLinear} (the
     * arithmetic of {@code torch.linear}: fp32, each output summed over k in order). Forward
     * only: the result records no autograd history.
     *
     * @param x float32, CPU, contiguous, [..., k] (at least 1 dimension)
     * @param packed the result of {@link #packLinear} for an [n, k] weight (only its size is
     *     checked against n and k: a buffer packed for another shape of the same size is not
     *     detected)
     * @param n out_features of the packed weight
     * @param k in_features of the packed weight
     * @param biasOrNull float32, CPU, contiguous, [n], or null for no bias
     * @return a new float32 tensor [..., n]
     */
    public static Tensor linearPacked(Tensor x, Tensor packed, long n, long k, Tensor biasOrNull) {
        final String op = "linearPacked";
        long m = checkLinearArgs(op, x, n, k, biasOrNull);
        long size = packedLinearSize(op, n, k);
        requireFloatCpuContiguous(op, "packed", packed, () -> "[" + size + "]");
        if (packed.dim() != 1 || packed.size(0) != size) {
            throw new Bert4jException(op + ": packed must be the packLinear result of an [" + n + ", " + k
                    + "] weight: shape [" + size + "], got " + shape(packed));
        }
        Tensor y = linearOutput(x, n);
        check(op, NativeKernels.bert4j_linear_packed_f32(x.data_ptr(), packed.data_ptr(),
                biasOrNull == null ? null : biasOrNull.data_ptr(), y.data_ptr(), m, n, k, k, n));
        return y;
    }

    /**
     * The checks {@link #linearPacked} and {@link #linearInt8} share: n, k >= 0, x float32 CPU
     * contiguous [..., k], bias null or float32 [n]. Returns the row count m of x.
     */
    private static long checkLinearArgs(String op, Tensor x, long n, long k, Tensor biasOrNull) {
        if (n < 0 || k < 0) {
            throw new Bert4jException(op + ": n and k must be >= 0, got n=" + n + " k=" + k);
        }
        requireFloatCpuContiguous(op, "x", x, () -> "[..., " + k + "]");
        if (x.dim() < 1 || x.size(x.dim() - 1) != k) {
            throw new Bert4jException(op + ": x must have shape [..., " + k + "] (k = in_features), got "
                    + shape(x));
        }
        if (biasOrNull != null) {
            requireFloatCpuContiguous(op, "bias", biasOrNull, () -> "[" + n + "]");
            if (biasOrNull.dim() != 1 || biasOrNull.size(0) != n) {
                throw new Bert4jException(op + ": bias must have shape [" + n + "], got " + shape(biasOrNull));
            }
        }
        long m = 1;
        for (int d = 0; d < x.dim() - 1; d++) {
            m *= x.size(d);
        }
        return m;
    }

    /** A new float32 tensor shaped like x with its last dimension n. */
    private static Tensor linearOutput(Tensor x, long n) {
        long[] outShape = new long[(int) x.dim()];
        for (int d = 0; d < x.dim() - 1; d++) {
            outShape[d] = x.size(d);
        }
        outShape[outShape.length - 1] = n;
        return torch.empty(outShape, FLOAT_OPTIONS, null);
    }

    /**
     * Whether the native int8 linear layer ({@link #linearInt8}, {@link #encoderLayerInt8}) has
     * its fast path here (AVX-512 VNNI); without it the kernel falls back to scalar code and int8
     * inference should use another path.
     */
    public static boolean int8Vnni() {
        return NativeKernels.bert4j_linear_int8_vnni() == 1;
    }

    /**
     * Quantizes and packs a linear layer's weight once for {@link #linearInt8}: per output row
     * symmetric int8 (127 levels) plus the row scales, in a uint8 1-D CPU tensor whose layout is
     * private to the native library. The weight must be finite.
     *
     * @param weight float32, CPU, contiguous, [n, k], k <= 65536
     */
    public static Tensor packLinearInt8(Tensor weight) {
        final String op = "packLinearInt8";
        requireLinearWeight(op, weight);
        long n = weight.size(0), k = weight.size(1);
        Tensor packed = torch.empty(new long[] {int8PackedSize(op, n, k)},
                new org.bytedeco.pytorch.TensorOptions(ScalarType.Byte), null);
        check(op, NativeKernels.bert4j_linear_int8_pack(weight.data_ptr(), n, k, k, packed.data_ptr()));
        return packed;
    }

    private static long int8PackedSize(String op, long n, long k) {
        long[] bytes = new long[1];
        check(op, NativeKernels.bert4j_linear_int8_packed_size(n, k, bytes));
        return bytes[0];
    }

    private static void requireInt8Pack(String op, String name, Tensor packed, long n, long k) {
        requirePack(op, name, packed, n, k, int8PackedSize(op, n, k), ScalarType.Byte, "packLinearInt8", "uint8");
    }

    /** packed must be what {@code packer} returns for an [n, k] weight: a contiguous 1-D CPU tensor of size elements. */
    private static void requirePack(String op, String name, Tensor packed, long n, long k, long size, ScalarType type,
                                    String packer, String typeName) {
        if (packed == null || !packed.is_cpu() || !packed.is_contiguous() || !hasScalarType(packed, type)
                || packed.dim() != 1 || packed.size(0) != size) {
            throw new Bert4jException(op + ": " + name + " must be the " + packer + " result of an [" + n + ", " + k
                    + "] weight: a contiguous " + typeName + " CPU tensor [" + size + "], got "
                    + (packed == null ? "null" : shape(packed) + " " + packed.scalar_type()));
        }
    }

    /**
     * {@code y ~ x . weight^T + bias} in int8 with a weight packed by {@link #packLinearInt8}: each
     * row of x quantized to u8 over its own [min, max], products summed exactly in int32, then
     * scaled back (the contract of {@code bert4j_linear_int8_f32}). A row of x with a NaN or an
     * infinity gives a row of NaN. Forward only.
     *
     * @param x float32, CPU, contiguous, [..., k]
     * @param packed the result of {@link #packLinearInt8} for an [n, k] weight (only its size is
     *     checked against n and k, as for {@link #linearPacked})
     * @param biasOrNull float32 [n] or null
     * @return a new float32 tensor [..., n]
     */
    public static Tensor linearInt8(Tensor x, Tensor packed, long n, long k, Tensor biasOrNull) {
        final String op = "linearInt8";
        long m = checkLinearArgs(op, x, n, k, biasOrNull);
        requireInt8Pack(op, "packed", packed, n, k);
        Tensor y = linearOutput(x, n);
        check(op, NativeKernels.bert4j_linear_int8_f32(x.data_ptr(), packed.data_ptr(),
                biasOrNull == null ? null : biasOrNull.data_ptr(), y.data_ptr(), m, n, k, k, n));
        return y;
    }

    /**
     * Whether the bf16 linear layer ({@link #linearBf16}, {@link #encoderLayerBf16}) runs on AMX
     * here: the CPU has AMX-BF16 (Intel Sapphire Rapids and later) and the OS granted this
     * process the tile state. Without it the kernel falls back to scalar code (correct, slow),
     * and bf16 inference is refused ({@code BertModel.setBf16}).
     */
    public static boolean bf16Amx() {
        return NativeKernels.bert4j_linear_bf16_amx() == 1;
    }

    /**
     * Rounds a linear layer's weight to bf16 (to nearest, ties to even) and packs it once for
     * {@link #linearBf16}, in an int16 1-D CPU tensor whose layout is private to the native
     * library.
     *
     * @param weight float32, CPU, contiguous, [n, k]
     */
    public static Tensor packLinearBf16(Tensor weight) {
        final String op = "packLinearBf16";
        requireLinearWeight(op, weight);
        long n = weight.size(0), k = weight.size(1);
        Tensor packed = torch.empty(new long[] {bf16PackedSize(op, n, k)},
                new org.bytedeco.pytorch.TensorOptions(ScalarType.Short), null);
        check(op, NativeKernels.bert4j_linear_bf16_pack(weight.data_ptr(), n, k, k, packed.data_ptr()));
        return packed;
    }

    private static long bf16PackedSize(String op, long n, long k) {
        long[] elements = new long[1];
        check(op, NativeKernels.bert4j_linear_bf16_packed_size(n, k, elements));
        return elements[0];
    }

    private static void requireBf16Pack(String op, String name, Tensor packed, long n, long k) {
        requirePack(op, name, packed, n, k, bf16PackedSize(op, n, k), ScalarType.Short, "packLinearBf16", "int16");
    }

    /**
     * {@code y = bf16(x) . bf16(weight)^T + bias} with a weight packed by {@link #packLinearBf16}:
     * x rounded to bf16 per call, the products summed in fp32 (on AMX tiles where
     * {@link #bf16Amx}), then the bias added in fp32 (the contract of
     * {@code bert4j_linear_bf16_f32}). Forward only.
     *
     * @param x float32, CPU, contiguous, [..., k]
     * @param packed the result of {@link #packLinearBf16} for an [n, k] weight
     * @param biasOrNull float32 [n] or null
     * @return a new float32 tensor [..., n]
     */
    public static Tensor linearBf16(Tensor x, Tensor packed, long n, long k, Tensor biasOrNull) {
        final String op = "linearBf16";
        long m = checkLinearArgs(op, x, n, k, biasOrNull);
        requireBf16Pack(op, "packed", packed, n, k);
        Tensor y = linearOutput(x, n);
        check(op, NativeKernels.bert4j_linear_bf16_f32(x.data_ptr(), packed.data_ptr(),
                biasOrNull == null ? null : biasOrNull.data_ptr(), y.data_ptr(), m, n, k, k, n));
        return y;
    }

    /** Floats of the scratch buffer {@link #encoderLayer} needs for {@code rows} tokens. */
    public static long encoderLayerWorkspaceSize(long rows, long hidden, long heads, long intermediate) {
        long[] floats = new long[1];
        check("encoderLayerWorkspaceSize",
                NativeKernels.bert4j_encoder_layer_workspace_f32(rows, hidden, heads, intermediate, floats));
        return floats[0];
    }

    /**
     * One BERT encoder layer in eval mode, in place on {@code h}, in a single native call (the
     * contract of {@code bert4j_encoder_layer_forward_f32} in bert4j_kernels.h): QKV projection,
     * attention, output projection + residual + LayerNorm, intermediate + bias+GELU, output
     * projection + residual + LayerNorm. Inference only: no autograd history, no dropout.
     *
     * @param h [rows, hidden] float32 CPU contiguous; overwritten with the layer's output
     * @param weights the 12 tensors in {@code BERT4J_LAYER_*} order: the four linear weights
     *     packed by {@link #packLinear} (QKV stacked [3H, H]), biases and LayerNorm parameters
     * @param cuSeqlens int32 [numSeqs + 1] for packed sequences, or null for a padded
     *     [batch, seq] layout (then {@code mask}, an additive float32 [batch, seq] or null)
     * @param workspace float32 CPU contiguous, at least {@link #encoderLayerWorkspaceSize} floats
     */
    public static void encoderLayer(Tensor h, Tensor[] weights, long heads, long intermediate, double eps,
                                    boolean tanhGelu, Tensor cuSeqlens, long numSeqs, long maxSeqlen,
                                    long batch, long seq, Tensor mask, Tensor workspace) {
        encoderLayer("encoderLayer", LayerLinears.F32, h, weights, heads, intermediate, eps, tanhGelu, cuSeqlens, numSeqs,
                maxSeqlen, batch, seq, mask, workspace);
    }

    /**
     * {@link #encoderLayer} with its four linear layers in int8 ({@link #linearInt8}): the
     * weights at {@code BERT4J_LAYER_*_WEIGHT} are {@link #packLinearInt8} results, the rest as
     * for {@link #encoderLayer}; the same workspace size.
     */
    public static void encoderLayerInt8(Tensor h, Tensor[] weights, long heads, long intermediate, double eps,
                                        boolean tanhGelu, Tensor cuSeqlens, long numSeqs, long maxSeqlen,
                                        long batch, long seq, Tensor mask, Tensor workspace) {
        encoderLayer("encoderLayerInt8", LayerLinears.INT8, h, weights, heads, intermediate, eps, tanhGelu, cuSeqlens, numSeqs,
                maxSeqlen, batch, seq, mask, workspace);
    }

    /**
     * {@link #encoderLayer} with its four linear layers in bf16 ({@link #linearBf16}): the
     * weights at {@code BERT4J_LAYER_*_WEIGHT} are {@link #packLinearBf16} results, the rest as
     * for {@link #encoderLayer}; the same workspace size. Everything outside the four GEMMs
     * stays float32.
     */
    public static void encoderLayerBf16(Tensor h, Tensor[] weights, long heads, long intermediate, double eps,
                                        boolean tanhGelu, Tensor cuSeqlens, long numSeqs, long maxSeqlen,
                                        long batch, long seq, Tensor mask, Tensor workspace) {
        encoderLayer("encoderLayerBf16", LayerLinears.BF16, h, weights, heads, intermediate, eps, tanhGelu, cuSeqlens,
                numSeqs, maxSeqlen, batch, seq, mask, workspace);
    }

    /** How the native encoder layer's four linear weights are packed. */
    private enum LayerLinears { F32, INT8, BF16 }

    private static void encoderLayer(String op, LayerLinears kind, Tensor h, Tensor[] weights, long heads,
                                     long intermediate, double eps, boolean tanhGelu, Tensor cuSeqlens,
                                     long numSeqs, long maxSeqlen, long batch, long seq, Tensor mask,
                                     Tensor workspace) {
        requireFloatCpuContiguous(op, "h", h, "[rows, hidden]");
        if (h.dim() != 2) {
            throw new Bert4jException(op + ": h must have shape [rows, hidden], got " + shape(h));
        }
        long rows = h.size(0), hidden = h.size(1);
        if (weights == null || weights.length != NativeKernels.BERT4J_LAYER_NUM_WEIGHTS) {
            throw new Bert4jException(op + ": expected " + NativeKernels.BERT4J_LAYER_NUM_WEIGHTS + " weight tensors, got "
                    + (weights == null ? "null" : weights.length));
        }
        // Index -> {n, k} of the four linear weights; the other eight are fp32 vectors of hidden
        // (or 3 hidden, intermediate for the QKV and intermediate biases) elements.
        long[][] linear = new long[weights.length][];
        linear[0] = new long[]{3 * hidden, hidden};
        linear[2] = new long[]{hidden, hidden};
        linear[6] = new long[]{intermediate, hidden};
        linear[8] = new long[]{hidden, intermediate};
        long[] vector = {0, 3 * hidden, 0, hidden, hidden, hidden, 0, intermediate, 0, hidden, hidden, hidden};
        for (int i = 0; i < weights.length; i++) {
            String name = "weights[" + i + "]";
            if (linear[i] != null && kind == LayerLinears.INT8) {
                requireInt8Pack(op, name, weights[i], linear[i][0], linear[i][1]);
                continue;
            }
            if (linear[i] != null && kind == LayerLinears.BF16) {
                requireBf16Pack(op, name, weights[i], linear[i][0], linear[i][1]);
                continue;
            }
            long expected = linear[i] != null ? packedLinearSize(op, linear[i][0], linear[i][1]) : vector[i];
            requireFloatCpuContiguous(op, name, weights[i], () -> "[" + expected + "]");
            if (weights[i].numel() != expected) {
                throw new Bert4jException(op + ": " + name + " must have " + expected + " elements, got "
                        + shape(weights[i]));
            }
        }
        long need = encoderLayerWorkspaceSize(rows, hidden, heads, intermediate);
        requireFloatCpuContiguous(op, "workspace", workspace, () -> "[" + need + "]");
        if (workspace.numel() < need) {
            throw new Bert4jException(op + ": workspace needs " + need + " floats, got " + workspace.numel());
        }
        if (cuSeqlens != null) {
            if (!cuSeqlens.is_cpu() || !cuSeqlens.is_contiguous() || !hasScalarType(cuSeqlens, ScalarType.Int)
                    || cuSeqlens.dim() != 1 || cuSeqlens.size(0) != numSeqs + 1) {
                throw new Bert4jException(op + ": cuSeqlens must be a contiguous int32 CPU tensor [" + (numSeqs + 1)
                        + "], got " + shape(cuSeqlens));
            }
        } else if (mask != null) {
            requireFloatCpuContiguous(op, "mask", mask, () -> "[" + batch + ", " + seq + "]");
            if (mask.numel() != batch * seq) {
                throw new Bert4jException(op + ": mask must have " + batch + " x " + seq + " elements, got " + shape(mask));
            }
        }
        try (PointerPointer<Pointer> ptrs = new PointerPointer<>(weights.length)) {
            for (int i = 0; i < weights.length; i++) {
                ptrs.put(i, weights[i].data_ptr());
            }
            Pointer cu = cuSeqlens == null ? null : cuSeqlens.data_ptr();
            Pointer mk = cuSeqlens == null && mask != null ? mask.data_ptr() : null;
            int approximate = tanhGelu ? 1 : 0;
            check(op, switch (kind) {
                case INT8 -> NativeKernels.bert4j_encoder_layer_int8_forward_f32(h.data_ptr(), ptrs, workspace.data_ptr(),
                        rows, hidden, heads, intermediate, (float) eps, approximate, cu, numSeqs, maxSeqlen, batch, seq, mk);
                case BF16 -> NativeKernels.bert4j_encoder_layer_bf16_forward_f32(h.data_ptr(), ptrs, workspace.data_ptr(),
                        rows, hidden, heads, intermediate, (float) eps, approximate, cu, numSeqs, maxSeqlen, batch, seq, mk);
                case F32 -> NativeKernels.bert4j_encoder_layer_forward_f32(h.data_ptr(), ptrs, workspace.data_ptr(),
                        rows, hidden, heads, intermediate, (float) eps, approximate, cu, numSeqs, maxSeqlen, batch, seq, mk);
            });
        }
    }

    /** Validates x [..., cols] and bias [cols]; returns {rows, cols}. */
    private static long[] checkBiasGeluArgs(String op, String xName, Tensor x, Tensor bias) {
        long[] rc = rowsCols(op, xName, x);
        long cols = rc[1];
        requireFloatCpuContiguous(op, "bias", bias, () -> "[" + cols + "]");
        if (bias.dim() != 1 || bias.size(0) != cols) {
            throw new Bert4jException(op + ": bias must have shape [" + cols + "] to match "
                    + xName + " " + shape(x) + ", got " + shape(bias));
        }
        return rc;
    }

    /** Validates t as float32, CPU, contiguous [..., cols]; returns {rows (all leading dims), cols}. */
    private static long[] rowsCols(String op, String name, Tensor t) {
        requireFloatCpuContiguous(op, name, t, "[..., cols]");
        if (t.dim() < 1) {
            throw new Bert4jException(op + ": " + name
                    + " must have shape [..., cols] (at least 1 dimension), got a scalar");
        }
        long rows = 1;
        for (int d = 0; d < t.dim() - 1; d++) {
            rows *= t.size(d);
        }
        return new long[] {rows, t.size(t.dim() - 1)};
    }

    private static int approximate(boolean tanh) {
        return tanh ? NativeKernels.BERT4J_GELU_TANH : NativeKernels.BERT4J_GELU_EXACT;
    }

    /** Threads the CPU kernels may use on large inputs (default min(4, cores)); n >= 1. */
    public static void setNumThreads(int n) {
        check("setNumThreads", NativeKernels.bert4j_set_num_threads(n));
    }

    public static int numThreads() {
        return NativeKernels.bert4j_get_num_threads();
    }

    private static void check(String op, int status) {
        if (status != NativeKernels.BERT4J_OK) {
            throw new Bert4jException(op + ": native kernel failed (status " + status + "): "
                    + NativeKernels.bert4j_last_error());
        }
    }

    private static void requireFloatCpuContiguous(String op, String name, Tensor t, String expectedShape) {
        requireFloatCpuContiguous(op, name, t, () -> expectedShape);
    }

    /**
     * As above, the expected shape built only for a message (these checks run on every op call:
     * building shape strings eagerly cost about a microsecond each on the training hot path).
     */
    private static void requireFloatCpuContiguous(String op, String name, Tensor t, Supplier<String> expected) {
        if (t == null || t.isNull()) {
            throw new Bert4jException(op + ": " + name + " is null (expected a float32 CPU tensor "
                    + expected.get() + ")");
        }
        if (!t.defined()) {
            throw new Bert4jException(op + ": " + name + " is an undefined tensor (expected float32 "
                    + expected.get() + ")");
        }
        if (!hasScalarType(t, ScalarType.Float)) {
            throw new Bert4jException(op + ": " + name + " must be float32, got "
                    + t.dtype().name().getString() + " " + shape(t));
        }
        if (!t.is_cpu()) {
            throw new Bert4jException(op + ": " + name + " must be on the CPU, got device "
                    + t.device().str().getString() + " (CUDA tensors go through the CUDA kernels)");
        }
        if (!t.is_contiguous()) {
            throw new Bert4jException(op + ": " + name + " must be contiguous " + expected.get()
                    + ", got shape " + shape(t) + " with strides " + strides(t)
                    + " (call .contiguous() first)");
        }
    }

    /**
     * Whether t's dtype is {@code type}, by ScalarType value: JavaCPP hands back non-canonical enum
     * instances (so not ==), and {@code dtype()} is a native TypeMeta allocation per call (~1 µs,
     * against ~0.1 µs), which the per-op checks on the hot paths cannot afford.
     */
    public static boolean hasScalarType(Tensor t, ScalarType type) {
        ScalarType st = t.scalar_type();
        return st != null ? st.value == type.value : t.dtype().isScalarType(type);
    }

    /** Same sizes, compared without building strings. */
    private static boolean sameShape(Tensor a, Tensor b) {
        long dims = a.dim();
        if (dims != b.dim()) {
            return false;
        }
        for (int d = 0; d < dims; d++) {
            if (a.size(d) != b.size(d)) {
                return false;
            }
        }
        return true;
    }

    static String shape(Tensor t) {
        StringBuilder sb = new StringBuilder("[");
        for (int d = 0; d < t.dim(); d++) {
            sb.append(d == 0 ? "" : ", ").append(t.size(d));
        }
        return sb.append(']').toString();
    }

    private static String strides(Tensor t) {
        StringBuilder sb = new StringBuilder("[");
        for (int d = 0; d < t.dim(); d++) {
            sb.append(d == 0 ? "" : ", ").append(t.stride(d));
        }
        return sb.append(']').toString();
    }
}
