package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** The int8 layers' per-row scaling kernels against libtorch element-wise ops. */
class RowScaleTest {

    @ParameterizedTest
    @CsvSource({"1,1", "3,384", "130,384", "257,1536", "64,7"})
    void prologueAndEpilogueMatchLibtorch(int rows, int cols) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(rows * 1000L + cols);
            Tensor x = torch.randn(rows, cols);
            x.select(0, rows - 1).mul_(new Scalar(50.0));     // an outlier row: its range must not leak
            x.select(0, 0).zero_();                            // an all-zero row: scale clamps, no NaN
            Tensor[] r = Kernels.rowScalePrologue(x.view(1, rows, cols));
            Tensor s = x.abs().amax(new long[]{1}, false).clamp_min(new Scalar(1e-12));
            assertEquals(0, maxDiff(r[1], s), "row scales");
            assertTrue(maxDiff(r[0], x.div(s.unsqueeze(1))) <= 1e-7, "scaled rows");
            if (rows > 1) {
                Tensor rowMax = r[0].abs().amax(new long[]{1}, false);
                assertEquals(1.0, rowMax.narrow(0, 1, rows - 1).min().item_double(), 1e-6, "each row now spans [-1, 1]");
                assertEquals(1.0, rowMax.narrow(0, 1, rows - 1).max().item_double(), 1e-6);
            }
            assertEquals(0.0, r[0].select(0, 0).abs().max().item_double(), "the zero row stays zero");

            Tensor y = torch.randn(rows, cols + 5);
            Tensor colScale = torch.rand(cols + 5);
            Tensor bias = torch.randn(cols + 5);
            Tensor expect = y.mul(s.unsqueeze(1)).mul(colScale).add(bias);
            Tensor expectNoBias = y.mul(s.unsqueeze(1)).mul(colScale);
            Tensor y2 = y.clone();
            assertTrue(Kernels.rowScaleEpilogue(y, s, colScale, bias) == y, "in place, returns y");
            assertTrue(maxRel(y, expect) <= 1e-6, "epilogue with bias: " + maxRel(y, expect));
            Kernels.rowScaleEpilogue(y2, s, colScale, null);
            assertTrue(maxRel(y2, expectNoBias) <= 1e-6, "epilogue without bias");
        }
    }

    @Test
    void badArgumentsNameTheProblem() {
        try (PointerScope scope = new PointerScope()) {
            Tensor x = torch.randn(4, 6);
            Bert4jException e = assertThrows(Bert4jException.class, () -> Kernels.rowScalePrologue(x.t()));
            assertTrue(e.getMessage().contains("contiguous"), e.getMessage());
            Tensor y = torch.randn(4, 6);
            e = assertThrows(Bert4jException.class,
                    () -> Kernels.rowScaleEpilogue(y, torch.ones(3), torch.ones(6), null));
            assertTrue(e.getMessage().contains("s must have 4"), e.getMessage());
            e = assertThrows(Bert4jException.class,
                    () -> Kernels.rowScaleEpilogue(y, torch.ones(4), torch.ones(6), torch.ones(5)));
            assertTrue(e.getMessage().contains("bias must have 6"), e.getMessage());
            e = assertThrows(Bert4jException.class,
                    () -> Kernels.rowScaleEpilogue(y.to(torch.ScalarType.Double), torch.ones(4), torch.ones(6), null));
            assertTrue(e.getMessage().contains("float32"), e.getMessage());
        }
    }

    private static double maxDiff(Tensor a, Tensor b) {
        return a.reshape(-1).sub(b.reshape(-1)).abs().max().item_double();
    }

    private static double maxRel(Tensor a, Tensor b) {
        return a.sub(b).abs().div(b.abs().add(new Scalar(1e-6))).max().item_double();
    }
}
