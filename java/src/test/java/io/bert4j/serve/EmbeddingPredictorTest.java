package io.bert4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * The in-process predictor on the real MiniLM and real SST-2 sentences: many threads calling at
 * once each get exactly their own embeddings (equal to {@link Bert#embed} of the same texts),
 * texts from different callers share batches, over-long texts are refused or truncated.
 */
class EmbeddingPredictorTest {
    static Bert bert;
    static List<String> sentences;

    @BeforeAll
    static void load() throws Exception {
        bert = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
        List<String> lines = Files.readAllLines(TestModels.sharedData().resolve("sst2/train.tsv"));
        sentences = lines.subList(1, 161).stream().map(l -> l.substring(0, l.indexOf('\t'))).toList();
    }

    @AfterAll
    static void close() {
        if (bert != null) bert.close();
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }

    @Test
    void concurrentCallersGetTheirOwnEmbeddings() throws Exception {
        float[][] expected = bert.embed(sentences, EmbedOptions.DEFAULTS.withNormalize(true));
        int callers = 16;
        try (EmbeddingPredictor p = new EmbeddingPredictor(bert, EmbeddingPredictor.Settings.DEFAULTS
                .withMaxWait(Duration.ofMillis(10)))) {
            ExecutorService pool = Executors.newFixedThreadPool(callers);
            List<Future<Double>> worst = new ArrayList<>();
            for (int c = 0; c < callers; c++) {
                int caller = c;
                worst.add(pool.submit(() -> {
                    double w = 0;
                    // each caller: its own slice of the sentences, one or two texts per call
                    for (int i = caller; i < sentences.size(); i += 2 * callers) {
                        List<String> texts = i + callers < sentences.size()
                                ? List.of(sentences.get(i), sentences.get(i + callers)) : List.of(sentences.get(i));
                        float[][] got = p.embed(texts, true);
                        assertEquals(texts.size(), got.length);
                        w = Math.max(w, maxDiff(got[0], expected[i]));
                        if (texts.size() == 2) {
                            w = Math.max(w, maxDiff(got[1], expected[i + callers]));
                        }
                    }
                    return w;
                }));
            }
            double w = 0;
            for (Future<Double> f : worst) {
                w = Math.max(w, f.get(120, TimeUnit.SECONDS));
            }
            pool.shutdown();
            DynamicBatcher.Stats s = p.batcher().stats();
            System.out.printf("%d texts from %d threads in %d batches; max |diff| to Bert.embed %.2g%n",
                    s.items(), callers, s.batches(), w);
            assertEquals(sentences.size(), s.items());
            assertTrue(s.batches() < s.items(), "texts arriving together must share batches: " + s);
            assertTrue(w <= 1e-5, "an answer differs from Bert.embed by " + w);
        }
    }

    @Test
    void overLongTextsAreRefusedOrTruncated() throws Exception {
        String longText = "apples ".repeat(400);
        try (EmbeddingPredictor p = new EmbeddingPredictor(bert, EmbeddingPredictor.Settings.DEFAULTS)) {
            EmbeddingPredictor.InputTooLong e = assertThrows(EmbeddingPredictor.InputTooLong.class,
                    () -> p.embed(List.of("fine", longText), true));
            assertTrue(e.getMessage().contains("text 2"), e.getMessage());
            assertThrows(Bert4jException.class, () -> p.embed(List.of(), true));
        }
        try (EmbeddingPredictor p = new EmbeddingPredictor(bert, EmbeddingPredictor.Settings.DEFAULTS.withTruncate(true))) {
            float[] got = p.embed(List.of(longText), true)[0];
            float[] ref = bert.embed(List.of(longText), EmbedOptions.DEFAULTS.withNormalize(true).withMaxLength(p.maxLength()))[0];
            assertTrue(maxDiff(got, ref) <= 1e-5);
        }
    }

    @Test
    void aBudgetBelowTheLongestInputIsRefused() {
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> new EmbeddingPredictor(bert, EmbeddingPredictor.Settings.DEFAULTS.withMaxBatchTokens(100)));
        assertTrue(e.getMessage().contains("below the model's longest input"), e.getMessage());
    }
}
