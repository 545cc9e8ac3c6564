package io.bert4j.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.io.AtomicFiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The sentence-transformers description of a model folder: which pooling the model was trained
 * with ({@code 1_Pooling/config.json}), whether vectors are L2-normalised (a Normalize module in
 * {@code modules.json}) and the sequence length it was trained for ({@code sentence_bert_config.json}).
 *
 * @param maxSeqLength 0 when the folder does not say
 */
public record SentenceTransformerConfig(Pooling pooling, boolean normalize, int maxSeqLength) {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** The folder's sentence-transformers config, or null when it has none. */
    public static SentenceTransformerConfig read(Path dir) {
        Path modules = dir.resolve("modules.json");
        if (!Files.isRegularFile(modules)) {
            return null;
        }
        try {
            JsonNode mods = JSON.readTree(modules.toFile());
            if (!mods.isArray()) {
                throw new Bert4jException(modules + ": expected a JSON array of modules");
            }
            Pooling pooling = null;
            boolean normalize = false;
            for (JsonNode m : mods) {
                String type = m.path("type").asText("");
                String path = m.path("path").asText("");
                if (type.endsWith(".Pooling")) {
                    Path cfg = dir.resolve(path).resolve("config.json").normalize();
                    if (!cfg.startsWith(dir.normalize())) {
                        throw new Bert4jException(modules + ": module path \"" + path + "\" leaves the model folder");
                    }
                    pooling = readPooling(cfg);
                } else if (type.endsWith(".Normalize")) {
                    normalize = true;
                }
            }
            if (pooling == null) {
                return null;
            }
            int maxLen = 0;
            Path sb = dir.resolve("sentence_bert_config.json");
            if (Files.isRegularFile(sb)) {
                maxLen = JSON.readTree(sb.toFile()).path("max_seq_length").asInt(0);
            }
            return new SentenceTransformerConfig(pooling, normalize, maxLen);
        } catch (IOException e) {
            throw new Bert4jException(modules + ": cannot read sentence-transformers config: " + e.getMessage(), e);
        }
    }

    private static Pooling readPooling(Path cfg) throws IOException {
        if (!Files.isRegularFile(cfg)) {
            throw new Bert4jException(cfg + ": pooling config not found");
        }
        JsonNode c = JSON.readTree(cfg.toFile());
        if (c.path("pooling_mode_cls_token").asBoolean(false)) {
            return Pooling.CLS;
        }
        if (c.path("pooling_mode_mean_tokens").asBoolean(false)) {
            return Pooling.MEAN;
        }
        throw new Bert4jException(cfg + ": pooling mode is neither cls_token nor mean_tokens; bert4j supports those two");
    }

    /** Writes modules.json, sentence_bert_config.json, 1_Pooling/config.json (and 2_Normalize/) into {@code dir}. */
    public void write(Path dir, int hiddenSize) {
        if (pooling == Pooling.POOLER) {
            throw new Bert4jException("sentence-transformers has no pooler pooling mode");
        }
        try {
            ArrayNode mods = JSON.createArrayNode();
            mods.addObject().put("idx", 0).put("name", "0").put("path", "")
                    .put("type", "sentence_transformers.models.Transformer");
            mods.addObject().put("idx", 1).put("name", "1").put("path", "1_Pooling")
                    .put("type", "sentence_transformers.models.Pooling");
            if (normalize) {
                mods.addObject().put("idx", 2).put("name", "2").put("path", "2_Normalize")
                        .put("type", "sentence_transformers.models.Normalize");
                Files.createDirectories(dir.resolve("2_Normalize"));
            }
            AtomicFiles.writeString(dir.resolve("modules.json"), JSON.writeValueAsString(mods) + "\n");
            ObjectNode sb = JSON.createObjectNode();
            if (maxSeqLength > 0) {
                sb.put("max_seq_length", maxSeqLength);
            }
            sb.put("do_lower_case", false);
            AtomicFiles.writeString(dir.resolve("sentence_bert_config.json"), JSON.writeValueAsString(sb) + "\n");
            ObjectNode p = JSON.createObjectNode();
            p.put("word_embedding_dimension", hiddenSize);
            p.put("pooling_mode_cls_token", pooling == Pooling.CLS);
            p.put("pooling_mode_mean_tokens", pooling == Pooling.MEAN);
            p.put("pooling_mode_max_tokens", false);
            p.put("pooling_mode_mean_sqrt_len_tokens", false);
            p.put("pooling_mode_weightedmean_tokens", false);
            p.put("pooling_mode_lasttoken", false);
            p.put("include_prompt", true);
            AtomicFiles.writeString(dir.resolve("1_Pooling").resolve("config.json"), JSON.writeValueAsString(p) + "\n");
        } catch (IOException e) {
            throw new Bert4jException(dir + ": cannot write sentence-transformers config: " + e.getMessage(), e);
        }
    }
}
