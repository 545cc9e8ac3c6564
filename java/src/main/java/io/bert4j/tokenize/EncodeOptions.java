package io.bert4j.tokenize;

import io.bert4j.Bert4jException;

/**
 * How {@link BertTokenizer} encodes: special tokens, truncation, padding and overflow
 * windows. Immutable; build with {@link #builder()} or derive with the {@code with...}
 * methods. {@link #DEFAULT} adds special tokens and neither truncates nor pads: callers
 * check lengths themselves.
 *
 * @param addSpecialTokens add [CLS]/[SEP] (the tokenizer's post-processor template)
 * @param maxLength        token budget for truncation and {@link Padding#MAX_LENGTH};
 *                         0 = unset, then the tokenizer's model_max_length is used when
 *                         a budget is needed
 * @param truncation       which sequence loses tokens when over maxLength
 * @param padding          none, to the longest encoding of a batch, or to maxLength
 * @param stride           tokens repeated between consecutive overflow windows (the QA
 *                         "doc stride"); needs truncation
 */
public record EncodeOptions(boolean addSpecialTokens, int maxLength, Truncation truncation,
                            Padding padding, int stride) {

    /** HF truncation strategies, with HF's names. */
    public enum Truncation {
        /** Drop one token at a time from whichever sequence is longer. */
        LONGEST_FIRST("longest_first"),
        /** Only the first sequence loses tokens (the question stays whole in QA: use ONLY_SECOND). */
        ONLY_FIRST("only_first"),
        /** Only the second sequence loses tokens. */
        ONLY_SECOND("only_second"),
        DO_NOT_TRUNCATE("do_not_truncate");

        final String hfName;

        Truncation(String hfName) {
            this.hfName = hfName;
        }
    }

    /** HF padding strategies. */
    public enum Padding {
        NONE("do_not_pad"),
        /** Pad every encoding of a batch to the longest one (a single text is never padded). */
        LONGEST("longest"),
        /** Pad to maxLength. */
        MAX_LENGTH("max_length");

        final String hfName;

        Padding(String hfName) {
            this.hfName = hfName;
        }
    }

    public static final EncodeOptions DEFAULT =
            new EncodeOptions(true, 0, Truncation.DO_NOT_TRUNCATE, Padding.NONE, 0);

    public EncodeOptions {
        if (truncation == null) {
            throw new Bert4jException("EncodeOptions.truncation must not be null (use DO_NOT_TRUNCATE)");
        }
        if (padding == null) {
            throw new Bert4jException("EncodeOptions.padding must not be null (use NONE)");
        }
        if (maxLength < 0) {
            throw new Bert4jException("EncodeOptions.maxLength must be >= 0 (0 = unset), got " + maxLength);
        }
        if (stride < 0) {
            throw new Bert4jException("EncodeOptions.stride must be >= 0, got " + stride);
        }
        if (stride > 0 && truncation == Truncation.DO_NOT_TRUNCATE) {
            throw new Bert4jException("EncodeOptions.stride " + stride
                    + " needs a truncation strategy: overflow windows only exist when truncating");
        }
        if (stride > 0 && maxLength > 0 && stride >= maxLength) {
            throw new Bert4jException("EncodeOptions.stride " + stride + " must be < maxLength " + maxLength);
        }
    }

    public static Builder builder() {
        return new Builder(DEFAULT);
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    public EncodeOptions withAddSpecialTokens(boolean v) {
        return new EncodeOptions(v, maxLength, truncation, padding, stride);
    }

    public EncodeOptions withMaxLength(int v) {
        return new EncodeOptions(addSpecialTokens, v, truncation, padding, stride);
    }

    public EncodeOptions withTruncation(Truncation v) {
        return new EncodeOptions(addSpecialTokens, maxLength, v, padding, stride);
    }

    public EncodeOptions withPadding(Padding v) {
        return new EncodeOptions(addSpecialTokens, maxLength, truncation, v, stride);
    }

    public EncodeOptions withStride(int v) {
        return new EncodeOptions(addSpecialTokens, maxLength, truncation, padding, v);
    }

    /** True when encoding needs a length budget (maxLength or model_max_length). */
    boolean needsMaxLength() {
        return truncation != Truncation.DO_NOT_TRUNCATE || padding == Padding.MAX_LENGTH;
    }

    public static final class Builder {
        private boolean addSpecialTokens;
        private int maxLength;
        private Truncation truncation;
        private Padding padding;
        private int stride;

        private Builder(EncodeOptions from) {
            addSpecialTokens = from.addSpecialTokens;
            maxLength = from.maxLength;
            truncation = from.truncation;
            padding = from.padding;
            stride = from.stride;
        }

        public Builder addSpecialTokens(boolean v) {
            addSpecialTokens = v;
            return this;
        }

        public Builder maxLength(int v) {
            maxLength = v;
            return this;
        }

        public Builder truncation(Truncation v) {
            truncation = v;
            return this;
        }

        public Builder padding(Padding v) {
            padding = v;
            return this;
        }

        public Builder stride(int v) {
            stride = v;
            return this;
        }

        public EncodeOptions build() {
            return new EncodeOptions(addSpecialTokens, maxLength, truncation, padding, stride);
        }
    }
}
