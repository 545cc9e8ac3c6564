package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.config.BertConfig;
import io.bert4j.data.Squad;
import io.bert4j.finetune.QaData;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.QuestionAnswerer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code bert4j eval qa}: a fine-tuned QA folder's SQuAD exact match and F1 on a SQuAD v1.1 file, as one JSON object. */
@Command(name = "qa", mixinStandardHelpOptions = true,
        description = {"Evaluate a fine-tuned question-answering model on a SQuAD v1.1 JSON file.",
                "Prints one JSON object: exact_match and f1 (0-100, SQuAD's official normalisation, best over the "
                        + "reference answers), examples (questions) and articles."})
final class QaEvalCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "A fine-tuned question-answering folder.")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "FILE", description = "SQuAD v1.1 JSON file.")
    Path data;

    @Mixin
    QaFinetuneCommand.QaOptions qa;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Tokens per window (default: 384, or the model's max_position_embeddings if smaller).")
    Integer maxLength;

    @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32", description = "Windows per batch (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Override
    public Integer call() {
        KernelMode mode = KernelMode.parse(kernels);
        Squad.Dataset file = QaData.readLabelled(data);
        int positions = BertConfig.read(model.resolve("config.json")).maxPositionEmbeddings();
        QuestionAnswerer.Options options = qa.options(maxLength, positions, batchSize);
        try (QuestionAnswerer answerer = QuestionAnswerer.load(model, mode, options)) {
            Map<String, Double> m = QaData.evaluate(answerer, file.examples());
            ObjectNode o = JSON.createObjectNode();
            o.put("exact_match", m.get("exact_match"));
            o.put("f1", m.get("f1"));
            o.put("examples", file.examples().size());
            o.put("articles", file.articles());
            PrintWriter out = spec.commandLine().getOut();
            out.println(o.toString());
            out.flush();
        }
        return 0;
    }
}
