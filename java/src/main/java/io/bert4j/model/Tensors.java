package io.bert4j.model;

import io.bert4j.Bert4jException;
import io.bert4j.io.DType;
import io.bert4j.io.HostTensor;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Conversions between Java arrays, {@link HostTensor}s and libtorch tensors (CPU). */
public final class Tensors {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }

    private Tensors() {
    }

    public static TensorOptions options(torch.ScalarType type) {
        return new TensorOptions(type);
    }

    /** A new int64 tensor holding a copy of {@code values}, shaped {@code shape}. */
    public static Tensor fromLongs(long[] values, long... shape) {
        checkCount(values.length, shape);
        Tensor t = torch.empty(shape, options(torch.ScalarType.Long), null);
        if (values.length > 0) {
            new LongPointer(t.data_ptr()).put(values, 0, values.length);
        }
        return t;
    }

    /** A new int32 tensor holding a copy of {@code values}, shaped {@code shape}. */
    public static Tensor fromInts(int[] values, long... shape) {
        checkCount(values.length, shape);
        Tensor t = torch.empty(shape, options(torch.ScalarType.Int), null);
        if (values.length > 0) {
            new org.bytedeco.javacpp.IntPointer(t.data_ptr()).put(values, 0, values.length);
        }
        return t;
    }

    /** A new float32 tensor holding a copy of {@code values}, shaped {@code shape}. */
    public static Tensor fromFloats(float[] values, long... shape) {
        checkCount(values.length, shape);
        Tensor t = torch.empty(shape, options(torch.ScalarType.Float), null);
        if (values.length > 0) {
            new FloatPointer(t.data_ptr()).put(values, 0, values.length);
        }
        return t;
    }

    /** A float32 libtorch tensor owning a copy of the host tensor's values (any float dtype). */
    public static Tensor toFloatTensor(HostTensor h) {
        if (h.dtype() == DType.F32) {
            Tensor t = torch.empty(h.shape(), options(torch.ScalarType.Float), null);
            copyInto(t, h.data());
            return t;
        }
        if (!h.dtype().isFloatingPoint()) {
            throw new Bert4jException("expected a floating-point tensor, got " + h.dtype());
        }
        torch.ScalarType st = switch (h.dtype()) {
            case F16 -> torch.ScalarType.Half;
            case BF16 -> torch.ScalarType.BFloat16;
            case F64 -> torch.ScalarType.Double;
            default -> throw new IllegalStateException();
        };
        Tensor raw = torch.empty(h.shape(), options(st), null);
        copyInto(raw, h.data());
        return raw.to(torch.ScalarType.Float);
    }

    private static void copyInto(Tensor t, ByteBuffer src) {
        long n = src.remaining();
        if (n == 0) {
            return;
        }
        BytePointer dst = new BytePointer(t.data_ptr()).capacity(n);
        if (src.isDirect()) {
            Pointer.memcpy(dst, new BytePointer(src.duplicate()), n);
        } else {
            byte[] a = new byte[(int) n];
            src.duplicate().get(a);
            dst.put(a, 0, a.length);
        }
    }

    /** A host copy of a CPU tensor (made contiguous), as float32, int64 or the matching dtype. */
    public static HostTensor toHost(Tensor t) {
        Tensor c = t.is_contiguous() ? t : t.contiguous();
        DType dt = switch (c.scalar_type().intern()) { // intern(): JavaCPP may hand back a non-canonical enum instance
            case Float -> DType.F32;
            case Double -> DType.F64;
            case Half -> DType.F16;
            case BFloat16 -> DType.BF16;
            case Long -> DType.I64;
            case Int -> DType.I32;
            case Short -> DType.I16;
            case Char -> DType.I8;
            case Byte -> DType.U8;
            case Bool -> DType.BOOL;
            default -> throw new Bert4jException("cannot export a tensor of type " + c.scalar_type());
        };
        long bytes = c.numel() * dt.byteSize();
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes > 0) {
            new BytePointer(c.data_ptr()).capacity(bytes).get(b.array());
        }
        return new HostTensor(dt, shape(c), b);
    }

    public static float[] toFloatArray(Tensor t) {
        Tensor c = t.scalar_type().intern() == torch.ScalarType.Float ? t : t.to(torch.ScalarType.Float);
        if (!c.is_contiguous()) {
            c = c.contiguous();
        }
        float[] out = new float[Math.toIntExact(c.numel())];
        if (out.length > 0) {
            new FloatPointer(c.data_ptr()).get(out);
        }
        return out;
    }

    public static long[] shape(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int i = 0; i < s.length; i++) {
            s[i] = t.size(i);
        }
        return s;
    }

    private static void checkCount(int n, long[] shape) {
        if (HostTensor.numel(shape) != n) {
            throw new IllegalArgumentException(n + " values do not fill shape " + java.util.Arrays.toString(shape));
        }
    }
}
