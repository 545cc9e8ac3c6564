package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Extractive-QA inputs as HF's run_qa builds them: {@code [CLS] question [SEP] context [SEP]},
 * only the context truncated, a long context split into windows that overlap by
 * {@code docStride} tokens, one {@link Feature} per window.
 *
 * <p>The windows are cut here from one untruncated encoding of the pair rather than by the
 * tokenizer's overflow, so the layout is explicit: with {@code budget = maxLength -
 * questionTokens - 3}, window k covers context tokens {@code [k*(budget-docStride),
 * k*(budget-docStride) + budget)} and the last window is the first one reaching the end
 * (the rule of HF tokenizers' truncation with stride).
 */
public final class QaFeatures {
    private QaFeatures() {
    }

    /**
     * One window of one example, unpadded.
     *
     * @param exampleId     the example's id
     * @param exampleIndex  index of the example in the list given to {@link #build}
     * @param offsets       per token, its [start, end) chars in the context for context
     *                      tokens, null for question and special tokens
     * @param contextStart  index of the first context token
     * @param startPosition answer start token (training label); 0 ([CLS]) when the first
     *                      answer is not wholly inside this window; -1 when the example
     *                      has no answer
     * @param endPosition   answer end token, inclusive; as startPosition
     */
    public record Feature(String exampleId, int exampleIndex, int[] inputIds, int[] typeIds, int[] attentionMask,
                          List<Encoding.Span> offsets, int contextStart, int startPosition, int endPosition) {
        public int length() {
            return inputIds.length;
        }
    }

    /** Builds the features of many examples, in example order. */
    public static List<Feature> build(BertTokenizer tokenizer, List<Squad.Example> examples, int maxLength,
                                      int docStride) {
        List<Feature> out = new ArrayList<>(examples.size());
        for (int i = 0; i < examples.size(); i++) {
            out.addAll(build(tokenizer, examples.get(i), i, maxLength, docStride));
        }
        return out;
    }

    /**
     * Builds the features of one example.
     *
     * @param maxLength token budget of each feature, special tokens included
     * @param docStride context tokens shared by neighbouring windows
     * @throws Bert4jException when the question leaves no room for more than docStride
     *                         context tokens
     */
    public static List<Feature> build(BertTokenizer tokenizer, Squad.Example example, int exampleIndex,
                                      int maxLength, int docStride) {
        if (docStride < 0) {
            throw new Bert4jException("QA doc stride must be >= 0, got " + docStride);
        }
        // run_qa strips leading spaces: some SQuAD questions have many, which would only
        // eat window room.
        String question = example.question().stripLeading();
        String context = example.context();
        Encoding enc = tokenizer.encodePair(question, context);
        int n = enc.length();
        int qFirst = -1;
        int qEnd = -1;
        int cFirst = -1;
        int cEnd = -1;
        for (int t = 0; t < n; t++) {
            Integer seq = enc.sequenceIds().get(t);
            if (seq == null || enc.specialTokensMask()[t] == 1) {
                continue;
            }
            if (seq == 0) {
                qFirst = qFirst < 0 ? t : qFirst;
                qEnd = t + 1;
            } else {
                cFirst = cFirst < 0 ? t : cFirst;
                cEnd = t + 1;
            }
        }
        int qLen = qFirst < 0 ? 0 : qEnd - qFirst;
        int cLen = cFirst < 0 ? 0 : cEnd - cFirst;
        int budget = maxLength - qLen - 3;
        if (budget <= docStride || budget <= 0) {
            throw new Bert4jException("QA example " + example.id() + ": the question has " + qLen
                    + " tokens, which leaves " + Math.max(budget, 0) + " of max length " + maxLength
                    + " for the context; need more than the doc stride " + docStride);
        }
        int cls = tokenizer.clsId();
        int sep = tokenizer.sepId();
        List<Feature> out = new ArrayList<>();
        int step = budget - docStride;
        for (int from = 0; ; from += step) {
            int to = Math.min(from + budget, cLen);
            int len = qLen + (to - from) + 3;
            int[] ids = new int[len];
            int[] types = new int[len];
            int[] mask = new int[len];
            Arrays.fill(mask, 1);
            Encoding.Span[] offsets = new Encoding.Span[len];
            int k = 0;
            ids[k++] = cls;
            for (int t = 0; t < qLen; t++) {
                ids[k++] = enc.ids()[qFirst + t];
            }
            ids[k++] = sep;
            int contextStart = k;
            for (int t = from; t < to; t++) {
                offsets[k] = enc.offsets().get(cFirst + t);
                types[k] = 1;
                ids[k++] = enc.ids()[cFirst + t];
            }
            types[k] = 1;
            ids[k++] = sep;
            int[] label = label(example, offsets, contextStart, contextStart + (to - from));
            out.add(new Feature(example.id(), exampleIndex, ids, types, mask,
                    Collections.unmodifiableList(Arrays.asList(offsets)), contextStart, label[0], label[1]));
            if (to >= cLen) {
                break;
            }
        }
        return out;
    }

    /** Token positions of the first answer in a window [cStart, cEnd), or (0, 0). */
    private static int[] label(Squad.Example example, Encoding.Span[] offsets, int cStart, int cEnd) {
        if (example.answers().isEmpty()) {
            return new int[] {-1, -1};
        }
        Squad.Answer a = example.answers().get(0);
        int startChar = a.start();
        int endChar = a.end();
        if (cStart == cEnd || !(offsets[cStart].start() <= startChar && offsets[cEnd - 1].end() >= endChar)) {
            return new int[] {0, 0};
        }
        // The start token is the last one starting at or before the answer; the end token the
        // first one ending at or after it (so an answer that begins or ends mid-token is widened
        // to whole tokens, as in run_qa).
        int s = cStart;
        while (s + 1 < cEnd && offsets[s + 1].start() <= startChar) {
            s++;
        }
        int e = cEnd - 1;
        while (e - 1 >= cStart && offsets[e - 1].end() >= endChar) {
            e--;
        }
        if (e < s) {
            // Only possible for an empty or whitespace answer between tokens.
            return new int[] {0, 0};
        }
        return new int[] {s, e};
    }
}
