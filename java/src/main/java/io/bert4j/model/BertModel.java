package io.bert4j.model;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import io.bert4j.kernels.BlasThreads;
import io.bert4j.kernels.KernelMode;
import io.bert4j.kernels.FusedOps;
import io.bert4j.kernels.Kernels;
import org.bytedeco.pytorch.DoubleOptional;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * BERT encoder (embeddings, encoder layers, optional pooler) on libtorch, as Hugging Face's
 * {@code BertModel}. Parameters are held by their checkpoint names
 * ({@code embeddings.word_embeddings.weight}, {@code encoder.layer.0.attention.self.query.weight},
 * ...), so loading and saving are a matter of matching keys.
 *
 * <p>A model owns its parameter tensors; {@link #close()} releases them. Forward passes are
 * safe to run from several threads at once (they only read parameters).
 *
 * <p>Dropout, as in HF's {@code BertModel}: off in eval mode (the default, bit-identical to a
 * model without dropout); after {@link #train(boolean) train(true)}, hidden dropout
 * ({@code hidden_dropout_prob}) after the embeddings LayerNorm and on the attention-output and
 * output dense results before their residual + LayerNorm, and attention-probability dropout
 * ({@code attention_probs_dropout_prob}). Randomness is model-owned and reproducible from
 * {@link #setDropoutSeed}: hidden dropout draws its masks from a private libtorch CPU generator
 * (the same masks in both kernel modes); fused attention uses the kernel's Philox dropout with
 * {@code (seed, offset)}, the offset advanced once per attention call. TORCH-mode attention
 * dropout is SDPA's {@code dropout_p}, which draws from libtorch's global generator
 * ({@code torch.manual_seed}), since SDPA takes no generator.
 */
public final class BertModel implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }


    /** Outputs of one forward pass; {@code pooled} is null when the model has no pooler. */
    public record Output(Tensor lastHiddenState, Tensor pooled) {
    }

    private final BertConfig config;
    private final Map<String, Tensor> params;
    private final boolean hasPooler;
    private final FusedQkv[] qkvCache;
    private volatile KernelMode kernels = KernelMode.TORCH;
    private boolean closed;
    private volatile boolean training;
    private volatile double hiddenDropoutP;
    private volatile double attentionDropoutP;
    private final Object rngLock = new Object();
    private long dropoutSeed = 42;
    private long attentionOffset;      // next Philox offset of the fused attention dropout
    private Generator hiddenGenerator; // hidden dropout masks; created lazily, seeded by dropoutSeed
    private volatile Map<String, Int8Linear> int8;  // module -> quantized weights; null = fp32
    // Per layer, the native int8 packs of [qkv, attention output, intermediate, output] for the
    // native encoder layer (CPUs with AVX-512 VNNI); null when int8 is off or the CPU lacks VNNI.
    private volatile Tensor[][] int8Layers;
    private volatile Map<String, Bf16Linear> bf16;  // module -> bf16 packs (AMX); null = off
    private volatile Tensor[][] bf16Layers;          // per layer, the same packs in layer order
    private final Map<String, PackedWeight> packedCache = new java.util.concurrent.ConcurrentHashMap<>();

    private BertModel(BertConfig config, Map<String, Tensor> params, boolean hasPooler) {
        this.config = config;
        this.params = params;
        this.hasPooler = hasPooler;
        this.qkvCache = new FusedQkv[config.numHiddenLayers()];
        this.hiddenDropoutP = config.hiddenDropoutProb();
        this.attentionDropoutP = config.attentionProbsDropoutProb();
    }

    /** Training mode (dropout active) or eval mode (the default: no dropout). Returns this. */
    public BertModel train(boolean on) {
        this.training = on;
        return this;
    }

    public boolean isTraining() {
        return training;
    }

    /**
     * Overrides the config's dropout probabilities (hidden_dropout_prob,
     * attention_probs_dropout_prob) for training mode, e.g. 0 to train deterministically.
     */
    public void setDropout(double hiddenP, double attentionP) {
        if (!(hiddenP >= 0 && hiddenP < 1) || !(attentionP >= 0 && attentionP < 1)) {
            throw new Bert4jException("dropout probabilities must be in [0, 1), got hidden " + hiddenP
                    + ", attention " + attentionP);
        }
        this.hiddenDropoutP = hiddenP;
        this.attentionDropoutP = attentionP;
    }

    public double hiddenDropout() {
        return hiddenDropoutP;
    }

    public double attentionDropout() {
        return attentionDropoutP;
    }

    /**
     * Restarts the model's dropout randomness from {@code seed}: the same seed and the same
     * sequence of forward passes give the same dropout masks.
     */
    public void setDropoutSeed(long seed) {
        synchronized (rngLock) {
            dropoutSeed = seed;
            attentionOffset = 0;
            if (hiddenGenerator != null) {
                hiddenGenerator.close();
                hiddenGenerator = null;
            }
        }
    }

    /** Inverted dropout with the model's generator: x * bernoulli(1 - p) / (1 - p). */
    Tensor hiddenDropout(Tensor x) { // package-private for DropoutTest
        double p = hiddenDropoutP;
        if (!training || p == 0) {
            return x;
        }
        Tensor keep;
        synchronized (rngLock) {
            if (hiddenGenerator == null) {
                hiddenGenerator = torch.createCPUGenerator(dropoutSeed);
                hiddenGenerator.retainReference();
            }
            try (org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard()) {
                keep = torch.bernoulli(torch.empty_like(x), 1.0 - p, new GeneratorOptional(hiddenGenerator)) // [.., H] of 0/1
                        .div_(new Scalar(1.0 - p));
            }
        }
        return x.mul(keep);
    }

    /** The (seed, offset) of the next fused attention dropout call. */
    private long[] nextAttentionRng() {
        synchronized (rngLock) {
            return new long[]{dropoutSeed, attentionOffset++};
        }
    }

    /**
     * Opt-in int8 inference on CPU: dynamic quantization of every encoder linear layer (the QKV
     * projection, attention output, intermediate and output dense layers). Weights are quantized
     * once here, per output channel; activations per call, per token, from their own range; the
     * products run as int8 GEMMs with exact int32 accumulation. With fused kernels on a CPU with
     * AVX-512 VNNI each encoder layer runs as one native call on bert4j's int8 kernel
     * ({@link Kernels#encoderLayerInt8}: activations asymmetric u8 over each token's [min, max]);
     * otherwise (torch kernels, {@link #setNativeLayers} false, no VNNI) op by op on libtorch's
     * FBGEMM (activations symmetric per token). Biases,
     * LayerNorm, attention, GELU and the embeddings stay float32. Applies to passes without grad
     * mode (inference); training passes use the float weights. The quantized weights are a
     * snapshot: call this again after the parameters change. {@code false} releases them.
     * {@code true} also releases the prepacked fp32 weights ({@link #prepareInference}), which
     * int8 passes do not use.
     */
    public synchronized void setInt8(boolean on) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        releaseInt8();
        if (!on) {
            return;
        }
        Tensor probe = p("embeddings.word_embeddings.weight");
        if (!probe.is_cpu() || !Kernels.hasScalarType(probe, torch.ScalarType.Float)) {
            throw new Bert4jException("int8 mode needs a float32 model on the CPU");
        }
        releaseBf16(); // one reduced precision at a time
        try (PointerScope scope = new PointerScope(); org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard()) {
            Map<String, Int8Linear> q = new LinkedHashMap<>();
            encoderLinears(q, Int8Linear::of);
            Tensor[][] layers = null;
            if (Kernels.int8Vnni()) {
                try {
                    // Packed inside this scope (freed with it if packing fails); kept once all are made.
                    layers = new Tensor[config.numHiddenLayers()][];
                    for (int i = 0; i < layers.length; i++) {
                        String pre = "encoder.layer." + i + ".";
                        String self = pre + "attention.self.";
                        layers[i] = new Tensor[]{
                            Kernels.packLinearInt8(cat(p(self + "query.weight"), p(self + "key.weight"), p(self + "value.weight"))),
                            Kernels.packLinearInt8(p(pre + "attention.output.dense.weight").contiguous()),
                            Kernels.packLinearInt8(p(pre + "intermediate.dense.weight").contiguous()),
                            Kernels.packLinearInt8(p(pre + "output.dense.weight").contiguous())};
                    }
                } catch (RuntimeException e) {
                    q.values().forEach(Int8Linear::close); // int8 stays off
                    throw e;
                }
                for (Tensor[] l : layers) {
                    for (Tensor t : l) {
                        t.retainReference();
                    }
                }
            }
            int8 = q;
            int8Layers = layers;
        }
        // int8 inference never takes the prepacked fp32 path, so packed copies (e.g. from
        // prepareInference before this call) would only hold memory; turning int8 off repacks lazily.
        releasePacked();
    }

    /**
     * Opt-in bf16 inference on CPUs with AMX (Intel Sapphire Rapids and later): every encoder
     * linear layer (the QKV projection, attention output, intermediate and output dense layers)
     * runs with its weight rounded to bf16 once here and its input rounded to bf16 per call, the
     * products summed in fp32 on AMX tiles ({@link Kernels#linearBf16}). Biases, LayerNorm,
     * attention, GELU, the embeddings and the heads stay float32. Measured on a 2-vCPU Emerald
     * Rapids VM: the GEMMs of a batch of short sentences ~4x as fast as float32, of one sentence
     * ~1.7x; embedding cosine to float32 in {@code benchmarks/RESULTS.md}.
     * Applies to passes without grad mode (inference); training passes use the float weights.
     * The packed weights are a snapshot: call this again after the parameters change.
     * {@code true} turns int8 off (one reduced precision at a time) and releases the prepacked
     * fp32 weights; {@code false} releases the bf16 ones.
     *
     * @throws Bert4jException on a CPU without AMX-BF16 (or an OS that does not grant its
     *     state), or for a model that is not float32 on the CPU
     */
    public synchronized void setBf16(boolean on) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        releaseBf16();
        if (!on) {
            return;
        }
        Tensor probe = p("embeddings.word_embeddings.weight");
        if (!probe.is_cpu() || !Kernels.hasScalarType(probe, torch.ScalarType.Float)) {
            throw new Bert4jException("bf16 mode needs a float32 model on the CPU");
        }
        if (!Kernels.bf16Amx()) {
            throw new Bert4jException("bf16 mode needs a CPU with AMX-BF16 (Intel Sapphire Rapids or later) and an "
                    + "OS that grants its tile state; this machine has none (float32 and int8 work everywhere)");
        }
        releaseInt8();
        Map<String, Bf16Linear> m = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope(); org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard()) {
            encoderLinears(m, Bf16Linear::of);
        } catch (RuntimeException e) {
            m.values().forEach(Bf16Linear::close); // bf16 stays off
            throw e;
        }
        Tensor[][] layers = new Tensor[config.numHiddenLayers()][];
        for (int i = 0; i < layers.length; i++) {
            String pre = "encoder.layer." + i + ".";
            layers[i] = new Tensor[]{m.get(pre + "attention.self.qkv").packed(),
                m.get(pre + LAYER_LINEARS[0]).packed(), m.get(pre + LAYER_LINEARS[1]).packed(),
                m.get(pre + LAYER_LINEARS[2]).packed()};
        }
        bf16 = m;
        bf16Layers = layers;
        releasePacked();
    }

    /** The encoder's linear modules after the QKV projection, in BERT4J_LAYER_* order. */
    private static final String[] LAYER_LINEARS = {"attention.output.dense", "intermediate.dense", "output.dense"};

    /**
     * Puts {@code make(weight, bias)} of every encoder linear layer into {@code out}, layer by
     * layer: the stacked QKV projection under "encoder.layer.i.attention.self.qkv", then
     * {@link #LAYER_LINEARS} under their module names. On a failure what was made so far stays in
     * {@code out} for the caller to release.
     */
    private <T> void encoderLinears(Map<String, T> out, java.util.function.BiFunction<Tensor, Tensor, T> make) {
        for (int i = 0; i < config.numHiddenLayers(); i++) {
            String pre = "encoder.layer." + i + ".";
            String self = pre + "attention.self.";
            out.put(self + "qkv", make.apply(
                    cat(p(self + "query.weight"), p(self + "key.weight"), p(self + "value.weight")),
                    cat(p(self + "query.bias"), p(self + "key.bias"), p(self + "value.bias"))));
            for (String m : LAYER_LINEARS) {
                out.put(pre + m, make.apply(p(pre + m + ".weight"), p(pre + m + ".bias")));
            }
        }
    }

    private void releaseBf16() {
        Map<String, Bf16Linear> old = bf16;
        bf16 = null;
        bf16Layers = null;
        if (old != null) {
            old.values().forEach(Bf16Linear::close);
        }
    }

    /** Whether bf16 inference is on ({@link #setBf16}). */
    public boolean isBf16() {
        return bf16 != null;
    }

    /** One linear layer's weight packed for {@link Kernels#linearBf16}, with its float32 bias. */
    private record Bf16Linear(Tensor packed, Tensor bias, long n, long k) implements ReducedLinear {
        static Bf16Linear of(Tensor w, Tensor b) {
            try (PointerScope scope = new PointerScope()) {
                Tensor wf = w.detach().contiguous();
                Bf16Linear l = new Bf16Linear(Kernels.packLinearBf16(wf), b.detach().contiguous().clone(),
                        wf.size(0), wf.size(1));
                l.packed.retainReference();
                l.bias.retainReference();
                return l;
            }
        }

        @Override
        public Tensor apply(Tensor x, boolean withBias) {
            return Kernels.linearBf16(x.contiguous(), packed, n, k, withBias ? bias : null);
        }

        @Override
        public void close() {
            packed.releaseReference();
            bias.releaseReference();
        }
    }

    /** A linear layer in a reduced precision (int8 or bf16) for inference passes. */
    private interface ReducedLinear {
        /** x [..., in] -> [..., out]; with {@code withBias} false the bias is left out. */
        Tensor apply(Tensor x, boolean withBias);

        void close();
    }

    private void releasePacked() {
        synchronized (packedCache) {
            packedCache.values().forEach(c -> c.packed().close());
            packedCache.clear();
        }
    }

    private void releaseInt8() {
        Map<String, Int8Linear> old = int8;
        Tensor[][] oldLayers = int8Layers;
        int8 = null;
        int8Layers = null;
        if (old != null) {
            old.values().forEach(Int8Linear::close);
        }
        if (oldLayers != null) {
            for (Tensor[] l : oldLayers) {
                for (Tensor t : l) {
                    t.releaseReference();
                }
            }
        }
    }

    /** Whether int8 inference is on ({@link #setInt8}). */
    public boolean isInt8() {
        return int8 != null;
    }

    /** The int8 or bf16 weights of {@code module} when this pass runs in one, else null. */
    private ReducedLinear reduced(String module) {
        if (GradMode.is_enabled()) {
            return null;
        }
        Map<String, Int8Linear> q = int8;
        if (q != null) {
            return q.get(module);
        }
        Map<String, Bf16Linear> b = bf16;
        return b == null ? null : b.get(module);
    }

    /**
     * One linear layer quantized for FBGEMM, whose API quantizes a weight per tensor: each output
     * row i is scaled to the full int8 range (r_i = max|W[i, :]| / L) and the GEMM's output column
     * i multiplied back by r_i, which makes it per-channel quantization. Activations: FBGEMM
     * quantizes them with one range per call, so each token's row is scaled to max |value| = 1
     * first and scaled back afterwards (native prologue/epilogue), which makes it per token.
     * Measured on MiniLM, 64 SST-2 sentences, embedding cosine to float32 mean / worst: per tensor
     * 0.979 / 0.933 (200 sentences), per channel 0.991 / 0.983, per channel and per token
     * 0.996 / 0.993.
     * L = 127 on CPUs with VNNI; 63 elsewhere, where the u8 x s8 pair sums (vpmaddubsw) would
     * saturate int16 with full-range weights.
     */
    private record Int8Linear(Tensor weight, Tensor colOffsets, Tensor packed, Tensor rowScale,
                              Tensor bias, Tensor zeroBias) implements ReducedLinear {
        static Int8Linear of(Tensor w, Tensor b) {
            try (PointerScope scope = new PointerScope()) {
                Tensor wf = w.detach().contiguous();
                int levels = CpuFeatures.VNNI ? 127 : 63;
                Tensor rowScale = wf.abs().amax(new long[]{1}, false).clamp_min(new Scalar(1e-12))
                        .div(new Scalar(levels));                                                 // [N]
                Tensor q = wf.div(rowScale.unsqueeze(1)).round().clamp(new ScalarOptional(new Scalar(-levels)),
                        new ScalarOptional(new Scalar(levels))).to(torch.ScalarType.Char);           // int8 [N, K]
                Tensor colOffsets = q.to(torch.ScalarType.Int).sum(new long[]{1}, false,
                        new org.bytedeco.pytorch.ScalarTypeOptional(torch.ScalarType.Int));      // int32 [N]: row sums
                Int8Linear l = new Int8Linear(q, colOffsets, torch.fbgemm_pack_quantized_matrix(q), rowScale,
                        b.detach().clone(), torch.zeros_like(b.detach()));
                for (Tensor t : l.tensors()) {
                    t.retainReference();
                }
                return l;
            }
        }

        private Tensor[] tensors() {
            return new Tensor[]{weight, colOffsets, packed, rowScale, bias, zeroBias};
        }

        @Override
        public Tensor apply(Tensor x, boolean withBias) {
            // Per-token activation ranges: FBGEMM quantizes the activation with one range per call,
            // so each row is first scaled to max |value| = 1 and scaled back after the GEMM.
            long[] outShape = Tensors.shape(x);
            outShape[outShape.length - 1] = weight.size(0);
            Tensor[] xs = io.bert4j.kernels.Kernels.rowScalePrologue(x.contiguous());          // [T, K], [T]
            Tensor y = torch.fbgemm_linear_int8_weight_fp32_activation(xs[0], weight, packed, colOffsets,
                    new Scalar(1.0), new Scalar(0), zeroBias);                                   // [T, N]
            return io.bert4j.kernels.Kernels.rowScaleEpilogue(y, xs[1], rowScale, withBias ? bias : null)
                    .view(outShape);
        }

        @Override
        public void close() {
            for (Tensor t : tensors()) {
                t.releaseReference();
            }
        }
    }

    /** CPU features read once from /proc/cpuinfo (Linux); false when unknown. */
    private static final class CpuFeatures {
        static final boolean VNNI = readFlags().stream().anyMatch(f -> f.equals("avx512_vnni") || f.equals("avx_vnni"));

        private static List<String> readFlags() {
            try {
                for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/cpuinfo"))) {
                    if (line.startsWith("flags")) {
                        return Arrays.asList(line.substring(line.indexOf(':') + 1).trim().split("\\s+"));
                    }
                }
            } catch (java.io.IOException | RuntimeException e) {
                // not Linux or not readable: assume no VNNI (the safe 7-bit weights)
            }
            return List.of();
        }
    }

    public BertConfig config() {
        return config;
    }

    public boolean hasPooler() {
        return hasPooler;
    }

    public KernelMode kernels() {
        return kernels;
    }

    public void setKernels(KernelMode mode) {
        this.kernels = mode;
    }

    /**
     * Whether fused inference may run each encoder layer as one native call (default true; see
     * {@link #setNativeLayers}).
     */
    public boolean nativeLayers() {
        return nativeLayers;
    }

    /**
     * With true (the default), fused-kernel inference (eval mode, no autograd, float32 CPU, int8
     * off, at most {@link #packedLinearMaxRows()} tokens) runs each encoder layer as a single
     * native call instead of op by op; both compute the same layer. False keeps the op-by-op
     * path, e.g. to time one against the other or when changing a layer's Java code.
     */
    public void setNativeLayers(boolean on) {
        this.nativeLayers = on;
    }

    /** How many forwards ran their encoder through the native layer (for tests). */
    long nativeEncoderCalls() {
        return nativeEncoderCalls.get();
    }

    /**
     * The largest row count (tokens in the batch) for which inference runs linear layers on
     * bert4j's prepacked kernel instead of torch.linear; 0 turns the kernel off. Defaults to the
     * system property {@code bert4j.packedLinearMaxRows}, else {@link #DEFAULT_PACKED_LINEAR_MAX_ROWS}.
     */
    public long packedLinearMaxRows() {
        return packedLinearMaxRows;
    }

    /** Sets {@link #packedLinearMaxRows()} for this model (for A/B timing, or to save memory with 0). */
    public void setPackedLinearMaxRows(long rows) {
        if (rows < 0) {
            throw new IllegalArgumentException("packedLinearMaxRows must be >= 0, got " + rows);
        }
        this.packedLinearMaxRows = rows;
    }

    /** Parameter names in Hugging Face's order, as {@code BertModel.state_dict()} lists them. */
    public static List<String> parameterNames(BertConfig c, boolean withPooler) {
        List<String> names = new ArrayList<>();
        names.add("embeddings.word_embeddings.weight");
        names.add("embeddings.position_embeddings.weight");
        names.add("embeddings.token_type_embeddings.weight");
        names.add("embeddings.LayerNorm.weight");
        names.add("embeddings.LayerNorm.bias");
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String p = "encoder.layer." + i + ".";
            for (String s : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense")) {
                names.add(p + s + ".weight");
                names.add(p + s + ".bias");
            }
            names.add(p + "attention.output.LayerNorm.weight");
            names.add(p + "attention.output.LayerNorm.bias");
            names.add(p + "intermediate.dense.weight");
            names.add(p + "intermediate.dense.bias");
            names.add(p + "output.dense.weight");
            names.add(p + "output.dense.bias");
            names.add(p + "output.LayerNorm.weight");
            names.add(p + "output.LayerNorm.bias");
        }
        if (withPooler) {
            names.add("pooler.dense.weight");
            names.add("pooler.dense.bias");
        }
        return names;
    }

    /** The shape each parameter must have under {@code c}. */
    public static long[] expectedShape(BertConfig c, String name) {
        long h = c.hiddenSize();
        if (name.equals("embeddings.word_embeddings.weight")) return new long[]{c.vocabSize(), h};
        if (name.equals("embeddings.position_embeddings.weight")) return new long[]{c.maxPositionEmbeddings(), h};
        if (name.equals("embeddings.token_type_embeddings.weight")) return new long[]{c.typeVocabSize(), h};
        if (name.endsWith("intermediate.dense.weight")) return new long[]{c.intermediateSize(), h};
        if (name.endsWith("intermediate.dense.bias")) return new long[]{c.intermediateSize()};
        if (name.endsWith("output.dense.weight") && !name.contains("attention")) return new long[]{h, c.intermediateSize()};
        if (name.endsWith(".weight") && !name.contains("LayerNorm")) return new long[]{h, h};
        return new long[]{h};
    }

    /**
     * Builds a model from a state dict whose keys are already BertModel names (see
     * {@link StateDicts#forBertModel}). Every shape is checked against the config.
     */
    public static BertModel fromStateDict(BertConfig config, Map<String, HostTensor> weights, boolean withPooler) {
        Map<String, Tensor> params = new LinkedHashMap<>();
        // Conversion temporaries die with the scope; the parameters are retained past it and
        // released by close().
        try (PointerScope scope = new PointerScope()) {
            for (String name : parameterNames(config, withPooler)) {
                HostTensor h = weights.get(name);
                if (h == null) {
                    throw new Bert4jException("missing weight " + name);
                }
                long[] want = expectedShape(config, name);
                if (!Arrays.equals(h.shape(), want)) {
                    throw new Bert4jException("weight " + name + " has shape " + Arrays.toString(h.shape())
                            + " but the config (hidden_size=" + config.hiddenSize() + ", intermediate_size="
                            + config.intermediateSize() + ", vocab_size=" + config.vocabSize()
                            + ", max_position_embeddings=" + config.maxPositionEmbeddings() + ", type_vocab_size="
                            + config.typeVocabSize() + ") requires " + Arrays.toString(want));
                }
                if (!h.dtype().isFloatingPoint()) {
                    throw new Bert4jException("weight " + name + " has dtype " + h.dtype() + "; expected a float type");
                }
                Tensor t = Tensors.toFloatTensor(h);
                t.retainReference();
                params.put(name, t);
            }
        } catch (RuntimeException e) {
            params.values().forEach(Tensor::close);
            throw e;
        }
        return new BertModel(config, params, withPooler);
    }

    /** The parameters as host tensors under their HF names (float32). */
    public Map<String, HostTensor> stateDict() {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        params.forEach((k, v) -> out.put(k, Tensors.toHost(v)));
        return out;
    }

    /** Live parameter tensors by name (for training and kernels); do not close them. */
    public Map<String, Tensor> parameters() {
        return Collections.unmodifiableMap(params);
    }

    /**
     * Makes every parameter trainable ({@code requires_grad}) or frozen. Parameters are leaves,
     * so {@code loss.backward()} accumulates into their {@code grad()}.
     */
    public void setTrainable(boolean trainable) {
        params.values().forEach(t -> t.requires_grad_(trainable));
    }

    private Tensor p(String name) {
        Tensor t = params.get(name);
        if (t == null) {
            throw new IllegalStateException("no parameter " + name);
        }
        return t;
    }

    /**
     * Forward pass.
     *
     * @param inputIds      [B, S] int64
     * @param tokenTypeIds  [B, S] int64, or null for all zeros
     * @param attentionMask [B, S] int64 (1 = token, 0 = padding), or null for no padding
     */
    public Output forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        if (inputIds.dim() != 2) {
            throw new Bert4jException("input_ids must be [batch, seq], got " + Arrays.toString(Tensors.shape(inputIds)));
        }
        long b = inputIds.size(0);
        long s = inputIds.size(1);
        if (s > config.maxPositionEmbeddings()) {
            throw new Bert4jException("sequence length " + s + " exceeds max_position_embeddings "
                    + config.maxPositionEmbeddings());
        }
        Tensor h = embeddings(inputIds, tokenTypeIds, s);                      // [B, S, H]
        // The mask in the form the attention path wants, built once for all layers.
        boolean fused = fusedAttention(h);
        Tensor mask = null;
        if (attentionMask != null) {
            Tensor attend = attentionMask.to(torch.ScalarType.Bool).view(b, 1, 1, s);   // [B, 1, 1, S], true = attend
            mask = fused
                    ? torch.zeros(new long[]{b, 1, 1, s}, Tensors.options(torch.ScalarType.Float))
                            .masked_fill(attend.logical_not(), new Scalar(Float.NEGATIVE_INFINITY))  // additive
                    : attend;
        }
        if (nativeLayers(h, b * s)) {
            long hidden = config.hiddenSize();
            h = nativeEncoder(h.reshape(b * s, hidden).contiguous(), null, 0, 0, b, s,
                    mask == null ? null : mask.view(b, s)).view(b, s, hidden);
        } else {
            for (int i = 0; i < config.numHiddenLayers(); i++) {
                h = layer(i, h, mask, fused, b, s);
            }
        }
        Tensor pooled = null;
        if (hasPooler) {
            Tensor cls = h.select(1, 0);                                        // [B, H]
            pooled = torch.linear(cls, p("pooler.dense.weight"), new TensorOptional(p("pooler.dense.bias"))).tanh();
        }
        return new Output(h, pooled);
    }

    /**
     * Outputs of {@link #forwardPacked}: lastHiddenState [T, H], the token rows of every sequence
     * one after another (no padding); pooled [N, H] (one row per sequence), or null when the model
     * has no pooler.
     */
    public record PackedOutput(Tensor lastHiddenState, Tensor pooled) {
    }

    /**
     * Whether {@link #forwardPacked} runs padding-free for activations like {@code example}: with
     * fused kernels on CPU float32 (the variable-length mode of bert4j's attention kernel). Otherwise
     * it pads internally and gives the same result at the cost of the padding.
     */
    public boolean packsWithoutPadding() {
        return kernels == KernelMode.FUSED && p("embeddings.word_embeddings.weight").is_cpu()
                && Kernels.hasScalarType(p("embeddings.word_embeddings.weight"), torch.ScalarType.Float);
    }

    /**
     * Padding-free forward pass over N sequences packed back to back: sequence i is tokens
     * {@code [start_i, start_i + lengths[i])} of the inputs, {@code start_i} the sum of the lengths
     * before it. Every linear layer runs on the [T, H] token matrix and attention runs per sequence
     * (the kernel's variable-length mode), so no work is spent on padding. Equal to
     * {@link #forward} on the padded batch at the real tokens (within float rounding), in training
     * too (dropout, gradients).
     *
     * @param inputIds     [T] int64, T = the sum of {@code lengths}
     * @param tokenTypeIds [T] int64, or null for all zeros
     * @param lengths      tokens per sequence, each in [1, max_position_embeddings]
     */
    public PackedOutput forwardPacked(Tensor inputIds, Tensor tokenTypeIds, int[] lengths) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        if (lengths == null || lengths.length == 0) {
            throw new Bert4jException("a packed batch needs at least one sequence");
        }
        long total = 0;
        int maxLen = 0;
        for (int i = 0; i < lengths.length; i++) {
            if (lengths[i] < 1) {
                throw new Bert4jException("sequence " + i + " of the packed batch has length " + lengths[i]
                        + "; every sequence needs at least one token");
            }
            if (lengths[i] > config.maxPositionEmbeddings()) {
                throw new Bert4jException("sequence " + i + " of the packed batch has " + lengths[i]
                        + " tokens, over max_position_embeddings " + config.maxPositionEmbeddings());
            }
            total += lengths[i];
            maxLen = Math.max(maxLen, lengths[i]);
        }
        if (inputIds.dim() != 1 || inputIds.size(0) != total) {
            throw new Bert4jException("packed input_ids must be [" + total + "] (the sum of the lengths), got "
                    + Arrays.toString(Tensors.shape(inputIds)));
        }
        if (tokenTypeIds != null && (tokenTypeIds.dim() != 1 || tokenTypeIds.size(0) != total)) {
            throw new Bert4jException("packed token_type_ids must be [" + total + "] like input_ids, got "
                    + Arrays.toString(Tensors.shape(tokenTypeIds)));
        }
        int n = lengths.length;
        long[] positions = new long[(int) total];
        long[] starts = new long[n];
        int[] cu = new int[n + 1];
        int t = 0;
        for (int i = 0; i < n; i++) {
            starts[i] = t;
            for (int j = 0; j < lengths[i]; j++) {
                positions[t++] = j;
            }
            cu[i + 1] = t;
        }
        if (!packsWithoutPadding()) {
            return packedViaPadding(inputIds, tokenTypeIds, lengths, maxLen, positions, starts);
        }
        Tensor posIds = Tensors.fromLongs(positions, total);
        Tensor cuSeqlens = Tensors.fromInts(cu, n + 1);                                          // int32 [N + 1]
        Tensor h = hiddenDropout(layerNorm(embeddingSum(inputIds, tokenTypeIds, posIds), "embeddings.LayerNorm")); // [T, H]
        int heads = config.numAttentionHeads();
        int d = config.headDim();
        double scale = 1.0 / Math.sqrt(d);
        final long tokens = total;
        final int longest = maxLen;
        if (nativeLayers(h, total)) {
            h = nativeEncoder(h.contiguous(), cuSeqlens, n, maxLen, 0, 0, null);
        } else {
            for (int i = 0; i < config.numHiddenLayers(); i++) {
                h = layer(i, h, qkv -> {
                    Tensor qkv4 = qkv.view(tokens, 3, heads, d);                             // [T, 3, NH, D]
                    double p = training ? attentionDropoutP : 0.0;
                    long seed = 0, offset = 0;
                    if (p > 0) {
                        long[] rng = nextAttentionRng();
                        seed = rng[0];
                        offset = rng[1];
                    }
                    return FusedOps.attentionVarlen(qkv4.select(1, 0), qkv4.select(1, 1), qkv4.select(1, 2),
                            cuSeqlens, longest, scale, p, seed, offset).reshape(tokens, (long) heads * d); // [T, H]
                });
            }
        }
        Tensor pooled = null;
        if (hasPooler) {
            Tensor cls = h.index_select(0, Tensors.fromLongs(starts, n));                 // [N, H]
            pooled = torch.linear(cls, p("pooler.dense.weight"), new TensorOptional(p("pooler.dense.bias"))).tanh();
        }
        return new PackedOutput(h, pooled);
    }

    /** {@link #forwardPacked} through the padded {@link #forward}: pad, run, gather the real tokens. */
    private PackedOutput packedViaPadding(Tensor inputIds, Tensor tokenTypeIds, int[] lengths, int maxLen,
                                          long[] positions, long[] starts) {
        int n = lengths.length;
        long total = positions.length;
        long[] flat = new long[positions.length];                // token -> row * maxLen + position
        for (int i = 0, t = 0; i < n; i++) {
            for (int j = 0; j < lengths[i]; j++, t++) {
                flat[t] = (long) i * maxLen + j;
            }
        }
        Tensor index = Tensors.fromLongs(flat, total);
        long cells = (long) n * maxLen;
        Tensor ids = torch.zeros(new long[]{cells}, Tensors.options(torch.ScalarType.Long)).index_copy(0, index, inputIds);
        Tensor types = tokenTypeIds == null ? null
                : torch.zeros(new long[]{cells}, Tensors.options(torch.ScalarType.Long)).index_copy(0, index, tokenTypeIds);
        Tensor mask = torch.zeros(new long[]{cells}, Tensors.options(torch.ScalarType.Long))
                .index_fill(0, index, new Scalar(1));
        Output out = forward(ids.view(n, maxLen), types == null ? null : types.view(n, maxLen), mask.view(n, maxLen));
        Tensor h = out.lastHiddenState().reshape(cells, config.hiddenSize()).index_select(0, index);  // [T, H]
        return new PackedOutput(h, out.pooled());
    }

    private Tensor embeddings(Tensor inputIds, Tensor tokenTypeIds, long s) {
        Tensor positions = torch.arange(new Scalar(s), Tensors.options(torch.ScalarType.Long));    // [S]
        return hiddenDropout(layerNorm(embeddingSum(inputIds, tokenTypeIds, positions), "embeddings.LayerNorm"));
    }

    /** word + position + token-type embeddings; positions broadcast against the ids' leading dims. */
    private Tensor embeddingSum(Tensor inputIds, Tensor tokenTypeIds, Tensor positions) {
        Tensor words = torch.embedding(p("embeddings.word_embeddings.weight"), inputIds);          // [..., H]
        Tensor pos = torch.embedding(p("embeddings.position_embeddings.weight"), positions);
        Tensor types = tokenTypeIds == null
                ? p("embeddings.token_type_embeddings.weight").select(0, 0)                        // [H]
                : torch.embedding(p("embeddings.token_type_embeddings.weight"), tokenTypeIds);
        return words.add(pos).add(types);
    }

    /**
     * Whether inference runs each encoder layer as one native call ({@link Kernels#encoderLayer},
     * or {@link Kernels#encoderLayerInt8} in int8 mode on a VNNI CPU): fused kernels, eval mode
     * without autograd, float32 on the CPU, int8 off or natively available, a GELU activation,
     * and at most {@link #packedLinearMaxRows()} tokens (its GEMMs are the prepacked kernel). The
     * op-by-op path computes the same thing; the native layer saves the per-op JNI crossings,
     * libtorch dispatch, allocations and thread-team wake-ups (alternated in one process: 1.44x
     * faster for a 12-token sentence, 1.10x at 128 tokens, 1.03x at 32 x 14).
     */
    private boolean nativeLayers(Tensor h, long rows) {
        return nativeLayers && kernels == KernelMode.FUSED && !training && !GradMode.is_enabled()
                && (int8 == null || int8Layers != null) && rows <= packedLinearMaxRows && h.is_cpu() && Kernels.hasScalarType(h, torch.ScalarType.Float)
                && config.hiddenAct().startsWith("gelu") && cpuFloatWeights();
    }

    /** Whether the encoder's weights are float32 on the CPU (what the packed kernel takes). */
    private boolean cpuFloatWeights() {
        Tensor w = p("encoder.layer.0.output.dense.weight");
        return w.is_cpu() && Kernels.hasScalarType(w, torch.ScalarType.Float);
    }

    /**
     * All encoder layers through {@link Kernels#encoderLayer}, in place on h [rows, H] (a fresh
     * tensor of this forward): packed sequences when {@code cuSeqlens} is given, else a padded
     * [batch, seq] layout with an additive [batch, seq] mask (or none).
     */
    private Tensor nativeEncoder(Tensor h, Tensor cuSeqlens, long numSeqs, long maxSeqlen, long batch, long seq,
                                 Tensor mask) {
        long rows = h.size(0);
        long hidden = config.hiddenSize(), inter = config.intermediateSize(), heads = config.numAttentionHeads();
        Tensor workspace = torch.empty(new long[]{Kernels.encoderLayerWorkspaceSize(rows, hidden, heads, inter)},
                Tensors.options(torch.ScalarType.Float), null);
        boolean tanh = !config.hiddenAct().equals("gelu");
        nativeEncoderCalls.incrementAndGet();
        Tensor[][] q8 = int8 != null ? int8Layers : null;
        Tensor[][] b16 = q8 == null && bf16 != null ? bf16Layers : null;
        for (int i = 0; i < config.numHiddenLayers(); i++) {
            if (b16 != null) {
                Tensor qkvBias = qkvWeights(i, "encoder.layer." + i + ".attention.self.")[1];
                Kernels.encoderLayerBf16(h, nativeLayerWeights(i, qkvBias, b16[i]), heads, inter, config.layerNormEps(),
                        tanh, cuSeqlens, numSeqs, maxSeqlen, batch, seq, mask, workspace);
            } else if (q8 != null) {
                Tensor qkvBias = qkvWeights(i, "encoder.layer." + i + ".attention.self.")[1];
                Kernels.encoderLayerInt8(h, nativeLayerWeights(i, qkvBias, q8[i]), heads, inter, config.layerNormEps(),
                        tanh, cuSeqlens, numSeqs, maxSeqlen, batch, seq, mask, workspace);
            } else {
                Kernels.encoderLayer(h, nativeLayerWeights(i), heads, inter, config.layerNormEps(), tanh,
                        cuSeqlens, numSeqs, maxSeqlen, batch, seq, mask, workspace);
            }
        }
        return h;
    }

    /** Layer i's parameters in {@code BERT4J_LAYER_*} order, linear weights packed (cached like {@link #linear}'s). */
    private Tensor[] nativeLayerWeights(int i) {
        String pre = "encoder.layer." + i + ".";
        String self = pre + "attention.self.";
        Tensor[] qkv = qkvWeights(i, self);
        Tensor ao = p(pre + "attention.output.dense.weight");
        Tensor in = p(pre + "intermediate.dense.weight");
        Tensor out = p(pre + "output.dense.weight");
        return nativeLayerWeights(i, qkv[1], new Tensor[]{
            packed(self + "qkv", qkv[0], qkvSources(self)), packed(pre + "attention.output.dense", ao, ao),
            packed(pre + "intermediate.dense", in, in), packed(pre + "output.dense", out, out)});
    }

    /**
     * Layer i's parameters in {@code BERT4J_LAYER_*} order with {@code linears} (packed QKV,
     * attention output, intermediate, output weights: fp32 or int8 packs) as its linear weights
     * and {@code qkvBias} the stacked QKV bias.
     */
    private Tensor[] nativeLayerWeights(int i, Tensor qkvBias, Tensor[] linears) {
        String pre = "encoder.layer." + i + ".";
        return new Tensor[]{
            linears[0], qkvBias,
            linears[1], p(pre + "attention.output.dense.bias"),
            p(pre + "attention.output.LayerNorm.weight"), p(pre + "attention.output.LayerNorm.bias"),
            linears[2], p(pre + "intermediate.dense.bias"),
            linears[3], p(pre + "output.dense.bias"),
            p(pre + "output.LayerNorm.weight"), p(pre + "output.LayerNorm.bias")};
    }

    private Tensor layer(int i, Tensor h, Tensor mask, boolean fused, long b, long s) {
        int heads = config.numAttentionHeads();
        int d = config.headDim();
        return layer(i, h, qkv -> {
            Tensor qkv5 = qkv.view(b, s, 3, heads, d);                                 // [B, S, 3, NH, D]
            Tensor q = qkv5.select(2, 0).transpose(1, 2);                              // [B, NH, S, D]
            Tensor k = qkv5.select(2, 1).transpose(1, 2);
            Tensor v = qkv5.select(2, 2).transpose(1, 2);
            return attention(q, k, v, mask, fused).transpose(1, 2).reshape(b, s, (long) heads * d); // [B, S, H]
        });
    }

    /**
     * One encoder layer on h [..., H] (padded [B, S, H] or packed [T, H]); {@code attend} maps the
     * QKV projection [..., 3H] to the attention context [..., H].
     */
    private Tensor layer(int i, Tensor h, java.util.function.UnaryOperator<Tensor> attend) {
        String pre = "encoder.layer." + i + ".";
        // One GEMM for the three projections.
        ReducedLinear q8 = reduced(pre + "attention.self.qkv");
        Tensor qkv;
        if (q8 != null) {
            qkv = q8.apply(h, true);
        } else {
            String self = pre + "attention.self.";
            Tensor[] wb = qkvWeights(i, self);
            qkv = linear(h, self + "qkv", wb[0], wb[1], qkvSources(self));
        }
        Tensor ctx = attend.apply(qkv);
        Tensor attnOut = layerNorm(hiddenDropout(linear(ctx, pre + "attention.output.dense")).add(h),
                pre + "attention.output.LayerNorm");
        Tensor inter = intermediate(attnOut, pre + "intermediate.dense");           // [..., I]
        Tensor out = hiddenDropout(linear(inter, pre + "output.dense")).add(attnOut);
        return layerNorm(out, pre + "output.LayerNorm");
    }

    /** Whether attention runs bert4j's kernel: fused mode on CPU float32 activations. */
    private boolean fusedAttention(Tensor activations) {
        return kernels == KernelMode.FUSED && activations.is_cpu()
                && Kernels.hasScalarType(activations, torch.ScalarType.Float);
    }

    /**
     * dropout(softmax(q kᵀ / sqrt(d) + mask)) v → [B, NH, S, D]. With fused kernels (CPU,
     * float32), bert4j's tiled attention kernel runs on the strided q/k/v views of the QKV
     * projection (no copies, no [S × S] matrix), in training too: {@link FusedOps#attention}
     * splices the native backward into autograd. Otherwise libtorch's
     * scaled_dot_product_attention. Dropout only in training mode.
     *
     * @param mask  [B, 1, 1, S]: additive float (0 / -inf) when {@code fused}, else boolean (true =
     *              attend); or null
     * @param fused {@link #fusedAttention} of the activations
     */
    private Tensor attention(Tensor q, Tensor k, Tensor v, Tensor mask, boolean fused) {
        double p = training ? attentionDropoutP : 0.0;
        if (fused) {
            long seed = 0, offset = 0;
            if (p > 0) {
                long[] rng = nextAttentionRng();
                seed = rng[0];
                offset = rng[1];
            }
            return FusedOps.attention(q, k, v, mask, 1.0 / Math.sqrt(q.size(3)), p, seed, offset);
        }
        // On CPU, libtorch's kernel calls BLAS from its own worker threads: OpenBLAS must not
        // split those calls again over its pool (BlasThreads: 20-60x slower at 512 tokens).
        try (BlasThreads.Scope blas = q.is_cpu() ? BlasThreads.singleThreaded() : null) {
            return mask == null && p == 0
                    ? torch.scaled_dot_product_attention(q, k, v)
                    : torch.scaled_dot_product_attention(q, k, v, mask == null ? new TensorOptional() : new TensorOptional(mask),
                            p, false, new DoubleOptional(), false);
        }
    }

    /**
     * The query, key and value weights stacked to [3H, H] and biases to [3H]. Without autograd the
     * stack is cached per layer and rebuilt only when a parameter changes (its version counter or
     * storage moves); with autograd it is a fresh torch.cat so gradients reach the three parameters.
     */
    private Tensor[] qkvWeights(int layer, String prefix) {
        Tensor wq = p(prefix + "query.weight"), wk = p(prefix + "key.weight"), wv = p(prefix + "value.weight");
        Tensor bq = p(prefix + "query.bias"), bk = p(prefix + "key.bias"), bv = p(prefix + "value.bias");
        if (GradMode.is_enabled()) {
            return new Tensor[]{cat(wq, wk, wv), cat(bq, bk, bv)};
        }
        long key = 17;
        for (Tensor t : new Tensor[]{wq, wk, wv, bq, bk, bv}) {
            key = key * 31 + t._version();
            key = key * 31 + t.data_ptr().address();
        }
        FusedQkv cached = qkvCache[layer];
        if (cached != null && cached.key == key) {
            return cached.tensors;
        }
        synchronized (qkvCache) {
            cached = qkvCache[layer];
            if (cached != null && cached.key == key) {
                return cached.tensors;
            }
            Tensor w, bias;
            try (PointerScope scope = new PointerScope()) {
                w = cat(wq, wk, wv);
                bias = cat(bq, bk, bv);
                w.retainReference();
                bias.retainReference();
            }
            if (cached != null) {
                // Parameters changed (training); inference running concurrently with an update is not supported.
                cached.tensors[0].close();
                cached.tensors[1].close();
            }
            qkvCache[layer] = new FusedQkv(key, new Tensor[]{w, bias});
            return qkvCache[layer].tensors;
        }
    }

    private static Tensor cat(Tensor a, Tensor b, Tensor c) {
        org.bytedeco.pytorch.TensorVector v = new org.bytedeco.pytorch.TensorVector(a, b, c);
        return torch.cat(v, 0);
    }

    private record FusedQkv(long key, Tensor[] tensors) {
    }

    private Tensor linear(Tensor x, String module) {
        ReducedLinear q8 = reduced(module);
        if (q8 != null) {
            return q8.apply(x, true);
        }
        Tensor w = p(module + ".weight");
        return linear(x, module, w, p(module + ".bias"), w);
    }

    /**
     * Row counts up to which inference runs linear layers with bert4j's prepacked kernel rather
     * than torch.linear (whose BLAS sgemm re-packs the whole weight on every call): by default
     * all of them. Measured on a 2-core AVX-512 Xeon VM with 2 threads (2026-11-29), whole
     * MiniLM forward with the kernel (and the native encoder layer it enables) vs OpenBLAS op by
     * op, alternated in one process: 1.36x at 32x40 tokens, 1.22x at 8x256, 1.07x at 8x512,
     * 1.00x at 64x64, 1.09x at 16x512. (Until the kernel read x in place and scheduled its tiles
     * dynamically it lost from ~4,096 rows, and the default was 1,024; earlier still a
     * measurement put the break-even at ~48 rows, timing the kernel right after OpenBLAS calls
     * whose workers still busy-waited on both cores.) The system property
     * {@code bert4j.packedLinearMaxRows} overrides it (0 turns the kernel off);
     * {@link #setPackedLinearMaxRows} per model.
     */
    public static final long DEFAULT_PACKED_LINEAR_MAX_ROWS = Long.getLong("bert4j.packedLinearMaxRows", Long.MAX_VALUE);

    private volatile long packedLinearMaxRows = DEFAULT_PACKED_LINEAR_MAX_ROWS;

    private volatile boolean nativeLayers = true;

    private final java.util.concurrent.atomic.AtomicLong nativeEncoderCalls = new java.util.concurrent.atomic.AtomicLong();

    /**
     * x . weight^T + bias (bias may be null). Inference (grad mode off) in fused mode on CPU
     * float32 with at most {@link #packedLinearMaxRows()} rows runs the prepacked kernel on a
     * copy of the weight packed once per {@code module} and rebuilt when any of {@code sources}
     * (the parameters the weight comes from) changes version or storage; else torch.linear.
     */
    private Tensor linear(Tensor x, String module, Tensor weight, Tensor bias, Tensor... sources) {
        long k = weight.size(1);
        if (kernels == KernelMode.FUSED && !GradMode.is_enabled() && x.is_cpu() && x.is_contiguous()
                && Kernels.hasScalarType(x, torch.ScalarType.Float) && weight.is_cpu()
                && Kernels.hasScalarType(weight, torch.ScalarType.Float)
                && k > 0 && x.numel() / k <= packedLinearMaxRows) {
            return Kernels.linearPacked(x, packed(module, weight, sources), weight.size(0), k, bias);
        }
        return bias == null ? torch.linear(x, weight) : torch.linear(x, weight, new TensorOptional(bias));
    }

    /** The packed copy of {@code weight}, cached per module and keyed like {@link #qkvWeights}. */
    private Tensor packed(String module, Tensor weight, Tensor... sources) {
        long key = 17;
        for (Tensor t : sources) {
            key = key * 31 + t._version();
            key = key * 31 + t.data_ptr().address();
        }
        PackedWeight cached = packedCache.get(module);
        if (cached != null && cached.key == key) {
            return cached.packed;
        }
        synchronized (packedCache) {
            cached = packedCache.get(module);
            if (cached != null && cached.key == key) {
                return cached.packed;
            }
            Tensor packed;
            try (PointerScope scope = new PointerScope()) {
                packed = Kernels.packLinear(weight.contiguous());
                packed.retainReference();
            }
            if (cached != null) {
                // Parameters changed (training); inference running concurrently with an update is not supported.
                cached.packed.close();
            }
            packedCache.put(module, new PackedWeight(key, packed));
            return packed;
        }
    }

    private record PackedWeight(long key, Tensor packed) {
    }

    /** The parameters the stacked QKV weight of the layer with prefix {@code self} comes from (its cache key). */
    private Tensor[] qkvSources(String self) {
        return new Tensor[]{p(self + "query.weight"), p(self + "key.weight"), p(self + "value.weight")};
    }

    /**
     * Builds now the prepacked copies of the encoder's linear weights that inference would
     * otherwise pack lazily, on the first forward that takes the prepacked path (few rows, see
     * {@link #packedLinearMaxRows()}): for MiniLM that is ~85 MB of native memory allocated and
     * packed inside some arbitrary request, making it slow and the process's resident memory jump
     * at an unpredictable moment. Servers call this once before taking requests so the cost is
     * paid at startup. Does nothing unless that path can run: fused kernels, fp32 weights on the
     * CPU, int8 off, and the row limit above 0. Call it after {@link #setKernels} and
     * {@link #setInt8}. The lazy path stays: a weight that changes afterwards (training) is
     * repacked on its next use. Safe to call again (already packed, unchanged weights are kept).
     */
    public void prepareInference() {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        if (kernels != KernelMode.FUSED || int8 != null || bf16 != null || packedLinearMaxRows <= 0 || !cpuFloatWeights()) {
            return;
        }
        // No grad, as in inference: qkvWeights then caches the stacked weight the packed copy is made from.
        try (PointerScope scope = new PointerScope(); org.bytedeco.pytorch.NoGradGuard ng = new org.bytedeco.pytorch.NoGradGuard()) {
            for (int i = 0; i < config.numHiddenLayers(); i++) {
                nativeLayerWeights(i); // packs (and caches) the layer's four linear weights
            }
        }
    }

    /** The modules with a packed weight in the cache (for tests). */
    java.util.Set<String> packedModules() {
        return java.util.Set.copyOf(packedCache.keySet());
    }

    /** The packed copy cached for {@code module}, or null (for tests: identity shows whether it was rebuilt). */
    Tensor packedWeight(String module) {
        PackedWeight w = packedCache.get(module);
        return w == null ? null : w.packed();
    }

    private Tensor layerNorm(Tensor x, String module) {
        return torch.layer_norm(x, new long[]{config.hiddenSize()}, new TensorOptional(p(module + ".weight")),
                new TensorOptional(p(module + ".bias")), config.layerNormEps(), false);
    }

    /**
     * dense + activation. With fused kernels (CPU, float32, GELU) the bias add and GELU run as
     * one native pass over the GEMM output, in training too: {@link FusedOps#biasGelu} splices
     * the native backward into autograd when grad mode is on and a parameter requires grad,
     * and is the plain native forward otherwise. Else plain libtorch ops.
     */
    private Tensor intermediate(Tensor x, String module) {
        boolean gelu = config.hiddenAct().startsWith("gelu");
        Tensor bias = p(module + ".bias");
        if (kernels == KernelMode.FUSED && gelu && x.is_cpu() && Kernels.hasScalarType(bias, torch.ScalarType.Float)) {
            ReducedLinear q8 = reduced(module);
            Tensor w = p(module + ".weight");
            Tensor y = q8 != null ? q8.apply(x, false) : linear(x, module, w, null, w); // [..., I], no bias
            // y is this call's own GEMM output: in training its buffer takes the saved gelu'.
            return FusedOps.biasGeluConsumingInput(y, bias, !config.hiddenAct().equals("gelu"));
        }
        return activation(linear(x, module));
    }

    private Tensor activation(Tensor x) {
        return activation(config.hiddenAct(), x);
    }

    /** HF's ACT2FN for the activations bert4j supports; shared with the heads (BertForPreTraining). */
    static Tensor activation(String hiddenAct, Tensor x) {
        return switch (hiddenAct) {
            case "gelu" -> torch.gelu(x);
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> torch.gelu(x, "tanh");
            case "relu" -> x.relu();
            case "silu", "swish" -> torch.silu(x);
            case "tanh" -> x.tanh();
            default -> throw new Bert4jException("unsupported hidden_act " + hiddenAct);
        };
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            params.values().forEach(Tensor::close);
            synchronized (rngLock) {
                if (hiddenGenerator != null) {
                    hiddenGenerator.close();
                    hiddenGenerator = null;
                }
            }
            releaseInt8();
            releaseBf16();
            releasePacked();
            for (FusedQkv c : qkvCache) {
                if (c != null) {
                    c.tensors()[0].close();
                    c.tensors()[1].close();
                }
            }
        }
    }
}
