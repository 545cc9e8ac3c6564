package io.bert4j.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.CharSpan;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;
import io.bert4j.tokenize.EncodeOptions.Padding;
import io.bert4j.tokenize.EncodeOptions.Truncation;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BertTokenizerTest {

    @TempDir
    static Path tmp;

    static Path realDir;      // the real all-MiniLM-L6-v2 tokenizer.json only
    static Path vocabDir;     // only vocab.txt extracted from it + tokenizer_config.json
    static BertTokenizer real;
    static BertTokenizer fromVocab;
    static HuggingFaceTokenizer djl;  // DJL on the same file, untouched by bert4j
    static List<String> vocabLines;

    @BeforeAll
    static void setUp() throws Exception {
        realDir = Files.createDirectories(tmp.resolve("real"));
        Files.writeString(realDir.resolve("tokenizer.json"), TestData.realTokenizerJson());
        vocabDir = Files.createDirectories(tmp.resolve("vocab-only"));
        JsonNode vocab = new ObjectMapper().readTree(TestData.realTokenizerJson()).get("model").get("vocab");
        String[] byId = new String[vocab.size()];
        vocab.fields().forEachRemaining(e -> byId[e.getValue().asInt()] = e.getKey());
        vocabLines = Arrays.asList(byId);
        Files.write(vocabDir.resolve("vocab.txt"), vocabLines, StandardCharsets.UTF_8);
        Files.writeString(vocabDir.resolve("tokenizer_config.json"), "{\"do_lower_case\": true}");

        real = BertTokenizer.load(realDir);
        fromVocab = BertTokenizer.load(vocabDir);
        System.setProperty("OPT_OUT_TRACKING", "true");
        // The file fixes truncation and padding at 128; DJL's own defaults would truncate
        // at 512 otherwise. Both off, to compare plain tokenization.
        djl = HuggingFaceTokenizer.newInstance(realDir.resolve("tokenizer.json"),
                Map.of("truncation", "false", "padding", "false"));
    }

    @AfterAll
    static void tearDown() {
        real.close();
        fromVocab.close();
        djl.close();
    }

    private static int[] toInt(long[] a) {
        return Arrays.stream(a).mapToInt(x -> (int) x).toArray();
    }

    /** DJL spans count code points; String.offsetByCodePoints maps them to chars. */
    private static int cpToChar(String s, int cp) {
        return s.offsetByCodePoints(0, cp);
    }

    /** Uncased BertNormalizer on one token's source text: lowercase, NFD, drop accents. */
    private static String uncased(String s) {
        String lower = s.toLowerCase(Locale.ROOT);
        return Normalizer.normalize(lower, Normalizer.Form.NFD).replaceAll("\\p{Mn}", "");
    }

    /**
     * Each non-special token's offsets, applied to the original string, must give the
     * token's text (after the normalizer; "##" dropped), or a whole word for [UNK].
     */
    private static void assertOffsetsPointAtTokens(Encoding e, String first, String second, boolean lowercase) {
        for (int i = 0; i < e.length(); i++) {
            Integer seq = e.sequenceIds().get(i);
            if (seq == null) {
                assertEquals(Encoding.Span.EMPTY, e.offsets().get(i));
                continue;
            }
            String text = seq == 0 ? first : second;
            String piece = e.offsets().get(i).of(text);
            String token = e.tokens().get(i);
            if (token.equals("[UNK]")) {
                assertTrue(!piece.isEmpty() && piece.strip().equals(piece), "[UNK] span '" + piece + "' in " + text);
                continue;
            }
            if (token.equals(piece) && token.startsWith("[")) {
                continue;  // an added token ("[MASK]") written in the text: matched before normalization
            }
            String expect = token.startsWith("##") ? token.substring(2) : token;
            String got = lowercase ? uncased(piece) : piece;
            // clean_text removes control characters inside the span.
            got = got.codePoints().filter(c -> !Character.isISOControl(c) || Character.isWhitespace(c))
                    .collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append).toString();
            assertEquals(expect, got, "token " + i + " of \"" + text + "\"");
        }
    }

    // ------------------------------------------------------------ parity on real data

    @Test
    void singlesMatchDjlOnTheSameFileAndTheVocabOnlyFolder() {
        List<String> texts = TestData.singles();
        assertTrue(texts.size() >= 2000, "only " + texts.size() + " texts");
        int tokens = 0;
        int nonBmp = 0;
        for (String t : texts) {
            ai.djl.huggingface.tokenizers.Encoding ref = djl.encode(t);
            Encoding ours = real.encode(t);
            assertArrayEquals(toInt(ref.getIds()), ours.ids(), t);
            assertArrayEquals(toInt(ref.getTypeIds()), ours.typeIds(), t);
            assertEquals(Arrays.asList(ref.getTokens()), ours.tokens(), t);
            CharSpan[] spans = ref.getCharTokenSpans();
            for (int i = 0; i < spans.length; i++) {
                Encoding.Span expect = spans[i] == null ? Encoding.Span.EMPTY
                        : new Encoding.Span(cpToChar(t, spans[i].getStart()), cpToChar(t, spans[i].getEnd()));
                assertEquals(expect, ours.offsets().get(i), "offset " + i + " of " + t);
            }
            assertOffsetsPointAtTokens(ours, t, null, true);

            Encoding v = fromVocab.encode(t);
            assertArrayEquals(ours.ids(), v.ids(), "vocab.txt path differs on: " + t);
            assertArrayEquals(ours.typeIds(), v.typeIds(), t);
            assertEquals(ours.offsets(), v.offsets(), t);
            tokens += ours.length();
            nonBmp += t.codePointCount(0, t.length()) != t.length() ? 1 : 0;
        }
        System.out.printf("parity: %d single texts, %d tokens, %d with non-BMP chars%n", texts.size(), tokens, nonBmp);
    }

    @Test
    void pairsMatchDjlAndTheVocabOnlyFolder() {
        List<TestData.Pair> pairs = TestData.pairs();
        for (TestData.Pair p : pairs) {
            ai.djl.huggingface.tokenizers.Encoding ref = djl.encode(p.first(), p.second());
            Encoding ours = real.encodePair(p.first(), p.second());
            assertArrayEquals(toInt(ref.getIds()), ours.ids(), p.toString());
            assertArrayEquals(toInt(ref.getTypeIds()), ours.typeIds(), p.toString());
            assertOffsetsPointAtTokens(ours, p.first(), p.second(), true);
            // type ids: 0 through the first [SEP], 1 after it
            int firstSep = ours.tokens().indexOf("[SEP]");
            for (int i = 0; i < ours.length(); i++) {
                assertEquals(i <= firstSep ? 0 : 1, ours.typeIds()[i]);
            }
            Encoding v = fromVocab.encodePair(p.first(), p.second());
            assertArrayEquals(ours.ids(), v.ids(), "vocab.txt path differs on: " + p);
            assertArrayEquals(ours.typeIds(), v.typeIds(), p.toString());
            assertEquals(ours.offsets(), v.offsets(), p.toString());
        }
        // batch = one by one
        List<String> a = pairs.stream().limit(64).map(TestData.Pair::first).toList();
        List<String> b = pairs.stream().limit(64).map(TestData.Pair::second).toList();
        List<Encoding> batch = fromVocab.encodePairBatch(a, b, EncodeOptions.DEFAULT);
        for (int i = 0; i < a.size(); i++) {
            assertArrayEquals(real.encodePair(a.get(i), b.get(i)).ids(), batch.get(i).ids());
        }
    }

    @Test
    void generatedTokenizerJsonHasTheHfBertLayout() throws Exception {
        Path out = tmp.resolve("saved-from-vocab");
        fromVocab.save(out);
        ObjectMapper m = new ObjectMapper();
        JsonNode gen = m.readTree(out.resolve("tokenizer.json").toFile());
        JsonNode ref = m.readTree(TestData.realTokenizerJson());
        // Everything but the file's fixed truncation/padding (a sentence-transformers export choice).
        for (String key : List.of("added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model")) {
            assertEquals(ref.get(key), gen.get(key), key);
        }
    }

    // ------------------------------------------------------------ edge texts and offsets

    @Test
    void edgeTextsTokenizeAndMapBackToTheirSubstrings() {
        String longWord = "x".repeat(101);
        List<String> edge = List.of(
                "Café naïve résumé",
                "Ünïcödé ÀÉÎÕÜ façade",
                "北京是中国的首都。東京",
                "mixed中文text",
                "I love 😀 pizza 🍕! 👍🏽 ok",
                "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝑥",
                "a\u0000b\u0007c\u00ADd",
                "tab\tnew\nline\r\nend  \u00A0nbsp\u3000ideo",
                "word " + longWord + " end",
                longWord.substring(1),
                "3.14159 1,000,000 2024-11-28 $5.99 50%",
                "for (int i = 0; i < n; i++) { x[i] = y.get(i); } // done",
                "[CLS] [MASK] literal specials",
                "",
                "   ");
        for (String t : edge) {
            Encoding e = real.encode(t);
            assertArrayEquals(toInt(djl.encode(t).getIds()), e.ids(), t);
            assertArrayEquals(e.ids(), fromVocab.encode(t).ids(), t);
            assertOffsetsPointAtTokens(e, t, null, true);
        }

        // pairs: each text's offsets index its own string, non-BMP chars in both
        String qa = "😀 who ate 🍕?", ctx = "Ünï 🍕 was eaten by 👍🏽 Zoë, 北京 😀 today";
        Encoding pe = real.encodePair(qa, ctx);
        ai.djl.huggingface.tokenizers.Encoding pref = djl.encode(qa, ctx);
        assertArrayEquals(toInt(pref.getIds()), pe.ids());
        assertOffsetsPointAtTokens(pe, qa, ctx, true);
        for (int i = 0; i < pe.length(); i++) {
            CharSpan sp = pref.getCharTokenSpans()[i];
            if (sp != null) {
                String src = pe.sequenceIds().get(i) == 0 ? qa : ctx;
                assertEquals(new Encoding.Span(cpToChar(src, sp.getStart()), cpToChar(src, sp.getEnd())),
                        pe.offsets().get(i));
            }
        }
        assertEquals("zoe", pe.tokens().get(pe.tokens().indexOf("zoe")));
        assertEquals("Zoë", pe.offsets().get(pe.tokens().indexOf("zoe")).of(ctx));

        Encoding cafe = real.encode("Café naïve résumé");
        assertEquals(List.of("[CLS]", "cafe", "naive", "resume", "[SEP]"), cafe.tokens());
        assertEquals("Café", cafe.offsets().get(1).of("Café naïve résumé"));

        String emoji = "I love 😀 pizza";
        Encoding em = real.encode(emoji);
        int unk = em.tokens().indexOf("[UNK]");
        assertEquals("😀", em.offsets().get(unk).of(emoji));
        assertEquals("pizza", em.offsets().get(unk + 1).of(emoji));

        String cjk = "北京是中国的首都";
        Encoding c = real.encode(cjk);
        assertEquals(cjk.length() + 2, c.length(), "one token per ideograph");
        for (int i = 1; i <= cjk.length(); i++) {
            assertEquals(String.valueOf(cjk.charAt(i - 1)), c.offsets().get(i).of(cjk));
        }

        String w = "word " + longWord + " end";
        Encoding lw = real.encode(w);
        assertEquals(List.of("[CLS]", "word", "[UNK]", "end", "[SEP]"), lw.tokens());
        assertEquals(longWord, lw.offsets().get(2).of(w));
        assertTrue(real.encode(longWord.substring(1)).tokens().stream().noneMatch("[UNK]"::equals),
                "100 chars is still within max_input_chars_per_word");

        Encoding ctl = real.encode("a\u0000b\u0007c");
        assertEquals(List.of("[CLS]", "abc", "[SEP]"), ctl.tokens(), "clean_text drops control chars");

        Encoding ws = real.encode("tab\tnew\nline");
        assertEquals(List.of("[CLS]", "tab", "new", "line", "[SEP]"), ws.tokens());
        assertEquals(List.of("[CLS]", "[SEP]"), real.encode("").tokens());

        Encoding words = real.encode("unaffable 😀x");
        assertNull(words.wordIds().get(0));
        assertNull(words.sequenceIds().get(0));
        assertEquals(1, words.specialTokensMask()[0]);
        assertEquals(0, words.specialTokensMask()[1]);
    }

    // ------------------------------------------------------------ options

    private static final String Q = "Which river flows through the capital of the country?";
    private static final String C = TestData.squadPairs(1).get(0).second();

    @Test
    void truncationStrategiesOnPairs() {
        Encoding full = real.encodePair(Q, C);
        int qLen = (int) full.sequenceIds().stream().filter(s -> s != null && s == 0).count();
        int cLen = (int) full.sequenceIds().stream().filter(s -> s != null && s == 1).count();
        assertTrue(cLen > 64 && qLen < 20, "fixture: short question, long context");

        EncodeOptions o = EncodeOptions.builder().maxLength(48).truncation(Truncation.ONLY_SECOND).build();
        Encoding onlySecond = real.encodePair(Q, C, o);
        assertEquals(48, onlySecond.length());
        assertEquals(qLen, count(onlySecond, 0), "ONLY_SECOND keeps the question whole");
        assertEquals(48 - 3 - qLen, count(onlySecond, 1));
        assertArrayEquals(Arrays.copyOf(full.ids(), 48 - 1), Arrays.copyOf(onlySecond.ids(), 48 - 1));

        Encoding onlyFirst = real.encodePair(C, Q, o.withTruncation(Truncation.ONLY_FIRST));
        assertEquals(48, onlyFirst.length());
        assertEquals(qLen, count(onlyFirst, 1), "ONLY_FIRST keeps the second text whole");

        Encoding longest = real.encodePair(C, C.substring(0, 200), o.withTruncation(Truncation.LONGEST_FIRST));
        assertEquals(48, longest.length());
        int a = count(longest, 0), b = count(longest, 1);
        assertTrue(Math.abs(a - b) <= 1, "LONGEST_FIRST trims both towards equal length: " + a + " vs " + b);

        Encoding none = real.encodePair(Q, C, o.withTruncation(Truncation.DO_NOT_TRUNCATE));
        assertArrayEquals(full.ids(), none.ids());
        assertTrue(none.overflowing().isEmpty());

        // ONLY_SECOND when the first text alone is over budget: HF refuses, with a message.
        Bert4jException ex = assertThrows(Bert4jException.class,
                () -> real.encodePair(C, Q, o.withMaxLength(16)));
        assertTrue(ex.getMessage().contains("only_second") || ex.getMessage().contains("ONLY_SECOND"), ex.getMessage());

        // unset maxLength and no model_max_length: a clear error
        Bert4jException noMax = assertThrows(Bert4jException.class,
                () -> real.encode(C, EncodeOptions.DEFAULT.withTruncation(Truncation.LONGEST_FIRST)));
        assertTrue(noMax.getMessage().contains("maxLength"), noMax.getMessage());
    }

    private static int count(Encoding e, int seq) {
        return (int) e.sequenceIds().stream().filter(s -> s != null && s == seq).count();
    }

    @Test
    void paddingOnPairsAndBatches() {
        EncodeOptions pad64 = EncodeOptions.builder().maxLength(64).padding(Padding.MAX_LENGTH).build();
        Encoding p = real.encodePair("A short question?", "A short answer.", pad64);
        Encoding plain = real.encodePair("A short question?", "A short answer.");
        int n = plain.length();
        assertEquals(64, p.length());
        assertArrayEquals(plain.ids(), Arrays.copyOf(p.ids(), n));
        for (int i = n; i < 64; i++) {
            assertEquals(real.padId(), p.ids()[i]);
            assertEquals(0, p.attentionMask()[i]);
            assertEquals(0, p.typeIds()[i]);
            assertEquals(1, p.specialTokensMask()[i]);
            assertNull(p.wordIds().get(i));
            assertEquals(Encoding.Span.EMPTY, p.offsets().get(i));
            assertEquals("[PAD]", p.tokens().get(i));
        }
        for (int i = 0; i < n; i++) {
            assertEquals(1, p.attentionMask()[i]);
        }

        List<TestData.Pair> pairs = TestData.mrpc(8);
        List<String> a = pairs.stream().map(TestData.Pair::first).toList();
        List<String> b = pairs.stream().map(TestData.Pair::second).toList();
        EncodeOptions longest = EncodeOptions.DEFAULT.withPadding(Padding.LONGEST);
        List<Encoding> batch = real.encodePairBatch(a, b, longest);
        int max = 0;
        for (int i = 0; i < a.size(); i++) {
            max = Math.max(max, real.encodePair(a.get(i), b.get(i)).length());
        }
        for (int i = 0; i < batch.size(); i++) {
            Encoding unpadded = real.encodePair(a.get(i), b.get(i));
            assertEquals(max, batch.get(i).length());
            assertArrayEquals(unpadded.ids(), Arrays.copyOf(batch.get(i).ids(), unpadded.length()));
            assertEquals(unpadded.length(), Arrays.stream(batch.get(i).attentionMask()).sum());
        }
        // a single text is never padded by LONGEST; padding + truncation together
        assertEquals(plain.length(), real.encodePair("A short question?", "A short answer.", longest).length());
        List<Encoding> both = real.encodeBatch(List.of(C, "tiny"),
                pad64.withMaxLength(32).withTruncation(Truncation.LONGEST_FIRST));
        assertEquals(32, both.get(0).length());
        assertEquals(32, both.get(1).length());
        assertEquals(3, Arrays.stream(both.get(1).attentionMask()).sum());
    }

    @Test
    void overflowWindowsWithStrideCoverTheContext() {
        Encoding full = real.encodePair(Q, C);
        List<Integer> contextIds = new ArrayList<>();
        for (int i = 0; i < full.length(); i++) {
            if (Integer.valueOf(1).equals(full.sequenceIds().get(i))) {
                contextIds.add(full.ids()[i]);
            }
        }
        int stride = 8;
        EncodeOptions o = EncodeOptions.builder().maxLength(40).truncation(Truncation.ONLY_SECOND)
                .stride(stride).padding(Padding.MAX_LENGTH).build();
        Encoding first = real.encodePair(Q, C, o);
        List<Encoding> windows = new ArrayList<>();
        windows.add(first);
        windows.addAll(first.overflowing());
        assertTrue(windows.size() > 2, "a long context gives several windows");

        List<Integer> rebuilt = new ArrayList<>();
        List<Integer> prev = null;
        for (Encoding w : windows) {
            assertEquals(40, w.length());
            assertEquals(real.clsId(), w.ids()[0]);
            List<Integer> ctx = new ArrayList<>();
            for (int i = 0; i < w.length(); i++) {
                if (Integer.valueOf(1).equals(w.sequenceIds().get(i))) {
                    ctx.add(w.ids()[i]);
                    // offsets stay relative to the original context string
                    String piece = w.offsets().get(i).of(C);
                    String tok = w.tokens().get(i);
                    if (!tok.equals("[UNK]")) {
                        assertEquals(tok.replaceFirst("^##", ""), uncased(piece));
                    }
                }
            }
            if (prev == null) {
                rebuilt.addAll(ctx);
            } else {
                assertEquals(prev.subList(prev.size() - stride, prev.size()), ctx.subList(0, stride),
                        "consecutive windows share `stride` context tokens");
                rebuilt.addAll(ctx.subList(stride, ctx.size()));
            }
            prev = ctx;
        }
        assertEquals(contextIds, rebuilt, "windows, minus their overlap, are the whole context in order");

        assertThrows(Bert4jException.class, () -> EncodeOptions.DEFAULT.withStride(4));
        assertThrows(Bert4jException.class, () -> o.withStride(40));
    }

    // ------------------------------------------------------------ vocab, decode, save

    @Test
    void vocabularyAccessAndDecode() {
        assertEquals(vocabLines.size(), real.vocabSize());
        assertEquals(vocabLines.size(), fromVocab.vocabSize());
        for (String special : List.of("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")) {
            assertEquals(vocabLines.indexOf(special), real.tokenToId(special), special);
        }
        assertEquals(real.tokenToId("[CLS]"), real.clsId());
        assertEquals(real.tokenToId("[SEP]"), real.sepId());
        assertEquals(real.tokenToId("[PAD]"), real.padId());
        assertEquals(real.tokenToId("[MASK]"), real.maskId());
        assertEquals(real.tokenToId("[UNK]"), real.unkId());
        for (int id = 0; id < vocabLines.size(); id += 997) {
            assertEquals(vocabLines.get(id), real.idToToken(id));
            assertEquals(id, real.tokenToId(vocabLines.get(id)));
        }
        assertEquals(-1, real.tokenToId("no-such-token-here"));
        assertThrows(Bert4jException.class, () -> real.idToToken(real.vocabSize()));

        String text = "Hello, world! It's a tokenizer test; don't panic.";
        Encoding e = real.encode(text);
        assertEquals("hello, world! it's a tokenizer test ; don't panic.", real.decode(e.ids(), true));
        assertTrue(real.decode(e.ids()).startsWith("[CLS] hello"));
        assertEquals(real.decode(e.ids(), true), fromVocab.decode(e.ids(), true));
        Bert4jException bad = assertThrows(Bert4jException.class, () -> real.decode(new int[] {5, -1}));
        assertTrue(bad.getMessage().contains("ids[1]"), bad.getMessage());
    }

    @Test
    void saveWritesAFolderThatLoadsBackBothWays() throws Exception {
        Path out = tmp.resolve("saved-real");
        real.save(out);
        ObjectMapper m = new ObjectMapper();
        JsonNode cfg = m.readTree(out.resolve("tokenizer_config.json").toFile());
        assertTrue(cfg.get("do_lower_case").asBoolean());
        assertTrue(cfg.get("strip_accents").isNull());
        assertEquals("BertTokenizer", cfg.get("tokenizer_class").asText());
        assertEquals("[MASK]", m.readTree(out.resolve("special_tokens_map.json").toFile()).get("mask_token").asText());
        assertEquals(vocabLines, Files.readAllLines(out.resolve("vocab.txt")));

        Path vocabOnly = Files.createDirectories(tmp.resolve("saved-vocab-only"));
        Files.copy(out.resolve("vocab.txt"), vocabOnly.resolve("vocab.txt"));
        Files.copy(out.resolve("tokenizer_config.json"), vocabOnly.resolve("tokenizer_config.json"));
        Files.copy(out.resolve("special_tokens_map.json"), vocabOnly.resolve("special_tokens_map.json"));
        try (BertTokenizer back = BertTokenizer.load(out); BertTokenizer back2 = BertTokenizer.load(vocabOnly)) {
            for (TestData.Pair p : TestData.stsb(100)) {
                int[] ids = real.encodePair(p.first(), p.second()).ids();
                assertArrayEquals(ids, back.encodePair(p.first(), p.second()).ids());
                assertArrayEquals(ids, back2.encodePair(p.first(), p.second()).ids());
            }
        }
    }

    // ------------------------------------------------------------ config handling, cased

    private static Path folder(String name, List<String> vocab, String config) throws Exception {
        Path d = Files.createDirectories(tmp.resolve(name));
        Files.write(d.resolve("vocab.txt"), vocab, StandardCharsets.UTF_8);
        if (config != null) {
            Files.writeString(d.resolve("tokenizer_config.json"), config);
        }
        return d;
    }

    private static final List<String> CASED_VOCAB = List.of(
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
            "Café", "café", "Cafe", "cafe", "Hello", "hello", "naïve", "naive", "World", "world",
            "##s", "!", ",", "Ö", "ö", "O", "o");

    @Test
    void casedVocabFollowsTheHfNormalizerRules() throws Exception {
        String text = "Café Hello naïve Worlds!";
        // do_lower_case false: no lowercasing, and strip_accents unset follows lowercase -> accents kept.
        try (BertTokenizer cased = BertTokenizer.load(folder("cased", CASED_VOCAB, "{\"do_lower_case\": false}"))) {
            Encoding e = cased.encode(text);
            assertEquals(List.of("[CLS]", "Café", "Hello", "naïve", "World", "##s", "!", "[SEP]"), e.tokens());
            assertOffsetsPointAtTokens(e, text, null, false);
            assertEquals(List.of("[CLS]", "Ö", "[SEP]"), cased.encode("Ö").tokens());
            assertEquals(false, cased.settings().effectiveStripAccents());
            // lowercase absent from the vocab is [UNK], not silently lowered
            assertEquals(List.of("[CLS]", "[UNK]", "[SEP]"), cased.encode("HELLO").tokens());
        }
        // do_lower_case false, strip_accents true: case kept, accents removed.
        try (BertTokenizer t = BertTokenizer.load(folder("cased-strip", CASED_VOCAB,
                "{\"do_lower_case\": false, \"strip_accents\": true}"))) {
            assertEquals(List.of("[CLS]", "Cafe", "Hello", "naive", "World", "##s", "!", "[SEP]"), t.encode(text).tokens());
            assertEquals(List.of("[CLS]", "O", "[SEP]"), t.encode("Ö").tokens());
        }
        // do_lower_case true (also the default with no config): lowercase and strip accents.
        try (BertTokenizer t = BertTokenizer.load(folder("uncased", CASED_VOCAB, null))) {
            assertEquals(List.of("[CLS]", "cafe", "hello", "naive", "world", "##s", "!", "[SEP]"), t.encode(text).tokens());
        }
        // do_lower_case true, strip_accents false: lowercase, accents kept.
        try (BertTokenizer t = BertTokenizer.load(folder("uncased-keep", CASED_VOCAB,
                "{\"do_lower_case\": true, \"strip_accents\": false}"))) {
            assertEquals(List.of("[CLS]", "café", "hello", "naïve", "world", "##s", "!", "[SEP]"), t.encode(text).tokens());
            assertEquals(List.of("[CLS]", "ö", "[SEP]"), t.encode("Ö").tokens());
        }
        // saved and reloaded through tokenizer.json: same behaviour, config says cased
        try (BertTokenizer cased = BertTokenizer.load(tmp.resolve("cased"))) {
            Path out = tmp.resolve("cased-saved");
            cased.save(out);
            assertTrue(Files.readString(out.resolve("tokenizer_config.json")).contains("\"do_lower_case\" : false"));
            try (BertTokenizer back = BertTokenizer.load(out)) {
                assertEquals(cased.encode(text).tokens(), back.encode(text).tokens());
            }
        }
    }

    @Test
    void specialTokensFromConfigAndMapAndPadIdFromVocab() throws Exception {
        // [PAD] at id 3, and special tokens renamed through the config files
        List<String> vocab = List.of("<unk>", "<s>", "</s>", "<pad>", "<mask>", "hello", "world");
        Path d = folder("renamed", vocab, "{\"unk_token\": \"<unk>\", \"cls_token\": \"<s>\", \"sep_token\": \"</s>\","
                + " \"pad_token\": {\"content\": \"<pad>\", \"lstrip\": false}, \"mask_token\": \"[MASK]\","
                + " \"model_max_length\": 1000000000000000019884624838656}");
        Files.writeString(d.resolve("special_tokens_map.json"), "{\"mask_token\": \"<mask>\"}");
        try (BertTokenizer t = BertTokenizer.load(d)) {
            assertEquals(4, t.maskId(), "special_tokens_map.json overrides tokenizer_config.json");
            assertEquals(3, t.padId());
            assertEquals(0, t.settings().modelMaxLength(), "HF's 1e30 means no limit");
            Encoding e = t.encode("hello there world", EncodeOptions.builder().maxLength(8).padding(Padding.MAX_LENGTH).build());
            assertEquals(List.of("<s>", "hello", "<unk>", "world", "</s>", "<pad>", "<pad>", "<pad>"), e.tokens());
            assertArrayEquals(new int[] {1, 5, 0, 6, 2, 3, 3, 3}, e.ids());
        }
    }

    // ------------------------------------------------------------ errors

    @Test
    void missingAndInvalidFilesGiveClearMessages() throws Exception {
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        Bert4jException missing = assertThrows(Bert4jException.class, () -> BertTokenizer.load(empty));
        assertTrue(missing.getMessage().contains(empty.toString()), missing.getMessage());
        assertTrue(missing.getMessage().contains("tokenizer.json") && missing.getMessage().contains("vocab.txt"));

        Bert4jException noDir = assertThrows(Bert4jException.class, () -> BertTokenizer.load(tmp.resolve("nope")));
        assertTrue(noDir.getMessage().contains("nope"));

        Path broken = Files.createDirectories(tmp.resolve("broken"));
        Files.writeString(broken.resolve("tokenizer.json"), "{\"model\": {\"vocab\": ");
        Bert4jException bad = assertThrows(Bert4jException.class, () -> BertTokenizer.load(broken));
        assertTrue(bad.getMessage().contains(broken.resolve("tokenizer.json").toString()), bad.getMessage());

        Path notTok = Files.createDirectories(tmp.resolve("not-a-tokenizer"));
        Files.writeString(notTok.resolve("tokenizer.json"), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}");
        Bert4jException bad2 = assertThrows(Bert4jException.class, () -> BertTokenizer.load(notTok));
        assertTrue(bad2.getMessage().contains(notTok.resolve("tokenizer.json").toString()), bad2.getMessage());

        Path badCfg = folder("bad-config", CASED_VOCAB, "{\"do_lower_case\": \"yes\"}");
        Bert4jException bad3 = assertThrows(Bert4jException.class, () -> BertTokenizer.load(badCfg));
        assertTrue(bad3.getMessage().contains("tokenizer_config.json") && bad3.getMessage().contains("do_lower_case"));

        BertTokenizer closed = BertTokenizer.load(vocabDir);
        closed.close();
        assertThrows(Bert4jException.class, () -> closed.encode("x"));
    }

    // ------------------------------------------------------------ threads

    @Test
    void concurrentEncodesWithMixedOptionsMatchSequentialOnes() throws Exception {
        List<TestData.Pair> pairs = TestData.squadPairs(120);
        List<EncodeOptions> opts = List.of(EncodeOptions.DEFAULT,
                EncodeOptions.builder().maxLength(64).truncation(Truncation.ONLY_SECOND).stride(16).build(),
                EncodeOptions.builder().maxLength(128).truncation(Truncation.LONGEST_FIRST).padding(Padding.MAX_LENGTH).build());
        List<int[]> expected = new ArrayList<>();
        for (int i = 0; i < pairs.size(); i++) {
            expected.add(real.encodePair(pairs.get(i).first(), pairs.get(i).second(), opts.get(i % 3)).ids());
        }
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int r = 0; r < 8; r++) {
                int offset = r;
                fs.add(pool.submit(() -> {
                    for (int k = 0; k < pairs.size(); k++) {
                        int i = (k + offset * 15) % pairs.size();
                        assertArrayEquals(expected.get(i),
                                real.encodePair(pairs.get(i).first(), pairs.get(i).second(), opts.get(i % 3)).ids());
                    }
                }));
            }
            for (Future<?> f : fs) {
                f.get();
            }
        } finally {
            pool.shutdown();
        }
    }
}
