package io.bert4j.bench;

import io.bert4j.kernels.FusedOps;
import io.bert4j.kernels.Kernels;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRefOptional;
import org.bytedeco.pytorch.global.torch;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * The shapes and inputs of the bias + GELU benchmarks ({@link BiasGeluBenchmark},
 * {@link BiasGeluPairedBenchmark}): x and w [rows, cols] and bias [cols], seeded, where rows = B·S
 * tokens and cols = the FFN's intermediate width (1536 MiniLM, 3072 BERT-base), exact erf or tanh
 * GELU, the same thread count for bert4j and libtorch; and the two ops each benchmark times.
 */
@State(Scope.Benchmark)
public abstract class BiasGeluShapes {

    /** minilm: cols 1536; base: cols 3072. */
    @Param({"minilm", "base"})
    public String model;

    /** B·S tokens: batch 1, 8, 32 × seq 128, 512 gives 128, 512, 1024, 4096 (32 × 128 and 8 × 512), 16384. */
    @Param({"128", "512", "1024", "4096", "16384"})
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

    /** One forward, no autograd: {@link Kernels#biasGelu} or libtorch {@code gelu(x + b)}. */
    protected long forwardOp(boolean fused) {
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            Tensor y = fused ? Kernels.biasGelu(x, bias, tanh) : torch.gelu(x.add(bias), tanh ? "tanh" : "none");
            return y.size(0);
        }
    }

    /**
     * One forward, then {@code y.backward(w)} to x and bias through libtorch autograd:
     * {@link FusedOps#biasGelu} (the fused backward spliced in) or libtorch's add + gelu.
     */
    protected double forwardBackwardOp(boolean fused) {
        try (PointerScope scope = new PointerScope()) {
            Tensor xl = x.detach().requires_grad_(true);   // fresh leaves: no grad accumulation
            Tensor bl = bias.detach().requires_grad_(true);
            Tensor y = fused ? FusedOps.biasGelu(xl, bl, tanh) : torch.gelu(xl.add(bl), tanh ? "tanh" : "none");
            y.backward(w, new BoolOptional(), false, new TensorArrayRefOptional());
            return xl.grad().size(0) + bl.grad().size(0);
        }
    }
}
