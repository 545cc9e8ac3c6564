package io.bert4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Kernels#packLinear} + {@link Kernels#linearPacked} against {@code torch.linear}.
 *
 * <p>Tolerance: both sides are fp32 sums of k products (in different orders and blockings),
 * each within k * 2^-24 * sum |x w| of the exact value; so elementwise
 * |packed - torch| <= 2 (k + 1) 2^-24 (|x| |w|^T + |b|). Random O(1) inputs keep that ~1e3
 * times below the error of a wrong index, a dropped k step or a missing bias.
 */
class PackedLinearTest {

    @ParameterizedTest(name = "x {0} x {1}, n={2}, bias={3}")
    @CsvSource({
        "1, 1, 384, 384, true",
        "1, 12, 1152, 384, true",
        "2, 12, 1536, 384, false",
        "1, 33, 384, 1536, true",
        "3, 44, 7, 5, true",
        "1, 128, 33, 17, false",
        "1, 1, 1, 1, false"})
    void matchesTorchLinear(long batch, long seq, long n, long k, boolean withBias) {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(seq * 7919 + n * 31 + k);
            Tensor x = torch.randn(batch, seq, k);
            Tensor w = torch.randn(n, k);
            Tensor b = withBias ? torch.randn(n) : null;
            Tensor packed = Kernels.packLinear(w);
            assertEquals(1, packed.dim());
            assertEquals(Kernels.packedLinearSize(n, k), packed.size(0));

            Tensor y = Kernels.linearPacked(x, packed, n, k, b);
            Tensor ref = b == null ? torch.linear(x, w) : torch.linear(x, w, new TensorOptional(b));
            assertEquals(Kernels.shape(ref), Kernels.shape(y));
            assertFalse(y.requires_grad());

            Tensor mag = torch.linear(x.abs(), w.abs());
            if (b != null) {
                mag = mag.add(b.abs());
            }
            Tensor bound = mag.mul(new org.bytedeco.pytorch.Scalar(2.0 * (k + 1) * Math.pow(2, -24)));
            Tensor excess = y.sub(ref).abs().sub(bound);
            assertTrue(excess.max().item_double() <= 0,
                    "max |packed - torch| = " + y.sub(ref).abs().max().item_double() + " above the bound");
        }
    }

    @Test
    void packedWeightIsACopy() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(5);
            Tensor x = torch.randn(4, 10);
            Tensor w = torch.randn(6, 10);
            Tensor packed = Kernels.packLinear(w);
            Tensor before = Kernels.linearPacked(x, packed, 6, 10, null);
            w.zero_();
            assertTrue(torch.equal(before, Kernels.linearPacked(x, packed, 6, 10, null)),
                    "changing the weight after packing must not change the packed result");
        }
    }

    @Test
    void badArgumentsNameTheProblem() {
        try (PointerScope scope = new PointerScope()) {
            Tensor w = torch.randn(6, 10);
            Tensor packed = Kernels.packLinear(w);
            Tensor x = torch.randn(3, 10);

            assertMessage(() -> Kernels.packLinear(torch.randn(6)), "weight must have shape [n, k]");
            assertMessage(() -> Kernels.packLinear(w.t()), "contiguous");
            assertMessage(() -> Kernels.packLinear(w.to(torch.ScalarType.Double)), "float32");
            assertMessage(() -> Kernels.packLinear(null), "weight is null");

            assertMessage(() -> Kernels.linearPacked(torch.randn(3, 9), packed, 6, 10, null),
                    "x must have shape [..., 10]");
            assertMessage(() -> Kernels.linearPacked(torch.randn(10, 3).t(), packed, 6, 10, null), "contiguous");
            assertMessage(() -> Kernels.linearPacked(x, packed.narrow(0, 0, 10), 6, 10, null),
                    "packed must be the packLinear result of an [6, 10] weight");
            // A different n is caught only through the packed size (a tensor holds no [n, k] header),
            // so only when it needs another number of 64-column panels.
            assertMessage(() -> Kernels.linearPacked(x, packed, 65, 10, null), "packed must be");
            assertMessage(() -> Kernels.linearPacked(x, packed, 6, 10, torch.randn(5)),
                    "bias must have shape [6]");
            assertMessage(() -> Kernels.linearPacked(x, packed, -1, 10, null), "n and k must be >= 0");
            assertMessage(() -> Kernels.linearPacked(x.to(torch.ScalarType.Double), packed, 6, 10, null),
                    "x must be float32");
        }
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable call, String expected) {
        Bert4jException e = assertThrows(Bert4jException.class, call);
        assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' lacks '" + expected + "'");
    }
}
