package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.kernels.Kernels;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.testing.TestModels;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

/**
 * bf16 inference ({@link BertModel#setBf16}) on the real MiniLM weights and real SST-2
 * sentences, on CPUs with AMX: embeddings stay close to float32 (every cosine at least 0.999),
 * they do differ (the bf16 path really runs), the native bf16 layer runs where it should and
 * agrees with the op-by-op bf16 path, turning it off restores float32 exactly, int8 and bf16
 * exclude each other, and training passes keep the float weights. On CPUs without AMX the mode
 * is refused with a message that says why.
 */
class Bf16Test {

    @Test
    void embeddingsStayCloseToFloat32() throws java.io.IOException {
        assumeTrue(Kernels.bf16Amx(), "this CPU has no AMX-BF16: bf16 mode is refused here (see refusedWithoutAmx)");
        List<String> texts = Int8Test.sst2(64);
        float[][] nativeBf16 = null;
        for (String path : new String[] {"fused native", "fused op by op", "torch"}) {
            KernelMode mode = path.equals("torch") ? KernelMode.TORCH : KernelMode.FUSED;
            try (Bert bert = Bert.load(TestModels.defaultModelDir(), mode)) {
                BertModel m = bert.model();
                m.setNativeLayers(!path.equals("fused op by op"));
                float[][] fp32 = bert.embed(texts, EmbedOptions.DEFAULTS);
                m.setBf16(true);
                assertTrue(m.isBf16());
                long nativeBefore = m.nativeEncoderCalls();
                float[][] b = bert.embed(texts, EmbedOptions.DEFAULTS);
                assertEquals(path.equals("fused native"), m.nativeEncoderCalls() > nativeBefore, path);
                double worst = 1, mean = 0;
                boolean differs = false;
                for (int i = 0; i < texts.size(); i++) {
                    double c = Int8Test.cosine(fp32[i], b[i]);
                    worst = Math.min(worst, c);
                    mean += c / texts.size();
                    differs |= !Arrays.equals(fp32[i], b[i]);
                }
                System.out.printf("%s bf16 vs fp32 on %d SST-2 sentences: cosine min %.6f, mean %.6f%n", path,
                        texts.size(), worst, mean);
                assertTrue(differs, "bf16 output identical to float32: the bf16 path did not run");
                assertTrue(worst >= 0.999, "worst cosine " + worst);
                if (path.equals("fused native")) {
                    nativeBf16 = b;
                } else if (path.equals("fused op by op")) {
                    // The same bf16 GEMMs and fp32 ops, one native call per layer or per op.
                    double agree = 1;
                    for (int i = 0; i < texts.size(); i++) {
                        agree = Math.min(agree, Int8Test.cosine(nativeBf16[i], b[i]));
                    }
                    System.out.printf("native bf16 layers vs op by op: cosine min %.8f%n", agree);
                    assertTrue(agree >= 0.99999, "native vs op-by-op bf16: cosine " + agree);
                }
                m.setBf16(false);
                assertFalse(m.isBf16());
                float[][] back = bert.embed(texts, EmbedOptions.DEFAULTS);
                for (int i = 0; i < texts.size(); i++) {
                    assertTrue(Arrays.equals(fp32[i], back[i]), "float32 not restored for text " + i);
                }
            }
        }
    }

    @Test
    void int8AndBf16ExcludeEachOther() {
        assumeTrue(Kernels.bf16Amx(), "no AMX-BF16 on this CPU");
        try (Bert bert = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED)) {
            BertModel m = bert.model();
            m.setInt8(true);
            m.setBf16(true);
            assertTrue(m.isBf16());
            assertFalse(m.isInt8(), "bf16 turns int8 off");
            m.setInt8(true);
            assertTrue(m.isInt8());
            assertFalse(m.isBf16(), "int8 turns bf16 off");
        }
    }

    @Test
    void trainingPassesUseTheFloatWeights() {
        assumeTrue(Kernels.bf16Amx(), "no AMX-BF16 on this CPU");
        try (Bert bert = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             PointerScope scope = new PointerScope()) {
            BertModel m = bert.model();
            Tensor ids = Tensors.fromLongs(new long[] {101, 1045, 2066, 5983, 8663, 1012, 102}, 1, 7);
            m.setTrainable(true);
            Tensor fp32 = m.forward(ids, null, null).lastHiddenState().detach().clone();
            m.setBf16(true);
            Tensor train = m.forward(ids, null, null).lastHiddenState();
            assertTrue(train.requires_grad());
            assertTrue(torch.equal(fp32, train.detach()), "a grad-mode pass must use the float weights");
            m.setTrainable(false);
        }
    }

    @Test
    void refusedWithoutAmx() {
        assumeFalse(Kernels.bf16Amx(), "this CPU has AMX-BF16: the mode runs (see embeddingsStayCloseToFloat32)");
        try (Bert bert = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED)) {
            Bert4jException e = assertThrows(Bert4jException.class, () -> bert.model().setBf16(true));
            assertTrue(e.getMessage().contains("AMX-BF16"), e.getMessage());
            assertFalse(bert.model().isBf16());
        }
    }
}
