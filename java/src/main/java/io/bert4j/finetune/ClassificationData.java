package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.data.GlueTsv;
import io.bert4j.eval.ClassificationMetrics;
import io.bert4j.eval.RegressionMetrics;
import io.bert4j.model.BertForSequenceClassification;
import io.bert4j.model.Tensors;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Text classification data for fine-tuning and evaluation: GLUE-style rows tokenized once
 * (single texts or pairs, truncated to a token budget), batches padded to their own longest
 * example, and the metrics of a model on a labelled set.
 */
public final class ClassificationData {
    private ClassificationData() {
    }

    /**
     * One tokenized example: ids with [CLS]/[SEP], token types (1 for the pair's second text), and
     * the label: a class id, or the target value for regression. {@code line} is its line in the file.
     */
    public record Example(int line, int[] ids, int[] typeIds, float label) {
        public int length() {
            return ids.length;
        }
    }

    /** Tokenized examples and how many of them had to be truncated. */
    public record Encoded(List<Example> examples, int truncated) {
    }

    /** A padded batch: tensors [B, S] int64 (labels [B]: int64 ids, or float for regression); tokens = real tokens. */
    public record Batch(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor labels, int size, long tokens) {
    }

    /** An encoding and whether it was cut to fit. */
    public record Truncated(Encoding encoding, boolean truncated) {
    }

    /**
     * Encodes a text (or a pair, when {@code pair} is not null) within {@code maxLength} tokens,
     * special tokens included; a longer input is truncated (the longer text first, as HF's
     * {@code longest_first}) and flagged rather than refused.
     */
    public static Truncated encode(BertTokenizer tokenizer, String text, String pair, int maxLength) {
        Encoding full = pair == null ? tokenizer.encode(text) : tokenizer.encodePair(text, pair);
        if (full.length() <= maxLength) {
            return new Truncated(full, false);
        }
        EncodeOptions cut = EncodeOptions.DEFAULT.withMaxLength(maxLength).withTruncation(EncodeOptions.Truncation.LONGEST_FIRST);
        Encoding e = pair == null ? tokenizer.encode(text, cut) : tokenizer.encodePair(text, pair, cut);
        return new Truncated(e, true);
    }

    /**
     * Tokenizes every row of {@code data}. {@code label2id} maps the labels to class ids; a label
     * outside it is an error naming the label, the file and the line ({@code labelsFrom} says where
     * the known labels came from). With {@code label2id == null} the labels are regression targets and
     * must be numbers. An empty text is an error naming its line.
     */
    public static Encoded encode(GlueTsv data, BertTokenizer tokenizer, int maxLength, Map<String, Integer> label2id,
                                 String labelsFrom) {
        List<GlueTsv.Example> rows = data.examples();
        if (rows.isEmpty()) {
            throw new Bert4jException(data.file() + ": no examples after the header");
        }
        if (data.columns().label() == null) {
            throw new Bert4jException(data.file() + ": no label column chosen");
        }
        float[] values = label2id == null ? data.floatLabels() : null;
        List<Example> out = new ArrayList<>(rows.size());
        int truncated = 0;
        for (int i = 0; i < rows.size(); i++) {
            GlueTsv.Example r = rows.get(i);
            if (r.text().isBlank() || (r.pair() != null && r.pair().isBlank())) {
                throw new Bert4jException(data.file() + ":" + r.line() + ": empty text"
                        + (r.pair() != null && !r.text().isBlank() ? " in the pair column '" + data.columns().pair() + "'" : ""));
            }
            float label;
            if (label2id == null) {
                label = values[i];
            } else {
                Integer id = label2id.get(r.label());
                if (id == null) {
                    throw new Bert4jException(data.file() + ":" + r.line() + ": label '" + r.label()
                            + "' is not one of the labels " + label2id.keySet() + " " + labelsFrom);
                }
                label = id;
            }
            Truncated t = encode(tokenizer, r.text(), r.pair(), maxLength);
            if (t.truncated()) {
                truncated++;
            }
            out.add(new Example(r.line(), t.encoding().ids(), t.encoding().typeIds(), label));
        }
        return new Encoded(List.copyOf(out), truncated);
    }

    /** Pads the examples to the longest of them; call inside a {@code PointerScope}. */
    public static Batch collate(List<Example> examples, int padId, boolean regression) {
        int b = examples.size();
        int s = examples.stream().mapToInt(Example::length).max().orElse(0);
        long[] ids = new long[b * s];
        long[] types = new long[b * s];
        long[] mask = new long[b * s];
        long[] classes = new long[b];
        float[] values = new float[b];
        long tokens = 0;
        for (int i = 0; i < b; i++) {
            Example e = examples.get(i);
            for (int j = 0; j < s; j++) {
                int k = i * s + j;
                if (j < e.length()) {
                    ids[k] = e.ids()[j];
                    types[k] = e.typeIds()[j];
                    mask[k] = 1;
                } else {
                    ids[k] = padId;
                }
            }
            tokens += e.length();
            classes[i] = (long) e.label();
            values[i] = e.label();
        }
        Tensor labels = regression ? Tensors.fromFloats(values, b) : Tensors.fromLongs(classes, b);
        return new Batch(Tensors.fromLongs(ids, b, s), Tensors.fromLongs(types, b, s), Tensors.fromLongs(mask, b, s),
                labels, b, tokens);
    }

    /** The binary F1's positive class: the label named "1" if there is one, else id 1. */
    public static int positiveId(Map<Integer, String> id2label) {
        return id2label.entrySet().stream().filter(e -> e.getValue().equals("1")).map(Map.Entry::getKey)
                .findFirst().orElse(1);
    }

    /** The model's outputs on the examples, in their order: logits [N][num_labels]. Eval mode; batches sorted by length. */
    public static float[][] logits(BertForSequenceClassification model, List<Example> examples, int batchSize, int padId) {
        int n = examples.size();
        int labels = model.numLabels();
        float[][] out = new float[n][];
        Integer[] order = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        java.util.Arrays.sort(order, Comparator.comparingInt(i -> examples.get(i).length()));
        model.train(false);
        for (int from = 0; from < n; from += batchSize) {
            int to = Math.min(n, from + batchSize);
            List<Example> chunk = new ArrayList<>(to - from);
            for (int i = from; i < to; i++) {
                chunk.add(examples.get(order[i]));
            }
            try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                Batch b = collate(chunk, padId, model.isRegression());
                float[] flat = Tensors.toFloatArray(model.forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask()).logits());
                for (int i = from; i < to; i++) {
                    int row = i - from;
                    out[order[i]] = java.util.Arrays.copyOfRange(flat, row * labels, (row + 1) * labels);
                }
            }
        }
        return out;
    }

    /**
     * The model's metrics on labelled examples: {@code loss} (mean cross-entropy, or mean squared
     * error for regression) and {@code accuracy}, {@code f1} (binary: of {@link #positiveId}),
     * {@code macro_f1}, {@code mcc}; or {@code pearson}, {@code spearman} for regression. Leaves the
     * model in eval mode.
     */
    public static Map<String, Double> evaluate(BertForSequenceClassification model, List<Example> examples,
                                               int batchSize, int padId) {
        if (examples.isEmpty()) {
            throw new Bert4jException("no examples to evaluate");
        }
        float[][] logits = logits(model, examples, batchSize, padId);
        int n = examples.size();
        Map<String, Double> m = new LinkedHashMap<>();
        if (model.isRegression()) {
            double[] gold = new double[n], pred = new double[n];
            double sq = 0;
            for (int i = 0; i < n; i++) {
                gold[i] = examples.get(i).label();
                pred[i] = logits[i][0];
                sq += (pred[i] - gold[i]) * (pred[i] - gold[i]);
            }
            m.put("loss", sq / n);
            m.putAll(RegressionMetrics.evaluate(gold, pred).asMap());
            return m;
        }
        int[] gold = new int[n], pred = new int[n];
        double nll = 0;
        for (int i = 0; i < n; i++) {
            float[] z = logits[i];
            gold[i] = (int) examples.get(i).label();
            pred[i] = argmax(z);
            nll += logSumExp(z) - z[gold[i]];
        }
        m.put("loss", nll / n);
        m.put("accuracy", ClassificationMetrics.accuracy(gold, pred));
        if (model.numLabels() == 2) {
            m.put("f1", ClassificationMetrics.f1(gold, pred, positiveId(model.id2label())));
        }
        m.put("macro_f1", ClassificationMetrics.macroF1(gold, pred));
        m.put("mcc", ClassificationMetrics.mcc(gold, pred));
        return m;
    }

    public static int argmax(float[] z) {
        int best = 0;
        for (int i = 1; i < z.length; i++) {
            if (z[i] > z[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Softmax probabilities (computed in double, shifted by the maximum). */
    public static double[] softmax(float[] z) {
        double lse = logSumExp(z);
        double[] p = new double[z.length];
        for (int i = 0; i < z.length; i++) {
            p[i] = Math.exp(z[i] - lse);
        }
        return p;
    }

    private static double logSumExp(float[] z) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : z) {
            max = Math.max(max, v);
        }
        double s = 0;
        for (float v : z) {
            s += Math.exp(v - max);
        }
        return max + Math.log(s);
    }
}
