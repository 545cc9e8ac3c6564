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
import org.bytedeco.pytorch.LongOptional;
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
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * BERT with its pretraining heads, as Hugging Face's {@code BertForPreTraining} (masked-LM +
 * next-sentence heads, encoder with pooler) or {@code BertForMaskedLM} (masked-LM head only,
 * encoder without pooler); {@link Head} says which.
 *
 * <p>Checkpoint keys are HF's: the encoder under {@code bert.} ({@code bert.embeddings.*},
 * {@code bert.encoder.layer.N.*}, {@code bert.pooler.*}), the masked-LM head
 * {@code cls.predictions.transform.dense.{weight,bias}},
 * {@code cls.predictions.transform.LayerNorm.{weight,bias}} and the output bias
 * {@code cls.predictions.bias} [vocab], the next-sentence head
 * {@code cls.seq_relationship.{weight,bias}} ([2, H], [2]).
 *
 * <p>The decoder of the masked-LM head is tied to the word embeddings: it <em>is</em> the
 * tensor {@code embeddings.word_embeddings.weight} of the encoder, so both uses accumulate
 * their gradients into one {@code grad()}. HF ties them too and drops the duplicates
 * ({@code cls.predictions.decoder.weight}, {@code cls.predictions.decoder.bias}, its
 * {@code _tied_weights_keys}) when it writes safetensors; bert4j writes the same key set
 * ({@link #checkpointKeys}) and, when loading, accepts the duplicates if they equal what they
 * are tied to.
 *
 * <p>Owns its parameters; {@link #close()} releases them. Tensors returned by forward/loss
 * belong to the caller's {@link PointerScope}.
 */
public final class BertForPreTraining implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }


    /** Which HF architecture: the heads present and the {@code architectures} entry written to config.json. */
    public enum Head {
        /** Masked-LM + next-sentence heads; the encoder has a pooler. */
        PRETRAINING("BertForPreTraining"),
        /** Masked-LM head only; the encoder has no pooler (HF's {@code add_pooling_layer=False}). */
        MASKED_LM("BertForMaskedLM");

        private final String architecture;

        Head(String architecture) {
            this.architecture = architecture;
        }

        public String architecture() {
            return architecture;
        }

        public boolean hasNsp() {
            return this == PRETRAINING;
        }
    }

    /**
     * One forward pass. {@code mlmLogits} [B, S, vocab] over every position (use
     * {@link #loss} for training: it projects only the labelled positions); {@code nspLogits}
     * [B, 2], null for {@link Head#MASKED_LM}; {@code lastHiddenState} [B, S, H].
     */
    public record Output(Tensor lastHiddenState, Tensor mlmLogits, Tensor nspLogits) {
    }

    /**
     * A loss and its parts. {@code loss} = {@code mlmLoss} (+ {@code nspLoss} when NSP labels
     * were given), a scalar with autograd history. {@code mlmLoss} is the cross-entropy mean
     * over the labelled positions (label != -100), or a constant 0 when there are none;
     * {@code nspLoss} is the mean over the batch, null without NSP labels. The counts are for
     * metrics: masked-LM argmax hits / labelled positions, NSP argmax hits / examples (0/0
     * without NSP labels).
     */
    public record Loss(Tensor loss, Tensor mlmLoss, Tensor nspLoss, long mlmCorrect, long mlmCount,
                       long nspCorrect, long nspCount) {
    }

    /** The label value that excludes a position from the masked-LM loss (HF / PyTorch's ignore_index). */
    public static final long IGNORE_INDEX = -100;

    static final String WORD_EMBEDDINGS = "embeddings.word_embeddings.weight";
    static final String TRANSFORM_DENSE = "cls.predictions.transform.dense";
    static final String TRANSFORM_LN = "cls.predictions.transform.LayerNorm";
    static final String MLM_BIAS = "cls.predictions.bias";
    static final String DECODER_WEIGHT = "cls.predictions.decoder.weight";
    static final String DECODER_BIAS = "cls.predictions.decoder.bias";
    static final String NSP = "cls.seq_relationship";

    private final BertConfig config;
    private final Head head;
    private final BertModel encoder;
    private final Map<String, Tensor> headParams;   // HF names, owned
    private final List<String> warnings;
    private volatile Tensor untiedDecoder;          // test seam only: see untieDecoderForTest
    private boolean closed;

    private BertForPreTraining(BertConfig config, Head head, BertModel encoder, Map<String, Tensor> headParams,
                               List<String> warnings) {
        this.config = config;
        this.head = head;
        this.encoder = encoder;
        this.headParams = headParams;
        this.warnings = List.copyOf(warnings);
    }

    // ------------------------------------------------------------------ names

    /** The head's own parameter names in HF's state_dict order (the tied decoder excluded). */
    public static List<String> headParameterNames(Head head) {
        List<String> names = new ArrayList<>(List.of(MLM_BIAS,
                TRANSFORM_DENSE + ".weight", TRANSFORM_DENSE + ".bias",
                TRANSFORM_LN + ".weight", TRANSFORM_LN + ".bias"));
        if (head.hasNsp()) {
            names.add(NSP + ".weight");
            names.add(NSP + ".bias");
        }
        return names;
    }

    /**
     * The keys bert4j writes, in HF's order: HF's state_dict of the architecture minus the
     * tied duplicates it drops when saving ({@code cls.predictions.decoder.weight},
     * {@code cls.predictions.decoder.bias}).
     */
    public static List<String> checkpointKeys(BertConfig config, Head head) {
        List<String> keys = new ArrayList<>();
        for (String n : BertModel.parameterNames(config, head.hasNsp())) {
            keys.add(StateDicts.BASE_PREFIX + n);
        }
        keys.addAll(headParameterNames(head));
        return keys;
    }

    static long[] headShape(BertConfig c, String name) {
        long h = c.hiddenSize();
        return switch (name) {
            case MLM_BIAS -> new long[]{c.vocabSize()};
            case TRANSFORM_DENSE + ".weight" -> new long[]{h, h};
            case NSP + ".weight" -> new long[]{2, h};
            case NSP + ".bias" -> new long[]{2};
            default -> new long[]{h};
        };
    }

    // ------------------------------------------------------------------ construction

    /** A new {@link Head#PRETRAINING} model initialised as HF's {@code _init_weights}. */
    public static BertForPreTraining random(BertConfig config, long seed) {
        return random(config, Head.PRETRAINING, seed);
    }

    /** A new {@link Head#MASKED_LM} model initialised as HF's {@code _init_weights}. */
    public static BertForPreTraining randomMaskedLM(BertConfig config, long seed) {
        return random(config, Head.MASKED_LM, seed);
    }

    /**
     * A model initialised as HF's {@code BertPreTrainedModel._init_weights}: Linear and
     * Embedding weights ~ Normal(0, initializer_range), biases (and {@code cls.predictions.bias})
     * 0, LayerNorm weight 1 and bias 0, the {@code pad_token_id} row of the word embeddings 0.
     * Reproducible: the same config and seed give the same weights (one libtorch CPU generator
     * drawn in {@link #checkpointKeys} order).
     */
    public static BertForPreTraining random(BertConfig config, Head head, long seed) {
        Map<String, HostTensor> checkpoint = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            Generator gen = torch.createCPUGenerator(seed);
            for (String key : checkpointKeys(config, head)) {
                String bare = key.startsWith(StateDicts.BASE_PREFIX) ? key.substring(StateDicts.BASE_PREFIX.length()) : key;
                long[] shape = key.startsWith("cls.") ? headShape(config, key) : BertModel.expectedShape(config, bare);
                Tensor t;
                if (key.contains("LayerNorm.weight")) {
                    t = torch.ones(shape, Tensors.options(torch.ScalarType.Float));
                } else if (key.endsWith(".bias")) {
                    t = torch.zeros(shape, Tensors.options(torch.ScalarType.Float));
                } else {
                    t = torch.empty(shape, Tensors.options(torch.ScalarType.Float), null);
                    t.normal_(0.0, config.initializerRange(), new GeneratorOptional(gen));
                    if (bare.equals(WORD_EMBEDDINGS)) {
                        t.select(0, config.padTokenId()).zero_();  // HF zeroes the padding_idx row
                    }
                }
                checkpoint.put(key, Tensors.toHost(t));
            }
        }
        return fromStateDict(config, checkpoint, head);
    }

    /** Loads a folder written by {@link #save} or by HF (the architecture is detected from the weights). */
    public static BertForPreTraining load(Path dir) {
        return load(dir, null);
    }

    /**
     * Loads a Hugging Face folder (config.json + weights) as the given architecture, or, when
     * {@code head} is null, as {@link Head#PRETRAINING} if the checkpoint has
     * {@code cls.seq_relationship.*} and {@link Head#MASKED_LM} otherwise. The tokenizer is not
     * loaded (see {@link BertTokenizer#load}).
     */
    public static BertForPreTraining load(Path dir, Head head) {
        if (!Files.isDirectory(dir)) {
            throw new Bert4jException(dir + ": model folder not found");
        }
        BertConfig config = BertConfig.read(dir.resolve("config.json"));
        Map<String, HostTensor> checkpoint = WeightFiles.load(dir);
        try {
            return fromStateDict(config, checkpoint, head);
        } catch (Bert4jException e) {
            throw new Bert4jException(dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Builds the model from HF checkpoint keys (see {@link #checkpointKeys}); {@code head} null
     * detects it. Accepts legacy {@code gamma}/{@code beta} names, {@code cls.predictions.bias}
     * and/or {@code cls.predictions.decoder.bias} (equal if both), and
     * {@code cls.predictions.decoder.weight} when it equals the word embeddings. Missing keys are
     * an error naming them all; keys the architecture does not use are listed in
     * {@link #warnings()}.
     */
    public static BertForPreTraining fromStateDict(BertConfig config, Map<String, HostTensor> checkpoint, Head head) {
        Map<String, HostTensor> modern = new LinkedHashMap<>();
        checkpoint.forEach((k, v) -> modern.put(StateDicts.modernName(k), v));

        if (head == null) {
            head = modern.containsKey(NSP + ".weight") ? Head.PRETRAINING : Head.MASKED_LM;
        }
        HostTensor mlmBias = modern.get(MLM_BIAS);
        HostTensor decoderBias = modern.get(DECODER_BIAS);
        if (mlmBias != null && decoderBias != null && !sameValues(mlmBias, decoderBias)) {
            throw new Bert4jException(MLM_BIAS + " and " + DECODER_BIAS + " differ; HF ties them, so a checkpoint "
                    + "with different values is not one bert4j can load");
        }
        if (mlmBias == null) {
            mlmBias = decoderBias;
        }

        StateDicts.Selection sel = StateDicts.forBertModel(modern);
        List<String> encoderNames = BertModel.parameterNames(config, head.hasNsp());
        List<String> missing = new ArrayList<>();
        for (String n : encoderNames) {
            if (!sel.weights().containsKey(n)) {
                missing.add(StateDicts.BASE_PREFIX + n);
            }
        }
        List<String> mlmHeadMissing = new ArrayList<>();
        for (String n : headParameterNames(head)) {
            boolean present = n.equals(MLM_BIAS) ? mlmBias != null : modern.containsKey(n);
            if (!present) {
                missing.add(n);
                if (n.startsWith("cls.predictions.")) {
                    mlmHeadMissing.add(n);
                }
            }
        }
        if (mlmHeadMissing.size() == 5) {
            throw new Bert4jException("the checkpoint has no masked-language-model head (cls.predictions.*: missing "
                    + mlmHeadMissing + "); it holds an encoder only (e.g. a BertModel or sentence-transformers "
                    + "model). Fill-mask and pretraining need a BertForMaskedLM or BertForPreTraining checkpoint, "
                    + "such as one written by bert4j pretrain");
        }
        if (!missing.isEmpty()) {
            throw new Bert4jException("the checkpoint is missing " + missing.size() + " weight(s) a " + head.architecture()
                    + " needs: " + missing);
        }
        HostTensor decoderWeight = modern.get(DECODER_WEIGHT);
        if (decoderWeight != null && !sameValues(decoderWeight, sel.weights().get(WORD_EMBEDDINGS))) {
            throw new Bert4jException(DECODER_WEIGHT + " differs from " + StateDicts.BASE_PREFIX + WORD_EMBEDDINGS
                    + "; bert4j ties the masked-LM decoder to the word embeddings (HF's tie_word_embeddings), "
                    + "so an untied checkpoint cannot be loaded");
        }

        List<String> unexpected = new ArrayList<>();
        List<String> headNames = headParameterNames(head);
        for (String k : sel.unexpected()) {
            String m = StateDicts.modernName(k);
            if (!headNames.contains(m) && !m.equals(DECODER_WEIGHT) && !m.equals(DECODER_BIAS)) {
                unexpected.add(k);
            }
        }
        for (String k : sel.weights().keySet()) {
            if (!encoderNames.contains(k)) {
                unexpected.add(StateDicts.BASE_PREFIX + k);
            }
        }
        List<String> warnings = new ArrayList<>();
        if (!unexpected.isEmpty()) {
            warnings.add("ignored " + unexpected.size() + " weight(s) that a " + head.architecture() + " does not use: "
                    + unexpected);
        }

        Map<String, HostTensor> encoderWeights = new LinkedHashMap<>();
        for (String n : encoderNames) {
            encoderWeights.put(n, sel.weights().get(n));
        }
        BertModel encoder = BertModel.fromStateDict(config, encoderWeights, head.hasNsp());
        Map<String, Tensor> params = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            for (String n : headNames) {
                HostTensor h = n.equals(MLM_BIAS) ? mlmBias : modern.get(n);
                long[] want = headShape(config, n);
                if (!Arrays.equals(h.shape(), want)) {
                    throw new Bert4jException("weight " + n + " has shape " + Arrays.toString(h.shape())
                            + " but the config (hidden_size=" + config.hiddenSize() + ", vocab_size="
                            + config.vocabSize() + ") requires " + Arrays.toString(want));
                }
                if (!h.dtype().isFloatingPoint()) {
                    throw new Bert4jException("weight " + n + " has dtype " + h.dtype() + "; expected a float type");
                }
                Tensor t = Tensors.toFloatTensor(h);
                t.retainReference();
                params.put(n, t);
            }
        } catch (RuntimeException e) {
            params.values().forEach(Tensor::close);
            encoder.close();
            throw e;
        }
        return new BertForPreTraining(config, head, encoder, params, warnings);
    }

    private static boolean sameValues(HostTensor a, HostTensor b) {
        return Arrays.equals(a.shape(), b.shape()) && Arrays.equals(a.toFloatArray(), b.toFloatArray());
    }

    // ------------------------------------------------------------------ saving

    /** Weights under their checkpoint keys ({@link #checkpointKeys} order), float32 host copies. */
    public Map<String, HostTensor> stateDict() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        encoder.stateDict().forEach((k, v) -> out.put(StateDicts.BASE_PREFIX + k, v));
        headParams.forEach((k, v) -> out.put(k, Tensors.toHost(v)));
        return out;
    }

    /**
     * Writes a Hugging Face folder: config.json ({@code architectures} = this head's
     * architecture, {@code model_type} bert), model.safetensors ({@link #checkpointKeys}) and,
     * when {@code tokenizer} is not null, the tokenizer files. The folder is built beside
     * {@code dir} and renamed into place; an existing model folder at {@code dir} is replaced
     * (renamed aside, then deleted), anything else there is an error.
     */
    public void save(Path dir, BertTokenizer tokenizer) {
        BertConfig cfg = config.withArchitectures(List.of(head.architecture()));
        Map<String, HostTensor> weights = stateDict();
        Consumer<Path> builder = tmp -> ModelFolder.write(tmp, cfg, weights, tokenizer, null);
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

    // ------------------------------------------------------------------ accessors

    public BertConfig config() {
        return config;
    }

    public Head head() {
        return head;
    }

    /** The encoder (its parameters are named without the {@code bert.} prefix). */
    public BertModel encoder() {
        return encoder;
    }

    /** What loading noticed but did not fail on (weights this architecture does not use). */
    public List<String> warnings() {
        return warnings;
    }

    /**
     * Every parameter once, under its checkpoint key: {@code bert.*} for the encoder (the
     * word embeddings, which are also the decoder, appear once) and the head's. Live tensors,
     * for optimizers; do not close them.
     */
    public Map<String, Tensor> parameters() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        encoder.parameters().forEach((k, v) -> out.put(StateDicts.BASE_PREFIX + k, v));
        out.putAll(headParams);
        return Collections.unmodifiableMap(out);
    }

    public void setTrainable(boolean trainable) {
        encoder.setTrainable(trainable);
        headParams.values().forEach(t -> t.requires_grad_(trainable));
    }

    /** Training mode (encoder dropout on) or eval mode; the heads have no dropout (as HF). Returns this. */
    public BertForPreTraining train(boolean on) {
        encoder.train(on);
        return this;
    }

    public void setDropout(double hiddenP, double attentionP) {
        encoder.setDropout(hiddenP, attentionP);
    }

    public void setDropoutSeed(long seed) {
        encoder.setDropoutSeed(seed);
    }

    public void setKernels(KernelMode mode) {
        encoder.setKernels(mode);
    }

    public KernelMode kernels() {
        return encoder.kernels();
    }

    // ------------------------------------------------------------------ forward

    private Tensor p(String name) {
        Tensor t = headParams.get(name);
        if (t == null) {
            throw new IllegalStateException("no parameter " + name);
        }
        return t;
    }

    private Tensor decoderWeight() {
        Tensor u = untiedDecoder;
        return u != null ? u : encoder.parameters().get(WORD_EMBEDDINGS);
    }

    /**
     * For tests only: makes the decoder a separate tensor (e.g. a copy of the word embeddings)
     * so a test can separate the decoder's gradient from the embedding lookup's; null re-ties.
     * Not owned: the caller closes it.
     */
    void untieDecoderForTest(Tensor decoder) {
        this.untiedDecoder = decoder;
    }

    /** Full forward pass: masked-LM logits at every position and (PRETRAINING) NSP logits. */
    public Output forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) {
        checkOpen();
        BertModel.Output out = encoder.forward(inputIds, tokenTypeIds, attentionMask);
        Tensor mlm = mlmLogits(out.lastHiddenState());
        Tensor nsp = head.hasNsp() ? nspLogits(out.pooled()) : null;
        return new Output(out.lastHiddenState(), mlm, nsp);
    }

    /**
     * The masked-LM head on hidden states [..., H] → logits [..., vocab]: dense, activation
     * ({@code hidden_act}), LayerNorm, then the tied decoder plus {@code cls.predictions.bias}.
     * Apply it to the rows you need (fill-mask: the [MASK] positions).
     */
    public Tensor mlmLogits(Tensor hidden) {
        checkOpen();
        Tensor t = torch.linear(hidden, p(TRANSFORM_DENSE + ".weight"), new TensorOptional(p(TRANSFORM_DENSE + ".bias")));
        t = BertModel.activation(config.hiddenAct(), t);
        t = torch.layer_norm(t, new long[]{config.hiddenSize()}, new TensorOptional(p(TRANSFORM_LN + ".weight")),
                new TensorOptional(p(TRANSFORM_LN + ".bias")), config.layerNormEps(), false);
        return torch.linear(t, decoderWeight(), new TensorOptional(p(MLM_BIAS)));
    }

    /** The next-sentence head on the pooled output [B, H] → [B, 2] (index 0 = "is next", as HF). */
    public Tensor nspLogits(Tensor pooled) {
        checkOpen();
        if (!head.hasNsp()) {
            throw new Bert4jException("a " + head.architecture() + " has no next-sentence head");
        }
        return torch.linear(pooled, p(NSP + ".weight"), new TensorOptional(p(NSP + ".bias")));
    }

    /**
     * Training loss as HF's {@code BertForPreTraining}: masked-LM cross-entropy (mean over
     * positions whose label is not {@link #IGNORE_INDEX}) + NSP cross-entropy (mean over the
     * batch). The vocabulary projection runs only on the labelled positions (gathered first),
     * which is what makes a training step affordable: the [B·S, vocab] product over every
     * position would dominate it.
     *
     * @param mlmLabels [B, S] int64 token ids, -100 where no prediction is scored
     * @param nspLabels [B] int64 (0 = B follows A, 1 = random B), or null for no NSP loss;
     *                  must be null for {@link Head#MASKED_LM}
     */
    public Loss loss(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor mlmLabels, Tensor nspLabels) {
        checkOpen();
        if (nspLabels != null && !head.hasNsp()) {
            throw new Bert4jException("NSP labels given, but a " + head.architecture() + " has no next-sentence head");
        }
        if (mlmLabels == null || !Arrays.equals(Tensors.shape(mlmLabels), Tensors.shape(inputIds))) {
            throw new Bert4jException("MLM labels must have the shape of input_ids " + Arrays.toString(Tensors.shape(inputIds))
                    + ", got " + (mlmLabels == null ? "null" : Arrays.toString(Tensors.shape(mlmLabels))));
        }
        BertModel.Output out = encoder.forward(inputIds, tokenTypeIds, attentionMask);
        long h = config.hiddenSize();
        Tensor flat = mlmLabels.to(torch.ScalarType.Long).reshape(-1);                    // [B*S]
        Tensor rows;
        Tensor targets;
        try (NoGradGuard ng = new NoGradGuard()) {
            rows = flat.ne(new Scalar(IGNORE_INDEX)).nonzero().squeeze(1);                 // [N]
            targets = flat.index_select(0, rows);                                           // [N]
        }
        long n = rows.size(0);
        Tensor mlmLoss;
        long mlmCorrect = 0;
        if (n > 0) {
            long lo = targets.min().item_long();
            long hi = targets.max().item_long();
            if (lo < 0 || hi >= config.vocabSize()) {
                throw new Bert4jException("MLM labels must be token ids in [0, " + config.vocabSize() + ") or "
                        + IGNORE_INDEX + ", got " + (lo < 0 ? lo : hi));
            }
            Tensor hidden = out.lastHiddenState().reshape(-1, h).index_select(0, rows);   // [N, H]
            Tensor logits = mlmLogits(hidden);                                            // [N, V]
            mlmLoss = torch.cross_entropy_loss(logits, targets);
            try (NoGradGuard ng = new NoGradGuard()) {
                mlmCorrect = logits.argmax(new LongOptional(1), false).eq(targets).sum().item_long();
            }
        } else {
            mlmLoss = torch.zeros(new long[]{}, Tensors.options(torch.ScalarType.Float));
        }
        Tensor nspLoss = null;
        long nspCorrect = 0;
        long nspCount = 0;
        Tensor total = mlmLoss;
        if (nspLabels != null) {
            Tensor labels = nspLabels.to(torch.ScalarType.Long).reshape(-1);              // [B]
            if (labels.size(0) != inputIds.size(0)) {
                throw new Bert4jException("NSP labels must be [" + inputIds.size(0) + "], got "
                        + Arrays.toString(Tensors.shape(nspLabels)));
            }
            if (labels.size(0) > 0 && (labels.min().item_long() < 0 || labels.max().item_long() > 1)) {
                throw new Bert4jException("NSP labels must be 0 (is next) or 1 (random)");
            }
            Tensor logits = nspLogits(out.pooled());                                      // [B, 2]
            nspLoss = torch.cross_entropy_loss(logits, labels);
            nspCount = labels.size(0);
            try (NoGradGuard ng = new NoGradGuard()) {
                nspCorrect = logits.argmax(new LongOptional(1), false).eq(labels).sum().item_long();
            }
            total = mlmLoss.add(nspLoss);
        }
        return new Loss(total, mlmLoss, nspLoss, mlmCorrect, n, nspCorrect, nspCount);
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
            headParams.values().forEach(Tensor::close);
        }
    }
}
