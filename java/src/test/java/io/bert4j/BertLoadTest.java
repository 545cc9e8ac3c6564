package io.bert4j;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.io.ShardedCheckpoint;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.pipeline.Pooling;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Loading HF folders in their variants, saving them back, and every way a folder can be wrong. */
class BertLoadTest {

    static final List<String> TEXTS = List.of("I like eating apples.", "Café naïve résumé", "東京は日本の首都です。",
            "A longer sentence, with punctuation; and numbers like 3.14 and 42!");
    static final ObjectMapper JSON = new ObjectMapper();

    static Path model;
    static Bert bert;
    static float[][] reference;

    @BeforeAll
    static void setUp() {
        model = TestModels.defaultModelDir();
        bert = Bert.load(model);
        reference = bert.embed(TEXTS);
    }

    @AfterAll
    static void tearDown() {
        bert.close();
    }

    /** A copy of the default model folder to modify. */
    static Path copyModel(Path to) throws IOException {
        try (Stream<Path> s = Files.walk(model)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                Path t = to.resolve(model.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(t);
                } else {
                    Files.copy(p, t);
                }
            }
        }
        return to;
    }

    static void assertSameEmbeddings(Path dir) {
        try (Bert b = Bert.load(dir)) {
            float[][] got = b.embed(TEXTS);
            for (int i = 0; i < TEXTS.size(); i++) {
                assertArrayEquals(reference[i], got[i], 0f, "text " + i + " differs after reloading " + dir);
            }
        }
    }

    static void editConfig(Path dir, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        Path cfg = dir.resolve("config.json");
        ObjectNode o = (ObjectNode) JSON.readTree(cfg.toFile());
        edit.accept(o);
        Files.writeString(cfg, JSON.writeValueAsString(o));
    }

    @Test
    void saveWritesAHuggingFaceFolderThatReloadsIdentically(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("saved");
        bert.save(out);
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
                "special_tokens_map.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json")) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f + " written");
        }
        ObjectNode cfg = (ObjectNode) JSON.readTree(out.resolve("config.json").toFile());
        assertEquals("bert", cfg.get("model_type").asText());
        assertEquals("BertModel", cfg.get("architectures").get(0).asText());
        assertEquals(384, cfg.get("hidden_size").asInt());
        Map<String, HostTensor> weights = SafeTensors.read(out.resolve("model.safetensors"));
        assertTrue(weights.containsKey("encoder.layer.5.output.LayerNorm.bias"));
        assertEquals("pt", SafeTensors.readMetadata(out.resolve("model.safetensors")).get("format"));
        assertSameEmbeddings(out);
    }

    @Test
    void shardedSafetensorsLoad(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Map<String, HostTensor> w = SafeTensors.read(dir.resolve("model.safetensors"));
        Files.delete(dir.resolve("model.safetensors"));
        ShardedCheckpoint.write(dir, w, 30_000_000L);
        assertTrue(Files.isRegularFile(dir.resolve("model.safetensors.index.json")));
        assertFalse(Files.exists(dir.resolve("model.safetensors")));
        assertSameEmbeddings(dir);
    }

    @Test
    void taskCheckpointWithBertPrefixAndLegacyLayerNormNames(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Map<String, HostTensor> w = SafeTensors.read(dir.resolve("model.safetensors"));
        Map<String, HostTensor> renamed = new LinkedHashMap<>();
        w.forEach((k, v) -> renamed.put("bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta"), v));
        renamed.put("cls.predictions.bias", HostTensor.ofFloats(new float[30522], 30522));
        Path tmpFile = dir.resolve("renamed.safetensors");
        SafeTensors.write(tmpFile, renamed, Map.of("format", "pt"));
        Files.move(tmpFile, dir.resolve("model.safetensors"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        try (Bert b = Bert.load(dir)) {
            assertTrue(b.warnings().stream().anyMatch(s -> s.contains("cls.predictions.bias")), b.warnings().toString());
        }
        assertSameEmbeddings(dir);
    }

    @Test
    void configMissingRequiredFieldIsNamed(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        editConfig(dir, o -> o.remove("num_attention_heads"));
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("num_attention_heads"), e.getMessage());
    }

    @Test
    void configThatIsNotJsonIsNamed(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Files.writeString(dir.resolve("config.json"), "{\"hidden_size\": 384,");
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("not valid JSON"), e.getMessage());
    }

    @Test
    void checkpointShapesThatDoNotMatchTheConfigAreNamed(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        editConfig(dir, o -> o.put("intermediate_size", 1024));
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("encoder.layer.0.intermediate.dense.weight")
                && e.getMessage().contains("[1536, 384]") && e.getMessage().contains("[1024, 384]"), e.getMessage());
    }

    @Test
    void missingWeightsAreListedByName(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Map<String, HostTensor> w = new LinkedHashMap<>(SafeTensors.read(dir.resolve("model.safetensors")));
        w.remove("encoder.layer.3.attention.self.key.weight");
        w.remove("embeddings.LayerNorm.bias");
        Path tmpFile = dir.resolve("cut.safetensors");
        SafeTensors.write(tmpFile, w, Map.of());
        Files.move(tmpFile, dir.resolve("model.safetensors"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("encoder.layer.3.attention.self.key.weight")
                && e.getMessage().contains("embeddings.LayerNorm.bias") && e.getMessage().contains("missing 2"), e.getMessage());
    }

    @Test
    void truncatedWeightsFileIsNamed(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Path st = dir.resolve("model.safetensors");
        try (var ch = java.nio.channels.FileChannel.open(st, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() / 2);
        }
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
    }

    @Test
    void missingTokenizerIsNamed(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Files.delete(dir.resolve("tokenizer.json"));
        Files.delete(dir.resolve("vocab.txt"));
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json") && e.getMessage().contains("vocab.txt"), e.getMessage());
    }

    @Test
    void vocabTxtOnlyFolderEmbedsIdentically(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Files.delete(dir.resolve("tokenizer.json"));
        assertSameEmbeddings(dir);
    }

    @Test
    void missingFolderIsNamed(@TempDir Path tmp) {
        Path nowhere = tmp.resolve("no-such-model");
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(nowhere));
        assertTrue(e.getMessage().contains("no-such-model"), e.getMessage());
    }

    @Test
    void emptyAndBlankTextsAreRejectedWithTheirIndex() {
        Bert4jException e = assertThrows(Bert4jException.class, () -> bert.embed(List.of("fine", "")));
        assertTrue(e.getMessage().contains("text 2") && e.getMessage().contains("empty"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> bert.embed(List.of(" \t ")));
        assertTrue(e.getMessage().contains("text 1") && e.getMessage().contains("whitespace"), e.getMessage());
    }

    @Test
    void overLongTextIsAnErrorUnlessTruncationIsAsked() {
        String longText = "word ".repeat(400);
        Bert4jException e = assertThrows(Bert4jException.class, () -> bert.embed(List.of(longText)));
        assertTrue(e.getMessage().contains("402 tokens") && e.getMessage().contains("256")
                && e.getMessage().contains("--max-length"), e.getMessage());
        float[] truncated = bert.embed(List.of(longText), EmbedOptions.DEFAULTS.withMaxLength(128))[0];
        float[] manual = bert.embed(List.of("word ".repeat(126)))[0];
        assertArrayEquals(manual, truncated, 1e-6f, "truncating to 128 tokens = embedding the first 126 words");
        e = assertThrows(Bert4jException.class, () -> bert.embed(List.of("x"), EmbedOptions.DEFAULTS.withMaxLength(513)));
        assertTrue(e.getMessage().contains("513") && e.getMessage().contains("512"), e.getMessage());
    }

    @Test
    void poolingModes() {
        String t = "I like eating apples.";
        float[] mean = bert.embed(List.of(t), EmbedOptions.DEFAULTS.withPooling(Pooling.MEAN).withNormalize(false))[0];
        float[] cls = bert.embed(List.of(t), EmbedOptions.DEFAULTS.withPooling(Pooling.CLS).withNormalize(false))[0];
        float[] dflt = bert.embed(t);
        // The default follows the sentence-transformers config: mean pooling, then L2 normalisation.
        double norm = 0;
        for (float v : mean) norm += v * v;
        norm = Math.sqrt(norm);
        for (int i = 0; i < mean.length; i++) {
            assertEquals(mean[i] / norm, dflt[i], 1e-6, "dimension " + i);
        }
        double n2 = 0;
        for (float v : dflt) n2 += v * v;
        assertEquals(1.0, n2, 1e-5);
        assertFalse(java.util.Arrays.equals(mean, cls));
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> bert.embed(List.of(t), EmbedOptions.DEFAULTS.withPooling(Pooling.POOLER)));
        assertTrue(e.getMessage().contains("no pooler"), e.getMessage());
    }

    /** Pooler output against a plain-Java reference: tanh(W · h[CLS] + b), with seeded random pooler weights. */
    @Test
    void poolerOutputWhenTheCheckpointHasPoolerWeights(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        Map<String, HostTensor> w = new LinkedHashMap<>(SafeTensors.read(dir.resolve("model.safetensors")));
        java.util.Random rnd = new java.util.Random(7);
        float[] pw = new float[384 * 384];
        float[] pb = new float[384];
        for (int i = 0; i < pw.length; i++) pw[i] = (float) (rnd.nextGaussian() * 0.05);
        for (int i = 0; i < pb.length; i++) pb[i] = (float) (rnd.nextGaussian() * 0.05);
        w.put("pooler.dense.weight", HostTensor.ofFloats(pw, 384, 384));
        w.put("pooler.dense.bias", HostTensor.ofFloats(pb, 384));
        Path f = dir.resolve("p.safetensors");
        SafeTensors.write(f, w, Map.of());
        Files.move(f, dir.resolve("model.safetensors"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        try (Bert b = Bert.load(dir)) {
            assertTrue(b.model().hasPooler());
            String t = "I like eating apples.";
            float[] cls = b.embed(List.of(t), EmbedOptions.DEFAULTS.withPooling(Pooling.CLS).withNormalize(false))[0];
            float[] pooled = b.embed(List.of(t), EmbedOptions.DEFAULTS.withPooling(Pooling.POOLER).withNormalize(false))[0];
            for (int o = 0; o < 384; o++) {
                double acc = pb[o];
                for (int i = 0; i < 384; i++) acc += (double) pw[o * 384 + i] * cls[i];
                assertEquals(Math.tanh(acc), pooled[o], 1e-5, "pooler dim " + o);
            }
        }
    }

    /** hidden_act variants: the fused kernel and libtorch agree for exact and tanh GELU. */
    @Test
    void geluVariantsAgreeBetweenFusedAndTorchKernels(@TempDir Path tmp) throws IOException {
        for (String act : List.of("gelu", "gelu_new", "gelu_pytorch_tanh")) {
            Path dir = copyModel(tmp.resolve(act));
            editConfig(dir, o -> o.put("hidden_act", act));
            try (Bert fused = Bert.load(dir, io.bert4j.kernels.KernelMode.FUSED);
                 Bert torch = Bert.load(dir, io.bert4j.kernels.KernelMode.TORCH)) {
                float[][] a = fused.embed(TEXTS);
                float[][] b = torch.embed(TEXTS);
                for (int i = 0; i < TEXTS.size(); i++) {
                    assertArrayEquals(b[i], a[i], 1e-5f, act + ", text " + i);
                }
                if (!act.equals("gelu")) {
                    assertFalse(java.util.Arrays.equals(a[0], reference[0]), act + " must change the output");
                }
            }
        }
    }

    @Test
    void unsupportedConfigValuesAreNamed(@TempDir Path tmp) throws IOException {
        Path dir = copyModel(tmp.resolve("m"));
        editConfig(dir, o -> o.put("position_embedding_type", "relative_key"));
        Bert4jException e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("relative_key"), e.getMessage());
        editConfig(dir, o -> { o.put("position_embedding_type", "absolute"); o.put("hidden_act", "mish"); });
        e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("mish"), e.getMessage());
        editConfig(dir, o -> { o.put("hidden_act", "gelu"); o.put("num_attention_heads", 5); });
        e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("not a multiple"), e.getMessage());
        editConfig(dir, o -> { o.put("num_attention_heads", 12); o.put("hidden_size", "384"); });
        e = assertThrows(Bert4jException.class, () -> Bert.load(dir));
        assertTrue(e.getMessage().contains("hidden_size must be an integer"), e.getMessage());
    }
}
