package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Token-classification inputs from pre-split words, labelled the way HF's token
 * classification example does: the first sub-token of each word carries the word's label,
 * its other sub-tokens and the special tokens get {@link #IGNORE} (skipped by the loss), and
 * predictions are read back from each word's first sub-token.
 *
 * <p>Words are joined with single spaces and encoded as one text; each token is assigned to
 * the word whose characters its offsets fall in. That equals HF's {@code is_split_into_words}
 * for BERT (whose pre-tokenizer splits on whitespace anyway) without a words API in the
 * tokenizer, and it keeps a word that BERT's pre-tokenizer splits further (like "U.S.-based")
 * one word.
 */
public final class NerFeatures {
    private NerFeatures() {
    }

    /** Label of tokens the loss and the metrics skip (PyTorch's cross-entropy ignore_index). */
    public static final int IGNORE = -100;

    /**
     * One encoded sentence, unpadded.
     *
     * @param inputIds      token ids with [CLS] and [SEP]
     * @param typeIds       all 0 (one sequence)
     * @param attentionMask all 1
     * @param wordIndex     per token, the index of its word, or -1 for special tokens
     * @param labels        per token, the word's label id on its first sub-token, else
     *                      {@link #IGNORE}; all IGNORE when encoded without tags
     * @param wordCount     number of words of the sentence
     * @param truncated     true when tokens were cut to fit maxLength (some words then have
     *                      no token, see {@link #firstTokenOfWord})
     */
    public record Feature(int[] inputIds, int[] typeIds, int[] attentionMask, int[] wordIndex, int[] labels,
                          int wordCount, boolean truncated) {

        public int length() {
            return inputIds.length;
        }

        /** Per word, the index of its first sub-token, or -1 when it has none (cut off, or empty). */
        public int[] firstTokenOfWord() {
            int[] first = new int[wordCount];
            Arrays.fill(first, -1);
            for (int t = 0; t < wordIndex.length; t++) {
                int w = wordIndex[t];
                if (w >= 0 && first[w] < 0) {
                    first[w] = t;
                }
            }
            return first;
        }
    }

    /** {@code label -> id} for a label list (an {@code id2label}). */
    public static Map<String, Integer> labelToId(List<String> id2label) {
        Map<String, Integer> m = new HashMap<>();
        for (int i = 0; i < id2label.size(); i++) {
            if (m.put(id2label.get(i), i) != null) {
                throw new Bert4jException("label \"" + id2label.get(i) + "\" appears twice in the label list");
            }
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * Encodes one sentence.
     *
     * @param tags      IOB2 tags, one per word, or null to encode for prediction only
     * @param label2id  label ids (ignored when tags is null)
     * @param maxLength token budget including [CLS]/[SEP]
     */
    public static Feature encode(BertTokenizer tokenizer, List<String> words, List<String> tags,
                                 Map<String, Integer> label2id, int maxLength) {
        return encodeAll(tokenizer, List.of(words), tags == null ? null : List.of(tags), label2id, maxLength).get(0);
    }

    /** Encodes many sentences (batched through the tokenizer); tagsList may be null. */
    public static List<Feature> encodeAll(BertTokenizer tokenizer, List<List<String>> wordsList,
                                          List<List<String>> tagsList, Map<String, Integer> label2id,
                                          int maxLength) {
        if (maxLength < 3) {
            throw new Bert4jException("NER maxLength must be >= 3 ([CLS], one token, [SEP]), got " + maxLength);
        }
        if (tagsList != null && tagsList.size() != wordsList.size()) {
            throw new Bert4jException("NER input has " + wordsList.size() + " sentences but " + tagsList.size()
                    + " tag lists");
        }
        EncodeOptions options = EncodeOptions.builder().maxLength(maxLength)
                .truncation(EncodeOptions.Truncation.LONGEST_FIRST).build();
        List<Feature> out = new ArrayList<>(wordsList.size());
        final int chunk = 256;
        for (int from = 0; from < wordsList.size(); from += chunk) {
            int to = Math.min(from + chunk, wordsList.size());
            List<String> texts = new ArrayList<>(to - from);
            List<int[]> startsList = new ArrayList<>(to - from);
            for (int i = from; i < to; i++) {
                List<String> words = wordsList.get(i);
                if (tagsList != null && tagsList.get(i).size() != words.size()) {
                    throw new Bert4jException("NER sentence " + i + " has " + words.size() + " words but "
                            + tagsList.get(i).size() + " tags");
                }
                StringBuilder sb = new StringBuilder();
                int[] starts = new int[words.size()];
                for (int w = 0; w < words.size(); w++) {
                    if (w > 0) {
                        sb.append(' ');
                    }
                    starts[w] = sb.length();
                    String word = words.get(w);
                    if (word == null) {
                        throw new Bert4jException("NER sentence " + i + " word " + w + " is null");
                    }
                    sb.append(word);
                }
                texts.add(sb.toString());
                startsList.add(starts);
            }
            List<Encoding> encs = tokenizer.encodeBatch(texts, options);
            for (int i = from; i < to; i++) {
                out.add(build(encs.get(i - from), startsList.get(i - from), wordsList.get(i).size(),
                        tagsList == null ? null : tagsList.get(i), label2id, i));
            }
        }
        return out;
    }

    private static Feature build(Encoding enc, int[] wordStarts, int wordCount, List<String> tags,
                                 Map<String, Integer> label2id, int sentence) {
        int n = enc.length();
        int[] wordIndex = new int[n];
        int[] labels = new int[n];
        Arrays.fill(labels, IGNORE);
        int prevWord = -1;
        for (int t = 0; t < n; t++) {
            if (enc.specialTokensMask()[t] == 1 || enc.sequenceIds().get(t) == null) {
                wordIndex[t] = -1;
                continue;
            }
            // The word is the last one starting at or before the token's first char (the
            // separating spaces never start a token; starts are distinct, even for empty words).
            int pos = Arrays.binarySearch(wordStarts, enc.offsets().get(t).start());
            int w = pos >= 0 ? pos : -pos - 2;
            wordIndex[t] = w;
            if (w != prevWord && tags != null) {
                Integer id = label2id.get(tags.get(w));
                if (id == null) {
                    throw new Bert4jException("NER sentence " + sentence + " word " + w + " has tag \""
                            + tags.get(w) + "\", which is not in the label list " + label2id.keySet());
                }
                labels[t] = id;
            }
            prevWord = w;
        }
        return new Feature(enc.ids(), enc.typeIds(), enc.attentionMask(), wordIndex, labels, wordCount,
                !enc.overflowing().isEmpty());
    }

    /** Number of features whose sentence was cut to fit the max length. */
    public static int countTruncated(List<Feature> features) {
        int n = 0;
        for (Feature f : features) {
            n += f.truncated() ? 1 : 0;
        }
        return n;
    }

    /**
     * Word tags from per-token predicted label ids (argmax over the logits), read at each
     * word's first sub-token. Words without a token (cut off by truncation) get null: leave
     * them out of metrics as HF does, where their labels never reach the model.
     *
     * @param tokenPredictions one label id per token of the feature (longer arrays, e.g.
     *                         from a padded batch, are read only up to the feature's length)
     */
    public static List<String> wordTags(Feature feature, int[] tokenPredictions, List<String> id2label) {
        if (tokenPredictions.length < feature.length()) {
            throw new Bert4jException("NER predictions have " + tokenPredictions.length + " tokens but the feature has "
                    + feature.length());
        }
        int[] first = feature.firstTokenOfWord();
        String[] out = new String[feature.wordCount()];
        for (int w = 0; w < out.length; w++) {
            if (first[w] >= 0) {
                int id = tokenPredictions[first[w]];
                if (id < 0 || id >= id2label.size()) {
                    throw new Bert4jException("NER prediction " + id + " at token " + first[w]
                            + " is not a label id (0.." + (id2label.size() - 1) + ")");
                }
                out[w] = id2label.get(id);
            }
        }
        return Collections.unmodifiableList(Arrays.asList(out));
    }
}
