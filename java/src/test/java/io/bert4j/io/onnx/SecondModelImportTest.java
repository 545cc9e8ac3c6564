package io.bert4j.io.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.bert4j.Bert;
import io.bert4j.model.BertModel;
import io.bert4j.model.Tensors;
import io.bert4j.pipeline.Batch;
import io.bert4j.pipeline.Pooling;
import io.bert4j.pipeline.SentenceTransformerConfig;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ONNX import on a second, different BERT: bge-small-en-v1.5 (12 layers, CLS pooling), from
 * its Maven artifact. The imported folder must reproduce ONNX Runtime's last_hidden_state and
 * the CLS + L2 sentence embedding.
 */
class SecondModelImportTest {

    @Test
    void bgeSmallImportsAndMatchesOnnxRuntime(@TempDir Path tmp) throws Exception {
        Path onnx = copy("/bge-small-en-v1.5.onnx", tmp.resolve("bge.onnx"));
        Path tok = copy("/bge-small-en-v1.5-tokenizer.json", tmp.resolve("tokenizer.json"));
        Path dir = tmp.resolve("bge-small-en-v1.5");
        OnnxImport.Result r = OnnxImport.importFolder(onnx, tok, dir, null,
                new SentenceTransformerConfig(Pooling.CLS, true, 512));
        assertEquals(12, r.config().numHiddenLayers());
        assertEquals(12, r.config().numAttentionHeads());
        assertEquals(384, r.config().hiddenSize());

        List<String> texts = List.of("Represent this sentence for searching relevant passages: what is BERT?",
                "I like eating apples.", "東京は日本の首都です。", "a", "Numbers 3.14159 and code x[i] += 1;");
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (Bert bert = Bert.load(dir);
             OrtSession session = env.createSession(onnx.toString(), new OrtSession.SessionOptions())) {
            float[][] embeddings = bert.embed(texts);
            double worst = 0;
            for (int t = 0; t < texts.size(); t++) {
                Encoding e = bert.tokenizer().encode(texts.get(t));
                int s = e.length();
                long[][] ids = {e.idsAsLong()};
                long[][] types = new long[1][s];
                long[][] mask = new long[1][s];
                java.util.Arrays.fill(mask[0], 1);
                Map<String, OnnxTensor> in = new HashMap<>();
                in.put("input_ids", OnnxTensor.createTensor(env, ids));
                in.put("token_type_ids", OnnxTensor.createTensor(env, types));
                in.put("attention_mask", OnnxTensor.createTensor(env, mask));
                float[][] ref;
                try (OrtSession.Result res = session.run(in)) {
                    ref = ((float[][][]) res.get(0).getValue())[0];
                }
                float[] ours;
                try (PointerScope scope = new PointerScope(); InferenceMode g = new InferenceMode()) {
                    Batch b = Batch.of(List.of(e), bert.tokenizer().padId());
                    BertModel.Output out = bert.model().forward(b.inputIds(), b.tokenTypeIds(), b.attentionMask());
                    ours = Tensors.toFloatArray(out.lastHiddenState());
                }
                int h = 384;
                for (int i = 0; i < s; i++)
                    for (int k = 0; k < h; k++)
                        worst = Math.max(worst, Math.abs(ref[i][k] - ours[i * h + k]));
                // The sentence embedding: CLS, L2-normalised.
                double norm = 0;
                for (float v : ref[0]) norm += v * v;
                norm = Math.sqrt(norm);
                for (int k = 0; k < h; k++) {
                    assertEquals(ref[0][k] / norm, embeddings[t][k], 1e-5, "text " + t + " dim " + k);
                }
            }
            assertTrue(worst <= 1e-4, "max |diff| vs ONNX Runtime " + worst);
            System.out.printf("bge-small-en-v1.5 import: worst max|diff| vs ORT %.3g%n", worst);
        }
    }

    private static Path copy(String resource, Path to) throws Exception {
        try (InputStream in = SecondModelImportTest.class.getResourceAsStream(resource)) {
            assertTrue(in != null, resource + " on the test classpath");
            Files.copy(in, to);
        }
        return to;
    }
}
