package io.bert4j.bench;

import io.bert4j.Bert;
import io.bert4j.DefaultModel;
import io.bert4j.kernels.KernelMode;
import io.bert4j.kernels.Kernels;
import io.bert4j.model.BertModel;
import io.bert4j.model.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** The bert4j side of every comparison, and the shared thread setting. */
public final class Bert4jRunner {
    private Bert4jRunner() {
    }

    /** Threads for both runtimes: -Dbench.threads, default 2. */
    public static int defaultThreads() {
        return Integer.getInteger("bench.threads", 2);
    }

    /**
     * libtorch intra-op threads and bert4j's own CPU kernels get the same count as ORT. Applies
     * bert4j's native settings first: {@code torch.set_num_threads} loads libtorch, and the
     * OpenMP wait policy and OpenBLAS thread timeout only take effect if set before that (a JMH
     * fork that started here ran with libgomp's spinning default and OpenBLAS's ~0.1 s busy-wait).
     */
    public static void setThreads(int n) {
        io.bert4j.NativeSetup.ensure();
        torch.set_num_threads(n);
        Kernels.setNumThreads(n);
    }

    /** all-MiniLM-L6-v2 (imported once into the bert4j home from the same ONNX file ORT runs). */
    public static Bert loadDefault(KernelMode mode) {
        return Bert.load(DefaultModel.ensure(), mode);
    }

    /**
     * One encoder pass over prepared ids, input tensors built inside the timed region as ORT's
     * are; native memory released by the scope. Returns the hidden size as a result to consume
     * (libtorch on CPU is synchronous: the work is complete when forward returns).
     */
    public static long forward(BertModel model, Workloads.Inputs in) {
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            Tensor ids = Tensors.fromLongs(in.ids(), in.batch(), in.seq());
            Tensor types = Tensors.fromLongs(in.typeIds(), in.batch(), in.seq());
            Tensor mask = Tensors.fromLongs(in.mask(), in.batch(), in.seq());
            Tensor h = model.forward(ids, types, mask).lastHiddenState();           // [B, S, H]
            return h.size(2);
        }
    }

    /** last_hidden_state copied out, flat [B*S*H] (for parity checks, not timed). */
    public static float[] lastHiddenState(BertModel model, Workloads.Inputs in) {
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            Tensor ids = Tensors.fromLongs(in.ids(), in.batch(), in.seq());
            Tensor types = Tensors.fromLongs(in.typeIds(), in.batch(), in.seq());
            Tensor mask = Tensors.fromLongs(in.mask(), in.batch(), in.seq());
            return Tensors.toFloatArray(model.forward(ids, types, mask).lastHiddenState());
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalStateException("lengths differ: " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    static double maxAbsDiff(float[][] a, float[][] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, maxAbsDiff(a[i], b[i]));
        }
        return m;
    }
}
