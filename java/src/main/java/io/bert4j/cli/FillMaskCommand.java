package io.bert4j.cli;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.FillMask;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code bert4j fill-mask}: predictions for the [MASK] tokens of each text, as JSON lines in
 * HF's pipeline shape {@code {"score": .., "token": .., "token_str": .., "sequence": ..}}.
 * A text with one mask gives top-k lines, one object each; a text with several masks gives one
 * line per mask, each a JSON array of its top-k objects. Texts are processed in order.
 */
@Command(name = "fill-mask", mixinStandardHelpOptions = true,
        description = {"Predict the [MASK] tokens of each text; prints JSON lines {\"score\", \"token\", \"token_str\", \"sequence\"}.",
                "One mask: top-k lines, one object each. Several masks: one line per mask, a JSON array of its top-k objects.",
                "Needs a model with a masked-LM head (a BertForMaskedLM or BertForPreTraining folder, e.g. from bert4j pretrain);"
                        + " the default sentence-embedding model has none."})
final class FillMaskCommand implements Callable<Integer> {

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(arity = "1..*", paramLabel = "TEXT", description = "Texts containing [MASK].")
    List<String> texts;

    @Option(names = "--model", paramLabel = "DIR",
            description = "Hugging Face BertForMaskedLM / BertForPreTraining folder (default: " + DefaultModel.NAME
                    + ", which has no masked-LM head and so fails with an error saying so).")
    Path model;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "5", description = "Predictions per mask (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Override
    public Integer call() throws IOException {
        if (topK < 1) {
            throw new Bert4jException("--top-k must be at least 1, got " + topK);
        }
        KernelMode mode = KernelMode.parse(kernels);
        Path dir = model == null ? DefaultModel.ensure() : model;
        try (FillMask fm = FillMask.load(dir, mode)) {
            fm.model().warnings().forEach(w -> spec.commandLine().getErr().println("bert4j: note: " + w));
            // Predict everything before printing, so an error in a later text prints nothing partial.
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            for (int i = 0; i < texts.size(); i++) {
                List<List<FillMask.Prediction>> preds;
                try {
                    preds = fm.predict(texts.get(i), topK);
                } catch (Bert4jException e) {
                    throw new Bert4jException((texts.size() > 1 ? "text " + (i + 1) + ": " : "") + e.getMessage(), e);
                }
                write(preds, buf);
            }
            spec.commandLine().getOut().print(buf.toString(StandardCharsets.UTF_8));
            spec.commandLine().getOut().flush();
        }
        return 0;
    }

    static void write(List<List<FillMask.Prediction>> preds, OutputStream out) throws IOException {
        JsonFactory f = new JsonFactory();
        f.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
        if (preds.size() == 1) {
            for (FillMask.Prediction p : preds.get(0)) {
                try (JsonGenerator g = f.createGenerator(out, JsonEncoding.UTF8)) {
                    object(g, p);
                }
                out.write('\n');
            }
            return;
        }
        for (List<FillMask.Prediction> perMask : preds) {
            try (JsonGenerator g = f.createGenerator(out, JsonEncoding.UTF8)) {
                g.writeStartArray();
                for (FillMask.Prediction p : perMask) {
                    object(g, p);
                }
                g.writeEndArray();
            }
            out.write('\n');
        }
    }

    private static void object(JsonGenerator g, FillMask.Prediction p) throws IOException {
        g.writeStartObject();
        g.writeNumberField("score", p.score());
        g.writeNumberField("token", p.token());
        g.writeStringField("token_str", p.tokenStr());
        g.writeStringField("sequence", p.sequence());
        g.writeEndObject();
    }
}
