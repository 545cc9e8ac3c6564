package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.model.BertForSequenceClassification;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.StepResult;
import io.bert4j.train.TrainingTask;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fine-tuning a {@link BertForSequenceClassification} on the {@link io.bert4j.train.Trainer}:
 * the loss is HF's (cross-entropy, or mean squared error for regression), evaluation reports
 * {@code eval_loss} and {@link ClassificationData#evaluate the task's metrics} with an
 * {@code eval_} prefix, and checkpoints are Hugging Face folders with the tokenizer.
 *
 * <p>Owns neither the model nor the tokenizer: the caller closes them.
 */
public final class ClassificationTask implements TrainingTask<ClassificationData.Batch> {
    private final BertForSequenceClassification model;
    private final BertTokenizer tokenizer;
    private final List<ClassificationData.Example> eval;
    private final int evalBatchSize;

    /**
     * @param eval          the held-out examples ({@link #evaluate()} needs them; may be empty when the
     *                      trainer never evaluates)
     * @param evalBatchSize examples per evaluation batch
     */
    public ClassificationTask(BertForSequenceClassification model, BertTokenizer tokenizer,
                              List<ClassificationData.Example> eval, int evalBatchSize) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.eval = List.copyOf(eval);
        this.evalBatchSize = evalBatchSize;
        model.setTrainable(true);
        model.train(true);
    }

    public BertForSequenceClassification model() {
        return model;
    }

    @Override
    public Map<String, Tensor> parameters() {
        return model.parameters();
    }

    @Override
    public StepResult step(ClassificationData.Batch batch) {
        BertForSequenceClassification.Loss l = model.loss(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask(),
                batch.labels());
        Map<String, Double> m = model.isRegression() || l.count() == 0 ? Map.of()
                : Map.of("accuracy", (double) l.correct() / l.count());
        return new StepResult(l.loss(), batch.tokens(), m);
    }

    @Override
    public Map<String, Double> evaluate() {
        if (eval.isEmpty()) {
            throw new Bert4jException("no evaluation examples");
        }
        try {
            Map<String, Double> out = new LinkedHashMap<>();
            ClassificationData.evaluate(model, eval, evalBatchSize, tokenizer.padId()).forEach((k, v) -> out.put("eval_" + k, v));
            return out;
        } finally {
            model.train(true);
        }
    }

    @Override
    public void saveModel(Path dir) {
        model.save(dir, tokenizer);
    }

    @Override
    public void loadModel(Path dir) {
        ModelWeights.restore(dir, model.parameters());
    }

    @Override
    public void setStepSeed(long seed) {
        model.setDropoutSeed(seed);
    }
}
