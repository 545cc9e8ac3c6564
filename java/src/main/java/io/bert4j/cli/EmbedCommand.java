package io.bert4j.cli;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.io.AtomicFiles;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.pipeline.Pooling;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.MalformedInputException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code bert4j embed}: one JSON object per input text, {"text": ..., "embedding": [...]}, in input order. */
@Command(name = "embed", mixinStandardHelpOptions = true,
        description = "Print sentence embeddings as JSON lines: {\"text\": ..., \"embedding\": [...]}.")
final class EmbedCommand implements Callable<Integer> {

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(arity = "0..*", paramLabel = "TEXT", description = "Texts to embed.")
    List<String> texts = new ArrayList<>();

    @Option(names = "--input", paramLabel = "FILE", description = "Read texts from FILE, one per line (- for stdin).")
    String input;

    @Option(names = "--model", paramLabel = "DIR",
            description = "Hugging Face model folder (default: " + DefaultModel.NAME + ", imported on first use).")
    Path model;

    @Option(names = "--pooling", paramLabel = "cls|mean|pooler",
            description = "Pooling (default: the model's sentence-transformers config, else mean).")
    String pooling;

    @Option(names = "--normalize", description = "L2-normalise the vectors (default: as the model's sentence-transformers config says).")
    Boolean normalize;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Truncate texts to N tokens ([CLS] and [SEP] included). Without it an over-long text is an error.")
    int maxLength;

    @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32", description = "Texts per forward pass (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--output", paramLabel = "FILE", description = "Write to FILE instead of stdout (replaced atomically when complete).")
    Path output;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Option(names = "--int8", description = "Int8 inference: the encoder's linear layers dynamically quantized "
            + "(faster on CPU; embeddings within ~1% of float32, see the README).")
    boolean int8;

    @Option(names = "--bf16", description = "bf16 inference on AMX: the encoder's linear layers with bf16 operands "
            + "and fp32 sums (Intel Sapphire Rapids or later; refused elsewhere; see the README).")
    boolean bf16;

    @Override
    public Integer call() throws IOException {
        List<String> all = new ArrayList<>(texts);
        if (input != null) {
            all.addAll(readLines(input));
        }
        if (all.isEmpty()) {
            throw new Bert4jException("nothing to embed: give texts as arguments or a file with --input FILE");
        }
        EmbedOptions options = new EmbedOptions(pooling == null ? null : Pooling.parse(pooling),
                normalize, maxLength, batchSize);
        Precision.requireAtMostOne(int8, bf16);
        KernelMode mode = KernelMode.parse(kernels);
        try (Bert bert = model == null ? Bert.load(DefaultModel.ensure(), mode) : Bert.load(model, mode)) {
            bert.warnings().forEach(w -> spec.commandLine().getErr().println("bert4j: note: " + w));
            Precision.apply(bert.model(), int8, bf16);
            float[][] vectors = bert.embed(all, options);
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            write(all, vectors, buf);
            if (output == null) {
                spec.commandLine().getOut().print(buf.toString(StandardCharsets.UTF_8));
                spec.commandLine().getOut().flush();
            } else {
                AtomicFiles.writeBytes(output, buf.toByteArray());
            }
        }
        return 0;
    }

    static void write(List<String> texts, float[][] vectors, OutputStream out) throws IOException {
        JsonFactory f = new JsonFactory();
        f.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
        for (int i = 0; i < texts.size(); i++) {
            try (JsonGenerator g = f.createGenerator(out, JsonEncoding.UTF8)) {
                g.writeStartObject();
                g.writeStringField("text", texts.get(i));
                g.writeFieldName("embedding");
                g.writeStartArray();
                for (float v : vectors[i]) {
                    g.writeNumber(v);
                }
                g.writeEndArray();
                g.writeEndObject();
            }
            out.write('\n');
        }
    }

    static List<String> readLines(String input) throws IOException {
        try {
            if (input.equals("-")) {
                return new String(System.in.readAllBytes(), StandardCharsets.UTF_8).lines().toList();
            }
            Path p = Path.of(input);
            if (!Files.isRegularFile(p)) {
                throw new Bert4jException(input + ": input file not found");
            }
            return Files.readAllLines(p, StandardCharsets.UTF_8);
        } catch (MalformedInputException e) {
            throw new Bert4jException(input + ": not valid UTF-8 text", e);
        }
    }
}
