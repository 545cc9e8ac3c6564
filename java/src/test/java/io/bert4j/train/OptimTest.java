package io.bert4j.train;

import io.bert4j.Bert4jException;
import io.bert4j.model.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AdamW against a scalar transcription of torch's AdamW formula; the schedule; global-norm clipping. */
class OptimTest {
    private static final String[] NAMES = {"encoder.dense.weight", "encoder.dense.bias", "encoder.LayerNorm.weight"};
    private static final int[] SIZES = {5, 3, 2};

    private static Map<String, Tensor> params(Random r) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (int i = 0; i < NAMES.length; i++) {
            float[] v = new float[SIZES[i]];
            for (int j = 0; j < v.length; j++) {
                v[j] = (float) r.nextGaussian();
            }
            Tensor t = Tensors.fromFloats(v, v.length);
            t.requires_grad_(true);
            t.retainReference();
            m.put(NAMES[i], t);
        }
        return m;
    }

    /** Sets p.grad to exactly {@code g} by backpropagating sum(p * g). */
    private static void setGrad(Tensor p, float[] g) {
        try (PointerScope scope = new PointerScope()) {
            Tensor pg = p.grad();
            if (pg.defined()) {
                pg.zero_();
            }
            p.mul(Tensors.fromFloats(g, g.length)).sum().backward();
        }
    }

    @Test
    void decayGroupsByName() {
        assertTrue(AdamW.decays("encoder.layer.0.attention.self.query.weight"));
        assertTrue(AdamW.decays("embeddings.word_embeddings.weight"));
        assertFalse(AdamW.decays("encoder.layer.0.attention.self.query.bias"));
        assertFalse(AdamW.decays("embeddings.LayerNorm.weight"));
        assertFalse(AdamW.decays("final_layer_norm.weight"));
    }

    @Test
    void adamwMatchesScalarReferenceOfTorchFormula() {
        double wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        Random r = new Random(7);
        Map<String, Tensor> ps = params(r);
        // Reference state in double, started from the same float values.
        double[][] p = new double[NAMES.length][], m = new double[NAMES.length][], v = new double[NAMES.length][];
        for (int i = 0; i < NAMES.length; i++) {
            float[] f = Tensors.toFloatArray(ps.get(NAMES[i]).detach());
            p[i] = new double[f.length];
            for (int j = 0; j < f.length; j++) {
                p[i][j] = f[j];
            }
            m[i] = new double[f.length];
            v[i] = new double[f.length];
        }
        try (AdamW opt = new AdamW(ps, wd, b1, b2, eps)) {
            for (int t = 1; t <= 5; t++) {
                double lr = 1e-2 * t; // a changing lr, as under a schedule
                for (int i = 0; i < NAMES.length; i++) {
                    float[] g = new float[SIZES[i]];
                    for (int j = 0; j < g.length; j++) {
                        g[j] = (float) (r.nextGaussian() * (j == 0 ? 1e-8 : 1)); // one gradient near eps: where eps goes matters
                    }
                    setGrad(ps.get(NAMES[i]), g);
                    boolean decay = i == 0;
                    for (int j = 0; j < g.length; j++) {
                        if (decay) {
                            p[i][j] -= lr * wd * p[i][j];
                        }
                        m[i][j] = b1 * m[i][j] + (1 - b1) * g[j];
                        v[i][j] = b2 * v[i][j] + (1 - b2) * g[j] * (double) g[j];
                        double mHat = m[i][j] / (1 - Math.pow(b1, t));
                        double vHat = v[i][j] / (1 - Math.pow(b2, t));
                        p[i][j] -= lr * mHat / (Math.sqrt(vHat) + eps);
                    }
                }
                opt.step(lr);
                assertEquals(t, opt.stepCount());
                for (int i = 0; i < NAMES.length; i++) {
                    float[] got = Tensors.toFloatArray(ps.get(NAMES[i]).detach());
                    for (int j = 0; j < got.length; j++) {
                        assertEquals(p[i][j], got[j], 1e-6, NAMES[i] + "[" + j + "] after step " + t);
                    }
                }
            }
        } finally {
            ps.values().forEach(Tensor::releaseReference);
        }
    }

    @Test
    void optimizerStateRoundTripsThroughSafetensors(@TempDir Path dir) {
        Random r = new Random(11);
        Map<String, Tensor> a = params(r);
        Map<String, Tensor> b = params(new Random(11));
        List<float[][]> grads = new java.util.ArrayList<>();
        for (int t = 0; t < 5; t++) {
            float[][] gs = new float[NAMES.length][];
            for (int i = 0; i < NAMES.length; i++) {
                gs[i] = new float[SIZES[i]];
                for (int j = 0; j < SIZES[i]; j++) {
                    gs[i][j] = (float) r.nextGaussian();
                }
            }
            grads.add(gs);
        }
        try (AdamW oa = new AdamW(a, 0.01); AdamW ob = new AdamW(b, 0.01)) {
            for (int t = 0; t < 5; t++) {
                for (int i = 0; i < NAMES.length; i++) {
                    setGrad(a.get(NAMES[i]), grads.get(t)[i]);
                }
                oa.step(1e-2);
                if (t == 2) {
                    oa.save(dir.resolve("opt.safetensors"));
                    try (NoGradGuard ng = new NoGradGuard()) {
                        for (String n : NAMES) {
                            b.get(n).copy_(a.get(n));
                        }
                    }
                }
            }
            ob.load(dir.resolve("opt.safetensors"));
            assertEquals(3, ob.stepCount());
            for (int t = 3; t < 5; t++) {
                for (int i = 0; i < NAMES.length; i++) {
                    setGrad(b.get(NAMES[i]), grads.get(t)[i]);
                }
                ob.step(1e-2);
            }
            for (String n : NAMES) {
                assertArrayEquals(Tensors.toFloatArray(a.get(n).detach()), Tensors.toFloatArray(b.get(n).detach()), n);
            }
            Map<String, Tensor> other = new LinkedHashMap<>(b);
            other.put("extra.weight", b.get(NAMES[0]));
            try (AdamW oc = new AdamW(other, 0.01)) {
                Bert4jException e = assertThrows(Bert4jException.class, () -> oc.load(dir.resolve("opt.safetensors")));
                assertTrue(e.getMessage().contains("extra.weight"), e.getMessage());
            }
        } finally {
            a.values().forEach(Tensor::releaseReference);
            b.values().forEach(Tensor::releaseReference);
        }
    }

    @Test
    void linearScheduleWithWarmup() {
        LinearSchedule s = new LinearSchedule(2.0, 10, 100);
        assertEquals(0.0, s.lr(0));
        assertEquals(1.0, s.lr(5), 1e-12);
        assertEquals(1.8, s.lr(9), 1e-12);
        assertEquals(2.0, s.lr(10), 1e-12);
        assertEquals(1.0, s.lr(55), 1e-12);
        assertEquals(2.0 / 90, s.lr(99), 1e-12);
        assertEquals(0.0, s.lr(100));
        assertEquals(0.0, s.lr(150));
        LinearSchedule none = new LinearSchedule(1.0, 0, 4);
        assertEquals(1.0, none.lr(0));
        assertEquals(0.25, none.lr(3), 1e-12);
        assertEquals(25, TrainerConfig.of(Path.of("x"), 1000).withWarmupRatio(0.0241).warmupSteps()); // ceil(24.1)
        assertThrows(Bert4jException.class, () -> new LinearSchedule(1.0, 0, 0));
    }

    @Test
    void clippingScalesToMaxNormAndReportsPreClipNorm() {
        Map<String, Tensor> ps = new LinkedHashMap<>();
        Tensor a = Tensors.fromFloats(new float[] {0, 0}, 2).requires_grad_(true);
        Tensor b = Tensors.fromFloats(new float[] {0}, 1).requires_grad_(true);
        a.retainReference();
        b.retainReference();
        try {
            setGrad(a, new float[] {3, 4});
            setGrad(b, new float[] {12});
            double n = GradClip.clipGlobalNorm(List.of(a, b), 1.0);
            assertEquals(13.0, n, 1e-5);
            float[] ga = Tensors.toFloatArray(a.grad()), gb = Tensors.toFloatArray(b.grad());
            double after = Math.sqrt(ga[0] * ga[0] + ga[1] * ga[1] + gb[0] * gb[0]);
            assertEquals(1.0, after, 1e-6);
            assertEquals(3 / 13.0, ga[0], 1e-6);
            assertEquals(12 / 13.0, gb[0], 1e-6);
            // Below the threshold nothing changes.
            setGrad(a, new float[] {3, 4});
            setGrad(b, new float[] {12});
            assertEquals(13.0, GradClip.clipGlobalNorm(List.of(a, b), 100.0), 1e-5);
            assertArrayEquals(new float[] {3, 4}, Tensors.toFloatArray(a.grad()));
            // A non-finite gradient is reported and left alone.
            setGrad(b, new float[] {Float.NaN});
            assertTrue(Double.isNaN(GradClip.clipGlobalNorm(List.of(a, b), 1.0)));
            assertArrayEquals(new float[] {3, 4}, Tensors.toFloatArray(a.grad()));
        } finally {
            a.releaseReference();
            b.releaseReference();
        }
    }
}
