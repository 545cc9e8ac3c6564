package io.bert4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.kernels.AutogradSplice;
import io.bert4j.kernels.KernelMode;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * BertForPreTraining / BertForMaskedLM on a tiny random config (hidden 32, 2 layers, 2 heads,
 * intermediate 64) with the default model's 30522-token vocabulary: HF key names, save/load,
 * loss against a direct full-vocabulary computation, gradients of the tied embedding, kernel
 * modes.
 */
class BertForPreTrainingTest {
    static BertTokenizer tokenizer;
    static BertConfig config;
    static final int B = 3;
    static final int S = 12;

    @BeforeAll
    static void setUp() {
        torch.set_num_threads(2);
        tokenizer = BertTokenizer.load(TestModels.defaultModelDir());
        config = BertConfig.of(tokenizer.vocabSize(), 32, 2, 2, 64, 64);
    }

    @AfterAll
    static void tearDown() {
        tokenizer.close();
        AutogradSplice.reap();
    }

    /** HF's BertForPreTraining.state_dict() keys written out from HF's module naming, minus decoder.{weight,bias}. */
    static Set<String> expectedHfKeys(int layers, boolean pretraining) {
        Set<String> k = new HashSet<>();
        for (String e : List.of("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                "LayerNorm.weight", "LayerNorm.bias")) {
            k.add("bert.embeddings." + e);
        }
        for (int i = 0; i < layers; i++) {
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                    "output.LayerNorm")) {
                k.add("bert.encoder.layer." + i + "." + m + ".weight");
                k.add("bert.encoder.layer." + i + "." + m + ".bias");
            }
        }
        k.add("cls.predictions.bias");
        k.add("cls.predictions.transform.dense.weight");
        k.add("cls.predictions.transform.dense.bias");
        k.add("cls.predictions.transform.LayerNorm.weight");
        k.add("cls.predictions.transform.LayerNorm.bias");
        if (pretraining) {
            k.add("bert.pooler.dense.weight");
            k.add("bert.pooler.dense.bias");
            k.add("cls.seq_relationship.weight");
            k.add("cls.seq_relationship.bias");
        }
        return k;
    }

    /** Seeded batch: ids from the vocabulary (past the special tokens), padding in the last row, labels with -100. */
    record Inputs(Tensor ids, Tensor types, Tensor mask, Tensor mlmLabels, Tensor nspLabels) {
    }

    static Inputs inputs(long seed) {
        Random r = new Random(seed);
        long[] ids = new long[B * S], types = new long[B * S], mask = new long[B * S], labels = new long[B * S];
        long[] nsp = new long[B];
        for (int b = 0; b < B; b++) {
            int len = b == B - 1 ? S - 4 : S;
            nsp[b] = r.nextInt(2);
            for (int s = 0; s < S; s++) {
                int i = b * S + s;
                ids[i] = s < len ? 1000 + r.nextInt(config.vocabSize() - 1000) : tokenizer.padId();
                types[i] = s < len / 2 ? 0 : 1;
                mask[i] = s < len ? 1 : 0;
                labels[i] = s < len && r.nextInt(3) == 0 ? 1000 + r.nextInt(config.vocabSize() - 1000) : -100;
            }
        }
        labels[0] = 2000; // at least one labelled position
        return new Inputs(Tensors.fromLongs(ids, B, S), Tensors.fromLongs(types, B, S), Tensors.fromLongs(mask, B, S),
                Tensors.fromLongs(labels, B, S), Tensors.fromLongs(nsp, B));
    }

    @Test
    void savedKeysAreHfKeysAndConfigNamesTheArchitecture(@TempDir Path tmp) throws Exception {
        for (BertForPreTraining.Head head : BertForPreTraining.Head.values()) {
            Path dir = tmp.resolve(head.name());
            try (BertForPreTraining m = BertForPreTraining.random(config, head, 1)) {
                m.save(dir, tokenizer);
            }
            Map<String, HostTensor> saved = SafeTensors.read(dir.resolve("model.safetensors"));
            assertEquals(expectedHfKeys(2, head == BertForPreTraining.Head.PRETRAINING), saved.keySet(), head.name());
            assertArrayEquals(new long[]{config.vocabSize()}, saved.get("cls.predictions.bias").shape());
            JsonNode cfg = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
            assertEquals(head.architecture(), cfg.get("architectures").get(0).asText());
            assertEquals("bert", cfg.get("model_type").asText());
            assertEquals(32, cfg.get("hidden_size").asInt());
            assertTrue(Files.isRegularFile(dir.resolve("tokenizer.json")));
        }
    }

    @Test
    void randomInitFollowsHf() {
        try (BertForPreTraining a = BertForPreTraining.random(config, 7);
             BertForPreTraining b = BertForPreTraining.random(config, 7);
             BertForPreTraining c = BertForPreTraining.random(config, 8)) {
            Map<String, HostTensor> sa = a.stateDict(), sb = b.stateDict(), sc = c.stateDict();
            for (String k : sa.keySet()) {
                float[] v = sa.get(k).toFloatArray();
                assertArrayEquals(v, sb.get(k).toFloatArray(), "same seed, " + k);
                if (k.contains("LayerNorm.weight")) {
                    for (float x : v) assertEquals(1f, x, k);
                } else if (k.endsWith(".bias")) {
                    for (float x : v) assertEquals(0f, x, k);
                } else {
                    double sum = 0, sq = 0;
                    for (float x : v) {
                        sum += x;
                        sq += (double) x * x;
                    }
                    double mean = sum / v.length, std = Math.sqrt(sq / v.length - mean * mean);
                    assertEquals(0.02, std, 0.02 * 0.25, "std of " + k);  // >= 64 draws: well within 25%
                    assertFalse(java.util.Arrays.equals(v, sc.get(k).toFloatArray()), "other seed, " + k);
                }
            }
            float[] word = sa.get("bert.embeddings.word_embeddings.weight").toFloatArray();
            int pad = config.padTokenId();
            for (int j = 0; j < 32; j++) assertEquals(0f, word[pad * 32 + j], "pad row");
            assertTrue(word[(pad + 1) * 32] != 0f);
        }
    }

    @Test
    void saveLoadGivesBitwiseIdenticalLogitsAndBertLoadReadsTheEncoder(@TempDir Path tmp) {
        Path dir = tmp.resolve("model");
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             BertForPreTraining m = BertForPreTraining.random(config, 3)) {
            Inputs in = inputs(11);
            m.save(dir, tokenizer);
            BertForPreTraining.Output o1 = m.forward(in.ids(), in.types(), in.mask());
            try (BertForPreTraining back = BertForPreTraining.load(dir)) {
                assertEquals(BertForPreTraining.Head.PRETRAINING, back.head());
                assertTrue(back.warnings().isEmpty(), back.warnings().toString());
                BertForPreTraining.Output o2 = back.forward(in.ids(), in.types(), in.mask());
                assertTrue(o1.mlmLogits().equal(o2.mlmLogits()), "MLM logits bitwise");
                assertTrue(o1.nspLogits().equal(o2.nspLogits()), "NSP logits bitwise");
            }
            // Saving again over the existing folder replaces it.
            m.save(dir, tokenizer);
            try (Bert bert = Bert.load(dir, m.kernels())) {
                assertTrue(bert.warnings().toString().contains("cls.predictions.bias"), bert.warnings().toString());
                assertTrue(bert.model().hasPooler());
                var enc = bert.model().forward(in.ids(), in.types(), in.mask());
                assertTrue(enc.lastHiddenState().equal(o1.lastHiddenState()), "encoder hidden states bitwise");
                assertTrue(enc.pooled().equal(m.encoder().forward(in.ids(), in.types(), in.mask()).pooled()));
            }
        }
        // The masked-LM-only variant round-trips too and has no NSP logits.
        Path mlmDir = tmp.resolve("mlm");
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             BertForPreTraining m = BertForPreTraining.randomMaskedLM(config, 4)) {
            m.save(mlmDir, tokenizer);
            Inputs in = inputs(12);
            try (BertForPreTraining back = BertForPreTraining.load(mlmDir)) {
                assertEquals(BertForPreTraining.Head.MASKED_LM, back.head());
                BertForPreTraining.Output o2 = back.forward(in.ids(), in.types(), in.mask());
                assertNull(o2.nspLogits());
                assertTrue(m.forward(in.ids(), in.types(), in.mask()).mlmLogits().equal(o2.mlmLogits()));
            }
        }
    }

    /** A copy of a state dict with HF's optional/legacy variations applied. */
    static Map<String, HostTensor> variant(Map<String, HostTensor> sd, java.util.function.Consumer<Map<String, HostTensor>> edit) {
        Map<String, HostTensor> m = new LinkedHashMap<>(sd);
        edit.accept(m);
        return m;
    }

    static HostTensor perturbed(HostTensor h) {
        float[] v = h.toFloatArray();
        v[v.length - 1] += 0.5f;
        return HostTensor.ofFloats(v, h.shape());
    }

    @Test
    void loadingAcceptsWhatHfWritesAndRejectsUntiedOrIncompleteCheckpoints() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             BertForPreTraining m = BertForPreTraining.random(config, 5)) {
            Map<String, HostTensor> sd = m.stateDict();
            Inputs in = inputs(13);
            Tensor want = m.forward(in.ids(), in.types(), in.mask()).mlmLogits();

            // HF's full state_dict (tied duplicates present), legacy gamma/beta names, decoder.bias only.
            List<Map<String, HostTensor>> ok = new ArrayList<>();
            ok.add(variant(sd, x -> {
                x.put("cls.predictions.decoder.weight", sd.get("bert.embeddings.word_embeddings.weight"));
                x.put("cls.predictions.decoder.bias", sd.get("cls.predictions.bias"));
            }));
            ok.add(variant(sd, x -> {
                x.put("cls.predictions.transform.LayerNorm.gamma", x.remove("cls.predictions.transform.LayerNorm.weight"));
                x.put("cls.predictions.transform.LayerNorm.beta", x.remove("cls.predictions.transform.LayerNorm.bias"));
                x.put("bert.embeddings.LayerNorm.gamma", x.remove("bert.embeddings.LayerNorm.weight"));
            }));
            ok.add(variant(sd, x -> x.put("cls.predictions.decoder.bias", x.remove("cls.predictions.bias"))));
            for (Map<String, HostTensor> v : ok) {
                try (BertForPreTraining back = BertForPreTraining.fromStateDict(config, v, null)) {
                    assertEquals(BertForPreTraining.Head.PRETRAINING, back.head());
                    assertTrue(back.warnings().isEmpty(), back.warnings().toString());
                    assertTrue(want.equal(back.forward(in.ids(), in.types(), in.mask()).mlmLogits()));
                }
            }
            // As a BertForMaskedLM, the pooler and NSP weights are unused: warned about, not fatal.
            try (BertForPreTraining back = BertForPreTraining.fromStateDict(config, sd, BertForPreTraining.Head.MASKED_LM)) {
                String w = back.warnings().toString();
                assertTrue(w.contains("bert.pooler.dense.weight") && w.contains("cls.seq_relationship.weight"), w);
            }

            Bert4jException e = assertThrows(Bert4jException.class, () -> BertForPreTraining.fromStateDict(config,
                    variant(sd, x -> x.put("cls.predictions.decoder.weight",
                            perturbed(sd.get("bert.embeddings.word_embeddings.weight")))), null));
            assertTrue(e.getMessage().contains("cls.predictions.decoder.weight differs"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> BertForPreTraining.fromStateDict(config,
                    variant(sd, x -> x.put("cls.predictions.decoder.bias", perturbed(sd.get("cls.predictions.bias")))), null));
            assertTrue(e.getMessage().contains("differ"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> BertForPreTraining.fromStateDict(config,
                    variant(sd, x -> {
                        x.remove("cls.predictions.transform.dense.bias");
                        x.remove("bert.encoder.layer.1.output.dense.weight");
                    }), null));
            assertTrue(e.getMessage().contains("cls.predictions.transform.dense.bias")
                    && e.getMessage().contains("bert.encoder.layer.1.output.dense.weight"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> BertForPreTraining.fromStateDict(config,
                    variant(sd, x -> x.keySet().removeIf(k -> k.startsWith("cls."))), null));
            assertTrue(e.getMessage().contains("no masked-language-model head"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> BertForPreTraining.fromStateDict(config,
                    variant(sd, x -> x.put("cls.seq_relationship.weight", HostTensor.ofFloats(new float[96], 3, 32))), null));
            assertTrue(e.getMessage().contains("cls.seq_relationship.weight has shape [3, 32]"), e.getMessage());
        }
    }

    @Test
    void lossEqualsFullVocabularyCrossEntropy() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
             BertForPreTraining m = BertForPreTraining.random(config, 6)) {
            Inputs in = inputs(14);
            BertForPreTraining.Loss l = m.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), in.nspLabels());
            BertForPreTraining.Output o = m.forward(in.ids(), in.types(), in.mask());
            Tensor full = o.mlmLogits().reshape(-1, config.vocabSize());                       // [B*S, V]
            Tensor labels = in.mlmLabels().reshape(-1);
            double direct = torch.cross_entropy_loss(full, labels, new TensorOptional(), 1 /* mean */, -100, 0.0).item_double();
            assertEquals(direct, l.mlmLoss().item_double(), 1e-5);
            double nsp = torch.cross_entropy_loss(o.nspLogits(), in.nspLabels()).item_double();
            assertEquals(nsp, l.nspLoss().item_double(), 1e-5);
            assertEquals(direct + nsp, l.loss().item_double(), 2e-5);
            Tensor labelled = labels.ne(new org.bytedeco.pytorch.Scalar(-100));
            assertEquals(labelled.sum().item_long(), l.mlmCount());
            long hits = full.argmax(new org.bytedeco.pytorch.LongOptional(1), false).eq(labels).logical_and(labelled).sum().item_long();
            assertEquals(hits, l.mlmCorrect());
            assertEquals(o.nspLogits().argmax(new org.bytedeco.pytorch.LongOptional(1), false).eq(in.nspLabels()).sum().item_long(),
                    l.nspCorrect());
            assertEquals(B, l.nspCount());
            assertTrue(l.mlmLoss().item_double() > 5, "random model: loss near ln(vocab)");

            BertForPreTraining.Loss noNsp = m.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), null);
            assertNull(noNsp.nspLoss());
            assertEquals(direct, noNsp.loss().item_double(), 1e-5);
            Tensor none = torch.full(new long[]{B, S}, new org.bytedeco.pytorch.Scalar(-100L), Tensors.options(torch.ScalarType.Long));
            BertForPreTraining.Loss empty = m.loss(in.ids(), in.types(), in.mask(), none, in.nspLabels());
            assertEquals(0, empty.mlmCount());
            assertEquals(0.0, empty.mlmLoss().item_double());
            assertThrows(Bert4jException.class, () -> m.loss(in.ids(), in.types(), in.mask(),
                    torch.full(new long[]{B, S}, new org.bytedeco.pytorch.Scalar((long) config.vocabSize()),
                            Tensors.options(torch.ScalarType.Long)), null));
            try (BertForPreTraining mlm = BertForPreTraining.randomMaskedLM(config, 6)) {
                assertThrows(Bert4jException.class, () -> mlm.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), in.nspLabels()));
            }
        }
    }

    @Test
    void fusedAndTorchKernelsGiveTheSameLoss() {
        try (PointerScope scope = new PointerScope(); BertForPreTraining m = BertForPreTraining.random(config, 8)) {
            m.setTrainable(true);
            m.train(true);
            m.setDropout(0, 0);
            Inputs in = inputs(15);
            m.setKernels(KernelMode.FUSED);
            double fused = m.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), in.nspLabels()).loss().item_double();
            m.setKernels(KernelMode.TORCH);
            double plain = m.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), in.nspLabels()).loss().item_double();
            assertEquals(plain, fused, 1e-5);
        }
    }

    static double norm(Tensor t) {
        return t.norm().item_double();
    }

    @Test
    void gradientsReachEveryParameterAndTheTiedEmbeddingSumsBothUses() {
        for (KernelMode mode : KernelMode.values()) {
            try (PointerScope scope = new PointerScope();
                 BertForPreTraining tied = BertForPreTraining.random(config, 9);
                 BertForPreTraining untied = BertForPreTraining.fromStateDict(config, tied.stateDict(), null)) {
                Inputs in = inputs(16);
                for (BertForPreTraining m : new BertForPreTraining[]{tied, untied}) {
                    m.setKernels(mode);
                    m.setTrainable(true);
                }
                String word = "bert.embeddings.word_embeddings.weight";
                Tensor decoder = untied.parameters().get(word).detach().clone();
                decoder.requires_grad_(true);
                untied.untieDecoderForTest(decoder);

                tied.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), in.nspLabels()).loss().backward();
                untied.loss(in.ids(), in.types(), in.mask(), in.mlmLabels(), in.nspLabels()).loss().backward();

                for (Map.Entry<String, Tensor> e : tied.parameters().entrySet()) {
                    Tensor g = e.getValue().grad();
                    assertTrue(g.defined(), mode + ": no grad for " + e.getKey());
                    assertTrue(norm(g) > 0, mode + ": zero grad for " + e.getKey());
                }
                Tensor lookup = untied.parameters().get(word).grad();   // encoder embedding lookup only
                Tensor proj = decoder.grad();                           // decoder projection only
                assertTrue(norm(lookup) > 0 && norm(proj) > 0);
                Tensor sum = lookup.add(proj);
                Tensor g = tied.parameters().get(word).grad();
                double err = norm(g.sub(sum)) / norm(g);
                assertTrue(err < 1e-5, mode + ": tied grad vs sum of parts, relative error " + err);
                // And the decoder part alone is not enough: the tied grad really contains both.
                assertTrue(norm(g.sub(proj)) / norm(g) > 1e-3);
                assertTrue(norm(tied.parameters().get("cls.predictions.bias").grad()) > 0);
                decoder.close();
            }
        }
    }
}
