package io.bert4j.kernels;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * JavaCPP binding of {@code native/include/bert4j_kernels.h} (CPU entry points). The JNI
 * library {@code libjniNativeKernels.so} is built by the JavaCPP Maven plugin in
 * {@code process-classes} and statically contains {@code libbert4j_kernels.a} (built by
 * CMake into {@code target/native}), so there is no extra library to find at run time.
 *
 * <p>Raw ABI: pointers are not checked against tensor sizes here; use {@link Kernels}.
 * Status codes are the {@code BERT4J_*} constants; after a non-zero status,
 * {@link #bert4j_last_error()} (same thread) says what was wrong.
 */
@Platform(include = "bert4j_kernels.h", link = {"gomp", "bert4j_kernels"}) // JavaCPP emits these last-first
public final class NativeKernels {
    static {
        io.bert4j.NativeSetup.ensure(); // the C environment libgomp reads when libtorch loads
        // libtorch first: it ships the libgomp.so.1 our kernels use, so the JVM ends up with
        // one OpenMP runtime, and its natives must be in place before ours anyway.
        Loader.load(org.bytedeco.pytorch.global.torch.class);
        Loader.load();
    }

    private NativeKernels() {}

    public static final int BERT4J_OK = 0;
    public static final int BERT4J_ERR_NULL_POINTER = 1;
    public static final int BERT4J_ERR_INVALID_ARGUMENT = 2;
    public static final int BERT4J_ERR_CUDA = 3;
    public static final int BERT4J_ERR_INTERNAL = 4;

    public static final int BERT4J_GELU_EXACT = 0;
    public static final int BERT4J_GELU_TANH = 1;

    public static native @Cast("const char*") String bert4j_last_error();

    public static native int bert4j_set_num_threads(int n);

    public static native int bert4j_get_num_threads();

    public static native int bert4j_bias_gelu_forward_f32(
            @Cast("const float*") Pointer x, @Cast("const float*") Pointer bias,
            @Cast("float*") Pointer y, @Cast("int64_t") long rows, @Cast("int64_t") long cols,
            @Cast("int64_t") long xRowStride, @Cast("int64_t") long yRowStride, int approximate);

    public static native int bert4j_rowscale_prologue_f32(
            @Cast("const float*") Pointer x, @Cast("float*") Pointer xs, @Cast("float*") Pointer s,
            @Cast("int64_t") long rows, @Cast("int64_t") long cols,
            @Cast("int64_t") long xRowStride, @Cast("int64_t") long xsRowStride);

    public static native int bert4j_rowscale_epilogue_f32(
            @Cast("float*") Pointer y, @Cast("const float*") Pointer s, @Cast("const float*") Pointer colScale,
            @Cast("const float*") Pointer bias, @Cast("int64_t") long rows, @Cast("int64_t") long cols,
            @Cast("int64_t") long yRowStride);

    // ---- prepacked linear layer (CPU, fp32) ------------------------------------------------

    public static native int bert4j_linear_packed_size_f32(@Cast("int64_t") long n,
            @Cast("int64_t") long k, @Cast("int64_t*") long[] floats);

    public static native int bert4j_linear_pack_f32(@Cast("const float*") Pointer w,
            @Cast("int64_t") long n, @Cast("int64_t") long k, @Cast("int64_t") long wRowStride,
            @Cast("float*") Pointer packed);

    public static native int bert4j_linear_packed_f32(@Cast("const float*") Pointer x,
            @Cast("const float*") Pointer packed, @Cast("const float*") Pointer bias,
            @Cast("float*") Pointer y, @Cast("int64_t") long m, @Cast("int64_t") long n,
            @Cast("int64_t") long k, @Cast("int64_t") long xRowStride,
            @Cast("int64_t") long yRowStride);

    // ---- int8 linear layer (CPU, dynamic quantization) --------------------------------------

    public static native int bert4j_linear_int8_vnni();

    public static native int bert4j_linear_int8_packed_size(@Cast("int64_t") long n,
            @Cast("int64_t") long k, @Cast("int64_t*") long[] bytes);

    public static native int bert4j_linear_int8_pack(@Cast("const float*") Pointer w,
            @Cast("int64_t") long n, @Cast("int64_t") long k, @Cast("int64_t") long wRowStride,
            @Cast("uint8_t*") Pointer packed);

    public static native int bert4j_linear_int8_f32(@Cast("const float*") Pointer x,
            @Cast("const uint8_t*") Pointer packed, @Cast("const float*") Pointer bias,
            @Cast("float*") Pointer y, @Cast("int64_t") long m, @Cast("int64_t") long n,
            @Cast("int64_t") long k, @Cast("int64_t") long xRowStride,
            @Cast("int64_t") long yRowStride);

    // ---- bf16 linear layer (CPU, AMX) ---------------------------------------------------------

    public static native int bert4j_linear_bf16_amx();

    public static native int bert4j_linear_bf16_packed_size(@Cast("int64_t") long n,
            @Cast("int64_t") long k, @Cast("int64_t*") long[] elements);

    public static native int bert4j_linear_bf16_pack(@Cast("const float*") Pointer w,
            @Cast("int64_t") long n, @Cast("int64_t") long k, @Cast("int64_t") long wRowStride,
            @Cast("uint16_t*") Pointer packed);

    public static native int bert4j_linear_bf16_f32(@Cast("const float*") Pointer x,
            @Cast("const uint16_t*") Pointer packed, @Cast("const float*") Pointer bias,
            @Cast("float*") Pointer y, @Cast("int64_t") long m, @Cast("int64_t") long n,
            @Cast("int64_t") long k, @Cast("int64_t") long xRowStride,
            @Cast("int64_t") long yRowStride);

    // ---- whole encoder layer, inference (CPU, fp32) -----------------------------------------

    public static final int BERT4J_LAYER_NUM_WEIGHTS = 12;

    public static native int bert4j_encoder_layer_workspace_f32(@Cast("int64_t") long rows,
            @Cast("int64_t") long hidden, @Cast("int64_t") long heads,
            @Cast("int64_t") long intermediate, @Cast("int64_t*") long[] floats);

    public static native int bert4j_encoder_layer_forward_f32(@Cast("float*") Pointer h,
            @Cast("const float* const*") PointerPointer<?> weights, @Cast("float*") Pointer workspace,
            @Cast("int64_t") long rows, @Cast("int64_t") long hidden, @Cast("int64_t") long heads,
            @Cast("int64_t") long intermediate, float layerNormEps, int approximate,
            @Cast("const int32_t*") Pointer cuSeqlens, @Cast("int64_t") long numSeqs,
            @Cast("int64_t") long maxSeqlen, @Cast("int64_t") long batch, @Cast("int64_t") long seq,
            @Cast("const float*") Pointer mask);

    public static native int bert4j_encoder_layer_int8_forward_f32(@Cast("float*") Pointer h,
            @Cast("const void* const*") PointerPointer<?> weights, @Cast("float*") Pointer workspace,
            @Cast("int64_t") long rows, @Cast("int64_t") long hidden, @Cast("int64_t") long heads,
            @Cast("int64_t") long intermediate, float layerNormEps, int approximate,
            @Cast("const int32_t*") Pointer cuSeqlens, @Cast("int64_t") long numSeqs,
            @Cast("int64_t") long maxSeqlen, @Cast("int64_t") long batch, @Cast("int64_t") long seq,
            @Cast("const float*") Pointer mask);

    public static native int bert4j_encoder_layer_bf16_forward_f32(@Cast("float*") Pointer h,
            @Cast("const void* const*") PointerPointer<?> weights, @Cast("float*") Pointer workspace,
            @Cast("int64_t") long rows, @Cast("int64_t") long hidden, @Cast("int64_t") long heads,
            @Cast("int64_t") long intermediate, float layerNormEps, int approximate,
            @Cast("const int32_t*") Pointer cuSeqlens, @Cast("int64_t") long numSeqs,
            @Cast("int64_t") long maxSeqlen, @Cast("int64_t") long batch, @Cast("int64_t") long seq,
            @Cast("const float*") Pointer mask);

    // ---- dropout randomness and fused attention (CPU, fp32) --------------------------------
    // Strides are passed as long[] (3 per tensor dense: batch, head, seq; 2 varlen: token,
    // head), head_dim contiguous; see bert4j_kernels.h for the full contract.

    public static native int bert4j_dropout_keep(@Cast("uint64_t") long seed,
            @Cast("uint64_t") long offset, @Cast("uint64_t") long idx, float p);

    public static native int bert4j_attention_forward_f32(
            @Cast("const float*") Pointer q, @Cast("const float*") Pointer k,
            @Cast("const float*") Pointer v, @Cast("float*") Pointer out, @Cast("float*") Pointer lse,
            @Cast("int64_t") long batch, @Cast("int64_t") long heads, @Cast("int64_t") long seqQ,
            @Cast("int64_t") long seqK, @Cast("int64_t") long headDim,
            @Cast("const int64_t*") long[] qStrides, @Cast("const int64_t*") long[] kStrides,
            @Cast("const int64_t*") long[] vStrides, @Cast("const int64_t*") long[] outStrides,
            @Cast("const int32_t*") Pointer keyLengths, @Cast("const float*") Pointer mask,
            @Cast("const int64_t*") long[] maskStrides, float scale, float dropoutP,
            @Cast("uint64_t") long seed, @Cast("uint64_t") long offset);

    public static native int bert4j_attention_backward_f32(
            @Cast("const float*") Pointer q, @Cast("const float*") Pointer k,
            @Cast("const float*") Pointer v, @Cast("const float*") Pointer out,
            @Cast("const float*") Pointer dout, @Cast("const float*") Pointer lse,
            @Cast("float*") Pointer dq, @Cast("float*") Pointer dk, @Cast("float*") Pointer dv,
            @Cast("int64_t") long batch, @Cast("int64_t") long heads, @Cast("int64_t") long seqQ,
            @Cast("int64_t") long seqK, @Cast("int64_t") long headDim,
            @Cast("const int64_t*") long[] qStrides, @Cast("const int64_t*") long[] kStrides,
            @Cast("const int64_t*") long[] vStrides, @Cast("const int64_t*") long[] outStrides,
            @Cast("const int64_t*") long[] doutStrides, @Cast("const int64_t*") long[] dqStrides,
            @Cast("const int64_t*") long[] dkStrides, @Cast("const int64_t*") long[] dvStrides,
            @Cast("const int32_t*") Pointer keyLengths, @Cast("const float*") Pointer mask,
            @Cast("const int64_t*") long[] maskStrides, float scale, float dropoutP,
            @Cast("uint64_t") long seed, @Cast("uint64_t") long offset);

    public static native int bert4j_attention_varlen_forward_f32(
            @Cast("const float*") Pointer q, @Cast("const float*") Pointer k,
            @Cast("const float*") Pointer v, @Cast("float*") Pointer out, @Cast("float*") Pointer lse,
            @Cast("const int32_t*") Pointer cuSeqlens, @Cast("int64_t") long numSeqs,
            @Cast("int64_t") long totalTokens, @Cast("int64_t") long maxSeqlen,
            @Cast("int64_t") long heads, @Cast("int64_t") long headDim,
            @Cast("const int64_t*") long[] qStrides, @Cast("const int64_t*") long[] kStrides,
            @Cast("const int64_t*") long[] vStrides, @Cast("const int64_t*") long[] outStrides,
            float scale, float dropoutP, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset);

    public static native int bert4j_attention_varlen_backward_f32(
            @Cast("const float*") Pointer q, @Cast("const float*") Pointer k,
            @Cast("const float*") Pointer v, @Cast("const float*") Pointer out,
            @Cast("const float*") Pointer dout, @Cast("const float*") Pointer lse,
            @Cast("float*") Pointer dq, @Cast("float*") Pointer dk, @Cast("float*") Pointer dv,
            @Cast("const int32_t*") Pointer cuSeqlens, @Cast("int64_t") long numSeqs,
            @Cast("int64_t") long totalTokens, @Cast("int64_t") long maxSeqlen,
            @Cast("int64_t") long heads, @Cast("int64_t") long headDim,
            @Cast("const int64_t*") long[] qStrides, @Cast("const int64_t*") long[] kStrides,
            @Cast("const int64_t*") long[] vStrides, @Cast("const int64_t*") long[] outStrides,
            @Cast("const int64_t*") long[] doutStrides, @Cast("const int64_t*") long[] dqStrides,
            @Cast("const int64_t*") long[] dkStrides, @Cast("const int64_t*") long[] dvStrides,
            float scale, float dropoutP, @Cast("uint64_t") long seed, @Cast("uint64_t") long offset);

    public static native int bert4j_bias_gelu_forward_train_f32(
            @Cast("const float*") Pointer x, @Cast("const float*") Pointer bias,
            @Cast("float*") Pointer y, @Cast("float*") Pointer dgelu, @Cast("int64_t") long rows,
            @Cast("int64_t") long cols, @Cast("int64_t") long xRowStride, @Cast("int64_t") long yRowStride,
            @Cast("int64_t") long dgeluRowStride, int approximate);

    public static native int bert4j_gelu_backward_saved_f32(
            @Cast("const float*") Pointer dy, @Cast("const float*") Pointer dgelu,
            @Cast("float*") Pointer dx, @Cast("float*") Pointer dbias, @Cast("int64_t") long rows,
            @Cast("int64_t") long cols, @Cast("int64_t") long dyRowStride,
            @Cast("int64_t") long dgeluRowStride, @Cast("int64_t") long dxRowStride);

    public static native int bert4j_bias_gelu_backward_f32(
            @Cast("const float*") Pointer dy, @Cast("const float*") Pointer x,
            @Cast("const float*") Pointer bias, @Cast("float*") Pointer dx,
            @Cast("float*") Pointer dbias, @Cast("int64_t") long rows, @Cast("int64_t") long cols,
            @Cast("int64_t") long dyRowStride, @Cast("int64_t") long xRowStride,
            @Cast("int64_t") long dxRowStride, int approximate);
}
