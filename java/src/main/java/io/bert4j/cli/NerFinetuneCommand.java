package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.data.Conll;
import io.bert4j.data.NerFeatures;
import io.bert4j.finetune.NerData;
import io.bert4j.finetune.NerTask;
import io.bert4j.model.BertForTokenClassification;
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
 * {@code bert4j finetune ner}: a token classifier fine-tuned from a BERT folder on a CoNLL file.
 * The labels are O and the B-/I- tags of the training file's entity types (IOB1 input is
 * converted to IOB2 first); the best checkpoint is chosen by strict IOB2 entity F1.
 */
@Command(name = "ner", mixinStandardHelpOptions = true,
        description = {"Fine-tune a BERT for named-entity recognition on a CoNLL file (token first, tag in --label-column; "
                + "blank lines end sentences; -DOCSTART- lines are skipped).",
                "Labels: O plus B-/I- of each entity type in the training file. With --eval the model is evaluated each epoch "
                        + "(or --eval-every N steps) with entity-level precision/recall/F1, both as seqeval counts by default "
                        + "and in strict IOB2 mode; the best checkpoint by strict F1 becomes the final model. "
                        + "Checkpoints go to OUT/checkpoint-N, metrics to OUT/metrics.jsonl, the loss curve to OUT/loss.png."})
final class NerFinetuneCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR",
            description = "A Hugging Face BERT folder to start from (default: the default model, MiniLM-L6).")
    Path model;

    @Option(names = "--train", required = true, paramLabel = "FILE", description = "Training CoNLL file.")
    Path train;

    @Option(names = "--eval", paramLabel = "FILE", description = "Labelled CoNLL file to evaluate on (its tags must occur in --train).")
    Path eval;

    @Mixin
    ConllOptions conll;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output folder.")
    Path out;

    @Mixin
    TrainingOptions training;

    @Override
    public Integer call() {
        training.validate();
        training.checkOutputFolder(out);
        PrintWriter err = spec.commandLine().getErr();
        Conll.Corpus trainCorpus = conll.read(train);
        if (trainCorpus.labels().size() < 2) {
            throw new Bert4jException(train + ": every token is tagged O; NER needs at least one entity");
        }
        Conll.Corpus evalCorpus = eval == null ? null : conll.read(eval);
        List<String> labels = trainCorpus.labels();
        Map<Integer, String> id2label = new LinkedHashMap<>();
        Map<String, Integer> label2id = new LinkedHashMap<>();
        for (int i = 0; i < labels.size(); i++) {
            id2label.put(i, labels.get(i));
            label2id.put(labels.get(i), i);
        }
        String from = "of the training file " + train;
        if (evalCorpus != null) {
            // Before any model is loaded: a label the model cannot predict would silently cost recall.
            NerData.checkTags(evalCorpus, label2id, from);
        }
        Path modelDir = model != null ? model : DefaultModel.ensure();
        try (BertTokenizer tokenizer = BertTokenizer.load(modelDir);
             BertForTokenClassification m = BertForTokenClassification.fromPretrained(modelDir, id2label, training.seed)) {
            int maxLength = training.maxLength(m.config().maxPositionEmbeddings());
            m.setKernels(training.kernelMode());
            if (!m.newlyInitialized().isEmpty()) {
                err.println("bert4j: newly initialised (to be trained): " + m.newlyInitialized());
            }
            NerData.Encoded trainEnc = NerData.encode(trainCorpus, tokenizer, maxLength, label2id, from);
            report(err, "training", trainEnc, maxLength);
            NerData.Encoded evalEnc = null;
            if (evalCorpus != null) {
                evalEnc = NerData.encode(evalCorpus, tokenizer, maxLength, label2id, from);
                report(err, "evaluation", evalEnc, maxLength);
            }
            err.printf("bert4j: %d training sentences (%s), %d labels %s, %d steps per epoch%n",
                    trainEnc.features().size(), trainCorpus.scheme(), labels.size(), labels,
                    training.stepsPerEpoch(trainEnc.features().size()));
            err.flush();
            TrainerConfig tc = training.trainerConfig(out, trainEnc.features().size(), evalEnc != null,
                    NerTask.BEST_METRIC, true);
            int pad = tokenizer.padId();
            NerTask task = new NerTask(m, tokenizer, evalEnc, training.batchSize);
            Trainer.Result r = training.train(tc, task, trainEnc.features(), NerFeatures.Feature::length,
                    batch -> NerData.collate(batch, pad), err);
            ObjectNode o = JSON.createObjectNode();
            o.put("step", r.step());
            o.put("stopped", r.stopped());
            o.put("loss", r.lastLoss());
            if (r.bestMetric() != null) {
                o.put("best_step", r.bestStep());
                o.put(NerTask.BEST_METRIC, r.bestMetric());
            }
            o.put("out", out.toString());
            PrintWriter pw = spec.commandLine().getOut();
            pw.println(o.toString());
            pw.flush();
        }
        return 0;
    }

    static void report(PrintWriter err, String what, NerData.Encoded enc, int maxLength) {
        if (enc.truncated() > 0) {
            err.printf("bert4j: %d of %d %s sentences are longer than --max-length %d tokens and were truncated"
                            + " (their cut-off words are not trained on, and count as O when evaluated)%n",
                    enc.truncated(), enc.features().size(), what, maxLength);
            err.flush();
        }
    }

    /** --label-column and --scheme, shared by the NER commands. */
    static final class ConllOptions {
        @Option(names = "--label-column", paramLabel = "N",
                description = "0-based column of the NER tag; column 0 is the token (default: the last column; "
                        + "CoNLL-2003's is 3).")
        Integer labelColumn;

        @Option(names = "--scheme", paramLabel = "iob1|iob2|auto", defaultValue = "auto",
                description = "Tagging scheme of the files (default: ${DEFAULT-VALUE}: IOB1 if some I- tag starts an "
                        + "entity, else IOB2). IOB1 is converted to IOB2; with iob2 a stray I- tag is an error.")
        String scheme;

        Conll.Corpus read(Path file) {
            Conll.Scheme s = switch (scheme.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "auto" -> Conll.Scheme.AUTO;
                case "iob1" -> Conll.Scheme.IOB1;
                case "iob2" -> Conll.Scheme.IOB2;
                default -> throw new Bert4jException("unknown --scheme '" + scheme + "': expected iob1, iob2 or auto");
            };
            if (labelColumn != null && labelColumn < 1) {
                throw new Bert4jException("--label-column must be >= 1 (column 0 is the token), got " + labelColumn);
            }
            Conll.Corpus c = Conll.read(file, labelColumn == null ? Conll.LAST_COLUMN : labelColumn, s);
            if (c.sentences().isEmpty()) {
                throw new Bert4jException(file + ": no sentences");
            }
            return c;
        }
    }
}
