package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.kernels.AutogradSplice;
import io.bert4j.kernels.FusedOps;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.Batch;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.pipeline.Embedder;
import io.bert4j.pipeline.Pooling;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Padding-free execution ({@link BertModel#forwardPacked}) on the real MiniLM weights: the packed
 * fused path (variable-length attention, every linear layer on [T, H]) against libtorch's padded
 * forward (SDPA with a mask) at the real tokens, outputs and every parameter gradient; the
 * padding fallback of the torch kernels; the packed sentence embeddings; bad packings.
 */
class PackedForwardTest {
    static Bert fused;
    static Bert plain;

    static final List<String> TEXTS = List.of(
            "I like eating apples.",
            "A",
            "Padding-free batches spend no work on padding tokens, however different the lengths of the texts are.",
            "Hello, world!",
            "Straße und Größe; café naïve résumé.");

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

    private static List<Encoding> encodings(Bert bert) {
        List<Encoding> enc = new ArrayList<>();
        for (String t : TEXTS) {
            enc.add(bert.tokenizer().encode(t));
        }
        return enc;
    }

    /** The batch packed: {ids [T], types [T]} and the lengths. */
    private static Tensor[] packed(List<Encoding> enc, int[] lengths) {
        int total = 0;
        for (int i = 0; i < enc.size(); i++) {
            lengths[i] = enc.get(i).length();
            total += lengths[i];
        }
        long[] ids = new long[total], types = new long[total];
        for (int i = 0, t = 0; i < enc.size(); i++) {
            for (int j = 0; j < lengths[i]; j++, t++) {
                ids[t] = enc.get(i).ids()[j];
                types[t] = enc.get(i).typeIds()[j];
            }
        }
        return new Tensor[] {Tensors.fromLongs(ids, total), Tensors.fromLongs(types, total)};
    }

    /** The padded [B, S, H] output's real-token rows, packed to [T, H]. */
    private static Tensor realRows(Tensor padded, int[] lengths) {
        List<Tensor> rows = new ArrayList<>();
        for (int i = 0; i < lengths.length; i++) {
            rows.add(padded.select(0, i).narrow(0, 0, lengths[i]));
        }
        return torch.cat(new org.bytedeco.pytorch.TensorVector(rows.toArray(new Tensor[0])), 0);
    }

    private static void zeroGrads(Bert bert) {
        for (Tensor p : bert.model().parameters().values()) {
            Tensor g = p.grad();
            if (g.defined()) {
                g.zero_();
            }
        }
    }

    @Test
    void packedFusedMatchesPaddedTorchOutputsAndGradients() {
        BertModel fm = fused.model(), pm = plain.model();
        assertTrue(fm.packsWithoutPadding());
        try (PointerScope scope = new PointerScope()) {
            for (BertModel m : new BertModel[] {fm, pm}) {
                m.setTrainable(true);
                m.train(true);
                m.setDropout(0.0, 0.0);
            }
            List<Encoding> enc = encodings(fused);
            int[] lengths = new int[enc.size()];
            Tensor[] in = packed(enc, lengths);
            Batch b = Batch.of(enc, fused.tokenizer().padId());
            assertTrue(b.attentionMask().sum().item_long() < b.attentionMask().numel(), "the padded batch must pad");
            zeroGrads(fused);
            zeroGrads(plain);
            long splices = FusedOps.attentionSplices();
            Tensor hp = fm.forwardPacked(in[0], in[1], lengths).lastHiddenState();                 // [T, H]
            assertEquals(splices + fm.config().numHiddenLayers(), FusedOps.attentionSplices(),
                    "every layer's packed attention must be spliced into autograd");
            Tensor hr = realRows(pm.forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).lastHiddenState(), lengths);
            assertEquals(List.of(hr.size(0), hr.size(1)), List.of(hp.size(0), hp.size(1)));
            double diff = hp.sub(hr).abs().max().item_double();
            double max = hr.abs().max().item_double();
            System.out.printf("packed fused vs padded torch, %d tokens: max |diff| %.3g (max |h| %.3g)%n", hp.size(0), diff, max);
            assertTrue(diff <= 1e-5 * max, "outputs differ by " + diff);

            torch.manual_seed(7);
            Tensor w = torch.randn(hr.size(0), hr.size(1));
            hp.mul(w).sum().backward();
            hr.mul(w).sum().backward();
            double worst = 0;
            String worstName = "";
            int checked = 0;
            for (Map.Entry<String, Tensor> e : pm.parameters().entrySet()) {
                Tensor gr = e.getValue().grad(), gp = fm.parameters().get(e.getKey()).grad();
                assertTrue(gr.defined() && gp.defined(), e.getKey() + ": no gradient");
                if (e.getKey().endsWith("attention.self.key.bias")) {
                    continue; // zero in exact arithmetic (softmax is shift-invariant): rounding noise only
                }
                double ref = gr.norm().item_double();
                assertTrue(ref > 0, e.getKey() + ": zero gradient");
                double rel = gp.sub(gr).norm().item_double() / ref;
                if (rel > worst) {
                    worst = rel;
                    worstName = e.getKey();
                }
                checked++;
            }
            System.out.printf("%d parameter gradients, worst normwise relative difference %.3g (%s)%n", checked, worst, worstName);
            assertTrue(checked > 90, "checked " + checked);
            assertTrue(worst <= 1e-4, worstName + ": " + worst);
        } finally {
            for (BertModel m : new BertModel[] {fm, pm}) {
                m.setTrainable(false);
                m.train(false);
            }
            AutogradSplice.reap();
        }
    }

    @Test
    void torchKernelsPackThroughPaddingWithTheSameResult() {
        BertModel pm = plain.model();
        assertTrue(!pm.packsWithoutPadding());
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            List<Encoding> enc = encodings(plain);
            int[] lengths = new int[enc.size()];
            Tensor[] in = packed(enc, lengths);
            Batch b = Batch.of(enc, plain.tokenizer().padId());
            Tensor hp = pm.forwardPacked(in[0], in[1], lengths).lastHiddenState();
            Tensor hr = realRows(pm.forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).lastHiddenState(), lengths);
            assertTrue(torch.equal(hp, hr), "the padding fallback must equal the padded forward");
        }
    }

    @Test
    void packedEmbeddingsMatchPaddedOnes() {
        Embedder packedEmbedder = new Embedder(fused.model(), fused.tokenizer(), null);
        Embedder paddedEmbedder = new Embedder(plain.model(), plain.tokenizer(), null);
        for (Pooling pooling : new Pooling[] {Pooling.MEAN, Pooling.CLS}) {
            EmbedOptions opts = EmbedOptions.DEFAULTS.withPooling(pooling).withNormalize(true);
            float[][] a = packedEmbedder.embed(TEXTS, opts);
            float[][] r = paddedEmbedder.embed(TEXTS, opts);
            double worst = 0;
            for (int i = 0; i < a.length; i++) {
                for (int j = 0; j < a[i].length; j++) {
                    worst = Math.max(worst, Math.abs(a[i][j] - r[i][j]));
                }
            }
            System.out.printf("%s embeddings, packed fused vs padded torch: max |diff| %.3g%n", pooling, worst);
            assertTrue(worst <= 1e-5, pooling + ": " + worst);
        }
    }

    @Test
    void badPackingsAreClearErrors() {
        BertModel m = fused.model();
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            Tensor ids = Tensors.fromLongs(new long[] {101, 2000, 102, 101, 102}, 5);
            assertMessage(() -> m.forwardPacked(ids, null, new int[] {3, 3}), "must be [6] (the sum of the lengths)");
            assertMessage(() -> m.forwardPacked(ids, null, new int[] {5, 0}), "sequence 1 of the packed batch has length 0");
            assertMessage(() -> m.forwardPacked(ids, null, new int[0]), "at least one sequence");
            assertMessage(() -> m.forwardPacked(ids, Tensors.fromLongs(new long[] {0, 0}, 2), new int[] {3, 2}),
                    "token_type_ids must be [5]");
            int tooLong = m.config().maxPositionEmbeddings() + 1;
            assertMessage(() -> m.forwardPacked(Tensors.fromLongs(new long[tooLong], tooLong), null, new int[] {tooLong}),
                    "over max_position_embeddings");
        }
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable e, String part) {
        Bert4jException ex = assertThrows(Bert4jException.class, e);
        assertTrue(ex.getMessage().contains(part), ex.getMessage());
    }
}
