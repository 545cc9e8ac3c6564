package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
 * {@link Kernels#packLinearBf16} + {@link Kernels#linearBf16} against libtorch: the reference
 * rounds x and w to bfloat16 with libtorch's own conversion, multiplies in float64 and adds the
 * bias. The kernel sums the same exact products in fp32, so it must stay within the fp32
 * recursive-summation bound k * 2^-24 * sum |x_i w_i| (+ one rounding for the bias) of that
 * reference: a misplaced weight, a lost k step or a wrong rounding is orders of magnitude more.
 * Runs on every CPU (AMX where {@link Kernels#bf16Amx}, the scalar path elsewhere); the native
 * test (test_linear_bf16.cpp) covers the packing and tails in detail.
 */
class Bf16LinearTest {
    @ParameterizedTest(name = "x {0} x {1}, n={2}, k={3}, bias={4}")
    @CsvSource({
        "1, 12, 1152, 384, true",
        "2, 7, 384, 1536, false",
        "3, 33, 37, 9, true",
        "1, 1, 1, 1, false"})
    void withinTheSummationBoundOfTheBf16Products(long batch, long seq, long n, long k, boolean withBias) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(seq * 7919 + n * 31 + k);
            Tensor x = torch.randn(batch, seq, k);
            Tensor w = torch.randn(n, k);
            Tensor b = withBias ? torch.randn(n) : null;
            Tensor y = Kernels.linearBf16(x, Kernels.packLinearBf16(w), n, k, b);
            assertArrayEquals(new long[] {batch, seq, n}, new long[] {y.size(0), y.size(1), y.size(2)});
            Tensor xb = x.to(torch.ScalarType.BFloat16).to(torch.ScalarType.Double).reshape(-1, k);
            Tensor wb = w.to(torch.ScalarType.BFloat16).to(torch.ScalarType.Double);
            Tensor exact = torch.matmul(xb, wb.t());
            Tensor mag = torch.matmul(xb.abs(), wb.abs().t());
            Tensor ref = b == null ? exact : exact.add(b.to(torch.ScalarType.Double));
            Tensor bound = mag.mul(new Scalar(k * Math.pow(2, -24))).add(ref.abs().mul(new Scalar(Math.pow(2, -23))))
                    .add(new Scalar(1e-30));
            Tensor err = y.reshape(-1, n).to(torch.ScalarType.Double).sub(ref).abs();
            double worst = err.div(bound).max().item_double();
            assertTrue(worst <= 1.0, "error " + worst + " x the fp32 summation bound");
            if (k > 8) {
                Tensor fp32 = b == null ? torch.linear(x, w) : torch.linear(x, w, new TensorOptional(b));
                assertFalse(torch.equal(y, fp32), "identical to fp32: the operands were not rounded to bf16");
            }
        }
    }

    @Test
    void badInputsAreNamed() {
        try (PointerScope scope = new PointerScope()) {
            Tensor w = torch.randn(8, 16);
            Tensor x = torch.randn(3, 16);
            Tensor packed = Kernels.packLinearBf16(w);
            Bert4jException e = assertThrows(Bert4jException.class,
                    () -> Kernels.linearBf16(x, Kernels.packLinear(w), 8, 16, null));
            assertTrue(e.getMessage().contains("packLinearBf16 result of an [8, 16] weight"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> Kernels.linearBf16(torch.randn(3, 15), packed, 8, 16, null));
            assertTrue(e.getMessage().contains("x must have shape [..., 16]"), e.getMessage());
            // (only the packed size is checked: [40, 16] needs two 32-column panels, [8, 16] one)
            e = assertThrows(Bert4jException.class, () -> Kernels.linearBf16(x, packed, 40, 16, null));
            assertTrue(e.getMessage().contains("[40, 16]"), e.getMessage());
            e = assertThrows(Bert4jException.class, () -> Kernels.packLinearBf16(torch.randn(4)));
            assertTrue(e.getMessage().contains("weight must have shape [n, k]"), e.getMessage());
            // A NaN in a row of x: that row's outputs are NaN, not silently finite.
            Tensor xn = x.clone();
            xn.index_put_(new org.bytedeco.pytorch.TensorIndexVector(
                    new org.bytedeco.pytorch.TensorIndex(1), new org.bytedeco.pytorch.TensorIndex(3)),
                    new Scalar(Double.NaN));
            Tensor y = Kernels.linearBf16(xn, packed, 8, 16, null);
            assertTrue(y.select(0, 1).isnan().all().item_bool(), "NaN row");
            assertFalse(y.select(0, 0).isnan().any().item_bool(), "other rows stay finite");
        }
    }
}
