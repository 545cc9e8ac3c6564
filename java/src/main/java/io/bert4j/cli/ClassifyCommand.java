package io.bert4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.TextClassifier;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

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

/** {@code bert4j classify}: one JSON line per input text with a fine-tuned classifier. */
@Command(name = "classify", mixinStandardHelpOptions = true,
        description = {"Classify texts with a fine-tuned model: one JSON line per input, {\"text\", \"label\", \"score\"} "
                + "({\"text\", \"value\"} for a regression model); a text pair adds \"text_pair\".",
                "Inputs are the TEXT arguments, or the lines of --input (standard input when neither is given); "
                        + "a line 'a<TAB>b' is a text pair. Over-long inputs are truncated to --max-length tokens "
                        + "and counted on stderr."})
final class ClassifyCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "A fine-tuned classification folder.")
    Path model;

    @Option(names = "--input", paramLabel = "FILE", description = "One input per line ('-' for standard input).")
    String input;

    @Parameters(paramLabel = "TEXT", arity = "0..*", description = "Texts to classify.")
    List<String> texts = new ArrayList<>();

    @Option(names = "--max-length", paramLabel = "N", description = "Tokens per input (default: min(512, the model's max_position_embeddings)).")
    Integer maxLength;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Option(names = "--int8", description = "Int8 inference: the encoder's linear layers dynamically quantized "
            + "(faster on CPU; measure the accuracy cost with eval classify --int8).")
    boolean int8;

    @Option(names = "--bf16", description = "bf16 inference on AMX: the encoder's linear layers with bf16 operands "
            + "and fp32 sums (Intel Sapphire Rapids or later; refused elsewhere).")
    boolean bf16;

    @Override
    public Integer call() {
        Precision.requireAtMostOne(int8, bf16);
        KernelMode mode = KernelMode.parse(kernels);
        if (input != null && !texts.isEmpty()) {
            throw new Bert4jException("give texts as arguments or --input, not both");
        }
        List<String> lines = input == null && !texts.isEmpty() ? texts : readLines(input == null ? "-" : input);
        List<String> firsts = new ArrayList<>(lines.size());
        List<String> seconds = new ArrayList<>(lines.size());
        for (int i = 0; i < lines.size(); i++) {
            String l = lines.get(i);
            int tab = l.indexOf('\t');
            String a = tab < 0 ? l : l.substring(0, tab);
            String b = tab < 0 ? null : l.substring(tab + 1);
            if (a.isBlank() || (b != null && (b.isBlank() || b.indexOf('\t') >= 0))) {
                throw new Bert4jException((input != null && !"-".equals(input) ? input + ":" : "input ") + (i + 1)
                        + ": expected a text, or two texts separated by one tab");
            }
            firsts.add(a);
            seconds.add(b);
        }
        if (firsts.isEmpty()) {
            throw new Bert4jException("no input texts");
        }
        try (TextClassifier c = TextClassifier.load(model, maxLength == null ? 0 : maxLength, mode)) {
            // Only the encoder runs in int8 or bf16; the pooler and the classifier head stay float32.
            Precision.apply(c.model().encoder(), int8, bf16);
            PrintWriter out = spec.commandLine().getOut();
            int truncated = 0;
            // Chunks keep memory flat on long inputs; the classifier batches within each.
            int chunk = 1024;
            for (int from = 0; from < firsts.size(); from += chunk) {
                int to = Math.min(firsts.size(), from + chunk);
                for (TextClassifier.Prediction p : c.classifyBatch(firsts.subList(from, to), seconds.subList(from, to))) {
                    ObjectNode o = JSON.createObjectNode();
                    o.put("text", p.text());
                    if (p.pair() != null) {
                        o.put("text_pair", p.pair());
                    }
                    if (c.isRegression()) {
                        o.put("value", p.value());
                    } else {
                        o.put("label", p.label());
                        o.put("score", p.score());
                    }
                    out.println(o.toString());
                    if (p.truncated()) {
                        truncated++;
                    }
                }
                out.flush();
            }
            if (truncated > 0) {
                PrintWriter err = spec.commandLine().getErr();
                err.printf("bert4j: %d of %d inputs were longer than %d tokens and were truncated%n", truncated,
                        firsts.size(), c.maxLength());
                err.flush();
            }
        }
        return 0;
    }

    private static List<String> readLines(String source) {
        List<String> out = new ArrayList<>();
        try (BufferedReader r = "-".equals(source)
                ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))
                : Files.newBufferedReader(Path.of(source), StandardCharsets.UTF_8)) {
            String line;
            while ((line = r.readLine()) != null) {
                if (out.isEmpty() && line.startsWith("\uFEFF")) {
                    line = line.substring(1);
                }
                if (!line.isBlank()) {
                    out.add(line);
                }
            }
        } catch (java.nio.file.NoSuchFileException e) {
            throw new Bert4jException(source + ": no such file");
        } catch (IOException e) {
            throw new Bert4jException(source + ": cannot read: " + e.getMessage(), e);
        }
        return out;
    }
}
