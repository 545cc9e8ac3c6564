package io.bert4j.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * {@link BiasGeluBenchmark}'s two ops, fused and libtorch, measured <em>paired</em>: every
 * invocation runs one fused op and one libtorch op on the same inputs, in alternating order, and
 * times each with {@link System#nanoTime()}; the per-impl times are JMH secondary results
 * ({@code fusedNs}, {@code torchNs}: total nanoseconds in the iteration; {@code calls}: how many
 * ops of each). {@link JmhRatios} reports the two as µs per op and their ratio, per shape, like
 * the unpaired benchmarks.
 *
 * <p>Why: on a shared 2-vCPU host the machine's speed drifts by tens of percent within minutes, and
 * in the unpaired benchmark a shape's fused and libtorch forks run minutes apart, so at small
 * shapes, where the two differ by less than that drift, one run's ratio lands anywhere in it.
 * Interleaving call by call exposes both sides to the same machine; alternating which goes first
 * shares out whatever one op leaves in the caches for the next. The primary score (time per
 * pair) is not a comparison and is not used.
 *
 * <p>{@code -p rows=128} is the shape the unpaired benchmark cannot settle.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
public class BiasGeluPairedBenchmark extends BiasGeluShapes {

    private boolean fusedFirst;

    /** Nanoseconds spent in each impl during the iteration (JMH secondary results). */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Times {
        public long fusedNs;
        public long torchNs;
        /** Invocations: each ran one op of each impl. */
        public long calls;

        @Setup(Level.Iteration)
        public void reset() {
            fusedNs = 0;
            torchNs = 0;
            calls = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        setUpInputs();
    }

    @Benchmark
    public double forward(Times t) {
        return pair(t, this::forwardOp);
    }

    @Benchmark
    public double forwardBackward(Times t) {
        return pair(t, this::forwardBackwardOp);
    }

    /** One op of each impl, in alternating order from call to call, each timed into t. */
    private double pair(Times t, java.util.function.ToDoubleFunction<Boolean> op) {
        fusedFirst = !fusedFirst;
        t.calls++;
        double n = 0;
        for (int k = 0; k < 2; k++) {
            boolean fused = (k == 0) == fusedFirst;
            long t0 = System.nanoTime();
            n += op.applyAsDouble(fused);
            long ns = System.nanoTime() - t0;
            if (fused) {
                t.fusedNs += ns;
            } else {
                t.torchNs += ns;
            }
        }
        return n;
    }
}
