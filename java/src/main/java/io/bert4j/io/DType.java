package io.bert4j.io;

import io.bert4j.Bert4jException;

/** Element types as safetensors names them, with their width in bytes. */
public enum DType {
    F64("F64", 8), F32("F32", 4), F16("F16", 2), BF16("BF16", 2),
    I64("I64", 8), I32("I32", 4), I16("I16", 2), I8("I8", 1), U8("U8", 1), BOOL("BOOL", 1);

    private final String safetensorsName;
    private final int byteSize;

    DType(String safetensorsName, int byteSize) {
        this.safetensorsName = safetensorsName;
        this.byteSize = byteSize;
    }

    public String safetensorsName() {
        return safetensorsName;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return this == F64 || this == F32 || this == F16 || this == BF16;
    }

    /** Parses a safetensors dtype string; {@code where} names the file and tensor for the message. */
    public static DType fromSafetensors(String name, String where) {
        for (DType t : values()) {
            if (t.safetensorsName.equals(name)) {
                return t;
            }
        }
        throw new Bert4jException(where + ": unsupported dtype \"" + name + "\"");
    }
}
