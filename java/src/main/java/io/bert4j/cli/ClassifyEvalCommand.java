package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.data.GlueTsv;
import io.bert4j.finetune.ClassificationData;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.TextClassifier;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code bert4j eval classify}: a fine-tuned classifier's metrics on a labelled TSV file, as one JSON object. */
@Command(name = "classify", mixinStandardHelpOptions = true,
        description = {"Evaluate a fine-tuned classifier (or regressor) on a labelled TSV file with a header.",
                "Prints one JSON object: examples, truncated, loss and accuracy, f1 (two labels; positive label '1' "
                        + "if there is one), macro_f1 and mcc; or pearson and spearman for a regression model."})
final class ClassifyEvalCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "A fine-tuned classification folder.")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "FILE", description = "Labelled TSV file.")
    Path data;

    @Mixin
    ClassifyFinetuneCommand.ColumnOptions columns;

    @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32", description = "Examples per batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Tokens per input; longer inputs are truncated and counted (default: 128, as in training, "
                    + "or the model's max_position_embeddings if smaller).")
    Integer maxLength;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Option(names = "--int8", description = "Int8 inference: the encoder's linear layers dynamically quantized "
            + "(faster on CPU); compare with a run without it for the accuracy cost.")
    boolean int8;

    @Option(names = "--bf16", description = "bf16 inference on AMX: the encoder's linear layers with bf16 operands "
            + "and fp32 sums (Intel Sapphire Rapids or later; refused elsewhere).")
    boolean bf16;

    @Option(names = "--validation-split", paramLabel = "FRACTION|COUNT",
            description = "Evaluate only the rows that `finetune classify --validation-split` held out of the same file "
                    + "(same value and --seed), not the whole file.")
    Double validationSplit;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42",
            description = "Seed of --validation-split, as given to finetune (default: ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() {
        Precision.requireAtMostOne(int8, bf16);
        KernelMode mode = KernelMode.parse(kernels);
        if (batchSize <= 0) {
            throw new Bert4jException("--batch-size must be positive, got " + batchSize);
        }
        GlueTsv file = GlueTsv.read(data, columns.columns());
        if (file.examples().isEmpty()) {
            throw new Bert4jException(data + ": no examples after the header");
        }
        if (validationSplit != null) {
            GlueTsv.Split<GlueTsv.Example> s = ClassifyFinetuneCommand.validationSplit(file.examples(), validationSplit, seed);
            file = new GlueTsv(data, file.header(), file.columns(), s.validation());
        }
        int positions = io.bert4j.config.BertConfig.read(model.resolve("config.json")).maxPositionEmbeddings();
        try (TextClassifier c = TextClassifier.load(model, TrainingOptions.resolveMaxLength(maxLength, positions), mode)) {
            // Only the encoder runs in int8 or bf16; the pooler and the classifier head stay float32.
            Precision.apply(c.model().encoder(), int8, bf16);
            Map<String, Integer> label2id = c.isRegression() ? null : c.model().config().label2id();
            ClassificationData.Encoded enc = ClassificationData.encode(file, c.tokenizer(), c.maxLength(), label2id,
                    "of the model " + model);
            Map<String, Double> metrics = ClassificationData.evaluate(c.model(), enc.examples(), batchSize, c.tokenizer().padId());
            ObjectNode o = JSON.createObjectNode();
            o.put("examples", enc.examples().size());
            o.put("truncated", enc.truncated());
            metrics.forEach(o::put);
            PrintWriter out = spec.commandLine().getOut();
            out.println(o.toString());
            out.flush();
        }
        return 0;
    }
}
