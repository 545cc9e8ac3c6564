package io.bert4j.kernels;

import io.bert4j.Bert4jException;

import java.util.Locale;

/**
 * Which implementation runs the attention and bias+activation ops: bert4j's own native
 * kernels ({@code fused}, the default) or plain libtorch ops ({@code torch}). Both give the
 * same results within floating-point tolerance; {@code torch} is the reference.
 */
public enum KernelMode {
    FUSED, TORCH;

    public static KernelMode parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new Bert4jException("unknown kernels \"" + s + "\"; expected fused or torch");
        }
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
