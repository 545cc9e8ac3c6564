package io.bert4j.bench;

import io.bert4j.Bert;
import io.bert4j.DefaultModel;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.tokenize.BertTokenizer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * End-to-end sentence embeddings, in sentences per second: {@value #BATCHES} fixed batches of
 * {@value #BATCH_SIZE} real SST-2 sentences (varying lengths, each batch padded to its longest)
 * per call. bert4j: {@code bert.embed} (tokenize + forward + mean pool + L2 normalise). ORT: the
 * same tokenizer, pad to longest, ONNX Runtime forward, mean pool and normalise in Java.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@OperationsPerInvocation(EmbedBenchmark.BATCHES * EmbedBenchmark.BATCH_SIZE)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
public class EmbedBenchmark {
    static final int BATCHES = 4;
    static final int BATCH_SIZE = 32;

    @Param({"fused", "torch", "ort"})
    public String impl;

    @Param({"2"})
    public int threads;

    private Bert bert;
    private BertTokenizer tokenizer;
    private OrtReference ort;
    private List<List<String>> batches;

    @Setup(Level.Trial)
    public void setUp() {
        Bert4jRunner.setThreads(threads);
        batches = Workloads.sentenceBatches(BATCHES, BATCH_SIZE);
        if (impl.equals("ort")) {
            tokenizer = io.bert4j.tokenize.BertTokenizer.load(DefaultModel.ensure());
            ort = new OrtReference(threads);
        } else {
            bert = Bert4jRunner.loadDefault(KernelMode.parse(impl));
        }
    }

    @Benchmark
    public void embed(Blackhole bh) {
        for (List<String> batch : batches) {
            bh.consume(ort != null ? ort.embed(tokenizer, batch) : bert.embed(batch, EmbedOptions.DEFAULTS));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (bert != null) {
            bert.close();
        }
        if (tokenizer != null) {
            tokenizer.close();
        }
        if (ort != null) {
            ort.close();
        }
    }
}
