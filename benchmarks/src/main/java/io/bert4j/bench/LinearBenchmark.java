package io.bert4j.bench;

import io.bert4j.kernels.Kernels;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
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
 * One inference linear layer y = x . W^T + b at MiniLM's shapes (the QKV projection [1152, 384],
 * the intermediate [1536, 384], the output [384, 1536]) for one short sentence (13 rows), one
 * 128-token sequence and a batch of short sentences (608 rows), fp32 in and out on both sides:
 * <ul>
 * <li>{@code precision=fp32}: bert4j's prepacked kernel ({@link Kernels#linearPacked},
 *     {@code impl=fused}) against libtorch's {@code linear} (OpenBLAS sgemm, {@code impl=torch});</li>
 * <li>{@code precision=bf16}: bert4j's AMX kernel ({@link Kernels#linearBf16}: x rounded to bf16
 *     per call, fp32 sums) against libtorch's bf16 {@code linear} (oneDNN) on x converted to
 *     bf16 per call and the result converted back, the same work. CPUs with AMX only.</li>
 * </ul>
 * Weights are packed (bert4j) or converted (libtorch) once, outside the timing.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class LinearBenchmark {

    /** qkv: n 1152, k 384; inter: n 1536, k 384; out: n 384, k 1536. */
    @Param({"qkv", "inter", "out"})
    public String layer;

    @Param({"13", "128", "608"})
    public int rows;

    @Param({"fp32", "bf16"})
    public String precision;

    @Param({"fused", "torch"})
    public String impl;

    @Param({"2"})
    public int threads;

    private Tensor x, w, b, packed, wBf16;
    private long n, k;

    @Setup(Level.Trial)
    public void setUp() {
        Bert4jRunner.setThreads(threads);
        switch (layer) {
            case "qkv" -> { n = 1152; k = 384; }
            case "inter" -> { n = 1536; k = 384; }
            case "out" -> { n = 384; k = 1536; }
            default -> throw new IllegalArgumentException("layer must be qkv, inter or out, got " + layer);
        }
        if (!impl.equals("fused") && !impl.equals("torch")) {
            throw new IllegalArgumentException("impl must be fused or torch, got " + impl);
        }
        boolean bf16 = switch (precision) {
            case "fp32" -> false;
            case "bf16" -> true;
            default -> throw new IllegalArgumentException("precision must be fp32 or bf16, got " + precision);
        };
        if (bf16 && !Kernels.bf16Amx()) {
            throw new IllegalStateException("precision=bf16 needs a CPU with AMX-BF16 (this one has none)");
        }
        torch.manual_seed(7);
        x = torch.randn(rows, k);
        w = torch.randn(n, k).mul(new org.bytedeco.pytorch.Scalar(0.05));
        b = torch.randn(n);
        if (impl.equals("fused")) {
            packed = bf16 ? Kernels.packLinearBf16(w) : Kernels.packLinear(w);
        } else if (bf16) {
            wBf16 = w.to(torch.ScalarType.BFloat16);
        }
    }

    @Benchmark
    public long forward() {
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            Tensor y;
            if (impl.equals("fused")) {
                y = precision.equals("bf16") ? Kernels.linearBf16(x, packed, n, k, b)
                        : Kernels.linearPacked(x, packed, n, k, b);
            } else if (precision.equals("bf16")) {
                y = torch.linear(x.to(torch.ScalarType.BFloat16), wBf16, new TensorOptional(b.to(torch.ScalarType.BFloat16)))
                        .to(torch.ScalarType.Float);
            } else {
                y = torch.linear(x, w, new TensorOptional(b));
            }
            return y.size(0);
        }
    }
}
