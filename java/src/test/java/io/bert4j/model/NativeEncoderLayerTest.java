package io.bert4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.kernels.Kernels;
import io.bert4j.testing.TestModels;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * The native encoder layer ({@link Kernels#encoderLayer}: a whole BERT layer in one call) in
 * fused inference, on the real MiniLM weights, against libtorch's ops (TORCH kernels, an
 * independent implementation of every step) and against bert4j's own op-by-op fused path:
 * padded batches with padding (additive mask), packed variable-length batches, and a model
 * with the tanh GELU. Each case also checks that the native path really ran.
 */
class NativeEncoderLayerTest {

    /** Outputs are O(1)-O(10); separate kernels (GEMM order, LayerNorm, GELU) agree to ~1e-5. */
    private static final double TOL = 5e-5;

    @Test
    void paddedBatchWithPaddingMatchesLibtorch() {
        try (Bert fused = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             Bert plain = Bert.load(TestModels.defaultModelDir(), KernelMode.TORCH);
             PointerScope scope = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            torch.manual_seed(11);
            long b = 3, s = 23;
            Tensor ids = torch.randint(1000, 20000, new long[] {b, s});
            Tensor types = torch.randint(0, 2, new long[] {b, s});
            long[] lengths = {23, 9, 1};
            long[] m = new long[(int) (b * s)];
            for (int i = 0; i < b; i++) {
                for (int j = 0; j < lengths[i]; j++) {
                    m[(int) (i * s + j)] = 1;
                }
            }
            Tensor mask = Tensors.fromLongs(m, b, s);

            long before = fused.model().nativeEncoderCalls();
            Tensor a = fused.model().forward(ids, types, mask).lastHiddenState();
            assertEquals(before + 1, fused.model().nativeEncoderCalls(), "the native layer did not run");
            Tensor ref = plain.model().forward(ids, types, mask).lastHiddenState();
            // Every position, padding included: a padded query row attends to the real keys in
            // both implementations.
            double diff = a.sub(ref).abs().max().item_double();
            System.out.printf("native encoder layer, padded 3 x 23 (lengths 23, 9, 1): max |native - torch| = %.3g%n", diff);
            assertTrue(diff < TOL, "max |native - torch| = " + diff);

            fused.model().setNativeLayers(false);
            Tensor opByOp = fused.model().forward(ids, types, mask).lastHiddenState();
            assertEquals(before + 1, fused.model().nativeEncoderCalls(), "setNativeLayers(false) was ignored");
            double d2 = a.sub(opByOp).abs().max().item_double();
            assertTrue(d2 < TOL, "max |native - op by op| = " + d2);
        }
    }

    @Test
    void packedBatchMatchesLibtorchPadded() {
        try (Bert fused = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             Bert plain = Bert.load(TestModels.defaultModelDir(), KernelMode.TORCH);
             PointerScope scope = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            torch.manual_seed(12);
            int[] lengths = {7, 1, 40, 13};
            long total = 61;
            Tensor ids = torch.randint(1000, 20000, new long[] {total});
            long before = fused.model().nativeEncoderCalls();
            BertModel.PackedOutput a = fused.model().forwardPacked(ids, null, lengths);
            assertEquals(before + 1, fused.model().nativeEncoderCalls(), "the native layer did not run");
            BertModel.PackedOutput ref = plain.model().forwardPacked(ids, null, lengths); // pads internally
            double diff = a.lastHiddenState().sub(ref.lastHiddenState()).abs().max().item_double();
            System.out.printf("native encoder layer, packed lengths 7, 1, 40, 13: max |native - torch| = %.3g%n", diff);
            assertTrue(diff < TOL, "max |native - torch| = " + diff);
            if (a.pooled() != null) {
                assertTrue(a.pooled().sub(ref.pooled()).abs().max().item_double() < TOL, "pooled output differs");
            }
        }
    }

    @Test
    void tanhGeluModelMatchesLibtorch(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        // The MiniLM folder with hidden_act "gelu_new" (the tanh form): the same weights, another
        // activation, so the native layer's GELU variant switch is exercised end to end.
        java.nio.file.Path src = TestModels.defaultModelDir();
        try (var files = java.nio.file.Files.list(src)) {
            for (java.nio.file.Path f : (Iterable<java.nio.file.Path>) files::iterator) {
                if (f.getFileName().toString().equals("config.json")) {
                    String c = java.nio.file.Files.readString(f);
                    String changed = c.replaceAll("\"hidden_act\"\\s*:\\s*\"gelu\"", "\"hidden_act\": \"gelu_new\"");
                    assertTrue(!changed.equals(c), "no hidden_act \"gelu\" in " + c);
                    java.nio.file.Files.writeString(dir.resolve("config.json"), changed);
                } else {
                    java.nio.file.Files.createSymbolicLink(dir.resolve(f.getFileName()), f);
                }
            }
        }
        try (Bert fused = Bert.load(dir, KernelMode.FUSED);
             Bert plain = Bert.load(dir, KernelMode.TORCH);
             PointerScope scope = new PointerScope();
             NoGradGuard ng = new NoGradGuard()) {
            assertEquals("gelu_new", fused.model().config().hiddenAct());
            torch.manual_seed(13);
            Tensor ids = torch.randint(1000, 20000, new long[] {2, 17});
            long before = fused.model().nativeEncoderCalls();
            Tensor a = fused.model().forward(ids, null, null).lastHiddenState();
            assertEquals(before + 1, fused.model().nativeEncoderCalls(), "the native layer did not run");
            Tensor ref = plain.model().forward(ids, null, null).lastHiddenState();
            double diff = a.sub(ref).abs().max().item_double();
            System.out.printf("native encoder layer, gelu_new, 2 x 17: max |native - torch| = %.3g%n", diff);
            assertTrue(diff < TOL, "max |native - torch| = " + diff);
        }
    }

    @Test
    void notUsedWhereTheOpByOpPathIsNeeded() {
        try (Bert fused = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
             PointerScope scope = new PointerScope()) {
            Tensor ids = torch.randint(1000, 2000, new long[] {1, 8});
            long before = fused.model().nativeEncoderCalls();
            fused.model().forward(ids, null, null); // grad mode on: autograd needs the op-by-op graph
            fused.model().train(true);
            try (NoGradGuard ng = new NoGradGuard()) {
                fused.model().forward(ids, null, null); // training mode: dropout
            }
            fused.model().train(false);
            fused.model().setPackedLinearMaxRows(4);
            try (NoGradGuard ng = new NoGradGuard()) {
                fused.model().forward(ids, null, null); // more tokens than the packed-GEMM limit
            }
            assertEquals(before, fused.model().nativeEncoderCalls());
        }
    }

    @Test
    void badArgumentsAreNamed() {
        try (PointerScope scope = new PointerScope()) {
            Tensor h = torch.zeros(4, 8);
            Tensor[] w = new Tensor[12];
            for (int i = 0; i < w.length; i++) {
                w[i] = torch.zeros(1);
            }
            Tensor ws = torch.zeros(Kernels.encoderLayerWorkspaceSize(4, 8, 2, 16));
            Bert4jException e = assertThrows(Bert4jException.class,
                    () -> Kernels.encoderLayer(h, w, 2, 16, 1e-12, false, null, 0, 0, 1, 4, null, ws));
            assertTrue(e.getMessage().contains("weights[0]"), e.getMessage());
            e = assertThrows(Bert4jException.class,
                    () -> Kernels.encoderLayerWorkspaceSize(4, 8, 3, 16));
            assertTrue(e.getMessage().contains("multiple of heads"), e.getMessage());
        }
    }
}
