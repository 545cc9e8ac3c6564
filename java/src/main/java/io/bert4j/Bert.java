package io.bert4j;

import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import io.bert4j.io.ModelFolder;
import io.bert4j.io.WeightFiles;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertModel;
import io.bert4j.model.StateDicts;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.pipeline.Embedder;
import io.bert4j.pipeline.SentenceTransformerConfig;
import io.bert4j.tokenize.BertTokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A loaded BERT: config, weights on libtorch, tokenizer and (when the folder has one) the
 * sentence-transformers pooling config. The entry point of the Java API:
 *
 * <pre>{@code
 * try (Bert bert = Bert.loadDefault()) {
 *     float[] v = bert.embed("I like eating apples.");
 * }
 * }</pre>
 *
 * Thread-safe for inference: several threads may embed at once.
 */
public final class Bert implements AutoCloseable {
    static {
        NativeSetup.ensure(); // before anything loads libtorch
    }


    private final Path source;
    private final BertConfig config;
    private final BertModel model;
    private final BertTokenizer tokenizer;
    private final SentenceTransformerConfig sentenceConfig;
    private final List<String> warnings;
    private final Embedder embedder;

    private Bert(Path source, BertConfig config, BertModel model, BertTokenizer tokenizer,
                 SentenceTransformerConfig st, List<String> warnings) {
        this.source = source;
        this.config = config;
        this.model = model;
        this.tokenizer = tokenizer;
        this.sentenceConfig = st;
        this.warnings = List.copyOf(warnings);
        this.embedder = new Embedder(model, tokenizer, st);
    }

    /** The default model (all-MiniLM-L6-v2), imported from its Maven artifact on first use. */
    public static Bert loadDefault() {
        return load(DefaultModel.ensure());
    }

    /** Loads a Hugging Face BERT folder with the default (fused) kernels. */
    public static Bert load(Path dir) {
        return load(dir, KernelMode.FUSED);
    }

    public static Bert load(Path dir, KernelMode kernels) {
        if (!Files.isDirectory(dir)) {
            throw new Bert4jException(dir + ": model folder not found");
        }
        BertConfig config = BertConfig.read(dir.resolve("config.json"));
        Map<String, HostTensor> checkpoint = WeightFiles.load(dir);
        StateDicts.Selection sel = StateDicts.forBertModel(checkpoint);
        Map<String, HostTensor> weights = sel.weights();

        boolean hasPooler = weights.containsKey("pooler.dense.weight") && weights.containsKey("pooler.dense.bias");
        List<String> missing = new ArrayList<>();
        for (String name : BertModel.parameterNames(config, hasPooler)) {
            if (!weights.containsKey(name)) {
                missing.add(name);
            }
        }
        List<String> unexpected = new ArrayList<>(sel.unexpected());
        for (String name : weights.keySet()) {
            if (!BertModel.parameterNames(config, true).contains(name)) {
                unexpected.add(name);
            }
        }
        if (!missing.isEmpty()) {
            throw new Bert4jException(dir + ": checkpoint is missing " + missing.size() + " weight(s) the config requires: "
                    + abbreviate(missing) + (unexpected.isEmpty() ? "" : "; it has unexpected weights: " + abbreviate(unexpected)));
        }
        List<String> warnings = new ArrayList<>();
        if (!unexpected.isEmpty()) {
            warnings.add("ignored " + unexpected.size() + " weight(s) that a BertModel does not use: " + abbreviate(unexpected));
        }
        BertTokenizer tokenizer = BertTokenizer.load(dir);
        try {
            if (tokenizer.vocabSize() > config.vocabSize()) {
                throw new Bert4jException(dir + ": the tokenizer has " + tokenizer.vocabSize()
                        + " tokens but config.json says vocab_size " + config.vocabSize());
            }
            SentenceTransformerConfig st = SentenceTransformerConfig.read(dir);
            BertModel model = BertModel.fromStateDict(config, weights, hasPooler);
            model.setKernels(kernels);
            return new Bert(dir, config, model, tokenizer, st, warnings);
        } catch (RuntimeException e) {
            tokenizer.close();
            if (e instanceof Bert4jException && !e.getMessage().startsWith(dir.toString())) {
                throw new Bert4jException(dir + ": " + e.getMessage(), e);
            }
            throw e;
        }
    }

    private static String abbreviate(List<String> names) {
        return names.size() > 10 ? names.subList(0, 10) + " and " + (names.size() - 10) + " more" : names.toString();
    }

    public float[] embed(String text) {
        return embed(List.of(text), EmbedOptions.DEFAULTS)[0];
    }

    public float[][] embed(List<String> texts) {
        return embed(texts, EmbedOptions.DEFAULTS);
    }

    public float[][] embed(List<String> texts, EmbedOptions options) {
        return embedder.embed(texts, options);
    }

    /** Writes the model as a Hugging Face folder (safetensors, config.json, tokenizer, pooling config). */
    public void save(Path dir) {
        ModelFolder.write(dir, config, model.stateDict(), tokenizer, sentenceConfig);
    }

    public Path source() {
        return source;
    }

    public BertConfig config() {
        return config;
    }

    public BertModel model() {
        return model;
    }

    public BertTokenizer tokenizer() {
        return tokenizer;
    }

    public Embedder embedder() {
        return embedder;
    }

    /** The sentence-transformers config of the folder, or null when it has none. */
    public SentenceTransformerConfig sentenceConfig() {
        return sentenceConfig;
    }

    /** What loading noticed but did not fail on (weights a BertModel does not use). */
    public List<String> warnings() {
        return warnings;
    }

    @Override
    public void close() {
        model.close();
        tokenizer.close();
    }
}
