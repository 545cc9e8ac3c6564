package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.data.Conll;
import io.bert4j.finetune.NerData;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.tokenize.BertTokenizer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code bert4j eval ner}: a fine-tuned token classifier's entity metrics on a CoNLL file, as one JSON object. */
@Command(name = "ner", mixinStandardHelpOptions = true,
        description = {"Evaluate a fine-tuned NER model on a labelled CoNLL file.",
                "Prints one JSON object: sentences, tokens, truncated, loss, accuracy (word tags), precision, recall, f1 "
                        + "(entities as seqeval counts them by default), strict_precision, strict_recall, strict_f1 "
                        + "(seqeval strict IOB2), and per entity type T: T_precision, T_recall, T_f1, T_support (strict)."})
final class NerEvalCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "A fine-tuned BertForTokenClassification folder.")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "FILE", description = "Labelled CoNLL file.")
    Path data;

    @Mixin
    NerFinetuneCommand.ConllOptions conll;

    @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32", description = "Sentences per batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Tokens per sentence; longer ones are truncated and counted, their cut-off words scored as O "
                    + "(default: 128, as in training, or the model's max_position_embeddings if smaller).")
    Integer maxLength;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Override
    public Integer call() {
        var mode = io.bert4j.kernels.KernelMode.parse(kernels);
        if (batchSize <= 0) {
            throw new Bert4jException("--batch-size must be positive, got " + batchSize);
        }
        Conll.Corpus corpus = conll.read(data);
        try (BertForTokenClassification m = BertForTokenClassification.load(model);
             BertTokenizer tokenizer = BertTokenizer.load(model)) {
            m.setKernels(mode);
            m.train(false);
            int budget = TrainingOptions.resolveMaxLength(maxLength, m.config().maxPositionEmbeddings());
            Map<String, Integer> label2id = m.config().label2id();
            NerData.Encoded enc = NerData.encode(corpus, tokenizer, budget, label2id, "of the model " + model);
            Map<String, Double> metrics = NerData.evaluate(m, enc, batchSize, tokenizer.padId());
            ObjectNode o = JSON.createObjectNode();
            o.put("sentences", enc.features().size());
            o.put("tokens", corpus.tokenCount());
            o.put("truncated", enc.truncated());
            metrics.forEach((k, v) -> {
                if (Double.isFinite(v)) {
                    o.put(k, v);
                } else {
                    o.putNull(k);
                }
            });
            PrintWriter out = spec.commandLine().getOut();
            out.println(o.toString());
            out.flush();
        }
        return 0;
    }
}
