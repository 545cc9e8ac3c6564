package io.bert4j.pipeline;

import io.bert4j.Bert4jException;

/**
 * Options for sentence embeddings.
 *
 * @param pooling   null = follow the model's sentence-transformers config, else MEAN
 * @param normalize null = follow the model's sentence-transformers config (a Normalize module), else false
 * @param maxLength 0 = texts must fit the model (an over-long text is an error);
 *                  N > 0 = truncate each text to N tokens, [CLS] and [SEP] included
 * @param batchSize texts per forward pass
 */
public record EmbedOptions(Pooling pooling, Boolean normalize, int maxLength, int batchSize) {

    public static final EmbedOptions DEFAULTS = new EmbedOptions(null, null, 0, 32);

    public EmbedOptions {
        if (maxLength < 0) {
            throw new Bert4jException("max length must be >= 0, got " + maxLength);
        }
        if (maxLength == 1) {
            throw new Bert4jException("max length must be at least 2 ([CLS] and [SEP]), got 1");
        }
        if (batchSize <= 0) {
            throw new Bert4jException("batch size must be > 0, got " + batchSize);
        }
    }

    public EmbedOptions withPooling(Pooling p) {
        return new EmbedOptions(p, normalize, maxLength, batchSize);
    }

    public EmbedOptions withNormalize(Boolean n) {
        return new EmbedOptions(pooling, n, maxLength, batchSize);
    }

    public EmbedOptions withMaxLength(int n) {
        return new EmbedOptions(pooling, normalize, n, batchSize);
    }

    public EmbedOptions withBatchSize(int n) {
        return new EmbedOptions(pooling, normalize, maxLength, n);
    }
}
