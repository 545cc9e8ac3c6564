package io.bert4j.pipeline;

import io.bert4j.Bert4jException;

import java.util.Locale;

/** How token vectors become one sentence vector. */
public enum Pooling {
    /** The final hidden state of [CLS]. */
    CLS,
    /** The mean over the text's tokens ([CLS] and [SEP] included, padding excluded), as sentence-transformers does. */
    MEAN,
    /** The pooler output: tanh(dense([CLS])); only for models that have pooler weights. */
    POOLER;

    public static Pooling parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new Bert4jException("unknown pooling \"" + s + "\"; expected cls, mean or pooler");
        }
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
