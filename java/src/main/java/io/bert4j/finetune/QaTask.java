package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.data.Squad;
import io.bert4j.model.BertForQuestionAnswering;
import io.bert4j.pipeline.QuestionAnswerer;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.StepResult;
import io.bert4j.train.TrainingTask;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Fine-tuning a {@link BertForQuestionAnswering} on the {@link io.bert4j.train.Trainer}: HF's
 * loss ((CE(start) + CE(end)) / 2) on training windows; evaluation answers the held-out
 * questions as {@link QuestionAnswerer} does (all windows, n-best, max answer length) and
 * reports {@code eval_exact_match} and {@code eval_f1} (0-100) and {@code eval_examples}.
 * Checkpoints are Hugging Face folders with the tokenizer.
 *
 * <pre>{@code
 * QaData.Split split = QaData.splitByArticle(QaData.readLabelled(Path.of("squad.json")), 6);
 * try (BertTokenizer tok = BertTokenizer.load(base);
 *      BertForQuestionAnswering model = BertForQuestionAnswering.fromPretrained(base, 42)) {
 *     QuestionAnswerer.Options opt = QuestionAnswerer.Options.DEFAULTS;   // 384 tokens, stride 128
 *     List<QaFeatures.Feature> windows = QaData.trainFeatures(tok, split.train(), opt.maxLength(), opt.docStride());
 *     TrainerConfig cfg = TrainerConfig.of(out, EpochBatches.stepsPerEpoch(windows.size(), 32, 1) * 2)
 *             .withEvalEvery(EpochBatches.stepsPerEpoch(windows.size(), 32, 1)).withBestMetric("eval_f1", true)
 *             .withLoadBestAtEnd(true);
 *     try (Trainer<QaData.Batch> t = new Trainer<>(cfg, new QaTask(model, tok, split.validation(), opt))) {
 *         t.train(new EpochBatches<>(windows, 32, 42, QaFeatures.Feature::length,
 *                 b -> QaData.collate(b, tok.padId()), null));
 *     }
 * }
 * }</pre>
 *
 * <p>Owns neither the model nor the tokenizer: the caller closes them.
 */
public final class QaTask implements TrainingTask<QaData.Batch> {
    private final BertForQuestionAnswering model;
    private final BertTokenizer tokenizer;
    private final List<Squad.Example> eval;
    private final QuestionAnswerer.Options options;

    /**
     * @param eval    held-out questions with answers (may be empty when the trainer never evaluates)
     * @param options window length, doc stride, n-best, max answer length and batch size for evaluation
     */
    public QaTask(BertForQuestionAnswering model, BertTokenizer tokenizer, List<Squad.Example> eval,
                  QuestionAnswerer.Options options) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.eval = List.copyOf(eval);
        this.options = options;
        model.setTrainable(true);
        model.train(true);
    }

    public BertForQuestionAnswering model() {
        return model;
    }

    @Override
    public Map<String, Tensor> parameters() {
        return model.parameters();
    }

    @Override
    public StepResult step(QaData.Batch batch) {
        BertForQuestionAnswering.Loss l = model.loss(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask(),
                batch.startPositions(), batch.endPositions());
        Map<String, Double> m = l.count() == 0 ? Map.of() : Map.of("exact_tokens", (double) l.exactCorrect() / l.count());
        return new StepResult(l.loss(), batch.tokens(), m);
    }

    @Override
    public Map<String, Double> evaluate() {
        if (eval.isEmpty()) {
            throw new Bert4jException("no evaluation questions");
        }
        model.train(false);
        try {
            Map<String, Double> out = new LinkedHashMap<>();
            QaData.evaluate(new QuestionAnswerer(model, tokenizer, options), eval)
                    .forEach((k, v) -> out.put("eval_" + k, v));
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
