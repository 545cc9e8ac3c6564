package io.bert4j.kernels;

import io.bert4j.Bert;
import io.bert4j.testing.TestModels;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.pytorch.global.torch;

/**
 * Not a test: single-sentence embedding latency of the default model (2 threads), for comparing
 * runs with and without the prepacked linear kernel ({@code -Dbert4j.packedLinearMaxRows=0}
 * turns it off). Prints the median and quartiles of 40 calls, 20 ms apart (an idle server's
 * request pattern: the OpenMP threads park between calls).
 *
 * <p>Arguments: [calls (default 40)].
 */
public final class EmbedLatencyTiming {

    private EmbedLatencyTiming() {}

    public static void main(String[] args) throws InterruptedException {
        io.bert4j.NativeSetup.ensure();
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 40;
        torch.set_num_threads(2);
        Kernels.setNumThreads(2);
        List<String> text = List.of("a gorgeous , witty , seductive movie .");
        try (Bert bert = Bert.load(TestModels.defaultModelDir())) {
            float[] first = bert.embed(text)[0];
            for (int i = 0; i < 5; i++) {
                bert.embed(text);
            }
            double[] ms = new double[calls];
            for (int i = 0; i < calls; i++) {
                Thread.sleep(20);
                long t0 = System.nanoTime();
                bert.embed(text);
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            Arrays.sort(ms);
            System.out.printf("packedLinearMaxRows=%s: embed 1 sentence median %.2f ms (p25 %.2f, p75 %.2f); "
                            + "embedding[0..2] = %.6f %.6f %.6f%n",
                    System.getProperty("bert4j.packedLinearMaxRows", "default"), ms[calls / 2], ms[calls / 4],
                    ms[3 * calls / 4], first[0], first[1], first[2]);
        }
    }
}
