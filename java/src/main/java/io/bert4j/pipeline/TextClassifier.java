package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.finetune.ClassificationData;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForSequenceClassification;
import io.bert4j.tokenize.BertTokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Text classification with a fine-tuned {@code BertForSequenceClassification} folder: a label and
 * its softmax probability per text (or text pair), or a value for a regression model.
 *
 * <pre>{@code
 * try (TextClassifier c = TextClassifier.load(Path.of("sst2-model"))) {
 *     TextClassifier.Prediction p = c.classify("a gripping , funny film");   // p.label() "1", p.score() 0.97
 *     c.classify("A man plays guitar.", "Someone plays an instrument.");    // a sentence pair
 * }
 * }</pre>
 *
 * Inputs longer than the token budget ({@code maxLength}, special tokens included) are truncated,
 * as in training, and flagged in the prediction.
 */
public final class TextClassifier implements AutoCloseable {
    /** Examples per forward pass in {@link #classifyBatch}. */
    public static final int BATCH_SIZE = 32;

    /**
     * One result. Classification: {@code label} (its id {@code labelId}) and its probability
     * {@code score}, {@code value} NaN. Regression: {@code value}, with {@code label} null,
     * {@code labelId} -1 and {@code score} NaN. {@code truncated}: the input was cut to the budget.
     */
    public record Prediction(String text, String pair, String label, int labelId, double score, double value,
                             boolean truncated) {
    }

    private final BertForSequenceClassification model;
    private final BertTokenizer tokenizer;
    private final int maxLength;

    private TextClassifier(BertForSequenceClassification model, BertTokenizer tokenizer, int maxLength) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.maxLength = maxLength;
    }

    /** Loads a fine-tuned folder with a budget of min(512, max_position_embeddings) tokens and the fused kernels. */
    public static TextClassifier load(Path dir) {
        return load(dir, 0, KernelMode.FUSED);
    }

    /**
     * Loads a fine-tuned folder (model and tokenizer).
     *
     * @param maxLength tokens per input, special tokens included; 0 for min(512, max_position_embeddings)
     */
    public static TextClassifier load(Path dir, int maxLength, KernelMode kernels) {
        BertForSequenceClassification model = BertForSequenceClassification.load(dir);
        try {
            int positions = model.config().maxPositionEmbeddings();
            int budget = maxLength == 0 ? Math.min(512, positions) : maxLength;
            if (budget < 3 || budget > positions) {
                throw new Bert4jException("max length " + maxLength + " must lie in [3, " + positions
                        + "] (the model's max_position_embeddings)");
            }
            model.setKernels(kernels);
            model.train(false);
            BertTokenizer tokenizer = BertTokenizer.load(dir);
            return new TextClassifier(model, tokenizer, budget);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    public boolean isRegression() {
        return model.isRegression();
    }

    /** The labels by id. */
    public Map<Integer, String> labels() {
        return model.id2label();
    }

    public int maxLength() {
        return maxLength;
    }

    public BertForSequenceClassification model() {
        return model;
    }

    public BertTokenizer tokenizer() {
        return tokenizer;
    }

    public Prediction classify(String text) {
        return classify(text, null);
    }

    /** A text pair: {@code pair} is the second segment (token type 1); null for a single text. */
    public Prediction classify(String text, String pair) {
        return classifyBatch(List.of(text), java.util.Collections.singletonList(pair)).get(0);
    }

    public List<Prediction> classifyBatch(List<String> texts) {
        return classifyBatch(texts, null);
    }

    /**
     * Classifies {@code texts[i]} (paired with {@code pairs[i]} when {@code pairs} is not null and
     * that entry is not null), in batches of {@value #BATCH_SIZE} sorted by length; results in input order.
     */
    public List<Prediction> classifyBatch(List<String> texts, List<String> pairs) {
        if (pairs != null && pairs.size() != texts.size()) {
            throw new Bert4jException("classifyBatch: " + texts.size() + " texts but " + pairs.size() + " pairs");
        }
        List<ClassificationData.Example> encoded = new ArrayList<>(texts.size());
        boolean[] truncated = new boolean[texts.size()];
        for (int i = 0; i < texts.size(); i++) {
            String text = texts.get(i);
            String pair = pairs == null ? null : pairs.get(i);
            if (text == null || text.isBlank() || (pair != null && pair.isBlank())) {
                throw new Bert4jException("input " + (i + 1) + ": empty text");
            }
            ClassificationData.Truncated t = ClassificationData.encode(tokenizer, text, pair, maxLength);
            truncated[i] = t.truncated();
            encoded.add(new ClassificationData.Example(i + 1, t.encoding().ids(), t.encoding().typeIds(), 0f));
        }
        float[][] logits = ClassificationData.logits(model, encoded, BATCH_SIZE, tokenizer.padId());
        List<Prediction> out = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            String pair = pairs == null ? null : pairs.get(i);
            if (model.isRegression()) {
                out.add(new Prediction(texts.get(i), pair, null, -1, Double.NaN, logits[i][0], truncated[i]));
            } else {
                int id = ClassificationData.argmax(logits[i]);
                double p = ClassificationData.softmax(logits[i])[id];
                out.add(new Prediction(texts.get(i), pair, model.id2label().get(id), id, p, Double.NaN, truncated[i]));
            }
        }
        return out;
    }

    @Override
    public void close() {
        model.close();
        tokenizer.close();
    }
}
