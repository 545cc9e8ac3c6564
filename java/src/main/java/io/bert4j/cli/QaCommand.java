package io.bert4j.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.data.Squad;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.QuestionAnswerer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code bert4j qa}: answers questions about contexts with a fine-tuned QA model, JSON lines in and out. */
@Command(name = "qa", mixinStandardHelpOptions = true,
        description = {"Answer questions with a fine-tuned extractive question-answering model.",
                "Each line of --input is a JSON object {\"question\": ..., \"context\": ...}; each output line is "
                        + "{\"answer\", \"start\", \"end\", \"score\"}: the answer's text, its character offsets in the "
                        + "context (start inclusive, end exclusive) and its probability among the n-best candidates. "
                        + "Blank lines are skipped; every line is parsed before anything is answered."})
final class QaCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int CHUNK = 256;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "A fine-tuned question-answering folder.")
    Path model;

    @Option(names = "--input", required = true, paramLabel = "FILE.jsonl", description = "JSON lines input ('-' for standard input).")
    String input;

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
        if (!Files.isDirectory(model)) {
            throw new Bert4jException(model + ": model folder not found");
        }
        int positions = BertConfig.read(model.resolve("config.json")).maxPositionEmbeddings();
        QuestionAnswerer.Options options = qa.options(maxLength, positions, batchSize);
        List<Squad.Example> queries = read();
        if (queries.isEmpty()) {
            throw new Bert4jException(name() + ": no input lines");
        }
        try (QuestionAnswerer answerer = QuestionAnswerer.load(model, mode, options)) {
            PrintWriter out = spec.commandLine().getOut();
            // Chunks keep memory flat on long inputs; the answerer batches windows within each.
            for (int from = 0; from < queries.size(); from += CHUNK) {
                List<Squad.Example> chunk = queries.subList(from, Math.min(queries.size(), from + CHUNK));
                for (QuestionAnswerer.Answer a : answerer.predict(chunk)) {
                    ObjectNode o = JSON.createObjectNode();
                    o.put("answer", a.answer());
                    o.put("start", a.start());
                    o.put("end", a.end());
                    o.put("score", a.score());
                    out.println(o.toString());
                }
                out.flush();
            }
        }
        return 0;
    }

    private String name() {
        return "-".equals(input) ? "standard input" : input;
    }

    /** Every non-blank line as a question; the example id names the line, so later errors do too. */
    private List<Squad.Example> read() {
        List<Squad.Example> out = new ArrayList<>();
        try (BufferedReader r = "-".equals(input)
                ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
                : Files.newBufferedReader(Path.of(input), StandardCharsets.UTF_8)) {
            String line;
            int n = 0;
            while ((line = r.readLine()) != null) {
                n++;
                if (n == 1 && line.startsWith("\uFEFF")) {
                    line = line.substring(1);
                }
                if (line.isBlank()) {
                    continue;
                }
                String where = name() + ":" + n;
                JsonNode node;
                try {
                    node = JSON.readTree(line);
                } catch (JsonProcessingException e) {
                    throw new Bert4jException(where + ": not a JSON object: " + e.getOriginalMessage());
                }
                if (node == null || !node.isObject()) {
                    throw new Bert4jException(where + ": expected a JSON object {\"question\": ..., \"context\": ...}");
                }
                String question = text(node, "question", where);
                String context = text(node, "context", where);
                if (question.isBlank()) {
                    throw new Bert4jException(where + ": the question is empty");
                }
                out.add(QuestionAnswerer.example(where, question, context));
            }
        } catch (java.nio.file.NoSuchFileException e) {
            throw new Bert4jException(input + ": no such file");
        } catch (IOException e) {
            throw new Bert4jException(input + ": cannot read: " + e.getMessage(), e);
        }
        return out;
    }

    private static String text(JsonNode node, String field, String where) {
        JsonNode v = node.get(field);
        if (v == null || !v.isTextual()) {
            throw new Bert4jException(where + ": missing or non-string \"" + field + "\"");
        }
        return v.asText();
    }
}
