package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.data.Conll;
import io.bert4j.data.NerFeatures;
import io.bert4j.eval.EntityMetrics;
import io.bert4j.eval.EntityResult;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.model.Tensors;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * NER fine-tuning data: CoNLL sentences as {@link NerFeatures.Feature}s (the first sub-token of
 * each word carries its label), batches padded to their own longest sentence, and a model's
 * entity-level metrics on a labelled corpus.
 */
public final class NerData {
    private NerData() {
    }

    /** Encoded sentences (in corpus order) and how many of them were cut to fit the token budget. */
    public record Encoded(List<Conll.Sentence> sentences, List<NerFeatures.Feature> features, int truncated) {
        public Encoded {
            sentences = List.copyOf(sentences);
            features = List.copyOf(features);
        }
    }

    /** A padded batch: tensors [B, S] int64, labels -100 on sub-word continuations, special tokens and padding. */
    public record Batch(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor labels, int size, long tokens) {
    }

    /**
     * Encodes a corpus against a label set. A tag outside {@code label2id} is an error naming the
     * tag, the file and line of its sentence ({@code labelsFrom} says where the label set came from).
     */
    public static Encoded encode(Conll.Corpus corpus, BertTokenizer tokenizer, int maxLength,
                                 Map<String, Integer> label2id, String labelsFrom) {
        if (corpus.sentences().isEmpty()) {
            throw new Bert4jException(corpus.source() + ": no sentences");
        }
        checkTags(corpus, label2id, labelsFrom);
        List<List<String>> words = new ArrayList<>(corpus.sentences().size());
        List<List<String>> tags = new ArrayList<>(corpus.sentences().size());
        for (Conll.Sentence s : corpus.sentences()) {
            words.add(s.words());
            tags.add(s.tags());
        }
        List<NerFeatures.Feature> features = NerFeatures.encodeAll(tokenizer, words, tags, label2id, maxLength);
        return new Encoded(corpus.sentences(), features, NerFeatures.countTruncated(features));
    }

    /**
     * Checks that every tag of the corpus is a label: the first one that is not is an error naming
     * the tag, the file and its line ({@code labelsFrom} says where the label set came from).
     */
    public static void checkTags(Conll.Corpus corpus, Map<String, Integer> label2id, String labelsFrom) {
        for (Conll.Sentence s : corpus.sentences()) {
            for (int w = 0; w < s.tags().size(); w++) {
                if (!label2id.containsKey(s.tags().get(w))) {
                    throw new Bert4jException(corpus.source() + ":" + (s.line() + w) + ": tag '" + s.tags().get(w)
                            + "' (as IOB2) is not one of the labels " + new java.util.TreeSet<>(label2id.keySet())
                            + " " + labelsFrom);
                }
            }
        }
    }

    /** Pads the features to the longest of them; call inside a {@code PointerScope}. */
    public static Batch collate(List<NerFeatures.Feature> features, int padId) {
        int b = features.size();
        int s = features.stream().mapToInt(NerFeatures.Feature::length).max().orElse(0);
        long[] ids = new long[b * s];
        long[] types = new long[b * s];
        long[] mask = new long[b * s];
        long[] labels = new long[b * s];
        Arrays.fill(labels, NerFeatures.IGNORE);
        long tokens = 0;
        for (int i = 0; i < b; i++) {
            NerFeatures.Feature f = features.get(i);
            for (int j = 0; j < s; j++) {
                int k = i * s + j;
                if (j < f.length()) {
                    ids[k] = f.inputIds()[j];
                    types[k] = f.typeIds()[j];
                    mask[k] = f.attentionMask()[j];
                    labels[k] = f.labels()[j];
                } else {
                    ids[k] = padId;
                }
            }
            tokens += f.length();
        }
        return new Batch(Tensors.fromLongs(ids, b, s), Tensors.fromLongs(types, b, s), Tensors.fromLongs(mask, b, s),
                Tensors.fromLongs(labels, b, s), b, tokens);
    }

    /** Per feature, the predicted label id of every token (argmax), and the summed loss over labelled tokens. */
    record Predictions(int[][] labels, double lossSum, long labelled) {
    }

    static Predictions predict(BertForTokenClassification model, List<NerFeatures.Feature> features, int batchSize,
                               int padId) {
        int n = features.size();
        int nl = model.numLabels();
        int[][] out = new int[n][];
        Integer[] order = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        // Sorted by length: batches of similar sentences pad little.
        Arrays.sort(order, Comparator.comparingInt(i -> features.get(i).length()));
        double lossSum = 0;
        long labelled = 0;
        model.train(false);
        for (int from = 0; from < n; from += batchSize) {
            int to = Math.min(n, from + batchSize);
            List<NerFeatures.Feature> chunk = new ArrayList<>(to - from);
            for (int i = from; i < to; i++) {
                chunk.add(features.get(order[i]));
            }
            float[] logits;
            int s;
            try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                Batch b = collate(chunk, padId);
                s = (int) b.inputIds().size(1);
                logits = Tensors.toFloatArray(model.forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).logits());
            }
            for (int i = from; i < to; i++) {
                NerFeatures.Feature f = features.get(order[i]);
                int row = i - from;
                int[] pred = new int[f.length()];
                for (int t = 0; t < f.length(); t++) {
                    int off = (row * s + t) * nl;
                    int best = 0;
                    for (int l = 1; l < nl; l++) {
                        if (logits[off + l] > logits[off + best]) {
                            best = l;
                        }
                    }
                    pred[t] = best;
                    int gold = f.labels()[t];
                    if (gold != NerFeatures.IGNORE) {
                        double max = logits[off + best];
                        double sum = 0;
                        for (int l = 0; l < nl; l++) {
                            sum += Math.exp(logits[off + l] - max);
                        }
                        lossSum += max + Math.log(sum) - logits[off + gold];
                        labelled++;
                    }
                }
                out[order[i]] = pred;
            }
        }
        return new Predictions(out, lossSum, labelled);
    }

    /**
     * Predicted IOB2 tags per sentence, read at each word's first sub-token. A word cut off by
     * truncation gets {@code O}: it then counts against recall rather than vanishing from the
     * metrics (HF's run_ner leaves such words out, which overstates the scores).
     */
    public static List<List<String>> predictedTags(BertForTokenClassification model, List<NerFeatures.Feature> features,
                                                   int batchSize, int padId) {
        return tags(model, features, predict(model, features, batchSize, padId));
    }

    private static List<List<String>> tags(BertForTokenClassification model, List<NerFeatures.Feature> features,
                                           Predictions p) {
        List<String> id2label = new ArrayList<>(model.numLabels());
        for (int i = 0; i < model.numLabels(); i++) {
            id2label.add(model.id2label().get(i));
        }
        List<List<String>> out = new ArrayList<>(features.size());
        for (int i = 0; i < features.size(); i++) {
            List<String> t = new ArrayList<>(NerFeatures.wordTags(features.get(i), p.labels()[i], id2label));
            t.replaceAll(x -> x == null ? "O" : x);
            out.add(t);
        }
        return out;
    }

    /**
     * The model's metrics on an encoded labelled corpus: {@code loss} (mean cross-entropy over the
     * labelled tokens, as in training), {@code accuracy} (word tags), then entity-level
     * {@code precision}, {@code recall}, {@code f1} counted as seqeval does by default, the same
     * with a {@code strict_} prefix in seqeval's strict IOB2 mode (stray {@code I-} tags make no
     * entity), and per entity type {@code T_precision}, {@code T_recall}, {@code T_f1},
     * {@code T_support} in strict mode. Leaves the model in eval mode.
     */
    public static Map<String, Double> evaluate(BertForTokenClassification model, Encoded data, int batchSize, int padId) {
        if (data.features().isEmpty()) {
            throw new Bert4jException("no sentences to evaluate");
        }
        Predictions p = predict(model, data.features(), batchSize, padId);
        List<List<String>> pred = tags(model, data.features(), p);
        List<List<String>> gold = new ArrayList<>(pred.size());
        long words = 0;
        long right = 0;
        for (int i = 0; i < pred.size(); i++) {
            List<String> g = data.sentences().get(i).tags();
            gold.add(g);
            for (int w = 0; w < g.size(); w++) {
                words++;
                right += g.get(w).equals(pred.get(i).get(w)) ? 1 : 0;
            }
        }
        EntityResult loose = EntityMetrics.evaluate(gold, pred, EntityMetrics.Mode.DEFAULT);
        EntityResult strict = EntityMetrics.evaluate(gold, pred, EntityMetrics.Mode.STRICT);
        Map<String, Double> m = new LinkedHashMap<>();
        m.put("loss", p.labelled() == 0 ? Double.NaN : p.lossSum() / p.labelled());
        m.put("accuracy", (double) right / words);
        m.put("precision", loose.micro().precision());
        m.put("recall", loose.micro().recall());
        m.put("f1", loose.micro().f1());
        m.put("strict_precision", strict.micro().precision());
        m.put("strict_recall", strict.micro().recall());
        m.put("strict_f1", strict.micro().f1());
        strict.perType().forEach((type, s) -> {
            m.put(type + "_precision", s.precision());
            m.put(type + "_recall", s.recall());
            m.put(type + "_f1", s.f1());
            m.put(type + "_support", (double) s.gold());
        });
        return m;
    }
}
