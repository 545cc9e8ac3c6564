package io.bert4j.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.io.AtomicFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A BERT configuration as Hugging Face's {@code BertConfig} writes it in config.json.
 * Immutable; build variants with the {@code with*} methods. Fields HF knows but bert4j does
 * not model (e.g. {@code transformers_version}, {@code torch_dtype}) are kept in
 * {@code extra} and written back unchanged.
 *
 * <p>The architecture-defining sizes are required when reading a file: HF would fall back to
 * BERT-base defaults and silently build a model that does not match the weights; bert4j names
 * the missing field instead.
 */
public record BertConfig(
        int vocabSize,
        int hiddenSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int intermediateSize,
        String hiddenAct,
        double hiddenDropoutProb,
        double attentionProbsDropoutProb,
        int maxPositionEmbeddings,
        int typeVocabSize,
        double initializerRange,
        double layerNormEps,
        int padTokenId,
        String positionEmbeddingType,
        Double classifierDropout,
        List<String> architectures,
        Map<Integer, String> id2label,
        String problemType,
        Map<String, JsonNode> extra) {

    public static final Set<String> SUPPORTED_ACTIVATIONS =
            Set.of("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish", "tanh");

    private static final List<String> REQUIRED = List.of(
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "max_position_embeddings");

    private static final Set<String> KNOWN = Set.of(
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
            "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id",
            "position_embedding_type", "classifier_dropout", "architectures", "id2label", "label2id",
            "problem_type", "model_type");

    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public BertConfig {
        architectures = architectures == null ? List.of() : List.copyOf(architectures);
        id2label = id2label == null ? Map.of() : java.util.Collections.unmodifiableMap(new LinkedHashMap<>(id2label));
        extra = extra == null ? Map.of() : java.util.Collections.unmodifiableMap(new LinkedHashMap<>(extra));
        validate(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                maxPositionEmbeddings, typeVocabSize, layerNormEps, padTokenId, positionEmbeddingType);
    }

    private static void validate(int vocab, int hidden, int layers, int heads, int inter, String act,
                                 int maxPos, int typeVocab, double eps, int pad, String posType) {
        positive("vocab_size", vocab);
        positive("hidden_size", hidden);
        positive("num_hidden_layers", layers);
        positive("num_attention_heads", heads);
        positive("intermediate_size", inter);
        positive("max_position_embeddings", maxPos);
        positive("type_vocab_size", typeVocab);
        if (hidden % heads != 0) {
            throw new Bert4jException("hidden_size (" + hidden + ") is not a multiple of num_attention_heads (" + heads + ")");
        }
        if (!SUPPORTED_ACTIVATIONS.contains(act)) {
            throw new Bert4jException("hidden_act \"" + act + "\" is not supported; expected one of " + SUPPORTED_ACTIVATIONS);
        }
        if (!(eps > 0)) {
            throw new Bert4jException("layer_norm_eps must be > 0, got " + eps);
        }
        if (pad < 0 || pad >= vocab) {
            throw new Bert4jException("pad_token_id " + pad + " is outside the vocabulary [0, " + vocab + ")");
        }
        if (!"absolute".equals(posType)) {
            throw new Bert4jException("position_embedding_type \"" + posType
                    + "\" is not supported; bert4j implements \"absolute\"");
        }
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new Bert4jException(name + " must be > 0, got " + v);
        }
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    /** A config with HF's defaults for everything but the sizes. */
    public static BertConfig of(int vocabSize, int hiddenSize, int numHiddenLayers, int numAttentionHeads,
                                int intermediateSize, int maxPositionEmbeddings) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize,
                "gelu", 0.1, 0.1, maxPositionEmbeddings, 2, 0.02, 1e-12, 0, "absolute", null,
                List.of(), Map.of(), null, Map.of());
    }

    /** Named presets: tiny (2×128), mini (4×256), small (4×512), medium (8×512), base (12×768), large (24×1024). */
    public static BertConfig preset(String name, int vocabSize) {
        return switch (name) {
            case "tiny" -> of(vocabSize, 128, 2, 2, 512, 512);
            case "mini" -> of(vocabSize, 256, 4, 4, 1024, 512);
            case "small" -> of(vocabSize, 512, 4, 8, 2048, 512);
            case "medium" -> of(vocabSize, 512, 8, 8, 2048, 512);
            case "base" -> of(vocabSize, 768, 12, 12, 3072, 512);
            case "large" -> of(vocabSize, 1024, 24, 16, 4096, 512);
            default -> throw new Bert4jException("unknown config preset \"" + name
                    + "\"; expected tiny, mini, small, medium, base, large or a config.json path");
        };
    }

    public BertConfig withArchitectures(List<String> archs) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                layerNormEps, padTokenId, positionEmbeddingType, classifierDropout, archs, id2label, problemType, extra);
    }

    public BertConfig withHiddenAct(String act) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, act,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                layerNormEps, padTokenId, positionEmbeddingType, classifierDropout, architectures, id2label, problemType, extra);
    }

    public BertConfig withLayerNormEps(double eps) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                eps, padTokenId, positionEmbeddingType, classifierDropout, architectures, id2label, problemType, extra);
    }

    public BertConfig withPadTokenId(int pad) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                layerNormEps, pad, positionEmbeddingType, classifierDropout, architectures, id2label, problemType, extra);
    }

    public BertConfig withTypeVocabSize(int n) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, n, initializerRange,
                layerNormEps, padTokenId, positionEmbeddingType, classifierDropout, architectures, id2label, problemType, extra);
    }

    // ---------------------------------------------------------------- labels (task models)

    /** HF's problem_type for one regression output (MSE loss). */
    public static final String REGRESSION = "regression";
    /** HF's problem_type for one class per example (cross-entropy loss). */
    public static final String SINGLE_LABEL = "single_label_classification";

    /**
     * The number of labels, derived from {@code id2label} as HF derives {@code num_labels};
     * without {@code id2label} HF's default of 2 ({@code LABEL_0}, {@code LABEL_1}).
     *
     * @throws Bert4jException if the ids are not exactly 0..n-1 or two ids share a name
     */
    public int numLabels() {
        if (id2label.isEmpty()) {
            return 2;
        }
        checkId2Label(id2label);
        return id2label.size();
    }

    /** The labels by id (0..numLabels-1), HF's generated {@code LABEL_i} names when the config has none. */
    public Map<Integer, String> labels() {
        return id2label.isEmpty() ? defaultId2Label(2) : id2label;
    }

    /** {@code label2id} as HF writes it: the inverse of {@link #labels()}, in id order. */
    public Map<String, Integer> label2id() {
        Map<String, Integer> out = new LinkedHashMap<>();
        labels().forEach((k, v) -> out.put(v, k));
        return out;
    }

    /** HF's generated names for {@code n} labels: {@code LABEL_0 .. LABEL_{n-1}}. */
    public static Map<Integer, String> defaultId2Label(int n) {
        if (n <= 0) {
            throw new Bert4jException("the number of labels must be > 0, got " + n);
        }
        Map<Integer, String> m = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            m.put(i, "LABEL_" + i);
        }
        return m;
    }

    /**
     * Checks that {@code id2label} can define a classifier: ids exactly 0..n-1 (a head row per
     * id, as HF's {@code num_labels = len(id2label)} assumes) and distinct names (else
     * {@code label2id} would lose one).
     */
    public static void checkId2Label(Map<Integer, String> id2label) {
        if (id2label == null || id2label.isEmpty()) {
            throw new Bert4jException("id2label is empty; a classifier needs at least one label");
        }
        int n = id2label.size();
        for (int i = 0; i < n; i++) {
            if (!id2label.containsKey(i)) {
                throw new Bert4jException("id2label ids must be 0.." + (n - 1) + " without gaps, got "
                        + new java.util.TreeSet<>(id2label.keySet()));
            }
        }
        Set<String> names = new java.util.HashSet<>();
        for (int i = 0; i < n; i++) {
            String name = id2label.get(i);
            if (name == null) {
                throw new Bert4jException("id2label has no name for id " + i);
            }
            if (!names.add(name)) {
                throw new Bert4jException("id2label names must be distinct, \"" + name + "\" appears twice");
            }
        }
    }

    /** This config with these labels (ids 0..n-1, in id order); HF's num_labels follows from them. */
    public BertConfig withId2Label(Map<Integer, String> labels) {
        checkId2Label(labels);
        Map<Integer, String> ordered = new LinkedHashMap<>();
        for (int i = 0; i < labels.size(); i++) {
            ordered.put(i, labels.get(i));
        }
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                layerNormEps, padTokenId, positionEmbeddingType, classifierDropout, architectures, ordered, problemType, extra);
    }

    /** This config with HF's {@code problem_type} (e.g. {@link #REGRESSION}, {@link #SINGLE_LABEL}), or null for none. */
    public BertConfig withProblemType(String type) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                layerNormEps, padTokenId, positionEmbeddingType, classifierDropout, architectures, id2label, type, extra);
    }

    /** This config with HF's {@code classifier_dropout} (null: the heads use hidden_dropout_prob). */
    public BertConfig withClassifierDropout(Double p) {
        return new BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize, hiddenAct,
                hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings, typeVocabSize, initializerRange,
                layerNormEps, padTokenId, positionEmbeddingType, p, architectures, id2label, problemType, extra);
    }

    // ---------------------------------------------------------------- reading

    public static BertConfig read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new Bert4jException(file + ": config.json not found");
        }
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new Bert4jException(file + ": not valid JSON (" + firstLine(e.getMessage()) + ")", e);
        }
        try {
            return fromJson(root);
        } catch (Bert4jException e) {
            throw new Bert4jException(file + ": " + e.getMessage(), e);
        }
    }

    public static BertConfig fromJson(JsonNode root) {
        if (root == null || !root.isObject()) {
            throw new Bert4jException("config is not a JSON object");
        }
        List<String> missing = new ArrayList<>();
        for (String f : REQUIRED) {
            if (!root.hasNonNull(f)) {
                missing.add(f);
            }
        }
        if (!missing.isEmpty()) {
            throw new Bert4jException("config is missing required field" + (missing.size() > 1 ? "s " : " ") + missing);
        }
        String modelType = text(root, "model_type", "bert");
        if (!modelType.equals("bert")) {
            throw new Bert4jException("model_type \"" + modelType + "\" is not a BERT model");
        }
        Map<Integer, String> id2label = new LinkedHashMap<>();
        JsonNode labels = root.get("id2label");
        if (labels != null && labels.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = labels.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                try {
                    id2label.put(Integer.parseInt(e.getKey()), e.getValue().asText());
                } catch (NumberFormatException ex) {
                    throw new Bert4jException("id2label key \"" + e.getKey() + "\" is not an integer");
                }
            }
        }
        List<String> archs = new ArrayList<>();
        JsonNode a = root.get("architectures");
        if (a != null && a.isArray()) {
            a.forEach(n -> archs.add(n.asText()));
        }
        Map<String, JsonNode> extra = new LinkedHashMap<>();
        root.fields().forEachRemaining(e -> {
            if (!KNOWN.contains(e.getKey())) {
                extra.put(e.getKey(), e.getValue());
            }
        });
        JsonNode cd = root.get("classifier_dropout");
        return new BertConfig(
                integer(root, "vocab_size", 0),
                integer(root, "hidden_size", 0),
                integer(root, "num_hidden_layers", 0),
                integer(root, "num_attention_heads", 0),
                integer(root, "intermediate_size", 0),
                text(root, "hidden_act", "gelu"),
                number(root, "hidden_dropout_prob", 0.1),
                number(root, "attention_probs_dropout_prob", 0.1),
                integer(root, "max_position_embeddings", 0),
                integer(root, "type_vocab_size", 2),
                number(root, "initializer_range", 0.02),
                number(root, "layer_norm_eps", 1e-12),
                integer(root, "pad_token_id", 0),
                text(root, "position_embedding_type", "absolute"),
                cd == null || cd.isNull() ? null : number(root, "classifier_dropout", 0.1),
                archs,
                id2label,
                root.hasNonNull("problem_type") ? root.get("problem_type").asText() : null,
                extra);
    }

    private static int integer(JsonNode root, String field, int dflt) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.canConvertToInt() || !(n.isIntegralNumber() || (n.isNumber() && n.asDouble() == Math.rint(n.asDouble())))) {
            throw new Bert4jException("field " + field + " must be an integer, got " + n);
        }
        return n.asInt();
    }

    private static double number(JsonNode root, String field, double dflt) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw new Bert4jException("field " + field + " must be a number, got " + n);
        }
        return n.asDouble();
    }

    private static String text(JsonNode root, String field, String dflt) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (n.getNodeType() != JsonNodeType.STRING) {
            throw new Bert4jException("field " + field + " must be a string, got " + n);
        }
        return n.asText();
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }

    // ---------------------------------------------------------------- writing

    /** The config.json HF writes for this config (keys in HF's order, unknown fields kept). */
    public ObjectNode toJson() {
        ObjectNode o = JSON.createObjectNode();
        if (!architectures.isEmpty()) {
            ArrayNode arr = o.putArray("architectures");
            architectures.forEach(arr::add);
        }
        o.put("attention_probs_dropout_prob", attentionProbsDropoutProb);
        if (classifierDropout == null) {
            o.putNull("classifier_dropout");
        } else {
            o.put("classifier_dropout", classifierDropout);
        }
        o.put("hidden_act", hiddenAct);
        o.put("hidden_dropout_prob", hiddenDropoutProb);
        o.put("hidden_size", hiddenSize);
        if (!id2label.isEmpty()) {
            ObjectNode i2l = o.putObject("id2label");
            ObjectNode l2i = JSON.createObjectNode();
            id2label.forEach((k, v) -> {
                i2l.put(Integer.toString(k), v);
                l2i.put(v, k);
            });
            o.put("initializer_range", initializerRange);
            o.put("intermediate_size", intermediateSize);
            o.set("label2id", l2i);
        } else {
            o.put("initializer_range", initializerRange);
            o.put("intermediate_size", intermediateSize);
        }
        o.put("layer_norm_eps", layerNormEps);
        o.put("max_position_embeddings", maxPositionEmbeddings);
        o.put("model_type", "bert");
        o.put("num_attention_heads", numAttentionHeads);
        o.put("num_hidden_layers", numHiddenLayers);
        o.put("pad_token_id", padTokenId);
        o.put("position_embedding_type", positionEmbeddingType);
        if (problemType != null) {
            o.put("problem_type", problemType);
        }
        o.put("type_vocab_size", typeVocabSize);
        o.put("vocab_size", vocabSize);
        extra.forEach(o::set);
        return o;
    }

    /** Writes config.json atomically. */
    public void write(Path file) {
        try {
            AtomicFiles.writeString(file, JSON.writeValueAsString(toJson()) + "\n");
        } catch (IOException e) {
            throw new Bert4jException(file + ": cannot write config: " + e.getMessage(), e);
        }
    }
}
