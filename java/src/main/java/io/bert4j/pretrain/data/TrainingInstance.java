package io.bert4j.pretrain.data;

/**
 * One unmasked MLM + NSP example: {@code [CLS] A [SEP] B [SEP]}. Masking is applied later,
 * per epoch, by {@link Masker}, so the same instance is masked differently each time.
 *
 * @param inputIds     token ids with the special tokens in place; length at most maxSeqLen
 * @param tokenTypeIds 0 for [CLS], A and the first [SEP]; 1 for B and the last [SEP]
 * @param isRandomNext true when B is a span of another document (HF NSP label 1), false when
 *                     B is A's real continuation (label 0)
 */
public record TrainingInstance(int[] inputIds, int[] tokenTypeIds, boolean isRandomNext) {
    public int length() {
        return inputIds.length;
    }

    /** The NSP label in the Hugging Face convention: 0 = B is the real next segment, 1 = random. */
    public int nspLabel() {
        return isRandomNext ? 1 : 0;
    }
}
