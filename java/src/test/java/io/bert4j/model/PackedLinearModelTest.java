package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.kernels.KernelMode;
import io.bert4j.testing.TestModels;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * The prepacked linear kernel inside {@link BertModel} (fused inference at few rows, real MiniLM
 * weights): the forward matches libtorch's (TORCH kernels), and an in-place weight update
 * (what an optimizer step does) invalidates the packed copy, for a plain linear layer and for
 * the stacked QKV weight.
 */
class PackedLinearModelTest {

    @Test
    void packedWeightsFollowParameterUpdates() {
        try (Bert fused = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             Bert plain = Bert.load(TestModels.defaultModelDir(), KernelMode.TORCH);
             PointerScope scope = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            long rows = 12;
            assertTrue(rows <= fused.model().packedLinearMaxRows(), "the test needs the packed path");
            torch.manual_seed(3);
            Tensor ids = torch.randint(1000, 2000, new long[] {1, rows});
            Tensor types = torch.zeros(1, rows).to(torch.ScalarType.Long);
            Tensor mask = torch.ones(1, rows).to(torch.ScalarType.Long);

            assertClose("before the update", fused, plain, ids, types, mask);
            fused.model().forward(ids, types, mask); // packs (and caches) every weight

            for (String name : new String[] {"encoder.layer.2.intermediate.dense.weight",
                    "encoder.layer.4.attention.self.key.weight", "encoder.layer.0.output.dense.weight"}) {
                Tensor delta = torch.randn(fused.model().parameters().get(name).sizes().vec().get())
                        .mul(new Scalar(0.05));
                fused.model().parameters().get(name).add_(delta);
                plain.model().parameters().get(name).add_(delta);
                assertClose("after updating " + name, fused, plain, ids, types, mask);
            }
        }
    }

    private static void assertClose(String what, Bert fused, Bert plain, Tensor ids, Tensor types, Tensor mask) {
        Tensor a = fused.model().forward(ids, types, mask).lastHiddenState();
        Tensor b = plain.model().forward(ids, types, mask).lastHiddenState();
        double diff = a.sub(b).abs().max().item_double();
        System.out.printf("packed linear in BertModel, %s: max |fused - torch| = %.3g%n", what, diff);
        // Different kernels (attention, GELU, GEMM order) agree to ~1e-5 on outputs of size ~5; a
        // stale packed weight changes the output by ~1e-1.
        assertTrue(diff < 1e-4, what + ": max |fused - torch| = " + diff);
    }
}
