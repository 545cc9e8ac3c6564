package io.bert4j.io.onnx;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.DType;
import io.bert4j.io.HostTensor;
import io.bert4j.io.ModelFolder;
import io.bert4j.pipeline.SentenceTransformerConfig;
import io.bert4j.tokenize.BertTokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import io.bert4j.model.BertModel;
import io.bert4j.model.StateDicts;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Recovers a Hugging Face BertModel (config + weights under HF names) from a BERT ONNX graph
 * exported by torch.onnx / optimum.
 *
 * <p>Exporters keep HF names for embeddings, LayerNorm parameters and biases, but Linear weights
 * become anonymous {@code onnx::MatMul_N} initializers, stored transposed ([in, out]). They are
 * identified by the MatMul node that consumes them, whose name carries the module path
 * ({@code /encoder/layer.3/attention/self/query/MatMul} → {@code encoder.layer.3.attention.self.query.weight}).
 * What the weights cannot tell — the number of heads, the activation, the LayerNorm epsilon — is
 * read from the graph's nodes (the attention Reshape's target shape, the Erf/Tanh in the
 * intermediate block, the constant added to the variance).
 */
public final class OnnxImport {
    private OnnxImport() {
    }

    /**
     * Imports {@code onnxFile} with the tokenizer in {@code tokenizerJson} into a new Hugging Face
     * folder at {@code out} (which must not exist yet): config.json, model.safetensors, tokenizer
     * files and, when {@code st} is given, the sentence-transformers pooling config. The folder
     * appears in one rename, complete or not at all.
     */
    public static Result importFolder(Path onnxFile, Path tokenizerJson, Path out, Integer heads,
                                      SentenceTransformerConfig st) {
        if (Files.exists(out)) {
            throw new Bert4jException(out + " already exists; choose a new output folder");
        }
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new Bert4jException(tokenizerJson + ": tokenizer.json not found");
        }
        Result[] result = new Result[1];
        try (BertTokenizer tok = BertTokenizer.fromTokenizerJson(readString(tokenizerJson), tokenizerJson.toString())) {
            OnnxGraph g = OnnxGraph.read(onnxFile);
            Result r = fromGraph(g, heads, tok.padId());
            if (tok.vocabSize() > r.config().vocabSize()) {
                throw new Bert4jException(tokenizerJson + ": the tokenizer has " + tok.vocabSize()
                        + " tokens but the model's embedding table only " + r.config().vocabSize());
            }
            result[0] = r;
            ModelFolder.createAtomically(out, dir -> ModelFolder.write(dir, r.config(), r.weights(), tok, st));
        }
        return result[0];
    }

    private static String readString(Path p) {
        try {
            return Files.readString(p, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new Bert4jException(p + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** An imported model; {@code notes} say what was inferred and how. */
    public record Result(BertConfig config, Map<String, HostTensor> weights, boolean hasPooler, List<String> notes) {
    }

    private static final Pattern MATMUL = Pattern.compile("^/(?:bert/)?((?:embeddings|encoder|pooler)/.+)/(MatMul|Add)(?:_\\d+)?$");

    public static Result fromGraph(OnnxGraph g, Integer headsOverride, int padTokenId) {
        List<String> notes = new ArrayList<>();
        Map<String, HostTensor> inits = g.initializers();
        Map<String, HostTensor> named = new LinkedHashMap<>();

        // 1. Initializers that kept their HF names.
        for (Map.Entry<String, HostTensor> e : inits.entrySet()) {
            String k = e.getKey();
            if (k.startsWith(StateDicts.BASE_PREFIX)) {
                k = k.substring(StateDicts.BASE_PREFIX.length());
            }
            if (k.startsWith("embeddings.") || k.startsWith("encoder.") || k.startsWith("pooler.")) {
                named.put(StateDicts.modernName(k), e.getValue());
            }
        }
        named.remove("embeddings.position_ids");

        // 2. Anonymous Linear weights and biases, named by the node that consumes them.
        int recovered = 0;
        for (OnnxGraph.Node n : g.nodes()) {
            if (!n.opType().equals("MatMul") && !n.opType().equals("Add")) {
                continue;
            }
            Matcher m = MATMUL.matcher(n.name());
            if (!m.matches()) {
                continue;
            }
            String module = m.group(1).replace('/', '.');
            for (String in : n.inputs()) {
                HostTensor t = inits.get(in);
                if (t == null || named.containsValue(t)) {
                    continue;
                }
                if (n.opType().equals("MatMul") && t.shape().length == 2) {
                    named.put(module + ".weight", transpose2d(t));
                    recovered++;
                } else if (n.opType().equals("Add") && t.shape().length == 1 && !named.containsKey(module + ".bias")) {
                    named.put(module + ".bias", t);
                    recovered++;
                }
            }
        }
        notes.add("recovered " + recovered + " anonymous linear parameters from their MatMul/Add nodes");

        HostTensor words = need(named, "embeddings.word_embeddings.weight", g);
        HostTensor pos = need(named, "embeddings.position_embeddings.weight", g);
        HostTensor types = need(named, "embeddings.token_type_embeddings.weight", g);
        int vocab = (int) words.shape()[0];
        int hidden = (int) words.shape()[1];
        int layers = 0;
        while (named.containsKey("encoder.layer." + layers + ".attention.self.query.bias")) {
            layers++;
        }
        if (layers == 0) {
            throw new Bert4jException(g.file() + ": no encoder layers found (expected encoder.layer.0.attention.self.query.bias)");
        }
        int inter = (int) need(named, "encoder.layer.0.intermediate.dense.bias", g).shape()[0];

        int heads;
        if (headsOverride != null) {
            heads = headsOverride;
            notes.add("num_attention_heads = " + heads + " (given)");
        } else {
            heads = inferHeads(g, hidden);
            notes.add("num_attention_heads = " + heads + " (from the attention Reshape's target shape)");
        }
        String act = inferActivation(g);
        notes.add("hidden_act = " + act + " (from the intermediate block's ops)");
        double eps = inferLayerNormEps(g);
        notes.add("layer_norm_eps = " + eps + " (from the embeddings LayerNorm)");

        boolean pooler = named.containsKey("pooler.dense.weight") && named.containsKey("pooler.dense.bias");
        if (!pooler) {
            notes.add("the graph has no pooler weights; the imported model has no pooler");
        }
        BertConfig config = BertConfig.of(vocab, hidden, layers, heads, inter, (int) pos.shape()[0])
                .withTypeVocabSize((int) types.shape()[0])
                .withHiddenAct(act)
                .withLayerNormEps(eps)
                .withPadTokenId(padTokenId)
                .withArchitectures(List.of("BertModel"));

        Map<String, HostTensor> ordered = new LinkedHashMap<>();
        List<String> missing = new ArrayList<>();
        for (String name : BertModel.parameterNames(config, pooler)) {
            HostTensor t = named.get(name);
            if (t == null) {
                missing.add(name);
            } else {
                ordered.put(name, t);
            }
        }
        if (!missing.isEmpty()) {
            throw new Bert4jException(g.file() + ": could not find " + missing.size() + " BERT weight(s) in the graph: "
                    + (missing.size() > 8 ? missing.subList(0, 8) + " ..." : missing));
        }
        TreeSet<String> extra = new TreeSet<>(named.keySet());
        extra.removeAll(ordered.keySet());
        if (!extra.isEmpty()) {
            notes.add("ignored graph tensors: " + extra);
        }
        return new Result(config, ordered, pooler, notes);
    }

    private static HostTensor need(Map<String, HostTensor> named, String key, OnnxGraph g) {
        HostTensor t = named.get(key);
        if (t == null) {
            throw new Bert4jException(g.file() + ": not a BERT graph: no initializer named " + key);
        }
        return t;
    }

    static HostTensor transpose2d(HostTensor t) {
        if (t.dtype() != DType.F32) {
            throw new Bert4jException("weight " + t.dtype() + " is not float32; quantized ONNX graphs cannot be imported");
        }
        int rows = (int) t.shape()[0];
        int cols = (int) t.shape()[1];
        float[] src = t.toFloatArray();
        float[] dst = new float[src.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
        return HostTensor.ofFloats(dst, cols, rows);
    }

    /** Constant values by output name: Constant nodes and initializers. */
    private static Map<String, HostTensor> constants(OnnxGraph g) {
        Map<String, HostTensor> c = new HashMap<>(g.initializers());
        for (OnnxGraph.Node n : g.nodes()) {
            if (n.opType().equals("Constant") && n.tensorAttributes().containsKey("value") && n.outputs().size() == 1) {
                c.put(n.outputs().get(0), n.tensorAttributes().get("value"));
            }
        }
        return c;
    }

    private static long[] intValues(HostTensor t) {
        ByteBuffer b = t.data().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) t.numel();
        long[] v = new long[n];
        for (int i = 0; i < n; i++) {
            v[i] = switch (t.dtype()) {
                case I64 -> b.getLong(i * 8);
                case I32 -> b.getInt(i * 4);
                default -> throw new Bert4jException("expected an integer constant, got " + t.dtype());
            };
        }
        return v;
    }

    /** The head count: the Reshape to [batch, seq, heads, head_dim] in layer 0's self-attention. */
    static int inferHeads(OnnxGraph g, int hidden) {
        Map<String, HostTensor> consts = constants(g);
        Map<String, OnnxGraph.Node> producers = new HashMap<>();
        for (OnnxGraph.Node n : g.nodes()) {
            for (String o : n.outputs()) {
                producers.put(o, n);
            }
        }
        for (OnnxGraph.Node n : g.nodes()) {
            if (!n.opType().equals("Reshape") || !n.name().matches("^/(bert/)?encoder/layer\\.0/attention/self/Reshape(_\\d+)?$")
                    || n.inputs().size() < 2) {
                continue;
            }
            String shapeName = n.inputs().get(1);
            long[] dims = null;
            if (consts.containsKey(shapeName)) {
                dims = intValues(consts.get(shapeName));
            } else if (producers.containsKey(shapeName) && producers.get(shapeName).opType().equals("Concat")) {
                List<String> parts = producers.get(shapeName).inputs();
                if (parts.size() == 4 && consts.containsKey(parts.get(2)) && consts.containsKey(parts.get(3))) {
                    dims = new long[]{-1, -1, intValues(consts.get(parts.get(2)))[0], intValues(consts.get(parts.get(3)))[0]};
                }
            }
            if (dims != null && dims.length == 4 && dims[2] > 0 && dims[3] > 0 && dims[2] * dims[3] == hidden) {
                return (int) dims[2];
            }
        }
        throw new Bert4jException(g.file() + ": cannot tell the number of attention heads from the graph; give it with --heads");
    }

    static String inferActivation(OnnxGraph g) {
        boolean erf = false, tanh = false, relu = false, sigmoid = false, gelu = false;
        for (OnnxGraph.Node n : g.nodes()) {
            if (!n.name().matches("^/(bert/)?encoder/layer\\.0/intermediate/.*")) {
                continue;
            }
            switch (n.opType()) {
                case "Erf" -> erf = true;
                case "Tanh" -> tanh = true;
                case "Relu" -> relu = true;
                case "Sigmoid" -> sigmoid = true;
                case "Gelu" -> gelu = true;
                default -> {
                }
            }
        }
        if (erf || gelu) return "gelu";
        if (tanh) return "gelu_new";
        if (relu) return "relu";
        if (sigmoid) return "silu";
        throw new Bert4jException(g.file() + ": cannot tell the activation of the intermediate layer from the graph");
    }

    static double inferLayerNormEps(OnnxGraph g) {
        Map<String, HostTensor> consts = constants(g);
        for (OnnxGraph.Node n : g.nodes()) {
            if (!n.name().matches("^/(bert/)?embeddings/LayerNorm/.*")) {
                continue;
            }
            if (n.opType().equals("LayerNormalization") && n.floatAttributes().containsKey("epsilon")) {
                return roundEps(n.floatAttributes().get("epsilon"));
            }
            // Decomposed LayerNorm: sqrt(mean(x²) + eps); eps is the scalar added before Sqrt.
            if (n.opType().equals("Add")) {
                for (String in : n.inputs()) {
                    HostTensor c = consts.get(in);
                    if (c != null && c.numel() == 1 && c.dtype().isFloatingPoint()) {
                        float v = c.toFloatArray()[0];
                        if (v > 0 && v < 1e-3) {
                            return roundEps(v);
                        }
                    }
                }
            }
        }
        throw new Bert4jException(g.file() + ": cannot find the LayerNorm epsilon in the graph");
    }

    /** The float32 constant holds e.g. 9.999999960041972e-13; config.json should say 1e-12. */
    private static double roundEps(float v) {
        return Double.parseDouble(Float.toString(v));
    }
}
