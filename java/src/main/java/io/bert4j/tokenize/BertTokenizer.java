package io.bert4j.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.CharSpan;
import ai.djl.util.PairList;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A BERT WordPiece tokenizer: a facade over Hugging Face tokenizers (Rust, through DJL's
 * {@link HuggingFaceTokenizer}) that reads a model folder the way HF {@code transformers}
 * does and reports offsets in Java string units.
 *
 * <p><b>Thread safety.</b> All methods may be called from any number of threads at once.
 * Each distinct truncation/padding setting gets its own native tokenizer, configured once
 * and never changed afterwards (the Rust tokenizer is immutable while encoding, so
 * concurrent encodes share it); at most {@value #MAX_CACHED} settings are kept, further
 * ones get a short-lived instance per call (correct, but it reparses the vocabulary).
 * {@link #close()} waits for running calls and frees the native memory; calls after it
 * fail with {@link Bert4jException}.
 */
public final class BertTokenizer implements AutoCloseable {

    static {
        // DJL pings an AWS telemetry endpoint on every tokenizer creation unless opted out;
        // bert4j runs offline and in latency-critical services.
        if (System.getProperty("OPT_OUT_TRACKING") == null && System.getenv("OPT_OUT_TRACKING") == null) {
            System.setProperty("OPT_OUT_TRACKING", "true");
        }
    }

    static final int MAX_CACHED = 16;

    private final String source;
    private final ObjectNode tokenizerJson;  // effective tokenizer.json, as save() writes it
    private final byte[] djlJson;            // same, truncation cleared, pad token/id set
    private final TokenizerSettings settings;
    private final LinkedHashMap<String, Integer> modelVocab;
    private final Map<String, Integer> tokenToId;
    private final String[] idToToken;        // null at ids no token has
    private final int padIdOrMinus1;

    private final HuggingFaceTokenizer plain;  // no truncation, no padding
    private final ConcurrentHashMap<Key, HuggingFaceTokenizer> byOptions = new ConcurrentHashMap<>();
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private boolean closed;

    /** The native-side settings one DJL instance is built with. */
    private record Key(int maxLength, EncodeOptions.Truncation truncation, EncodeOptions.Padding padding,
                       int stride) {
    }

    private BertTokenizer(String source, ObjectNode tokenizerJson, TokenizerSettings settings) {
        this.source = source;
        this.tokenizerJson = tokenizerJson;
        this.settings = settings;
        this.modelVocab = HfFiles.modelVocab(tokenizerJson, source);
        Map<String, Integer> all = new HashMap<>(modelVocab);
        all.putAll(HfFiles.addedTokens(tokenizerJson));
        this.tokenToId = Collections.unmodifiableMap(all);
        int maxId = all.values().stream().mapToInt(Integer::intValue).max().orElse(-1);
        this.idToToken = new String[maxId + 1];
        for (Map.Entry<String, Integer> e : all.entrySet()) {
            if (e.getValue() < 0) {
                throw new Bert4jException(source + ": token \"" + e.getKey() + "\" has negative id " + e.getValue());
            }
            idToToken[e.getValue()] = e.getKey();
        }
        Integer pad = all.get(settings.padToken());
        this.padIdOrMinus1 = pad == null ? -1 : pad;

        ObjectNode forDjl = tokenizerJson.deepCopy();
        // Truncation and padding come from EncodeOptions, not from the file: the
        // all-MiniLM tokenizer.json, for one, fixes both at 128.
        forDjl.putNull("truncation");
        if (pad != null) {
            // DJL takes the pad token/id for its padding from here; without it, id 0.
            ObjectNode p = forDjl.putObject("padding");
            p.put("strategy", "BatchLongest");
            p.put("direction", "Right");
            p.putNull("pad_to_multiple_of");
            p.put("pad_id", pad);
            p.put("pad_type_id", 0);
            p.put("pad_token", settings.padToken());
        } else {
            forDjl.putNull("padding");
        }
        try {
            this.djlJson = HfFiles.JSON.writeValueAsBytes(forDjl);
        } catch (JsonProcessingException e) {
            throw new Bert4jException(source + ": cannot serialize tokenizer JSON: " + e.getMessage(), e);
        }
        this.plain = newDjl(new Key(0, EncodeOptions.Truncation.DO_NOT_TRUNCATE, EncodeOptions.Padding.NONE, 0));
    }

    // ------------------------------------------------------------------ loading

    /**
     * Loads the tokenizer of a Hugging Face model folder: {@code tokenizer.json} when
     * present, else {@code vocab.txt} turned into the tokenizer.json HF's BertTokenizerFast
     * conversion would write. {@code tokenizer_config.json} and
     * {@code special_tokens_map.json} are read in both cases; as in HF's BertTokenizerFast,
     * do_lower_case / strip_accents / tokenize_chinese_chars set explicitly there override a
     * tokenizer.json BertNormalizer.
     */
    public static BertTokenizer load(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            throw new Bert4jException("tokenizer folder " + modelDir + " does not exist or is not a folder");
        }
        Path jsonFile = modelDir.resolve(HfFiles.TOKENIZER_JSON);
        Path vocabFile = modelDir.resolve(HfFiles.VOCAB_TXT);
        HfFiles.RawConfig raw = HfFiles.readConfig(modelDir);
        if (Files.isRegularFile(jsonFile)) {
            JsonNode root = HfFiles.readJson(jsonFile);
            return fromJsonTree((ObjectNode) root, raw, jsonFile.toString());
        }
        if (Files.isRegularFile(vocabFile)) {
            LinkedHashMap<String, Integer> vocab = HfFiles.readVocabTxt(vocabFile);
            TokenizerSettings s = raw.resolve("[UNK]");
            return new BertTokenizer(vocabFile.toString(), HfFiles.bertTokenizerJson(vocab, s), s);
        }
        throw new Bert4jException("no tokenizer in " + modelDir + ": looked for " + HfFiles.TOKENIZER_JSON
                + " and " + HfFiles.VOCAB_TXT + " (with optional " + HfFiles.TOKENIZER_CONFIG + ", "
                + HfFiles.SPECIAL_TOKENS_MAP + ")");
    }

    /**
     * A tokenizer from the text of a tokenizer.json (e.g. a classpath resource), with HF's
     * defaults for what a tokenizer_config.json would say. {@code sourceName} names it in
     * error messages.
     */
    public static BertTokenizer fromTokenizerJson(String json, String sourceName) {
        JsonNode root;
        try {
            root = HfFiles.JSON.readTree(json);
        } catch (IOException e) {
            throw new Bert4jException(sourceName + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new Bert4jException(sourceName + ": expected a JSON object");
        }
        return fromJsonTree((ObjectNode) root, new HfFiles.RawConfig(null, null, false, null, null, null,
                Map.of()), sourceName);
    }

    private static BertTokenizer fromJsonTree(ObjectNode root, HfFiles.RawConfig raw, String source) {
        JsonNode model = root.get("model");
        String unk = model != null && model.path("unk_token").isTextual() ? model.get("unk_token").textValue() : "[UNK]";
        TokenizerSettings s = raw.resolve(unk);
        JsonNode norm = root.get("normalizer");
        if (norm != null && "BertNormalizer".equals(norm.path("type").asText())) {
            ObjectNode n = (ObjectNode) norm;
            boolean lower = raw.doLowerCase() != null ? raw.doLowerCase() : n.path("lowercase").asBoolean(true);
            boolean chinese = raw.tokenizeChineseChars() != null ? raw.tokenizeChineseChars()
                    : n.path("handle_chinese_chars").asBoolean(true);
            Boolean strip;
            if (raw.stripAccentsPresent()) {
                strip = raw.stripAccents();
            } else {
                JsonNode st = n.get("strip_accents");
                strip = st == null || st.isNull() ? null : st.asBoolean();
            }
            n.put("lowercase", lower);
            n.put("handle_chinese_chars", chinese);
            if (strip == null) {
                n.putNull("strip_accents");
            } else {
                n.put("strip_accents", strip);
            }
            s = new TokenizerSettings(lower, strip, chinese, s.modelMaxLength(), s.cleanUpTokenizationSpaces(),
                    s.unkToken(), s.sepToken(), s.padToken(), s.clsToken(), s.maskToken());
        }
        return new BertTokenizer(source, root, s);
    }

    private HuggingFaceTokenizer newDjl(Key k) {
        Map<String, String> opts = new HashMap<>();
        opts.put("addSpecialTokens", "true");
        opts.put("withOverflowingTokens", "true");
        opts.put("truncation", k.truncation().hfName);
        opts.put("padding", k.padding().hfName);
        opts.put("stride", Integer.toString(k.stride()));
        if (k.maxLength() > 0) {
            opts.put("maxLength", Integer.toString(k.maxLength()));
            // DJL clamps maxLength to modelMaxLength (default 512); the caller decides.
            opts.put("modelMaxLength", Integer.toString(k.maxLength()));
        }
        try {
            return HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(djlJson), opts, null);
        } catch (IOException | RuntimeException e) {
            throw new Bert4jException(source + ": not a tokenizer HF tokenizers can load: " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------ encoding

    /** Encodes one text with {@link EncodeOptions#DEFAULT}. */
    public Encoding encode(String text) {
        return encode(text, EncodeOptions.DEFAULT);
    }

    public Encoding encode(String text, EncodeOptions options) {
        requireText(text, "text");
        return call(options, djl -> {
            ai.djl.huggingface.tokenizers.Encoding e = djl.encode(text, options.addSpecialTokens(), true);
            return convert(e, new OffsetMap(text), null);
        });
    }

    /** Encodes a text pair (token type 0 for the first text, 1 for the second). */
    public Encoding encodePair(String first, String second) {
        return encodePair(first, second, EncodeOptions.DEFAULT);
    }

    public Encoding encodePair(String first, String second, EncodeOptions options) {
        requireText(first, "first");
        requireText(second, "second");
        return call(options, djl -> {
            ai.djl.huggingface.tokenizers.Encoding e = djl.encode(first, second, options.addSpecialTokens(), true);
            return convert(e, new OffsetMap(first), new OffsetMap(second));
        });
    }

    /** Encodes texts together (padding LONGEST pads to the longest of them). */
    public List<Encoding> encodeBatch(List<String> texts, EncodeOptions options) {
        String[] arr = texts.toArray(new String[0]);
        for (int i = 0; i < arr.length; i++) {
            requireText(arr[i], "texts[" + i + "]");
        }
        return call(options, djl -> {
            ai.djl.huggingface.tokenizers.Encoding[] es = djl.batchEncode(arr, options.addSpecialTokens(), true);
            List<Encoding> out = new ArrayList<>(es.length);
            for (int i = 0; i < es.length; i++) {
                out.add(convert(es[i], new OffsetMap(arr[i]), null));
            }
            return out;
        });
    }

    /** Encodes text pairs {@code (firsts[i], seconds[i])} together. */
    public List<Encoding> encodePairBatch(List<String> firsts, List<String> seconds, EncodeOptions options) {
        if (firsts.size() != seconds.size()) {
            throw new Bert4jException("encodePairBatch: firsts has " + firsts.size() + " texts but seconds has "
                    + seconds.size());
        }
        PairList<String, String> pairs = new PairList<>(firsts.size());
        for (int i = 0; i < firsts.size(); i++) {
            requireText(firsts.get(i), "firsts[" + i + "]");
            requireText(seconds.get(i), "seconds[" + i + "]");
            pairs.add(firsts.get(i), seconds.get(i));
        }
        return call(options, djl -> {
            ai.djl.huggingface.tokenizers.Encoding[] es = djl.batchEncode(pairs, options.addSpecialTokens(), true);
            List<Encoding> out = new ArrayList<>(es.length);
            for (int i = 0; i < es.length; i++) {
                out.add(convert(es[i], new OffsetMap(firsts.get(i)), new OffsetMap(seconds.get(i))));
            }
            return out;
        });
    }

    private static void requireText(String text, String what) {
        if (text == null) {
            throw new Bert4jException("tokenizer input " + what + " is null");
        }
    }

    private interface DjlCall<T> {
        T apply(HuggingFaceTokenizer djl);
    }

    private <T> T call(EncodeOptions options, DjlCall<T> body) {
        Key key = resolve(options);
        lock.readLock().lock();
        try {
            ensureOpen();
            HuggingFaceTokenizer djl;
            boolean temporary = false;
            if (key.equals(new Key(0, EncodeOptions.Truncation.DO_NOT_TRUNCATE, EncodeOptions.Padding.NONE, 0))) {
                djl = plain;
            } else {
                djl = byOptions.get(key);
                if (djl == null) {
                    if (byOptions.size() < MAX_CACHED) {
                        djl = byOptions.computeIfAbsent(key, this::newDjl);
                    } else {
                        djl = newDjl(key);
                        temporary = true;
                    }
                }
            }
            try {
                return body.apply(djl);
            } catch (Bert4jException e) {
                throw e;
            } catch (RuntimeException e) {
                throw new Bert4jException(source + ": HF tokenizers failed to encode with " + options + ": "
                        + e.getMessage(), e);
            } finally {
                if (temporary) {
                    djl.close();
                }
            }
        } finally {
            lock.readLock().unlock();
        }
    }

    private Key resolve(EncodeOptions o) {
        int maxLength = 0;
        if (o.needsMaxLength()) {
            maxLength = o.maxLength() > 0 ? o.maxLength() : settings.modelMaxLength();
            if (maxLength <= 0) {
                throw new Bert4jException("EncodeOptions " + o + " need a maxLength, and " + source
                        + " gives no model_max_length to fall back on");
            }
            if (o.stride() >= maxLength) {
                throw new Bert4jException("EncodeOptions.stride " + o.stride() + " must be < maxLength " + maxLength);
            }
        }
        if (o.padding() != EncodeOptions.Padding.NONE && padIdOrMinus1 < 0) {
            throw new Bert4jException("padding requested but the pad token \"" + settings.padToken()
                    + "\" is not in the vocabulary of " + source);
        }
        return new Key(maxLength, o.truncation(), o.padding(), o.stride());
    }

    /** HF/DJL report offsets in Unicode code points; Java strings index UTF-16 chars. */
    private static final class OffsetMap {
        private final String text;
        private int[] charAt;  // code point index -> char index; null when they coincide

        OffsetMap(String text) {
            this.text = text;
        }

        int toChar(int codePoint) {
            if (charAt == null) {
                if (text.codePointCount(0, text.length()) == text.length()) {
                    return Math.min(codePoint, text.length());
                }
                int n = text.codePointCount(0, text.length());
                int[] map = new int[n + 1];
                int c = 0;
                for (int cp = 0; cp < n; cp++) {
                    map[cp] = c;
                    c += Character.charCount(text.codePointAt(c));
                }
                map[n] = text.length();
                charAt = map;
            }
            return charAt[Math.min(codePoint, charAt.length - 1)];
        }
    }

    private static Encoding convert(ai.djl.huggingface.tokenizers.Encoding e, OffsetMap first, OffsetMap second) {
        long[] ids = e.getIds();
        int n = ids.length;
        long[] types = e.getTypeIds();
        long[] mask = e.getAttentionMask();
        long[] special = e.getSpecialTokenMask();
        long[] words = e.getWordIds();
        long[] seqs = e.getSequenceIds();
        CharSpan[] spans = e.getCharTokenSpans();
        int[] outIds = new int[n], outTypes = new int[n], outMask = new int[n], outSpecial = new int[n];
        Encoding.Span[] offsets = new Encoding.Span[n];
        Integer[] wordIds = new Integer[n], seqIds = new Integer[n];
        for (int i = 0; i < n; i++) {
            outIds[i] = (int) ids[i];
            outTypes[i] = (int) types[i];
            outMask[i] = (int) mask[i];
            outSpecial[i] = (int) special[i];
            wordIds[i] = words[i] < 0 ? null : (int) words[i];
            seqIds[i] = seqs[i] < 0 ? null : (int) seqs[i];
            CharSpan s = spans[i];
            if (s == null || seqIds[i] == null) {
                offsets[i] = Encoding.Span.EMPTY;
            } else {
                OffsetMap m = seqIds[i] == 1 && second != null ? second : first;
                offsets[i] = new Encoding.Span(m.toChar(s.getStart()), m.toChar(s.getEnd()));
            }
        }
        List<Encoding> overflow = List.of();
        ai.djl.huggingface.tokenizers.Encoding[] of = e.getOverflowing();
        if (of != null && of.length > 0) {
            List<Encoding> list = new ArrayList<>(of.length);
            for (ai.djl.huggingface.tokenizers.Encoding o : of) {
                list.add(convert(o, first, second));
            }
            overflow = Collections.unmodifiableList(list);
        }
        return new Encoding(outIds, outTypes, outMask, List.of(e.getTokens()), List.of(offsets),
                Collections.unmodifiableList(Arrays.asList(wordIds)), outSpecial,
                Collections.unmodifiableList(Arrays.asList(seqIds)), overflow);
    }

    // ------------------------------------------------------------------ vocabulary, decoding

    /** Number of ids: the largest id + 1 over the vocabulary and the added tokens (HF {@code len(tokenizer)}). */
    public int vocabSize() {
        return idToToken.length;
    }

    /** The id of a token (vocabulary or added token), or -1 if there is none. */
    public int tokenToId(String token) {
        Integer id = tokenToId.get(token);
        return id == null ? -1 : id;
    }

    /** The token of an id; Bert4jException for an id outside the vocabulary. */
    public String idToToken(int id) {
        if (id < 0 || id >= idToToken.length || idToToken[id] == null) {
            throw new Bert4jException("token id " + id + " is not in the vocabulary of " + source
                    + " (size " + idToToken.length + ")");
        }
        return idToToken[id];
    }

    public int clsId() {
        return requiredId(settings.clsToken(), "cls_token");
    }

    public int sepId() {
        return requiredId(settings.sepToken(), "sep_token");
    }

    public int padId() {
        return requiredId(settings.padToken(), "pad_token");
    }

    public int maskId() {
        return requiredId(settings.maskToken(), "mask_token");
    }

    public int unkId() {
        return requiredId(settings.unkToken(), "unk_token");
    }

    private int requiredId(String token, String role) {
        Integer id = tokenToId.get(token);
        if (id == null) {
            throw new Bert4jException(role + " \"" + token + "\" is not in the vocabulary of " + source);
        }
        return id;
    }

    public TokenizerSettings settings() {
        return settings;
    }

    /** Decodes ids to text, keeping special tokens (HF's default). */
    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /**
     * Decodes ids to text as HF's BertTokenizerFast.decode does: the tokenizer's decoder
     * (WordPiece: joins "##" pieces), then clean_up_tokenization_spaces if configured.
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] longIds = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= idToToken.length || idToToken[ids[i]] == null) {
                throw new Bert4jException("decode: ids[" + i + "] = " + ids[i] + " is not in the vocabulary of "
                        + source + " (size " + idToToken.length + ")");
            }
            longIds[i] = ids[i];
        }
        String text;
        lock.readLock().lock();
        try {
            ensureOpen();
            text = plain.decode(longIds, skipSpecialTokens);
        } finally {
            lock.readLock().unlock();
        }
        return settings.cleanUpTokenizationSpaces() ? cleanUpTokenization(text) : text;
    }

    /** HF's PreTrainedTokenizerBase.clean_up_tokenization. */
    static String cleanUpTokenization(String s) {
        return s.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
                .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
                .replace(" 've", "'ve").replace(" 're", "'re");
    }

    // ------------------------------------------------------------------ saving

    /**
     * Writes tokenizer.json, vocab.txt (WordPiece vocabularies), tokenizer_config.json and
     * special_tokens_map.json, so the folder loads in HF transformers and in bert4j.
     */
    public void save(Path dir) {
        try {
            Files.createDirectories(dir);
            HfFiles.JSON.writerWithDefaultPrettyPrinter()
                    .writeValue(dir.resolve(HfFiles.TOKENIZER_JSON).toFile(), tokenizerJson);
            if ("WordPiece".equals(tokenizerJson.path("model").path("type").asText())) {
                List<String> tokens = HfFiles.tokensById(modelVocab);
                for (int i = 0; i < tokens.size(); i++) {
                    if (modelVocab.get(tokens.get(i)) != i) {
                        throw new Bert4jException("cannot write " + dir.resolve(HfFiles.VOCAB_TXT)
                                + ": vocabulary ids of " + source + " are not 0.." + (tokens.size() - 1)
                                + " without gaps (id " + i + " missing)");
                    }
                    if (tokens.get(i).indexOf('\n') >= 0 || tokens.get(i).indexOf('\r') >= 0) {
                        throw new Bert4jException("cannot write " + dir.resolve(HfFiles.VOCAB_TXT)
                                + ": token id " + i + " contains a line break");
                    }
                }
                Files.write(dir.resolve(HfFiles.VOCAB_TXT), tokens, StandardCharsets.UTF_8);
            }
            Map<String, Object> specials = new LinkedHashMap<>();
            specials.put("cls_token", settings.clsToken());
            specials.put("mask_token", settings.maskToken());
            specials.put("pad_token", settings.padToken());
            specials.put("sep_token", settings.sepToken());
            specials.put("unk_token", settings.unkToken());
            Map<String, Object> config = new LinkedHashMap<>(specials);
            config.put("clean_up_tokenization_spaces", settings.cleanUpTokenizationSpaces());
            config.put("do_lower_case", settings.doLowerCase());
            if (settings.modelMaxLength() > 0) {
                config.put("model_max_length", settings.modelMaxLength());
            }
            config.put("strip_accents", settings.stripAccents());
            config.put("tokenize_chinese_chars", settings.tokenizeChineseChars());
            config.put("tokenizer_class", "BertTokenizer");
            HfFiles.JSON.writerWithDefaultPrettyPrinter()
                    .writeValue(dir.resolve(HfFiles.TOKENIZER_CONFIG).toFile(), config);
            HfFiles.JSON.writerWithDefaultPrettyPrinter()
                    .writeValue(dir.resolve(HfFiles.SPECIAL_TOKENS_MAP).toFile(), specials);
        } catch (IOException e) {
            throw new Bert4jException("cannot save tokenizer to " + dir + ": " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------ lifecycle

    private void ensureOpen() {
        if (closed) {
            throw new Bert4jException("tokenizer " + source + " is closed");
        }
    }

    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            plain.close();
            byOptions.values().forEach(HuggingFaceTokenizer::close);
            byOptions.clear();
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public String toString() {
        return "BertTokenizer[" + source + ", vocab " + idToToken.length + "]";
    }
}
