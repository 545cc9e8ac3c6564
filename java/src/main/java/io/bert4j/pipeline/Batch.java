package io.bert4j.pipeline;

import io.bert4j.model.Tensors;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.pytorch.Tensor;

import java.util.List;

/**
 * Encodings padded to a common length as libtorch tensors: input_ids, token_type_ids and
 * attention_mask, each [B, S] int64. Padding uses the tokenizer's [PAD] id.
 */
public record Batch(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, int batchSize, int seqLen) {

    public static Batch of(List<Encoding> encodings, int padId) {
        int b = encodings.size();
        int s = 0;
        for (Encoding e : encodings) {
            s = Math.max(s, e.length());
        }
        long[] ids = new long[b * s];
        long[] types = new long[b * s];
        long[] mask = new long[b * s];
        for (int i = 0; i < b; i++) {
            Encoding e = encodings.get(i);
            int n = e.length();
            for (int j = 0; j < s; j++) {
                int k = i * s + j;
                if (j < n) {
                    ids[k] = e.ids()[j];
                    types[k] = e.typeIds()[j];
                    mask[k] = e.attentionMask()[j];
                } else {
                    ids[k] = padId;
                }
            }
        }
        return new Batch(Tensors.fromLongs(ids, b, s), Tensors.fromLongs(types, b, s), Tensors.fromLongs(mask, b, s), b, s);
    }
}
