package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.kernels.KernelMode;
import io.bert4j.testing.TestModels;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * {@link BertModel#prepareInference} on the real MiniLM weights: it packs every encoder linear
 * weight the small-batch forward would pack lazily (the same cache entries, so the forward
 * rebuilds none), the outputs do not change, and it packs nothing where the prepacked path
 * cannot run (TORCH kernels, int8).
 */
class PrepareInferenceTest {

    /** The modules whose weights the fused small-batch forward packs: four linear layers per encoder layer. */
    private static Set<String> linearModules(BertModel m) {
        Set<String> out = new HashSet<>();
        for (int i = 0; i < m.config().numHiddenLayers(); i++) {
            String pre = "encoder.layer." + i + ".";
            out.add(pre + "attention.self.qkv");
            out.add(pre + "attention.output.dense");
            out.add(pre + "intermediate.dense");
            out.add(pre + "output.dense");
        }
        return out;
    }

    @Test
    void packsEveryLinearWeightAndLeavesOutputsUnchanged() {
        try (Bert prepared = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             Bert lazy = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             PointerScope scope = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            BertModel m = prepared.model();
            assertTrue(m.packedModules().isEmpty(), "a fresh model has nothing packed");
            m.prepareInference();
            assertEquals(linearModules(m), m.packedModules());

            Map<String, Long> before = new HashMap<>();
            for (String module : m.packedModules()) {
                before.put(module, m.packedWeight(module).data_ptr().address());
            }
            m.prepareInference(); // again: nothing changed, so nothing is repacked
            for (String module : m.packedModules()) {
                assertEquals(before.get(module), m.packedWeight(module).data_ptr().address(),
                        module + " was repacked by a second prepareInference");
            }

            long rows = 12;
            assertTrue(rows <= m.packedLinearMaxRows(), "the test needs the packed path");
            torch.manual_seed(5);
            Tensor ids = torch.randint(1000, 2000, new long[] {1, rows});
            Tensor types = torch.zeros(1, rows).to(torch.ScalarType.Long);
            Tensor mask = torch.ones(1, rows).to(torch.ScalarType.Long);
            Tensor a = m.forward(ids, types, mask).lastHiddenState();
            Tensor b = lazy.model().forward(ids, types, mask).lastHiddenState();
            double diff = a.sub(b).abs().max().item_double();
            assertTrue(diff < 1e-6, "max |prepared - lazy| = " + diff);

            // The forward found every prepared entry current (same key): it packed nothing new
            // and rebuilt nothing. A key mismatch would repack into a fresh buffer (the new one is
            // allocated before the old is freed, so its address differs).
            assertEquals(linearModules(m), m.packedModules());
            for (String module : m.packedModules()) {
                assertEquals(before.get(module), m.packedWeight(module).data_ptr().address(),
                        module + " was repacked by the forward after prepareInference");
            }
            assertEquals(lazy.model().packedModules(), m.packedModules(),
                    "the lazy forward packs exactly what prepareInference packs");
        }
    }

    @Test
    void packsNothingWithTorchKernels() {
        try (Bert bert = Bert.load(TestModels.defaultModelDir(), KernelMode.TORCH)) {
            bert.model().prepareInference();
            assertTrue(bert.model().packedModules().isEmpty(), "packed: " + bert.model().packedModules());
        }
    }

    @Test
    void packsNothingWithInt8AndInt8ReleasesPackedWeights() {
        try (Bert bert = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED)) {
            BertModel m = bert.model();
            m.setInt8(true);
            m.prepareInference();
            assertTrue(m.packedModules().isEmpty(), "packed with int8 on: " + m.packedModules());

            m.setInt8(false);
            m.prepareInference();
            assertEquals(linearModules(m), m.packedModules());
            m.setInt8(true); // int8 passes never use the fp32 packed copies: they are freed
            assertTrue(m.packedModules().isEmpty(), "packed after int8 on: " + m.packedModules());
        }
    }
}
