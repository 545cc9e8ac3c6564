package io.bert4j.tokenize;

import java.util.List;

/**
 * One encoded text or text pair, aligned token by token (padding included).
 *
 * <p>The arrays are handed over to the caller: the tokenizer keeps no reference to them,
 * and they are not copied on access (this sits on the serving hot path). Treat them as
 * read-only; record equality compares arrays by reference.
 *
 * @param ids               vocabulary ids
 * @param typeIds           token type (segment) ids: 0 for the first text and its
 *                          [CLS]/[SEP], 1 for the second text and its final [SEP]; padding 0
 * @param attentionMask     1 for real tokens, 0 for padding
 * @param tokens            token strings ("##" marks a word continuation)
 * @param offsets           per token, [start, end) into the ORIGINAL Java string of its
 *                          sequence (first or second text), in UTF-16 char units, so
 *                          {@code text.substring(start, end)} is the token's source text;
 *                          (0, 0) for special and padding tokens
 * @param wordIds           per token, index of the word (pre-token) in its sequence; null
 *                          for special and padding tokens
 * @param specialTokensMask 1 for tokens added by the template or padding, else 0
 * @param sequenceIds       per token, 0 or 1 (which text it came from); null for special
 *                          and padding tokens
 * @param overflowing       windows cut off by truncation (each one a full encoding with
 *                          special tokens, sharing {@code stride} tokens with its
 *                          neighbour); empty when nothing was cut
 */
public record Encoding(int[] ids, int[] typeIds, int[] attentionMask, List<String> tokens,
                       List<Span> offsets, List<Integer> wordIds, int[] specialTokensMask,
                       List<Integer> sequenceIds, List<Encoding> overflowing) {

    /** A [start, end) range of UTF-16 chars in the source string. */
    public record Span(int start, int end) {
        public static final Span EMPTY = new Span(0, 0);

        public String of(String text) {
            return text.substring(start, end);
        }
    }

    /** Number of tokens, padding included. */
    public int length() {
        return ids.length;
    }

    /** The ids widened to long, as libtorch embedding lookups want them. */
    public long[] idsAsLong() {
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = ids[i];
        }
        return out;
    }
}
