package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.data.QaFeatures;
import io.bert4j.data.Squad;
import io.bert4j.finetune.QaData;
import io.bert4j.finetune.QaTask;
import io.bert4j.model.BertForQuestionAnswering;
import io.bert4j.pipeline.QuestionAnswerer;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.Trainer;
import io.bert4j.train.TrainerConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code bert4j finetune qa}: extractive question answering fine-tuned from a BERT folder on SQuAD v1.1 JSON. */
@Command(name = "qa", mixinStandardHelpOptions = true,
        description = {"Fine-tune a BERT for extractive question answering on a SQuAD v1.1 JSON file.",
                "Each question becomes one training window per --max-length slice of its context (windows overlap by "
                        + "--doc-stride tokens); a window without the whole answer is trained to point at [CLS]. "
                        + "With --eval or --validation-split the model answers the held-out questions each epoch "
                        + "(or --eval-every N steps) and the best checkpoint by F1 becomes the final model. "
                        + "Checkpoints go to OUT/checkpoint-N, metrics to OUT/metrics.jsonl, the loss curve to OUT/loss.png.",
                "For QA, --max-length (tokens per window) defaults to 384, or the model's max_position_embeddings if "
                        + "smaller, as run_qa; --batch-size counts windows."})
final class QaFinetuneCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR",
            description = "A Hugging Face BERT folder to start from (default: the default model, MiniLM-L6).")
    Path model;

    @Option(names = "--train", required = true, paramLabel = "FILE", description = "SQuAD v1.1 JSON training file.")
    Path train;

    @Option(names = "--eval", paramLabel = "FILE", description = "SQuAD v1.1 JSON file to evaluate on.")
    Path eval;

    @Option(names = "--validation-split", paramLabel = "FRACTION|COUNT",
            description = "Hold out the last articles of --train for evaluation instead of --eval: this share of the "
                    + "articles (below 1) or this many articles (1 or more).")
    Double validationSplit;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output folder.")
    Path out;

    @Mixin
    QaOptions qa;

    @Mixin
    TrainingOptions training;

    @Override
    public Integer call() {
        training.validate();
        if (eval != null && validationSplit != null) {
            throw new Bert4jException("give either --eval or --validation-split, not both");
        }
        training.checkOutputFolder(out);
        PrintWriter err = spec.commandLine().getErr();
        Squad.Dataset trainFile = QaData.readLabelled(train);
        List<Squad.Example> trainQuestions = trainFile.examples();
        List<Squad.Example> evalQuestions = List.of();
        if (eval != null) {
            evalQuestions = QaData.readLabelled(eval).examples();
        } else if (validationSplit != null) {
            QaData.Split s = QaData.splitByArticle(trainFile, validationSplit);
            trainQuestions = s.train();
            evalQuestions = s.validation();
            err.printf("bert4j: holding out articles %s (%d questions) of %s for evaluation%n",
                    s.validationArticles(), evalQuestions.size(), train);
        }
        boolean hasEval = !evalQuestions.isEmpty();

        Path modelDir = model != null ? model : DefaultModel.ensure();
        try (BertTokenizer tokenizer = BertTokenizer.load(modelDir);
             BertForQuestionAnswering m = BertForQuestionAnswering.fromPretrained(modelDir, training.seed)) {
            QuestionAnswerer.Options options = qa.options(training.maxLength, m.config().maxPositionEmbeddings(),
                    training.batchSize);
            m.setKernels(training.kernelMode());
            if (!m.newlyInitialized().isEmpty()) {
                err.println("bert4j: newly initialised (to be trained): " + m.newlyInitialized());
            }
            List<QaFeatures.Feature> features = QaData.trainFeatures(tokenizer, trainQuestions, options.maxLength(),
                    options.docStride());
            long withAnswer = features.stream().filter(f -> f.startPosition() > 0).count();
            err.printf("bert4j: %d training questions -> %d windows of up to %d tokens (doc stride %d; %d hold "
                            + "their answer), %d steps per epoch%n", trainQuestions.size(), features.size(),
                    options.maxLength(), options.docStride(), withAnswer, training.stepsPerEpoch(features.size()));
            err.flush();
            String best = "eval_f1";
            TrainerConfig tc = training.trainerConfig(out, features.size(), hasEval, best, true);
            int pad = tokenizer.padId();
            QaTask task = new QaTask(m, tokenizer, evalQuestions, options);
            Trainer.Result r = training.train(tc, task, features, QaFeatures.Feature::length,
                    batch -> QaData.collate(batch, pad), err);
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

    /** Window and answer options shared by the QA commands (run_qa's defaults). */
    static final class QaOptions {
        @Option(names = "--doc-stride", paramLabel = "N", defaultValue = "128",
                description = "Context tokens shared by neighbouring windows of a long context (default: ${DEFAULT-VALUE}).")
        int docStride;

        @Option(names = "--n-best", paramLabel = "N", defaultValue = "20",
                description = "Start and end candidates per window when answering (default: ${DEFAULT-VALUE}).")
        int nBest;

        @Option(names = "--max-answer-length", paramLabel = "N", defaultValue = "30",
                description = "Longest answer in tokens (default: ${DEFAULT-VALUE}).")
        int maxAnswerLength;

        /**
         * The answerer's settings; the window length is {@code maxLength} (which must fit the
         * model's {@code positions}) or min(384, positions) as run_qa.
         */
        QuestionAnswerer.Options options(Integer maxLength, int positions, int batchSize) {
            int len = maxLength == null ? Math.min(384, positions) : TrainingOptions.resolveMaxLength(maxLength, positions);
            if (docStride < 0) {
                throw new Bert4jException("--doc-stride must be >= 0, got " + docStride);
            }
            if (nBest < 1) {
                throw new Bert4jException("--n-best must be at least 1, got " + nBest);
            }
            if (maxAnswerLength < 1) {
                throw new Bert4jException("--max-answer-length must be at least 1, got " + maxAnswerLength);
            }
            if (batchSize < 1) {
                throw new Bert4jException("--batch-size must be positive, got " + batchSize);
            }
            return new QuestionAnswerer.Options(len, docStride, nBest, maxAnswerLength, batchSize);
        }
    }
}
