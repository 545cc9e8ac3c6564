package io.bert4j.pretrain.data;

import java.util.List;

/**
 * A batch for BERT pretraining, padded to its longest instance. Arrays are flat, row-major
 * {@code [batchSize, seqLen]} (ready for {@code Tensor} creation with that shape), except
 * {@code nspLabels} {@code [batchSize]}.
 *
 * @param batchSize     instances in this batch (the last batch of an epoch may be smaller)
 * @param seqLen        padded length: the longest instance of the batch
 * @param inputIds      masked input ids; padding = the tokenizer's [PAD] id
 * @param tokenTypeIds  0 for segment A, 1 for segment B, 0 for padding
 * @param attentionMask 1 for real tokens, 0 for padding
 * @param mlmLabels     original id at predicted positions, {@link Masker#IGNORE_INDEX} elsewhere
 * @param nspLabels     HF convention: 0 = B is the real next segment, 1 = B is random
 */
public record PretrainingBatch(int batchSize, int seqLen, long[] inputIds, long[] tokenTypeIds,
                               long[] attentionMask, long[] mlmLabels, long[] nspLabels) {

    /** Pads instances and their masks into a batch. */
    static PretrainingBatch of(List<TrainingInstance> instances, List<Masker.Masked> masked, int padId) {
        int b = instances.size();
        int s = 0;
        for (TrainingInstance in : instances) {
            s = Math.max(s, in.length());
        }
        long[] ids = new long[b * s];
        long[] types = new long[b * s];
        long[] att = new long[b * s];
        long[] labels = new long[b * s];
        long[] nsp = new long[b];
        java.util.Arrays.fill(ids, padId);
        java.util.Arrays.fill(labels, Masker.IGNORE_INDEX);
        for (int i = 0; i < b; i++) {
            TrainingInstance in = instances.get(i);
            Masker.Masked m = masked.get(i);
            int off = i * s;
            for (int p = 0; p < in.length(); p++) {
                ids[off + p] = m.inputIds()[p];
                types[off + p] = in.tokenTypeIds()[p];
                att[off + p] = 1;
                labels[off + p] = m.labels()[p];
            }
            nsp[i] = in.nspLabel();
        }
        return new PretrainingBatch(b, s, ids, types, att, labels, nsp);
    }

    /** Row {@code i} of a flat {@code [batchSize, seqLen]} array (a copy, for inspection and tests). */
    public long[] row(long[] flat, int i) {
        return java.util.Arrays.copyOfRange(flat, i * seqLen, (i + 1) * seqLen);
    }
}
