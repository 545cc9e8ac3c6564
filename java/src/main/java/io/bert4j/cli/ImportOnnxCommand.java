package io.bert4j.cli;

import io.bert4j.io.onnx.OnnxImport;
import io.bert4j.pipeline.Pooling;
import io.bert4j.pipeline.SentenceTransformerConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code bert4j import-onnx}: a BERT ONNX graph + tokenizer.json → a Hugging Face folder. */
@Command(name = "import-onnx", mixinStandardHelpOptions = true,
        description = "Import the weights of a BERT ONNX graph into a Hugging Face model folder "
                + "(config.json, model.safetensors, tokenizer files, sentence-transformers pooling config).")
final class ImportOnnxCommand implements Callable<Integer> {

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--onnx", required = true, paramLabel = "FILE", description = "The ONNX model (fp32).")
    Path onnx;

    @Option(names = "--tokenizer", required = true, paramLabel = "FILE", description = "Its tokenizer.json.")
    Path tokenizer;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "New output folder (must not exist).")
    Path out;

    @Option(names = "--pooling", paramLabel = "cls|mean",
            description = "Write a sentence-transformers config with this pooling (none when omitted).")
    String pooling;

    @Option(names = "--normalize", description = "The sentence-transformers config L2-normalises embeddings.")
    boolean normalize;

    @Option(names = "--max-seq-length", paramLabel = "N", defaultValue = "0",
            description = "The sentence-transformers max_seq_length to record.")
    int maxSeqLength;

    @Option(names = "--heads", paramLabel = "N", description = "Number of attention heads, when the graph does not show it.")
    Integer heads;

    @Override
    public Integer call() {
        SentenceTransformerConfig st = pooling == null ? null
                : new SentenceTransformerConfig(Pooling.parse(pooling), normalize, maxSeqLength);
        OnnxImport.Result r = OnnxImport.importFolder(onnx, tokenizer, out, heads, st);
        java.io.PrintWriter err = spec.commandLine().getErr();
        r.notes().forEach(n -> err.println("bert4j: " + n));
        err.println("bert4j: wrote " + out + " (" + r.config().numHiddenLayers() + " layers, hidden "
                + r.config().hiddenSize() + ", " + r.config().numAttentionHeads() + " heads)");
        return 0;
    }
}
