package io.bert4j.io;

import io.bert4j.Bert4jException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A tensor in host memory, independent of libtorch: dtype, shape and little-endian bytes
 * (row-major, contiguous). Checkpoint readers produce these and writers consume them; the
 * model turns them into libtorch tensors when it loads.
 *
 * @param data little-endian bytes, position 0, exactly numel × dtype.byteSize long
 */
public record HostTensor(DType dtype, long[] shape, ByteBuffer data) {

    public HostTensor {
        shape = shape.clone();
        long expected = numel(shape) * dtype.byteSize();
        if (data.remaining() != expected) {
            throw new Bert4jException("tensor of dtype " + dtype + " and shape " + Arrays.toString(shape)
                    + " needs " + expected + " bytes but has " + data.remaining());
        }
        data = data.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new Bert4jException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long numel() {
        return numel(shape);
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public static HostTensor ofFloats(float[] values, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return new HostTensor(DType.F32, shape, b);
    }

    /** Values widened to float32 (F32, F16, BF16 and F64 are accepted). */
    public float[] toFloatArray() {
        int n = Math.toIntExact(numel());
        float[] out = new float[n];
        ByteBuffer b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().get(out);
            case F64 -> {
                for (int i = 0; i < n; i++) out[i] = (float) b.getDouble(i * 8);
            }
            case F16 -> {
                for (int i = 0; i < n; i++) out[i] = halfToFloat(b.getShort(i * 2));
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) out[i] = Float.intBitsToFloat((b.getShort(i * 2) & 0xffff) << 16);
            }
            default -> throw new Bert4jException("cannot read a " + dtype + " tensor as float values");
        }
        return out;
    }

    /** IEEE 754 binary16 to float (Java 17 has no Float.float16ToFloat). */
    static float halfToFloat(short h) {
        int bits = h & 0xffff;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) {
                return Float.intBitsToFloat(sign);
            }
            float v = mant * 0x1p-24f; // subnormal: mant × 2^-24
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }
}
