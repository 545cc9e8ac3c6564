package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.StepResult;
import io.bert4j.train.TrainingTask;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Fine-tuning a {@link BertForTokenClassification} for NER on the {@link io.bert4j.train.Trainer}:
 * HF's loss (cross-entropy over first sub-tokens), evaluation with {@link NerData#evaluate} under an
 * {@code eval_} prefix (so {@code eval_strict_f1} is the entity F1 of seqeval's strict IOB2 mode),
 * checkpoints as Hugging Face folders with the tokenizer.
 *
 * <p>Owns neither the model nor the tokenizer: the caller closes them.
 *
 * <pre>{@code
 * Conll.Corpus train = Conll.read(Path.of("conll2003/train.txt")), valid = Conll.read(Path.of("conll2003/valid.txt"));
 * Map<String, Integer> label2id = NerFeatures.labelToId(train.labels());
 * Map<Integer, String> id2label = new HashMap<>();
 * label2id.forEach((l, i) -> id2label.put(i, l));
 * try (BertTokenizer tok = BertTokenizer.load(base);
 *      BertForTokenClassification model = BertForTokenClassification.fromPretrained(base, id2label, 42)) {
 *     NerData.Encoded tr = NerData.encode(train, tok, 128, label2id, "");
 *     NerData.Encoded ev = NerData.encode(valid, tok, 128, label2id, "");
 *     long epoch = EpochBatches.stepsPerEpoch(tr.features().size(), 32, 1);
 *     TrainerConfig cfg = TrainerConfig.of(out, 3 * epoch).withLr(1e-4).withEvalEvery(epoch)
 *             .withBestMetric(NerTask.BEST_METRIC, true).withLoadBestAtEnd(true);
 *     try (Trainer<NerData.Batch> t = new Trainer<>(cfg, new NerTask(model, tok, ev, 32))) {
 *         t.train(new EpochBatches<>(tr.features(), 32, 42, NerFeatures.Feature::length,
 *                 b -> NerData.collate(b, tok.padId()), null));
 *     }
 * }
 * }</pre>
 */
public final class NerTask implements TrainingTask<NerData.Batch> {
    /** The metric the best checkpoint is chosen by. */
    public static final String BEST_METRIC = "eval_strict_f1";

    private final BertForTokenClassification model;
    private final BertTokenizer tokenizer;
    private final NerData.Encoded eval;
    private final int evalBatchSize;

    /**
     * @param eval          the held-out sentences, or null when the trainer never evaluates
     * @param evalBatchSize sentences per evaluation batch
     */
    public NerTask(BertForTokenClassification model, BertTokenizer tokenizer, NerData.Encoded eval, int evalBatchSize) {
        if (evalBatchSize < 1) {
            throw new Bert4jException("evaluation batch size must be >= 1, got " + evalBatchSize);
        }
        this.model = model;
        this.tokenizer = tokenizer;
        this.eval = eval;
        this.evalBatchSize = evalBatchSize;
        model.setTrainable(true);
        model.train(true);
    }

    public BertForTokenClassification model() {
        return model;
    }

    @Override
    public Map<String, Tensor> parameters() {
        return model.parameters();
    }

    @Override
    public StepResult step(NerData.Batch batch) {
        BertForTokenClassification.Loss l = model.loss(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask(),
                batch.labels());
        Map<String, Double> m = l.count() == 0 ? Map.of() : Map.of("accuracy", (double) l.correct() / l.count());
        return new StepResult(l.loss(), batch.tokens(), m);
    }

    @Override
    public Map<String, Double> evaluate() {
        if (eval == null) {
            throw new Bert4jException("no evaluation sentences");
        }
        try {
            Map<String, Double> out = new LinkedHashMap<>();
            NerData.evaluate(model, eval, evalBatchSize, tokenizer.padId()).forEach((k, v) -> out.put("eval_" + k, v));
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
