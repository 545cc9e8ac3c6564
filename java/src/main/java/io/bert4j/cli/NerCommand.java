package io.bert4j.cli;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.TokenClassifier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code bert4j ner}: named entities of each text, one JSON line per text in input order:
 * {@code {"text": .., "entities": [{"label", "start", "end", "text", "score"}]}} with
 * character offsets (UTF-16 units, as Java and JavaScript count) into the text.
 */
@Command(name = "ner", mixinStandardHelpOptions = true,
        description = {"Named-entity recognition with a token-classification model; prints one JSON line per text:",
                "{\"text\": .., \"entities\": [{\"label\", \"start\", \"end\", \"text\", \"score\"}]} (offsets are character positions in the text).",
                "Texts longer than the model's limit are split into overlapping windows, not truncated."})
final class NerCommand implements Callable<Integer> {

    /** Texts per predictBatch call: output is written (and flushed) after each. */
    private static final int CHUNK = 64;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(arity = "0..*", paramLabel = "TEXT", description = "Texts to tag.")
    List<String> texts = new ArrayList<>();

    @Option(names = "--input", paramLabel = "FILE", description = "Read texts from FILE, one per line (- for stdin).")
    String input;

    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "A BertForTokenClassification folder (e.g. from bert4j finetune ner).")
    Path model;

    @Option(names = "--aggregation", paramLabel = "none|simple|first|average|max", defaultValue = "simple",
            description = {"How tokens become entities, as HF's token-classification pipeline (default: ${DEFAULT-VALUE}):",
                    "none: one result per token, B-/I- labels kept; simple: adjacent tokens of one type grouped, score = mean;",
                    "first|average|max: each word labelled by its first token / its averaged probabilities / its best token, then grouped.",
                    "Results labelled O are left out."})
    String aggregation;

    @Option(names = "--window", paramLabel = "N",
            description = "Tokens per model call for long texts, [CLS]/[SEP] included (default: the model's limit).")
    Integer window;

    @Option(names = "--overlap", paramLabel = "N",
            description = "Tokens shared by consecutive windows of a long text (default: a quarter of the window, at most 128).")
    Integer overlap;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Override
    public Integer call() throws IOException {
        TokenClassifier.Aggregation agg = TokenClassifier.Aggregation.parse(aggregation);
        KernelMode mode = KernelMode.parse(kernels);
        List<String> all = new ArrayList<>(texts);
        if (input != null) {
            all.addAll(EmbedCommand.readLines(input));
        }
        if (all.isEmpty()) {
            throw new Bert4jException("nothing to tag: give texts as arguments or a file with --input FILE");
        }
        try (TokenClassifier tc = TokenClassifier.load(model, mode)) {
            tc.model().warnings().forEach(w -> spec.commandLine().getErr().println("bert4j: note: " + w));
            if (window != null || overlap != null) {
                int w = window != null ? window : tc.maxLength();
                int o = overlap != null ? overlap : Math.min((w - 2) / 4, 128);
                tc.setWindow(w, o);
            }
            for (int from = 0; from < all.size(); from += CHUNK) {
                List<String> chunk = all.subList(from, Math.min(from + CHUNK, all.size()));
                List<List<TokenClassifier.Entity>> result = tc.predictBatch(chunk, agg);
                ByteArrayOutputStream buf = new ByteArrayOutputStream();
                write(chunk, result, buf);
                spec.commandLine().getOut().print(buf.toString(StandardCharsets.UTF_8));
                spec.commandLine().getOut().flush();
            }
        }
        return 0;
    }

    static void write(List<String> texts, List<List<TokenClassifier.Entity>> entities, OutputStream out) throws IOException {
        JsonFactory f = new JsonFactory();
        f.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
        for (int i = 0; i < texts.size(); i++) {
            try (JsonGenerator g = f.createGenerator(out, JsonEncoding.UTF8)) {
                g.writeStartObject();
                g.writeStringField("text", texts.get(i));
                g.writeFieldName("entities");
                g.writeStartArray();
                for (TokenClassifier.Entity e : entities.get(i)) {
                    g.writeStartObject();
                    g.writeStringField("label", e.label());
                    g.writeNumberField("start", e.start());
                    g.writeNumberField("end", e.end());
                    g.writeStringField("text", e.text());
                    g.writeNumberField("score", e.score());
                    g.writeEndObject();
                }
                g.writeEndArray();
                g.writeEndObject();
            }
            out.write('\n');
        }
    }
}
