package io.bert4j.bench;

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
 * The FFN's {@code gelu(x + bias)} on x [rows, cols] (rows = B·S tokens, cols = the intermediate
 * width: 1536 MiniLM, 3072 BERT-base), exact erf or tanh GELU: bert4j's fused kernel
 * ({@code impl=fused}) against libtorch {@code gelu(x + b)} ({@code impl=torch}, the reference).
 *
 * <p>{@code forward}: {@link io.bert4j.kernels.Kernels#biasGelu} vs {@code torch.gelu(x.add(b))}, no autograd.
 * {@code forwardBackward}: the op's forward, then {@code y.backward(w)} (w: a fixed random dL/dy,
 * as the layer above hands it to autograd) to x and bias through libtorch autograd on both sides —
 * {@link io.bert4j.kernels.FusedOps#biasGelu} splices the fused backward in, libtorch records add + gelu. No loss
 * reduction is timed: an earlier version timed {@code sum(y * w).backward()}, whose extra
 * elementwise product and reduction cost the same on both sides and diluted the ratio. Same
 * thread count on both.
 *
 * <p>Quick subset: {@code -p rows=1024}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class BiasGeluBenchmark extends BiasGeluShapes {

    @Param({"fused", "torch"})
    public String impl;

    @Setup(Level.Trial)
    public void setUp() {
        setUpInputs();
        if (!impl.equals("fused") && !impl.equals("torch")) {
            throw new IllegalArgumentException("impl must be fused or torch, got " + impl);
        }
    }

    @Benchmark
    public long forward() {
        return forwardOp(impl.equals("fused"));
    }

    @Benchmark
    public double forwardBackward() {
        return forwardBackwardOp(impl.equals("fused"));
    }
}
