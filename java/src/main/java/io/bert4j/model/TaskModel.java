package io.bert4j.model;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import io.bert4j.io.ModelFolder;
import io.bert4j.io.WeightFiles;
import io.bert4j.kernels.KernelMode;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * What the fine-tuning models ({@link BertForSequenceClassification},
 * {@link BertForTokenClassification}, {@link BertForQuestionAnswering}) share: an encoder under
 * {@code bert.}, one linear head ({@code <head>.weight [rows, H]}, {@code <head>.bias [rows]}),
 * the head's dropout, loading from any HF BERT folder with HF's {@code from_pretrained} rules
 * for what is missing, and saving.
 */
final class TaskModel implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }


    /**
     * The architecture's fixed parts: its config.json name, the head module name, whether the
     * encoder has a pooler, whether HF puts dropout before the head.
     */
    record Spec(String architecture, String headName, boolean pooler, boolean headDropout) {
        String weight() {
            return headName + ".weight";
        }

        String bias() {
            return headName + ".bias";
        }
    }

    /** Separates the head dropout's random stream from the encoder's, which starts from the same seed. */
    private static final long HEAD_DROPOUT_SALT = 0x9E3779B97F4A7C15L;

    final BertConfig config;
    final Spec spec;
    final BertModel encoder;
    private final Tensor weight;   // [rows, H], owned
    private final Tensor bias;     // [rows], owned
    private final List<String> warnings;
    private final List<String> newlyInitialized;
    private volatile double headDropoutP;
    private final Object rngLock = new Object();
    private long dropoutSeed = 42;
    private Generator headGenerator;
    private boolean closed;

    private TaskModel(BertConfig config, Spec spec, BertModel encoder, Tensor weight, Tensor bias,
                      List<String> warnings, List<String> newlyInitialized) {
        this.config = config;
        this.spec = spec;
        this.encoder = encoder;
        this.weight = weight;
        this.bias = bias;
        this.warnings = List.copyOf(warnings);
        this.newlyInitialized = List.copyOf(newlyInitialized);
        this.headDropoutP = !spec.headDropout() ? 0.0
                : config.classifierDropout() != null ? config.classifierDropout() : config.hiddenDropoutProb();
    }

    // ------------------------------------------------------------------ keys

    /** HF's state_dict keys of the architecture, in its order: {@code bert.*} then the head. */
    static List<String> checkpointKeys(BertConfig config, Spec spec) {
        List<String> keys = new ArrayList<>();
        for (String n : BertModel.parameterNames(config, spec.pooler())) {
            keys.add(StateDicts.BASE_PREFIX + n);
        }
        keys.add(spec.weight());
        keys.add(spec.bias());
        return keys;
    }

    // ------------------------------------------------------------------ construction

    /** A whole new model: the encoder as HF's {@code _init_weights} (see {@link BertForPreTraining#random}), then the head. */
    static TaskModel random(BertConfig config, Spec spec, int rows, long seed) {
        Map<String, HostTensor> sd;
        try (BertForPreTraining base = BertForPreTraining.random(config,
                spec.pooler() ? BertForPreTraining.Head.PRETRAINING : BertForPreTraining.Head.MASKED_LM, seed)) {
            sd = base.stateDict();
        }
        sd.keySet().removeIf(k -> !k.startsWith(StateDicts.BASE_PREFIX));
        TaskModel loaded = fromStateDict(config, sd, spec, rows, false, false, seed);
        // Everything is new here, so there is no load report (the head is not "missing" from anything).
        return new TaskModel(config, spec, loaded.encoder, loaded.weight, loaded.bias, List.of(), List.of());
    }

    /** Reads a folder's config and weights, then {@link #fromStateDict}; errors name the folder. */
    static TaskModel load(Path dir, Spec spec, java.util.function.Function<BertConfig, BertConfig> configure,
                          java.util.function.ToIntFunction<BertConfig> rows, boolean reinitHead, boolean requireHead,
                          long seed) {
        if (!Files.isDirectory(dir)) {
            throw new Bert4jException(dir + ": model folder not found");
        }
        try {
            BertConfig config = configure.apply(BertConfig.read(dir.resolve("config.json")));
            Map<String, HostTensor> checkpoint = WeightFiles.load(dir);
            return fromStateDict(config, checkpoint, spec, rows.applyAsInt(config), reinitHead, requireHead, seed);
        } catch (Bert4jException e) {
            throw e.getMessage().startsWith(dir.toString()) ? e : new Bert4jException(dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Builds the model from any HF BERT checkpoint, as {@code from_pretrained} does: the encoder
     * from {@code bert.*} (or bare BertModel keys); weights the architecture has but the
     * checkpoint lacks (the head, the pooler of an encoder saved without one) newly initialised
     * as HF's {@code _init_weights} (weights ~ Normal(0, initializer_range), biases 0, drawn
     * from one CPU generator seeded with {@code seed}, in {@link #checkpointKeys} order). A
     * missing encoder layer is an error (that is not a checkpoint of this config). Weights the
     * architecture does not use go to {@link #warnings()}, except a pooler for a pooler-less
     * architecture, which HF ignores silently ({@code _keys_to_ignore_on_load_unexpected}).
     *
     * @param rows        the head's output size (num_labels, or 2 for question answering)
     * @param reinitHead  initialise a new head even if the checkpoint has one (e.g. of another size)
     * @param requireHead the checkpoint must hold the head (loading a fine-tuned model)
     */
    static TaskModel fromStateDict(BertConfig config, Map<String, HostTensor> checkpoint, Spec spec, int rows,
                                   boolean reinitHead, boolean requireHead, long seed) {
        Map<String, HostTensor> modern = new LinkedHashMap<>();
        checkpoint.forEach((k, v) -> modern.put(StateDicts.modernName(k), v));
        StateDicts.Selection sel = StateDicts.forBertModel(modern);
        List<String> encoderNames = BertModel.parameterNames(config, spec.pooler());
        long h = config.hiddenSize();

        List<String> missing = new ArrayList<>();
        for (String n : encoderNames) {
            if (!sel.weights().containsKey(n) && !n.startsWith("pooler.")) {
                missing.add(StateDicts.BASE_PREFIX + n);
            }
        }
        if (!missing.isEmpty()) {
            throw new Bert4jException("the checkpoint is missing " + missing.size() + " encoder weight(s) a "
                    + spec.architecture() + " needs: " + missing);
        }

        HostTensor headW = modern.get(spec.weight());
        HostTensor headB = modern.get(spec.bias());
        if (requireHead && (headW == null || headB == null)) {
            throw new Bert4jException("the checkpoint has no " + spec.headName() + " head (" + spec.weight() + ", "
                    + spec.bias() + "), so it is not a fine-tuned " + spec.architecture()
                    + "; start fine-tuning from it instead (fromPretrained)");
        }
        if (reinitHead) {
            headW = null;
            headB = null;
        }
        if (headW != null) {
            long[] s = headW.shape();
            if (s.length == 2 && s[1] == h && s[0] != rows) {
                throw new Bert4jException("the checkpoint's " + spec.weight() + " has " + s[0] + " output(s) but "
                        + rows + " are asked for (num_labels); use the checkpoint's labels, or re-initialise the head");
            }
            checkShape(spec.weight(), headW, new long[]{rows, h}, config);
        }
        if (headB != null) {
            checkShape(spec.bias(), headB, new long[]{rows}, config);
        }

        // Newly initialised weights, drawn in checkpoint-key order from one seeded generator.
        Map<String, HostTensor> encoderWeights = new LinkedHashMap<>();
        List<String> fresh = new ArrayList<>();
        try (PointerScope scope = new PointerScope()) {
            Generator gen = torch.createCPUGenerator(seed);
            for (String n : encoderNames) {
                HostTensor t = sel.weights().get(n);
                if (t == null) {
                    t = init(BertModel.expectedShape(config, n), n.endsWith(".bias"), config, gen);
                    fresh.add(StateDicts.BASE_PREFIX + n);
                }
                encoderWeights.put(n, t);
            }
            if (headW == null) {
                headW = init(new long[]{rows, h}, false, config, gen);
                fresh.add(spec.weight());
            }
            if (headB == null) {
                headB = init(new long[]{rows}, true, config, gen);
                fresh.add(spec.bias());
            }
        }

        List<String> unexpected = new ArrayList<>();
        for (String k : sel.unexpected()) {
            String m = StateDicts.modernName(k);
            if (!m.equals(spec.weight()) && !m.equals(spec.bias())) {
                unexpected.add(k);
            }
        }
        for (String k : sel.weights().keySet()) {
            if (!encoderNames.contains(k) && !(k.startsWith("pooler.") && !spec.pooler())) {
                unexpected.add(StateDicts.BASE_PREFIX + k);
            }
        }
        List<String> warnings = new ArrayList<>();
        if (!unexpected.isEmpty()) {
            warnings.add("ignored " + unexpected.size() + " weight(s) that a " + spec.architecture()
                    + " does not use: " + unexpected);
        }
        if (!fresh.isEmpty()) {
            warnings.add("some weights of " + spec.architecture() + " were not in the checkpoint and are newly "
                    + "initialized: " + fresh + "; fine-tune the model before using it for predictions");
        }

        BertModel encoder = BertModel.fromStateDict(config, encoderWeights, spec.pooler());
        Tensor w = null;
        Tensor b = null;
        try (PointerScope scope = new PointerScope()) {
            w = Tensors.toFloatTensor(headW);
            w.retainReference();
            b = Tensors.toFloatTensor(headB);
            b.retainReference();
        } catch (RuntimeException e) {
            if (w != null) w.close();
            encoder.close();
            throw e;
        }
        return new TaskModel(config, spec, encoder, w, b, warnings, fresh);
    }

    private static void checkShape(String name, HostTensor t, long[] want, BertConfig config) {
        if (!Arrays.equals(t.shape(), want)) {
            throw new Bert4jException("weight " + name + " has shape " + Arrays.toString(t.shape())
                    + " but the config (hidden_size=" + config.hiddenSize() + ") requires " + Arrays.toString(want));
        }
        if (!t.dtype().isFloatingPoint()) {
            throw new Bert4jException("weight " + name + " has dtype " + t.dtype() + "; expected a float type");
        }
    }

    /** HF's {@code _init_weights} for a Linear: weight ~ Normal(0, initializer_range), bias 0. */
    private static HostTensor init(long[] shape, boolean isBias, BertConfig config, Generator gen) {
        Tensor t;
        if (isBias) {
            t = torch.zeros(shape, Tensors.options(torch.ScalarType.Float));
        } else {
            t = torch.empty(shape, Tensors.options(torch.ScalarType.Float), null);
            t.normal_(0.0, config.initializerRange(), new GeneratorOptional(gen));
        }
        return Tensors.toHost(t);
    }

    // ------------------------------------------------------------------ saving

    Map<String, HostTensor> stateDict() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        encoder.stateDict().forEach((k, v) -> out.put(StateDicts.BASE_PREFIX + k, v));
        out.put(spec.weight(), Tensors.toHost(weight));
        out.put(spec.bias(), Tensors.toHost(bias));
        return out;
    }

    /**
     * Writes a HF folder (config.json naming the architecture, model.safetensors, tokenizer
     * files when given), built beside {@code dir} and renamed into place; an existing model
     * folder at {@code dir} is replaced, anything else there is an error.
     */
    void save(Path dir, BertConfig cfg, BertTokenizer tokenizer) {
        checkOpen();
        BertConfig written = cfg.withArchitectures(List.of(spec.architecture()));
        Map<String, HostTensor> weights = stateDict();
        java.util.function.Consumer<Path> builder = tmp -> ModelFolder.write(tmp, written, weights, tokenizer, null);
        if (!Files.exists(dir)) {
            ModelFolder.createAtomically(dir, builder);
            return;
        }
        if (!Files.isDirectory(dir) || !(Files.isRegularFile(dir.resolve("config.json")) || isEmptyDir(dir))) {
            throw new Bert4jException(dir + " exists and is not a model folder; remove it or choose another output");
        }
        Path abs = dir.toAbsolutePath();
        Path parent = abs.getParent();
        Path tmp = null;
        Path old = null;
        try {
            tmp = Files.createTempDirectory(parent, "." + abs.getFileName() + ".partial-");
            builder.accept(tmp);
            old = parent.resolve("." + abs.getFileName() + ".old-" + System.nanoTime());
            Files.move(abs, old, StandardCopyOption.ATOMIC_MOVE);
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new Bert4jException(dir + ": cannot write model folder: " + e.getMessage(), e);
        } finally {
            if (tmp != null) ModelFolder.deleteRecursivelyQuietly(tmp);
            if (old != null) ModelFolder.deleteRecursivelyQuietly(old);
        }
    }

    private static boolean isEmptyDir(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    // ------------------------------------------------------------------ state

    List<String> warnings() {
        return warnings;
    }

    List<String> newlyInitialized() {
        return newlyInitialized;
    }

    Map<String, Tensor> parameters() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        encoder.parameters().forEach((k, v) -> out.put(StateDicts.BASE_PREFIX + k, v));
        out.put(spec.weight(), weight);
        out.put(spec.bias(), bias);
        return Collections.unmodifiableMap(out);
    }

    void setTrainable(boolean trainable) {
        encoder.setTrainable(trainable);
        weight.requires_grad_(trainable);
        bias.requires_grad_(trainable);
    }

    void setDropout(double hiddenP, double attentionP, double headP) {
        if (!spec.headDropout() && headP != 0) {
            throw new Bert4jException("a " + spec.architecture() + " has no dropout before its head");
        }
        if (!(headP >= 0 && headP < 1)) {
            throw new Bert4jException("classifier dropout must be in [0, 1), got " + headP);
        }
        encoder.setDropout(hiddenP, attentionP);
        headDropoutP = headP;
    }

    double headDropout() {
        return headDropoutP;
    }

    void setDropoutSeed(long seed) {
        encoder.setDropoutSeed(seed);
        synchronized (rngLock) {
            dropoutSeed = seed;
            if (headGenerator != null) {
                headGenerator.close();
                headGenerator = null;
            }
        }
    }

    void setKernels(KernelMode mode) {
        encoder.setKernels(mode);
    }

    // ------------------------------------------------------------------ forward

    /** The head's dropout (training mode only; inverted, from the model's own generator), then its linear layer. */
    Tensor head(Tensor x) {
        checkOpen();
        return torch.linear(dropout(x), weight, new TensorOptional(bias));
    }

    private Tensor dropout(Tensor x) {
        double p = headDropoutP;
        if (!encoder.isTraining() || p == 0) {
            return x;
        }
        Tensor keep;
        synchronized (rngLock) {
            if (headGenerator == null) {
                headGenerator = torch.createCPUGenerator(dropoutSeed ^ HEAD_DROPOUT_SALT);
                headGenerator.retainReference();
            }
            try (NoGradGuard ng = new NoGradGuard()) {
                keep = torch.bernoulli(torch.empty_like(x), 1.0 - p, new GeneratorOptional(headGenerator))
                        .div_(new Scalar(1.0 - p));
            }
        }
        return x.mul(keep);
    }

    BertModel.Output encode(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) {
        checkOpen();
        return encoder.forward(inputIds, tokenTypeIds, attentionMask);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            encoder.close();
            weight.close();
            bias.close();
            synchronized (rngLock) {
                if (headGenerator != null) {
                    headGenerator.close();
                    headGenerator = null;
                }
            }
        }
    }
}
