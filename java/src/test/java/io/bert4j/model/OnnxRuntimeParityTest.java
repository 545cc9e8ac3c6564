package io.bert4j.model;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.bert4j.Bert;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.Batch;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bert4j's last_hidden_state against ONNX Runtime running the very ONNX file the default model
 * was imported from: an independent runtime, independent kernels, the same weights. Tolerance
 * 1e-4 absolute (fp32 through 6 layers; observed differences are ~1e-6).
 */
class OnnxRuntimeParityTest {

    static final double TOL = 1e-4;
    static final double BATCH_TOL = 1e-5;

    static Bert bert;
    static OrtEnvironment env;
    static OrtSession session;

    @BeforeAll
    static void setUp() throws OrtException {
        bert = Bert.load(TestModels.defaultModelDir());
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(2);
        session = env.createSession(TestModels.onnxFile().toString(), o);
    }

    @AfterAll
    static void tearDown() throws OrtException {
        if (session != null) session.close();
        if (bert != null) bert.close();
    }

    /** At least 50 texts that stress normalisation, pre-tokenisation and length. */
    static List<String> texts() {
        List<String> t = new ArrayList<>(List.of(
                "I like eating apples.",
                "a",
                "?",
                "The quick brown fox jumps over the lazy dog.",
                "Hello, world!!! How are you???",
                "Don't stop believin' — hold on to that feelin'.",
                "\"Quoted\" text with (parentheses), [brackets] and {braces}.",
                "Café naïve résumé façade jalapeño Zürich",
                "ÀÉÎÕÜ àéîõü ßñç",
                "Ελληνικά κείμενα και αριθμοί 123",
                "Русский текст с пунктуацией, да!",
                "東京は日本の首都です。",
                "我喜欢吃苹果。",
                "한국어 문장도 있습니다.",
                "日本語とEnglishの混在 text 混合",
                "emoji 😀😃😄 and more 🎉🚀",
                "👍",
                "family: 👨‍👩‍👧‍👦 flag: 🇫🇷",
                "Numbers: 3.14159, 2,718, 1e-12, -42, +7, 100%",
                "Phone 555-0100 and date 2026-11-28 at 15:42:00",
                "$19.99 €5 £3 ¥1000",
                "def f(x): return x ** 2  # square",
                "for (int i = 0; i < n; i++) { sum += a[i]; }",
                "SELECT * FROM users WHERE id = 42;",
                "https://example.com/path?query=1&b=2#frag",
                "user@example.org sent an e-mail",
                "   leading and trailing spaces   ",
                "tabs\tbetween\twords",
                "line one\nline two\r\nline three",
                "multiple     internal      spaces",
                "\u00a0non-breaking\u00a0spaces\u2009thin\u2009space",
                "zero\u200bwidth\u200bspace and soft\u00adhyphen",
                "control\u0007chars\u0001here",
                "ALL CAPS SHOUTING TEXT",
                "MiXeD CaSe WoRdS",
                "supercalifragilisticexpialidocious antidisestablishmentarianism",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "x".repeat(99) + " " + "y".repeat(101),
                "hyphen-ated and under_scored and dot.ted words",
                "Mr. Smith went to Washington D.C. on Jan. 5th.",
                "It's a dog's life; isn't it?",
                "...",
                "!!!???",
                "¿Dónde está la biblioteca?",
                "L'été dernier, j'ai visité Montréal.",
                "Straße und Größe",
                "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ letters",
                "Arabic: مرحبا بالعالم",
                "Hebrew: שלום עולם",
                "Hindi: नमस्ते दुनिया",
                "Thai: สวัสดีชาวโลก",
                "mixed 123abc abc123 a1b2c3",
                "The year 1999 and the 21st century.",
                "[CLS] and [SEP] and [MASK] written literally"));
        // Near the position limit: a long real-looking paragraph grown to ~500 tokens.
        StringBuilder sb = new StringBuilder();
        while (sb.length() < 2400) {
            sb.append("The committee reviewed the proposal, and after a long debate it voted to approve the budget. ");
        }
        t.add(sb.toString());
        return t;
    }

    float[][][] ort(List<Encoding> encodings) throws OrtException {
        int b = encodings.size();
        int s = encodings.stream().mapToInt(Encoding::length).max().orElse(0);
        long[][] ids = new long[b][s], types = new long[b][s], mask = new long[b][s];
        for (int i = 0; i < b; i++) {
            Encoding e = encodings.get(i);
            for (int j = 0; j < s; j++) {
                ids[i][j] = j < e.length() ? e.ids()[j] : bert.tokenizer().padId();
                types[i][j] = j < e.length() ? e.typeIds()[j] : 0;
                mask[i][j] = j < e.length() ? e.attentionMask()[j] : 0;
            }
        }
        Map<String, OnnxTensor> in = new HashMap<>();
        in.put("input_ids", OnnxTensor.createTensor(env, ids));
        in.put("token_type_ids", OnnxTensor.createTensor(env, types));
        in.put("attention_mask", OnnxTensor.createTensor(env, mask));
        try (OrtSession.Result r = session.run(in)) {
            return (float[][][]) r.get(0).getValue();
        } finally {
            in.values().forEach(OnnxTensor::close);
        }
    }

    float[][][] ours(List<Encoding> encodings) {
        try (PointerScope scope = new PointerScope(); InferenceMode g = new InferenceMode()) {
            Batch batch = Batch.of(encodings, bert.tokenizer().padId());
            BertModel.Output out = bert.model().forward(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask());
            float[] flat = Tensors.toFloatArray(out.lastHiddenState());
            int b = batch.batchSize(), s = batch.seqLen(), h = bert.config().hiddenSize();
            float[][][] r = new float[b][s][h];
            for (int i = 0; i < b; i++)
                for (int j = 0; j < s; j++)
                    System.arraycopy(flat, (i * s + j) * h, r[i][j], 0, h);
            return r;
        }
    }

    /** Max |a - b| over the first {@code n} token rows. */
    static double maxDiff(float[][] a, float[][] b, int n) {
        double m = 0;
        for (int j = 0; j < n; j++)
            for (int k = 0; k < a[j].length; k++)
                m = Math.max(m, Math.abs(a[j][k] - b[j][k]));
        return m;
    }

    List<Encoding> encodeAll() {
        List<Encoding> encs = new ArrayList<>();
        for (String t : texts()) {
            encs.add(bert.tokenizer().encode(t));
        }
        return encs;
    }

    @ParameterizedTest
    @EnumSource(KernelMode.class)
    void singleTextsMatchOnnxRuntime(KernelMode mode) throws OrtException {
        bert.model().setKernels(mode);
        List<Encoding> encs = encodeAll();
        assertTrue(encs.size() >= 50, "at least 50 texts");
        assertTrue(encs.get(encs.size() - 1).length() > 450, "one text near the 512-position limit");
        double worst = 0;
        for (int i = 0; i < encs.size(); i++) {
            List<Encoding> one = List.of(encs.get(i));
            double d = maxDiff(ours(one)[0], ort(one)[0], encs.get(i).length());
            assertTrue(d <= TOL, "text " + i + " (" + texts().get(i) + "): max |diff| " + d);
            worst = Math.max(worst, d);
        }
        System.out.printf("parity[%s] single texts: %d texts, worst max|diff| = %.3g%n", mode, encs.size(), worst);
    }

    @ParameterizedTest
    @EnumSource(KernelMode.class)
    void paddedBatchesMatchOnnxRuntimeAndOneByOne(KernelMode mode) throws OrtException {
        bert.model().setKernels(mode);
        List<Encoding> encs = encodeAll();
        double worstOrt = 0, worstSelf = 0;
        for (int start = 0; start < encs.size(); start += 8) {
            List<Encoding> batch = encs.subList(start, Math.min(encs.size(), start + 8));
            float[][][] ob = ours(batch);
            float[][][] rb = ort(batch);
            for (int i = 0; i < batch.size(); i++) {
                int n = batch.get(i).length();
                double d = maxDiff(ob[i], rb[i], n);
                assertTrue(d <= TOL, "batched text " + (start + i) + ": max |diff| vs ONNX Runtime " + d);
                double self = maxDiff(ob[i], ours(List.of(batch.get(i)))[0], n);
                assertTrue(self <= BATCH_TOL, "batched vs one-by-one, text " + (start + i) + ": " + self);
                worstOrt = Math.max(worstOrt, d);
                worstSelf = Math.max(worstSelf, self);
            }
        }
        System.out.printf("parity[%s] padded batches of 8: worst vs ORT %.3g, worst batched vs single %.3g%n",
                mode, worstOrt, worstSelf);
    }

    /** The whole embed pipeline (tokenize, encode, mean-pool over all tokens incl. [CLS]/[SEP], L2) vs ORT + the same pooling in plain Java. */
    @Test
    void sentenceEmbeddingsMatchOnnxRuntimePooledAsSentenceTransformersDoes() throws OrtException {
        bert.model().setKernels(KernelMode.FUSED);
        List<String> texts = texts().subList(0, 54); // the last one exceeds max_seq_length 256
        float[][] ours = bert.embed(texts);
        double worst = 0;
        for (int i = 0; i < texts.size(); i++) {
            Encoding e = bert.tokenizer().encode(texts.get(i));
            float[][] h = ort(List.of(e))[0];
            double[] mean = new double[h[0].length];
            for (float[] row : h)
                for (int k = 0; k < row.length; k++)
                    mean[k] += row[k] / h.length;
            double norm = 0;
            for (double v : mean) norm += v * v;
            norm = Math.sqrt(norm);
            for (int k = 0; k < mean.length; k++) {
                double d = Math.abs(mean[k] / norm - ours[i][k]);
                worst = Math.max(worst, d);
                assertTrue(d <= 1e-5, "text " + i + " dim " + k + ": " + d);
            }
        }
        System.out.printf("parity embed (mean+normalize) vs ORT: %d texts, worst |diff| %.3g%n", texts.size(), worst);
    }

    @Test
    void defaultModelHasTheExpectedArchitecture() {
        assertEquals(6, bert.config().numHiddenLayers());
        assertEquals(384, bert.config().hiddenSize());
        assertEquals(12, bert.config().numAttentionHeads());
        assertEquals(1536, bert.config().intermediateSize());
        assertEquals("gelu", bert.config().hiddenAct());
        assertEquals(30522, bert.config().vocabSize());
        assertEquals(false, bert.model().hasPooler());
    }
}
