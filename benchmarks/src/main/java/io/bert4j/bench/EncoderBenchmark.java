package io.bert4j.bench;

import io.bert4j.Bert;
import io.bert4j.DefaultModel;
import io.bert4j.kernels.KernelMode;
import io.bert4j.tokenize.BertTokenizer;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * all-MiniLM-L6-v2 encoder forward pass (embeddings + 6 layers -> last_hidden_state), batch x
 * seq token ids from real SST-2 text, no padding. impl = bert4j with its fused kernels, in int8
 * mode (fused, {@code setInt8(true)}), in bf16 mode (fused, {@code setBf16(true)}; CPUs with AMX
 * only, the trial fails with the reason elsewhere), bert4j
 * with plain libtorch ops, or the reference ONNX Runtime on the same ONNX file; the same thread
 * count for both runtimes. Input tensors are built inside the timed call on both sides; outputs
 * stay in native memory on both sides.
 *
 * <p>The optional long-sequence shape: {@code -p batch=8 -p seq=512}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
public class EncoderBenchmark {

    @Param({"fused", "int8", "bf16", "torch", "ort"})
    public String impl;

    @Param({"1", "32"})
    public int batch;

    @Param({"128"})
    public int seq;

    @Param({"2"})
    public int threads;

    private Bert bert;
    private OrtReference ort;
    private Workloads.Inputs inputs;

    @Setup(Level.Trial)
    public void setUp() {
        Bert4jRunner.setThreads(threads);
        try (BertTokenizer tok = BertTokenizer.load(DefaultModel.ensure())) {
            inputs = Workloads.Inputs.of(Workloads.fixedLength(tok, batch, seq), tok.padId());
        }
        if (impl.equals("ort")) {
            ort = new OrtReference(threads);
        } else {
            boolean reduced = impl.equals("int8") || impl.equals("bf16");
            bert = Bert4jRunner.loadDefault(reduced ? KernelMode.FUSED : KernelMode.parse(impl));
            if (impl.equals("int8")) {
                bert.model().setInt8(true);
            } else if (impl.equals("bf16")) {
                bert.model().setBf16(true);
            }
            bert.model().prepareInference();
        }
    }

    @Benchmark
    public long forward() {
        return ort != null ? ort.forward(inputs) : Bert4jRunner.forward(bert.model(), inputs);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (bert != null) {
            bert.close();
        }
        if (ort != null) {
            ort.close();
        }
    }
}
