package io.bert4j.bench;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * The shapes and inputs of the bias + GELU benchmarks ({@link BiasGeluBenchmark},
 * {@link BiasGeluPairedBenchmark}): x and w [rows, cols] and bias [cols], seeded, where rows = B·S
 * tokens and cols = the FFN's intermediate width (1536 MiniLM, 3072 BERT-base), exact erf or tanh
 * GELU, the same thread count for bert4j and libtorch.
 */
@State(Scope.Benchmark)
public abstract class BiasGeluShapes {

    /** minilm: cols 1536; base: cols 3072. */
    @Param({"minilm", "base"})
    public String model;

    /** B·S tokens. */
    @Param({"128", "1024", "4096"})
    public int rows;

    @Param({"exact", "tanh"})
    public String gelu;

    @Param({"2"})
    public int threads;

    protected Tensor x, w;   // [rows, cols]; w: a fixed random dL/dy
    protected Tensor bias;   // [cols]
    protected boolean tanh;

    /** Threads set and inputs made; called from the subclass's trial set-up. */
    protected void setUpInputs() {
        Bert4jRunner.setThreads(threads);
        int cols = KernelInputs.intermediate(model);
        torch.manual_seed(1234);
        x = torch.randn(rows, cols);
        w = torch.randn(rows, cols);
        bias = torch.randn(cols);
        tanh = switch (gelu) {
            case "exact" -> false;
            case "tanh" -> true;
            default -> throw new IllegalArgumentException("gelu must be exact or tanh, got " + gelu);
        };
    }
}
