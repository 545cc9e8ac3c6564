package io.bert4j.pretrain;

import io.bert4j.io.ModelFolder;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.model.Tensors;
import io.bert4j.pretrain.data.PretrainingBatch;
import io.bert4j.pretrain.data.PretrainingDataStream;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.DataSource;
import io.bert4j.train.StepResult;
import io.bert4j.train.Trainer;
import io.bert4j.train.TrainingTask;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * MLM + NSP pretraining of a {@link BertForPreTraining} as a {@link TrainingTask}: the trainer
 * drives it with batches from a {@link PretrainingDataStream}.
 *
 * <p>Evaluation runs on a fixed list of held-out batches (same masks every time) and reports
 * {@code eval_loss}, {@code eval_mlm_loss}, {@code eval_mlm_acc}, {@code eval_nsp_acc} and
 * {@code eval_mlm_baseline_acc}: the accuracy of always predicting the most frequent masked
 * token of those batches, the floor a model must clear to show it learned anything.
 */
public final class PretrainTask implements TrainingTask<PretrainingBatch> {

    private final BertForPreTraining model;
    private final BertTokenizer tokenizer;
    private final List<PretrainingBatch> evalBatches;
    private final double baselineAcc;

    public PretrainTask(BertForPreTraining model, BertTokenizer tokenizer, List<PretrainingBatch> evalBatches) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.evalBatches = List.copyOf(evalBatches);
        this.baselineAcc = mostFrequentLabelShare(this.evalBatches);
        model.setTrainable(true);
        model.train(true);
    }

    /** Share of the most frequent MLM target among the labelled positions of the batches. */
    static double mostFrequentLabelShare(List<PretrainingBatch> batches) {
        Map<Long, Long> counts = new HashMap<>();
        long total = 0;
        for (PretrainingBatch b : batches) {
            for (long label : b.mlmLabels()) {
                if (label != BertForPreTraining.IGNORE_INDEX) {
                    counts.merge(label, 1L, Long::sum);
                    total++;
                }
            }
        }
        long best = counts.values().stream().mapToLong(Long::longValue).max().orElse(0);
        return total == 0 ? 0 : (double) best / total;
    }

    public BertForPreTraining model() {
        return model;
    }

    @Override
    public Map<String, Tensor> parameters() {
        return model.parameters();
    }

    @Override
    public void setStepSeed(long seed) {
        model.setDropoutSeed(seed);
    }

    private BertForPreTraining.Loss loss(PretrainingBatch b) {
        long[] shape = {b.batchSize(), b.seqLen()};
        return model.loss(Tensors.fromLongs(b.inputIds(), shape), Tensors.fromLongs(b.tokenTypeIds(), shape),
                Tensors.fromLongs(b.attentionMask(), shape), Tensors.fromLongs(b.mlmLabels(), shape),
                Tensors.fromLongs(b.nspLabels(), b.batchSize()));
    }

    @Override
    public StepResult step(PretrainingBatch batch) {
        model.train(true);
        BertForPreTraining.Loss l = loss(batch);
        long tokens = 0;
        for (long m : batch.attentionMask()) {
            tokens += m;
        }
        Map<String, Double> metrics = new LinkedHashMap<>();
        metrics.put("mlm_loss", l.mlmLoss().item_double());
        metrics.put("nsp_loss", l.nspLoss() == null ? 0.0 : l.nspLoss().item_double());
        metrics.put("mlm_acc", l.mlmCount() == 0 ? 0.0 : (double) l.mlmCorrect() / l.mlmCount());
        metrics.put("nsp_acc", l.nspCount() == 0 ? 0.0 : (double) l.nspCorrect() / l.nspCount());
        return new StepResult(l.loss(), tokens, metrics);
    }

    @Override
    public Map<String, Double> evaluate() {
        model.train(false);
        double lossSum = 0, mlmLossSum = 0;
        long mlmCorrect = 0, mlmCount = 0, nspCorrect = 0, nspCount = 0;
        try (NoGradGuard ng = new NoGradGuard()) {
            for (PretrainingBatch b : evalBatches) {
                try (PointerScope scope = new PointerScope()) {
                    BertForPreTraining.Loss l = loss(b);
                    // losses are means: weight by what they average over
                    mlmLossSum += l.mlmLoss().item_double() * l.mlmCount();
                    lossSum += l.loss().item_double() * b.batchSize();
                    mlmCorrect += l.mlmCorrect();
                    mlmCount += l.mlmCount();
                    nspCorrect += l.nspCorrect();
                    nspCount += l.nspCount();
                }
            }
        } finally {
            model.train(true);
        }
        long examples = evalBatches.stream().mapToLong(PretrainingBatch::batchSize).sum();
        Map<String, Double> m = new LinkedHashMap<>();
        m.put(Trainer.EVAL_LOSS, examples == 0 ? Double.NaN : lossSum / examples);
        m.put("eval_mlm_loss", mlmCount == 0 ? Double.NaN : mlmLossSum / mlmCount);
        m.put("eval_mlm_acc", mlmCount == 0 ? Double.NaN : (double) mlmCorrect / mlmCount);
        m.put("eval_nsp_acc", nspCount == 0 ? Double.NaN : (double) nspCorrect / nspCount);
        m.put("eval_mlm_baseline_acc", baselineAcc);
        return m;
    }

    @Override
    public void saveModel(Path dir) {
        ModelFolder.write(dir, model.config().withArchitectures(List.of(model.head().architecture())),
                model.stateDict(), tokenizer, null);
    }

    @Override
    public void loadModel(Path dir) {
        try (BertForPreTraining saved = BertForPreTraining.load(dir, model.head());
             NoGradGuard ng = new NoGradGuard()) {
            Map<String, Tensor> mine = model.parameters();
            Map<String, Tensor> theirs = saved.parameters();
            for (Map.Entry<String, Tensor> e : mine.entrySet()) {
                Tensor src = theirs.get(e.getKey());
                if (src == null) {
                    throw new io.bert4j.Bert4jException(dir + ": checkpoint has no parameter " + e.getKey());
                }
                e.getValue().copy_(src);
            }
        }
    }

    @Override
    public void close() {
        model.close();
    }

    /** The trainer's view of a {@link PretrainingDataStream}. */
    public static DataSource<PretrainingBatch> source(PretrainingDataStream stream) {
        return new DataSource<>() {
            @Override
            public PretrainingBatch next() {
                return stream.next();
            }

            @Override
            public String position() {
                return stream.position().toString();
            }
        };
    }
}
