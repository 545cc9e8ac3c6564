package io.bert4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ShardedCheckpointTest {

    @TempDir
    Path dir;

    private static Map<String, HostTensor> weights() {
        Random rnd = new Random(1);
        Map<String, HostTensor> t = new LinkedHashMap<>();
        t.put("embeddings.word", SafeTensorsTest.random(DType.F32, rnd, 10, 4)); // 160 bytes
        t.put("layer.0.bias", SafeTensorsTest.random(DType.F32, rnd, 4));        // 16
        t.put("layer.0.weight", SafeTensorsTest.random(DType.BF16, rnd, 4, 4));  // 32
        t.put("layer.1.weight", SafeTensorsTest.random(DType.F16, rnd, 4, 4));   // 32
        t.put("pooler.dense", SafeTensorsTest.random(DType.F32, rnd, 3));        // 12
        return t;
    }

    private List<String> files() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private static void assertSame(Map<String, HostTensor> expected, Map<String, HostTensor> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        expected.forEach((k, v) -> SafeTensorsTest.assertSameTensor(v, actual.get(k), k));
    }

    @Test
    void shardsWhenOverTheLimitAndRoundTrips() throws IOException {
        Map<String, HostTensor> w = weights();
        // 64-byte shards: embeddings.word (160) alone; then 16+32 (48); then 32+12 (44).
        ShardedCheckpoint.write(dir, w, 64);
        assertEquals(List.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json"), files());
        JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
        assertEquals(252, index.get("metadata").get("total_size").asLong());
        assertEquals("model-00001-of-00003.safetensors", index.get("weight_map").get("embeddings.word").asText());
        assertEquals("model-00002-of-00003.safetensors", index.get("weight_map").get("layer.0.weight").asText());
        assertEquals("model-00003-of-00003.safetensors", index.get("weight_map").get("pooler.dense").asText());
        assertEquals(Map.of("format", "pt"), SafeTensors.readMetadata(dir.resolve("model-00002-of-00003.safetensors")));

        assertSame(w, ShardedCheckpoint.readSafeTensors(dir.resolve("model.safetensors.index.json")));
        assertSame(w, WeightFiles.load(dir));
    }

    @Test
    void writesOneFileWhenItFitsAndRemovesStaleShards() throws IOException {
        Map<String, HostTensor> w = weights();
        ShardedCheckpoint.write(dir, w, 64);
        ShardedCheckpoint.write(dir, w, 1L << 30);
        assertEquals(List.of("model.safetensors"), files(), "old shards and index are gone");
        assertSame(w, WeightFiles.load(dir));
        ShardedCheckpoint.write(dir, w, 100);
        assertFalse(Files.exists(dir.resolve("model.safetensors")), "a stale single file would shadow the shards");
        assertSame(w, WeightFiles.load(dir));
    }

    private Path index(String json) throws IOException {
        return Files.writeString(dir.resolve("model.safetensors.index.json"), json);
    }

    private static void assertRejected(Path index, String... fragments) {
        Bert4jException ex = assertThrows(Bert4jException.class, () -> ShardedCheckpoint.readSafeTensors(index));
        assertTrue(ex.getMessage().contains(index.getFileName().toString()), ex.getMessage());
        for (String f : fragments) {
            assertTrue(ex.getMessage().contains(f), "should say '" + f + "': " + ex.getMessage());
        }
    }

    @Test
    void reportsMissingShardFilesByName() throws IOException {
        ShardedCheckpoint.write(dir, weights(), 64);
        Files.delete(dir.resolve("model-00002-of-00003.safetensors"));
        Files.delete(dir.resolve("model-00003-of-00003.safetensors"));
        assertRejected(dir.resolve("model.safetensors.index.json"), "missing shard files",
                "model-00002-of-00003.safetensors, model-00003-of-00003.safetensors");
    }

    @Test
    void rejectsTensorNotInItsNamedShard() throws IOException {
        SafeTensors.write(dir.resolve("a.safetensors"), Map.of("x", HostTensor.ofFloats(new float[]{1}, 1)), Map.of());
        SafeTensors.write(dir.resolve("b.safetensors"), Map.of("y", HostTensor.ofFloats(new float[]{2}, 1)), Map.of());
        assertRejected(index("{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"a.safetensors\"}}"),
                "tensor \"y\" in a.safetensors but that shard does not contain it");
        SafeTensors.write(dir.resolve("c.safetensors"), Map.of("x", HostTensor.ofFloats(new float[]{3}, 1),
                "w", HostTensor.ofFloats(new float[]{4}, 1)), Map.of());
        assertRejected(index("{\"weight_map\": {\"x\": \"a.safetensors\", \"w\": \"c.safetensors\"}}"),
                "\"x\" appears in both a.safetensors and c.safetensors");
    }

    @Test
    void rejectsShardNamesThatEscapeTheFolder() throws IOException {
        for (String name : List.of("../model.safetensors", "/etc/passwd", "sub/../../x.safetensors", "..", "C:\\\\w.bin", "")) {
            assertRejected(index("{\"weight_map\": {\"x\": \"" + name + "\"}}"), "must be a relative path inside");
        }
    }

    @Test
    void rejectsMalformedIndex() throws IOException {
        assertRejected(index("{\"weight_map\": "), "not valid JSON");
        assertRejected(index("[]"), "must be a JSON object");
        assertRejected(index("{\"metadata\": {}}"), "\"weight_map\" must be an object");
        assertRejected(index("{\"weight_map\": {\"x\": 3}}"), "entry for \"x\" must be a file name");
    }

    @Test
    void loadsShardedPyTorchBin() throws IOException {
        for (String name : List.of("state_dict_python.bin", "plain_dict_python.bin")) {
            try (InputStream in = getClass().getResourceAsStream(name)) {
                Files.copy(in, dir.resolve(name));
            }
        }
        Path idx = Files.writeString(dir.resolve("pytorch_model.bin.index.json"),
                "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {\"encoder.row1\": \"state_dict_python.bin\","
                        + " \"encoder.bf16\": \"plain_dict_python.bin\"}}");
        // Both fixture shards hold encoder.weight: the duplicate is reported.
        Bert4jException ex = assertThrows(Bert4jException.class, () -> WeightFiles.load(dir));
        assertTrue(ex.getMessage().contains("appears in both state_dict_python.bin and plain_dict_python.bin"), ex.getMessage());
        Files.writeString(idx, "{\"weight_map\": {\"encoder.row1\": \"state_dict_python.bin\"}}");
        Map<String, HostTensor> t = WeightFiles.load(dir);
        assertEquals(4, t.size());
        assertEquals(List.of(0.5f, 1f, 1.5f), List.of(box(t.get("encoder.row1").toFloatArray())));
    }

    private static Float[] box(float[] f) {
        Float[] out = new Float[f.length];
        for (int i = 0; i < f.length; i++) out[i] = f[i];
        return out;
    }

    @Test
    void weightFilesPrefersSafetensorsAndNamesWhatItLookedFor() throws IOException {
        Bert4jException none = assertThrows(Bert4jException.class, () -> WeightFiles.load(dir));
        assertTrue(none.getMessage().contains(dir.toString()), none.getMessage());
        for (String name : WeightFiles.CANDIDATES) {
            assertTrue(none.getMessage().contains(name), none.getMessage());
        }
        try (InputStream in = getClass().getResourceAsStream("state_dict_python.bin")) {
            Files.copy(in, dir.resolve("pytorch_model.bin"));
        }
        assertEquals(4, WeightFiles.load(dir).size());
        SafeTensors.write(dir.resolve("model.safetensors"), Map.of("only", HostTensor.ofFloats(new float[]{1}, 1)), Map.of());
        assertEquals(List.of("only"), List.copyOf(WeightFiles.load(dir).keySet()));
        Bert4jException notDir = assertThrows(Bert4jException.class, () -> WeightFiles.load(dir.resolve("nope")));
        assertTrue(notDir.getMessage().contains("nope"), notDir.getMessage());
    }
}
