package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.kernels.AutogradSplice;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.Batch;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

/**
 * Dropout in {@link BertModel} (real MiniLM weights, padded batch, grad mode on): training
 * with p > 0 is random but reproducible from the model's dropout seed; eval mode is
 * deterministic and equals the no-dropout output; hidden dropout keeps about 1 - p. (The rate
 * of the fused attention's Philox dropout is checked at the kernel level, AttentionTest.)
 */
class DropoutTest {
    static Bert fused;
    static Bert plain;

    @BeforeAll
    static void load() {
        torch.set_num_threads(2);
        fused = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
        plain = Bert.load(TestModels.defaultModelDir(), KernelMode.TORCH);
    }

    @AfterAll
    static void close() {
        if (fused != null) fused.close();
        if (plain != null) plain.close();
        AutogradSplice.reap();
    }

    private static Bert bert(KernelMode mode) {
        return mode == KernelMode.FUSED ? fused : plain;
    }

    private static Tensor run(Bert bert) {
        List<Encoding> enc = new ArrayList<>();
        for (String t : List.of("Dropout makes training noisy.", "Hello!", "A somewhat longer sentence to pad the others.")) {
            enc.add(bert.tokenizer().encode(t));
        }
        Batch b = Batch.of(enc, bert.tokenizer().padId());
        Tensor h = bert.model().forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).lastHiddenState();
        return h.detach().clone();
    }

    @ParameterizedTest
    @EnumSource(value = KernelMode.class, names = {"FUSED", "TORCH"})
    void trainingIsRandomButReproducibleAndEvalIsDeterministic(KernelMode mode) {
        BertModel m = bert(mode).model();
        try (PointerScope scope = new PointerScope()) {
            m.train(false);
            Tensor eval1 = run(bert(mode)), eval2 = run(bert(mode));
            assertTrue(torch.equal(eval1, eval2), "eval mode must be deterministic");

            m.train(true);
            m.setDropout(0.0, 0.0);
            Tensor noDropout = run(bert(mode));
            assertTrue(torch.equal(eval1, noDropout), "eval mode must equal training with p = 0");

            m.setDropout(0.1, 0.1);
            // TORCH-mode attention dropout (SDPA) draws from libtorch's global generator.
            m.setDropoutSeed(1);
            torch.manual_seed(1);
            Tensor a = run(bert(mode));
            m.setDropoutSeed(1);
            torch.manual_seed(1);
            Tensor a2 = run(bert(mode));
            m.setDropoutSeed(2);
            torch.manual_seed(2);
            Tensor c = run(bert(mode));
            Tensor next = run(bert(mode)); // same seed, later call: new masks
            double diff = a.sub(c).abs().max().item_double();
            System.out.printf("%s training: same seed max |diff| %.3g; seeds 1 vs 2 max |diff| %.3g; vs eval %.3g%n",
                    mode, a.sub(a2).abs().max().item_double(), diff, a.sub(eval1).abs().max().item_double());
            assertTrue(torch.equal(a, a2), "the same dropout seed must reproduce exactly");
            assertTrue(diff > 1e-2, "different seeds must give different outputs");
            assertFalse(torch.equal(c, next), "consecutive training forwards must draw new masks");
            assertFalse(torch.equal(a, eval1), "training with p > 0 must differ from eval");

            m.train(false);
            assertTrue(torch.equal(eval1, run(bert(mode))), "back in eval mode: today's output again");
        } finally {
            m.train(false);
            m.setDropout(m.config().hiddenDropoutProb(), m.config().attentionProbsDropoutProb());
        }
    }

    @Test
    void fusedTrainingWithDropoutBackpropagates() {
        BertModel m = fused.model();
        try (PointerScope scope = new PointerScope()) {
            m.setTrainable(true);
            m.train(true);
            m.setDropout(0.1, 0.1);
            m.setDropoutSeed(5);
            List<Encoding> enc = List.of(fused.tokenizer().encode("One short sentence."),
                    fused.tokenizer().encode("And another, a little longer than the first one."));
            Batch b = Batch.of(enc, fused.tokenizer().padId());
            Tensor loss = m.forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).lastHiddenState().pow(new Scalar(2)).mean();
            loss.backward();
            Tensor g = m.parameters().get("encoder.layer.0.attention.self.query.weight").grad();
            assertTrue(g.defined() && g.isfinite().all().item_bool() && g.abs().max().item_double() > 0,
                    "query weight gradient through fused attention with dropout");
        } finally {
            m.train(false);
            m.setTrainable(false);
            m.setDropout(m.config().hiddenDropoutProb(), m.config().attentionProbsDropoutProb());
            AutogradSplice.reap();
        }
    }

    @Test
    void hiddenDropoutKeepsAboutOneMinusP() {
        BertModel m = plain.model();
        try (PointerScope scope = new PointerScope()) {
            m.train(true);
            for (double p : new double[] {0.1, 0.5}) {
                m.setDropout(p, 0.0);
                long n = 200_000;
                Tensor y = m.hiddenDropout(torch.ones(n));
                double kept = y.ne(new Scalar(0)).sum().item_double() / n;
                double sigma = Math.sqrt(p * (1 - p) / n);
                System.out.printf("hidden dropout p=%.1f: kept %.5f (expected %.5f, sigma %.2g)%n", p, kept, 1 - p, sigma);
                assertTrue(Math.abs(kept - (1 - p)) < 5 * sigma, "kept fraction " + kept + " for p = " + p);
                // kept values are scaled by 1/(1-p), so the expectation is unchanged
                double maxV = y.max().item_double(), minNonZero = y.masked_select(y.ne(new Scalar(0))).min().item_double();
                assertEquals(1 / (1 - p), maxV, 1e-6);
                assertEquals(1 / (1 - p), minNonZero, 1e-6);
            }
            m.train(false);
            Tensor x = torch.randn(1000);
            assertTrue(torch.equal(m.hiddenDropout(x), x), "eval: identity");
        } finally {
            m.train(false);
            m.setDropout(m.config().hiddenDropoutProb(), m.config().attentionProbsDropoutProb());
        }
    }
}
