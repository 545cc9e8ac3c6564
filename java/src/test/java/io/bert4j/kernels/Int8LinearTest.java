package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Kernels#packLinearInt8} + {@link Kernels#linearInt8} against {@code torch.linear} in
 * fp32 (the exact integer arithmetic is checked natively, test_linear_int8.cpp).
 *
 * <p>Tolerance: x is quantized per row with step s = (max - min) / 255, w per output row with
 * step r = max|w| / 127, so each product is off by at most s/2 |w| + r/2 |x| + s r / 4 and
 * |int8 - fp32| <= sum over k of that (+ fp32 rounding). With k = 384 random normal inputs the
 * bound is ~1/5 of the typical |y|; a wrong index or a lost k group is several times |y|.
 */
class Int8LinearTest {
    @ParameterizedTest(name = "x {0} x {1}, n={2}, k={3}, bias={4}")
    @CsvSource({
        "1, 12, 1152, 384, true",
        "2, 7, 384, 1536, false",
        "1, 33, 37, 9, true",
        "1, 1, 1, 1, false"})
    void closeToTorchLinearWithinTheQuantizationBound(long batch, long seq, long n, long k, boolean withBias) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(seq * 7919 + n * 31 + k);
            Tensor x = torch.randn(batch, seq, k);
            Tensor w = torch.randn(n, k);
            Tensor b = withBias ? torch.randn(n) : null;
            Tensor y = Kernels.linearInt8(x, Kernels.packLinearInt8(w), n, k, b);
            Tensor ref = b == null ? torch.linear(x, w) : torch.linear(x, w, new TensorOptional(b));
            assertTrue(java.util.Arrays.equals(Tensors_shape(ref), Tensors_shape(y)));
            // Per-element bound from the per-row steps.
            Tensor x2 = x.reshape(-1, k);
            Tensor s = x2.amax(new long[] {1}, false).sub(x2.amin(new long[] {1}, false)).div(new Scalar(255.0)); // [m]
            Tensor r = w.abs().amax(new long[] {1}, false).div(new Scalar(127.0));                               // [n]
            Tensor bound = s.unsqueeze(1).div(new Scalar(2.0)).mul(w.abs().sum(new long[] {1}, false, null).unsqueeze(0))
                    .add(x2.abs().sum(new long[] {1}, false, null).unsqueeze(1).mul(r.unsqueeze(0)).div(new Scalar(2.0)))
                    .add(s.unsqueeze(1).mul(r.unsqueeze(0)).mul(new Scalar(k / 4.0)))
                    .add(new Scalar(1e-4));
            Tensor err = y.reshape(-1, n).sub(ref.reshape(-1, n)).abs();
            double worst = err.div(bound).max().item_double();
            assertTrue(worst <= 1.0, "error " + worst + " x the quantization bound");
            if (k > 8) {
                assertFalse(torch.equal(y, ref), "identical to fp32: not quantized");
            }
        }
    }

    private static long[] Tensors_shape(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int i = 0; i < s.length; i++) {
            s[i] = t.size(i);
        }
        return s;
    }

    @Test
    void badInputsAreNamed() {
        try (PointerScope scope = new PointerScope()) {
            Tensor w = torch.randn(8, 16);
            Tensor x = torch.randn(3, 16);
            Tensor packed = Kernels.packLinearInt8(w);
            Bert4jException e = assertThrows(Bert4jException.class,
                    () -> Kernels.linearInt8(x, Kernels.packLinear(w), 8, 16, null));
            assertTrue(e.getMessage().contains("packLinearInt8 result of an [8, 16] weight"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> Kernels.linearInt8(torch.randn(3, 15), packed, 8, 16, null));
            assertTrue(e.getMessage().contains("x must have shape [..., 16]"), e.getMessage());
            // (only the packed size is checked: [40, 16] needs two 32-column panels, [8, 16] one)
            e = assertThrows(Bert4jException.class, () -> Kernels.linearInt8(x, packed, 40, 16, null));
            assertTrue(e.getMessage().contains("[40, 16]"), e.getMessage());
            Tensor bad = w.clone();
            bad.index_put_(new org.bytedeco.pytorch.TensorIndexVector(
                    new org.bytedeco.pytorch.TensorIndex(2), new org.bytedeco.pytorch.TensorIndex(5)),
                    new Scalar(Double.NaN));
            e = assertThrows(Bert4jException.class, () -> Kernels.packLinearInt8(bad));
            assertTrue(e.getMessage().contains("w[2, 5] is not finite"), e.getMessage());
            // A NaN in a row of x: that row's outputs are NaN, not silently finite.
            Tensor xn = x.clone();
            xn.index_put_(new org.bytedeco.pytorch.TensorIndexVector(
                    new org.bytedeco.pytorch.TensorIndex(1), new org.bytedeco.pytorch.TensorIndex(3)),
                    new Scalar(Double.NaN));
            Tensor y = Kernels.linearInt8(xn, packed, 8, 16, null);
            assertTrue(y.select(0, 1).isnan().all().item_bool(), "NaN row");
            assertFalse(y.select(0, 0).isnan().any().item_bool(), "other rows stay finite");
        }
    }
}
