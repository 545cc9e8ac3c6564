package io.bert4j.kernels;

import java.util.Arrays;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

/**
 * Not a test: a timing program for choosing the row count below which bert4j uses
 * {@link Kernels#linearPacked} instead of {@code torch.linear} (run it with {@code main}).
 * The four linear shapes of a MiniLM-L6 layer (H = 384, I = 1536), several row counts, both
 * ops interleaved call by call (so machine noise hits both alike), median over the runs.
 *
 * <p>Arguments: [threads (default 2)] [runs (default 60)].
 */
public final class PackedLinearTiming {

    private PackedLinearTiming() {}

    public static void main(String[] args) {
        io.bert4j.NativeSetup.ensure();
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int runs = args.length > 1 ? Integer.parseInt(args[1]) : 60;
        torch.set_num_threads(threads);
        Kernels.setNumThreads(threads);
        long[][] shapes = {{384, 1152}, {384, 384}, {384, 1536}, {1536, 384}}; // {k, n}
        long[] rows = {1, 12, 32, 48, 64, 128, 256, 440};
        System.out.printf("threads=%d runs=%d; median microseconds per call (torch.linear / packed = speedup)%n",
                threads, runs);
        System.out.printf("%6s", "M");
        for (long[] s : shapes) {
            System.out.printf(" | %26s", "K=" + s[0] + ",N=" + s[1]);
        }
        System.out.println();
        try (NoGradGuard ng = new NoGradGuard()) {
            for (long m : rows) {
                System.out.printf("%6d", m);
                for (long[] s : shapes) {
                    double[] t = time(m, s[0], s[1], runs);
                    System.out.printf(" | %8.0f / %7.0f = %5.2fx", t[0], t[1], t[0] / t[1]);
                }
                System.out.println();
            }
        }
    }

    /** {median torch.linear us, median linearPacked us}. */
    private static double[] time(long m, long k, long n, int runs) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(m * 31 + n);
            Tensor x = torch.randn(m, k);
            Tensor w = torch.randn(n, k);
            Tensor b = torch.randn(n);
            Tensor packed = Kernels.packLinear(w);
            TensorOptional bo = new TensorOptional(b);
            double[] tt = new double[runs], tp = new double[runs];
            for (int i = -5; i < runs; i++) { // 5 warm-up rounds
                try (PointerScope inner = new PointerScope()) {
                    long t0 = System.nanoTime();
                    Tensor y1 = torch.linear(x, w, bo);
                    long t1 = System.nanoTime();
                    Tensor y2 = Kernels.linearPacked(x, packed, n, k, b);
                    long t2 = System.nanoTime();
                    if (i >= 0) {
                        tt[i] = (t1 - t0) / 1e3;
                        tp[i] = (t2 - t1) / 1e3;
                    }
                    if (i == -5) {
                        double d = y1.sub(y2).abs().max().item_double();
                        if (d > 1e-2) {
                            throw new IllegalStateException("packed result differs from torch.linear by " + d);
                        }
                    }
                }
            }
            return new double[] {median(tt), median(tp)};
        }
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
