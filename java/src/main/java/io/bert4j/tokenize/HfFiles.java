package io.bert4j.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Reading and writing the Hugging Face tokenizer files of a model folder. */
final class HfFiles {
    static final String TOKENIZER_JSON = "tokenizer.json";
    static final String VOCAB_TXT = "vocab.txt";
    static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    static final String SPECIAL_TOKENS_MAP = "special_tokens_map.json";

    static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private HfFiles() {
    }

    /** tokenizer_config.json + special_tokens_map.json as written, fields null when absent. */
    record RawConfig(Boolean doLowerCase, Boolean stripAccents, boolean stripAccentsPresent,
                     Boolean tokenizeChineseChars, Integer modelMaxLength, Boolean cleanUp,
                     Map<String, String> specialTokens) {

        TokenizerSettings resolve(String defaultUnk) {
            return new TokenizerSettings(
                    doLowerCase == null || doLowerCase,
                    stripAccents,
                    tokenizeChineseChars == null || tokenizeChineseChars,
                    modelMaxLength == null ? 0 : modelMaxLength,
                    cleanUp == null || cleanUp,
                    specialTokens.getOrDefault("unk_token", defaultUnk),
                    specialTokens.getOrDefault("sep_token", "[SEP]"),
                    specialTokens.getOrDefault("pad_token", "[PAD]"),
                    specialTokens.getOrDefault("cls_token", "[CLS]"),
                    specialTokens.getOrDefault("mask_token", "[MASK]"));
        }
    }

    static JsonNode readJson(Path file) {
        try {
            JsonNode node = JSON.readTree(Files.readString(file, StandardCharsets.UTF_8));
            if (node == null || !node.isObject()) {
                throw new Bert4jException(file + ": expected a JSON object");
            }
            return node;
        } catch (IOException e) {
            throw new Bert4jException(file + ": not readable as JSON: " + e.getMessage(), e);
        }
    }

    static RawConfig readConfig(Path dir) {
        Map<String, String> specials = new LinkedHashMap<>();
        Boolean lower = null, strip = null, chinese = null, cleanUp = null;
        boolean stripPresent = false;
        Integer maxLen = null;
        Path cfgFile = dir.resolve(TOKENIZER_CONFIG);
        if (Files.isRegularFile(cfgFile)) {
            JsonNode cfg = readJson(cfgFile);
            lower = bool(cfg, "do_lower_case", cfgFile);
            stripPresent = cfg.has("strip_accents");
            strip = bool(cfg, "strip_accents", cfgFile);
            chinese = bool(cfg, "tokenize_chinese_chars", cfgFile);
            cleanUp = bool(cfg, "clean_up_tokenization_spaces", cfgFile);
            maxLen = modelMaxLength(cfg.get("model_max_length"), cfgFile);
            readSpecials(cfg, specials, cfgFile);
        }
        // HF from_pretrained: special_tokens_map.json overrides tokenizer_config.json.
        Path mapFile = dir.resolve(SPECIAL_TOKENS_MAP);
        if (Files.isRegularFile(mapFile)) {
            readSpecials(readJson(mapFile), specials, mapFile);
        }
        return new RawConfig(lower, strip, stripPresent, chinese, maxLen, cleanUp, specials);
    }

    private static Boolean bool(JsonNode cfg, String key, Path file) {
        JsonNode v = cfg.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isBoolean()) {
            throw new Bert4jException(file + ": \"" + key + "\" must be true, false or null, got " + v);
        }
        return v.booleanValue();
    }

    /** HF writes int(1e30) for "no limit": that and anything past int range mean unset. */
    private static Integer modelMaxLength(JsonNode v, Path file) {
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isNumber()) {
            throw new Bert4jException(file + ": \"model_max_length\" must be a number, got " + v);
        }
        BigInteger n = v.bigIntegerValue();
        if (n.signum() <= 0) {
            throw new Bert4jException(file + ": \"model_max_length\" must be positive, got " + v);
        }
        return n.bitLength() > 31 ? null : n.intValue();
    }

    private static void readSpecials(JsonNode cfg, Map<String, String> out, Path file) {
        for (String key : List.of("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")) {
            JsonNode v = cfg.get(key);
            if (v == null || v.isNull()) {
                continue;
            }
            // A plain string, or an AddedToken object {"content": ..., "lstrip": ...}.
            JsonNode content = v.isObject() ? v.get("content") : v;
            if (content == null || !content.isTextual()) {
                throw new Bert4jException(file + ": \"" + key + "\" must be a string or {\"content\": string}, got " + v);
            }
            out.put(key, content.textValue());
        }
    }

    /**
     * vocab.txt as HF's BertTokenizer reads it: one token per line, line number = id;
     * a token seen twice keeps its last line number (HF's dict assignment).
     */
    static LinkedHashMap<String, Integer> readVocabTxt(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new Bert4jException(file + ": cannot read vocabulary (UTF-8 text, one token per line): "
                    + e.getMessage(), e);
        }
        if (lines.isEmpty()) {
            throw new Bert4jException(file + ": vocabulary is empty");
        }
        if (!lines.get(0).isEmpty() && lines.get(0).charAt(0) == '\uFEFF') {
            lines.set(0, lines.get(0).substring(1));
        }
        LinkedHashMap<String, Integer> vocab = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            vocab.put(lines.get(i), i);
        }
        return vocab;
    }

    /**
     * The tokenizer.json HF's BertTokenizerFast conversion writes for a WordPiece vocab:
     * BertNormalizer, BertPreTokenizer, WordPiece model ("##", 100 chars per word),
     * TemplateProcessing [CLS] $A [SEP] / [CLS] $A:0 [SEP]:0 $B:1 [SEP]:1, WordPiece decoder.
     * Special tokens missing from the vocab are appended after it, as HF adds them.
     */
    static ObjectNode bertTokenizerJson(LinkedHashMap<String, Integer> vocab, TokenizerSettings s) {
        int nextId = vocab.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        LinkedHashMap<String, Integer> specialIds = new LinkedHashMap<>();
        // HF's SPECIAL_TOKENS_ATTRIBUTES order decides the ids of appended tokens.
        for (String tok : List.of(s.unkToken(), s.sepToken(), s.padToken(), s.clsToken(), s.maskToken())) {
            if (specialIds.containsKey(tok)) {
                continue;
            }
            Integer id = vocab.get(tok);
            specialIds.put(tok, id != null ? id : nextId++);
        }

        ObjectNode root = NODES.objectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        specialIds.entrySet().stream().sorted(Map.Entry.comparingByValue()).forEach(e -> {
            ObjectNode t = added.addObject();
            t.put("id", e.getValue());
            t.put("content", e.getKey());
            t.put("single_word", false);
            t.put("lstrip", false);
            t.put("rstrip", false);
            t.put("normalized", false);
            t.put("special", true);
        });

        ObjectNode norm = root.putObject("normalizer");
        norm.put("type", "BertNormalizer");
        norm.put("clean_text", true);
        norm.put("handle_chinese_chars", s.tokenizeChineseChars());
        if (s.stripAccents() == null) {
            norm.putNull("strip_accents");
        } else {
            norm.put("strip_accents", s.stripAccents());
        }
        norm.put("lowercase", s.doLowerCase());

        root.putObject("pre_tokenizer").put("type", "BertPreTokenizer");

        String cls = s.clsToken(), sep = s.sepToken();
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        special(single, cls, 0);
        sequence(single, "A", 0);
        special(single, sep, 0);
        ArrayNode pair = post.putArray("pair");
        special(pair, cls, 0);
        sequence(pair, "A", 0);
        special(pair, sep, 0);
        sequence(pair, "B", 1);
        special(pair, sep, 1);
        ObjectNode specials = post.putObject("special_tokens");
        for (String tok : new String[] {cls, sep}) {
            ObjectNode t = specials.putObject(tok);
            t.put("id", tok);
            t.putArray("ids").add(specialIds.get(tok));
            t.putArray("tokens").add(tok);
        }

        ObjectNode dec = root.putObject("decoder");
        dec.put("type", "WordPiece");
        dec.put("prefix", "##");
        dec.put("cleanup", true);

        ObjectNode model = root.putObject("model");
        model.put("type", "WordPiece");
        model.put("unk_token", s.unkToken());
        model.put("continuing_subword_prefix", "##");
        model.put("max_input_chars_per_word", 100);
        ObjectNode v = model.putObject("vocab");
        vocab.entrySet().stream().sorted(Map.Entry.comparingByValue())
                .forEach(e -> v.put(e.getKey(), e.getValue()));
        return root;
    }

    private static void special(ArrayNode template, String token, int typeId) {
        ObjectNode t = template.addObject().putObject("SpecialToken");
        t.put("id", token);
        t.put("type_id", typeId);
    }

    private static void sequence(ArrayNode template, String id, int typeId) {
        ObjectNode t = template.addObject().putObject("Sequence");
        t.put("id", id);
        t.put("type_id", typeId);
    }

    /** token -> id of the model vocabulary (WordPiece/WordLevel/BPE map, Unigram list). */
    static LinkedHashMap<String, Integer> modelVocab(JsonNode root, String file) {
        JsonNode model = root.get("model");
        JsonNode vocab = model == null ? null : model.get("vocab");
        LinkedHashMap<String, Integer> out = new LinkedHashMap<>();
        if (vocab != null && vocab.isObject()) {
            vocab.fields().forEachRemaining(e -> {
                if (!e.getValue().canConvertToInt()) {
                    throw new Bert4jException(file + ": model.vocab[\"" + e.getKey() + "\"] is not an integer id");
                }
                out.put(e.getKey(), e.getValue().intValue());
            });
        } else if (vocab != null && vocab.isArray()) {
            for (int i = 0; i < vocab.size(); i++) {
                JsonNode entry = vocab.get(i);
                out.put(entry.isArray() ? entry.get(0).asText() : entry.asText(), i);
            }
        } else {
            throw new Bert4jException(file + ": no model.vocab (expected a WordPiece tokenizer.json)");
        }
        return out;
    }

    /** added_tokens as content -> id. */
    static LinkedHashMap<String, Integer> addedTokens(JsonNode root) {
        LinkedHashMap<String, Integer> out = new LinkedHashMap<>();
        JsonNode added = root.get("added_tokens");
        if (added != null && added.isArray()) {
            for (JsonNode t : added) {
                out.put(t.path("content").asText(), t.path("id").asInt());
            }
        }
        return out;
    }

    static List<String> tokensById(Map<String, Integer> vocab) {
        List<Map.Entry<String, Integer>> entries = new ArrayList<>(vocab.entrySet());
        entries.sort(Comparator.comparingInt(Map.Entry::getValue));
        List<String> out = new ArrayList<>(entries.size());
        for (Map.Entry<String, Integer> e : entries) {
            out.add(e.getKey());
        }
        return out;
    }
}
