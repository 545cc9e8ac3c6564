package io.bert4j.bench;

import io.bert4j.kernels.Attention;
import io.bert4j.kernels.BlasThreads;
import io.bert4j.kernels.Kernels;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * Self-attention core on [B, 12, S, D] fp32 inputs with right padding (sequence b has
 * {@code S - b*S/(2B)} valid keys): bert4j's fused CPU kernel ({@code impl=fused},
 * {@link Attention#forward}/{@link Attention#backward}, padding as int32 key lengths) against
 * libtorch's {@code scaled_dot_product_attention} ({@code impl=sdpa}, the reference, padding as a
 * boolean [B, 1, 1, S] mask). Same thread count on both (libtorch intra-op = bert4j kernels).
 *
 * <p>{@code forward}: out only, no autograd. {@code forwardBackward}: loss = sum(out * w) and
 * the gradients of q, k, v — libtorch through autograd (leaf q, k, v requiring grad), bert4j
 * through the kernel's backward with dout = w (the same loss is computed on both sides).
 * Every call's tensors are freed by its {@link PointerScope}; libtorch on CPU is synchronous,
 * so the work is complete when a call returns.
 *
 * <p>The reference runs with OpenBLAS single-threaded ({@link BlasThreads}, as bert4j's own
 * {@code torch} kernel mode does): libtorch's CPU flash attention calls sgemm from its OpenMP
 * workers, and the presets' pthreads OpenBLAS splits each call again over its own pool, which
 * made SDPA 30-190x slower at seq 512 on this host (the 2026-11-29 17:02 run in RESULTS.md).
 * {@code impl=sdpa_openblas} is that unscoped configuration, for the record.
 *
 * <p>Quick subset: {@code -p batch=8}. JmhRatios prints sdpa/fused per shape.
 *
 * <p>Diagnostic impls, not in the default set (JmhRatios lists them against sdpa too):
 * {@code sdpa_nomask} (SDPA on the same q, k, v without any mask: less work, no padding) and
 * {@code math} (the composed softmax(scale·QKᵀ + additive mask)V, which materialises
 * [B, H, S, S]), e.g. {@code -p impl=fused,sdpa,sdpa_nomask,math}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class AttentionBenchmark {

    /** minilm: 12 heads x 32; base: 12 heads x 64. */
    @Param({"minilm", "base"})
    public String model;

    @Param({"1", "8", "32"})
    public int batch;

    @Param({"128", "512"})
    public int seq;

    @Param({"fused", "sdpa"})
    public String impl;

    @Param({"2"})
    public int threads;

    private Tensor q, k, v, w;     // [B, H, S, D]
    private Tensor keyLengths;     // int32 [B]
    private Tensor mask;           // bool [B, 1, 1, S]
    private Tensor additive;       // float [B, 1, 1, S], 0 / -inf
    private double scale;

    @Setup(Level.Trial)
    public void setUp() {
        Bert4jRunner.setThreads(threads);
        int d = KernelInputs.headDim(model);
        scale = 1.0 / Math.sqrt(d);
        torch.manual_seed(1234);
        q = torch.randn(batch, 12, seq, d);
        k = torch.randn(batch, 12, seq, d);
        v = torch.randn(batch, 12, seq, d);
        w = torch.randn(batch, 12, seq, d);
        long[] lens = KernelInputs.validLengths(batch, seq);
        keyLengths = KernelInputs.keyLengths(lens);
        mask = KernelInputs.boolMask(lens, seq);
        additive = KernelInputs.additiveMask(lens, seq);
        if (!java.util.List.of("fused", "sdpa", "sdpa_openblas", "sdpa_nomask", "math").contains(impl)) {
            throw new IllegalArgumentException(
                    "impl must be fused, sdpa, sdpa_openblas, sdpa_nomask or math, got " + impl);
        }
    }

    @Benchmark
    public long forward() {
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            if (impl.equals("fused")) {
                return Attention.forward(q, k, v, keyLengths, null, scale, 0.0, 0, 0).out().size(2);
            }
            try (BlasThreads.Scope blas = referenceBlas()) {
                return reference(q, k, v).size(2);
            }
        }
    }

    @Benchmark
    public double forwardBackward() {
        try (PointerScope scope = new PointerScope()) {
            if (impl.equals("fused")) {
                Attention.Result r = Attention.forward(q, k, v, keyLengths, null, scale, 0.0, 0, 0);
                double loss = r.out().mul(w).sum().item_double();
                Attention.Grads g = Attention.backward(q, k, v, r.out(), w, r.lse(), keyLengths, null, scale, 0.0, 0, 0);
                return loss + g.dq().size(0) + g.dk().size(0) + g.dv().size(0);
            }
            Tensor ql = q.detach().requires_grad_(true);   // fresh leaves: no grad accumulation
            Tensor kl = k.detach().requires_grad_(true);
            Tensor vl = v.detach().requires_grad_(true);
            try (BlasThreads.Scope blas = referenceBlas()) { // CPU backward runs on this thread
                Tensor loss = reference(ql, kl, vl).mul(w).sum();
                loss.backward();
                return loss.item_double() + ql.grad().size(0) + kl.grad().size(0) + vl.grad().size(0);
            }
        }
    }

    /** OpenBLAS single-threaded for the reference, except for the unscoped diagnostic impl. */
    private BlasThreads.Scope referenceBlas() {
        return impl.equals("sdpa_openblas") ? null : BlasThreads.singleThreaded();
    }

    private Tensor reference(Tensor q, Tensor k, Tensor v) {
        return switch (impl) {
            case "sdpa", "sdpa_openblas" -> KernelInputs.sdpa(q, k, v, mask, scale);
            case "sdpa_nomask" -> KernelInputs.sdpa(q, k, v, null, scale);
            case "math" -> KernelInputs.composed(q, k, v, additive, scale);
            default -> throw new IllegalStateException(impl);
        };
    }
}
