package io.bert4j.cli;

import io.bert4j.Bert4jException;
import io.bert4j.model.BertModel;

/** The {@code --int8} / {@code --bf16} options the inference commands share. */
final class Precision {
    private Precision() {
    }

    /** Refuses both at once, before anything is loaded. */
    static void requireAtMostOne(boolean int8, boolean bf16) {
        if (int8 && bf16) {
            throw new Bert4jException("--int8 and --bf16 are exclusive: choose one precision");
        }
    }

    /** Turns the chosen reduced precision on for the encoder (float32 when neither is set). */
    static void apply(BertModel encoder, boolean int8, boolean bf16) {
        if (int8) {
            encoder.setInt8(true);
        }
        if (bf16) {
            encoder.setBf16(true);
        }
    }
}
