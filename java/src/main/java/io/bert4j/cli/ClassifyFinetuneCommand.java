package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.data.GlueTsv;
import io.bert4j.finetune.ClassificationData;
import io.bert4j.finetune.ClassificationTask;
import io.bert4j.model.BertForSequenceClassification;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.Trainer;
import io.bert4j.train.TrainerConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bert4j finetune classify}: a text (or text-pair) classifier, or a regressor with
 * {@code --regression}, fine-tuned from a BERT folder on a GLUE-style TSV file.
 */
@Command(name = "classify", mixinStandardHelpOptions = true,
        description = {"Fine-tune a BERT for text or text-pair classification (or regression) on a TSV file with a header.",
                "Classes are the distinct labels of the training file, sorted (numerically if all are integers). "
                        + "With --eval or --validation-split the model is evaluated each epoch (or --eval-every N steps) "
                        + "and the best checkpoint by accuracy (Pearson for regression) becomes the final model. "
                        + "Checkpoints go to OUT/checkpoint-N, metrics to OUT/metrics.jsonl, the loss curve to OUT/loss.png."})
final class ClassifyFinetuneCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR",
            description = "A Hugging Face BERT folder to start from (default: the default model, MiniLM-L6).")
    Path model;

    @Option(names = "--train", required = true, paramLabel = "FILE", description = "Training TSV file with a header line.")
    Path train;

    @Option(names = "--eval", paramLabel = "FILE", description = "Labelled TSV file to evaluate on.")
    Path eval;

    @Option(names = "--validation-split", paramLabel = "FRACTION|COUNT",
            description = "Hold out this share of --train (below 1), or this many rows (1 or more), for evaluation "
                    + "instead of --eval; a seeded split (by --seed).")
    Double validationSplit;

    @Mixin
    ColumnOptions columns;

    @Option(names = "--regression", description = "The label is a number: one output trained with mean squared error.")
    boolean regression;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output folder.")
    Path out;

    @Mixin
    TrainingOptions training;

    /** The --validation-split of rows: a fraction in (0, 1) or a whole count, seeded (shared with eval). */
    static GlueTsv.Split<GlueTsv.Example> validationSplit(List<GlueTsv.Example> rows, double v, long seed) {
        if (!(v > 0) || (v >= 1 && v != Math.rint(v))) {
            throw new Bert4jException("--validation-split must be a fraction in (0, 1) or a whole number of rows, got " + v);
        }
        return v < 1 ? GlueTsv.split(rows, v, seed) : GlueTsv.split(rows, (int) v, seed);
    }

    @Override
    public Integer call() {
        training.validate();
        if (eval != null && validationSplit != null) {
            throw new Bert4jException("give either --eval or --validation-split, not both");
        }
        training.checkOutputFolder(out);
        PrintWriter err = spec.commandLine().getErr();
        GlueTsv.Columns cols = columns.columns();
        GlueTsv trainFile = GlueTsv.read(train, cols);
        if (trainFile.examples().isEmpty()) {
            throw new Bert4jException(train + ": no examples after the header");
        }
        List<GlueTsv.Example> trainRows = trainFile.examples();
        GlueTsv evalFile = null;
        if (eval != null) {
            evalFile = GlueTsv.read(eval, cols);
            if (evalFile.examples().isEmpty()) {
                throw new Bert4jException(eval + ": no examples after the header");
            }
        } else if (validationSplit != null) {
            GlueTsv.Split<GlueTsv.Example> s = validationSplit(trainRows, validationSplit, training.seed);
            trainRows = s.train();
            evalFile = new GlueTsv(train, trainFile.header(), trainFile.columns(), s.validation());
        }
        GlueTsv trainSet = new GlueTsv(train, trainFile.header(), trainFile.columns(), trainRows);

        Map<Integer, String> id2label = new LinkedHashMap<>();
        Map<String, Integer> label2id = null;
        if (regression) {
            id2label.put(0, "LABEL_0");
            trainFile.floatLabels(); // every row a number, named by line otherwise
        } else {
            List<String> labels = trainFile.labelSet();
            if (labels.size() < 2) {
                throw new Bert4jException(train + ": every example has the label '" + labels.get(0)
                        + "'; classification needs at least two (use --regression for a numeric target)");
            }
            label2id = new LinkedHashMap<>();
            for (int i = 0; i < labels.size(); i++) {
                id2label.put(i, labels.get(i));
                label2id.put(labels.get(i), i);
            }
        }

        Path modelDir = model != null ? model : DefaultModel.ensure();
        try (BertTokenizer tokenizer = BertTokenizer.load(modelDir);
             BertForSequenceClassification m = BertForSequenceClassification.fromPretrained(modelDir, id2label, training.seed)) {
            int maxLength = training.maxLength(m.config().maxPositionEmbeddings());
            m.setKernels(training.kernelMode());
            if (!m.newlyInitialized().isEmpty()) {
                err.println("bert4j: newly initialised (to be trained): " + m.newlyInitialized());
            }
            String from = "of the training file " + train;
            ClassificationData.Encoded trainEnc = ClassificationData.encode(trainSet, tokenizer, maxLength, label2id, from);
            report(err, "training", trainEnc, maxLength);
            List<ClassificationData.Example> evalExamples = List.of();
            if (evalFile != null) {
                ClassificationData.Encoded evalEnc = ClassificationData.encode(evalFile, tokenizer, maxLength, label2id, from);
                report(err, "evaluation", evalEnc, maxLength);
                evalExamples = evalEnc.examples();
            }
            err.printf("bert4j: %d training examples, %s, %d steps per epoch%n", trainEnc.examples().size(),
                    regression ? "regression" : id2label.size() + " labels " + id2label.values(),
                    training.stepsPerEpoch(trainEnc.examples().size()));
            err.flush();
            String best = regression ? "eval_pearson" : "eval_accuracy";
            TrainerConfig tc = training.trainerConfig(out, trainEnc.examples().size(), evalFile != null, best, true);
            boolean reg = regression;
            int pad = tokenizer.padId();
            ClassificationTask task = new ClassificationTask(m, tokenizer, evalExamples, training.batchSize);
            Trainer.Result r = training.train(tc, task, trainEnc.examples(), ClassificationData.Example::length,
                    batch -> ClassificationData.collate(batch, pad, reg), err);
            ObjectNode o = JSON.createObjectNode();
            o.put("step", r.step());
            o.put("stopped", r.stopped());
            o.put("loss", r.lastLoss());
            if (r.bestMetric() != null) {
                o.put("best_step", r.bestStep());
                o.put(best, r.bestMetric());
            }
            o.put("out", out.toString());
            PrintWriter pw = spec.commandLine().getOut();
            pw.println(o.toString());
            pw.flush();
        }
        return 0;
    }

    static void report(PrintWriter err, String what, ClassificationData.Encoded enc, int maxLength) {
        if (enc.truncated() > 0) {
            err.printf("bert4j: %d of %d %s examples are longer than --max-length %d tokens and were truncated%n",
                    enc.truncated(), enc.examples().size(), what, maxLength);
            err.flush();
        }
    }

    /** --text-column, --text-pair-column, --label-column, shared by the classification commands. */
    static final class ColumnOptions {
        @Option(names = "--text-column", paramLabel = "C", description = "Text column (default: 'sentence' or 'text').")
        String text;

        @Option(names = "--text-pair-column", paramLabel = "C", description = "Second text column, for sentence pairs.")
        String pair;

        @Option(names = "--label-column", paramLabel = "C", defaultValue = "label", description = "Label column (default: ${DEFAULT-VALUE}).")
        String label;

        GlueTsv.Columns columns() {
            return new GlueTsv.Columns(text, pair, label);
        }
    }
}
