package io.bert4j.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsTest {

    @TempDir
    Path dir;

    static HostTensor random(DType dtype, Random rnd, long... shape) {
        byte[] bytes = new byte[Math.toIntExact(HostTensor.numel(shape) * dtype.byteSize())];
        rnd.nextBytes(bytes);
        if (dtype == DType.BOOL) {
            for (int i = 0; i < bytes.length; i++) bytes[i] &= 1;
        }
        return new HostTensor(dtype, shape, ByteBuffer.wrap(bytes));
    }

    static byte[] bytesOf(HostTensor t) {
        ByteBuffer b = t.data().duplicate();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    static void assertSameTensor(HostTensor expected, HostTensor actual, String name) {
        assertEquals(expected.dtype(), actual.dtype(), name);
        assertArrayEquals(expected.shape(), actual.shape(), name);
        assertArrayEquals(bytesOf(expected), bytesOf(actual), name);
    }

    @Test
    void roundTripsEveryDtypeScalarsAndEmptyTensors() {
        Random rnd = new Random(7);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        for (DType t : DType.values()) {
            tensors.put("w." + t.name().toLowerCase(), random(t, rnd, 3, 5));
            tensors.put("scalar." + t.name().toLowerCase(), random(t, rnd)); // 0-d: one element
            tensors.put("empty." + t.name().toLowerCase(), random(t, rnd, 0, 4));
        }
        Path file = dir.resolve("model.safetensors");
        SafeTensors.write(file, tensors, Map.of("format", "pt", "note", "ünïcode"));

        Map<String, HostTensor> back = SafeTensors.read(file);
        assertEquals(tensors.keySet().stream().sorted().toList(), new ArrayList<>(back.keySet()),
                "written sorted by name, read in file order");
        tensors.forEach((name, t) -> assertSameTensor(t, back.get(name), name));
        assertEquals(Map.of("format", "pt", "note", "ünïcode"), SafeTensors.readMetadata(file));
        assertEquals(1, back.get("scalar.f32").numel());
        assertEquals(0, back.get("empty.bf16").numel());
    }

    @Test
    void halfAndBfloat16ValuesSurviveAsFloats() {
        // 1.5, -2, 65504 (F16 max) and the smallest F16 subnormal, as raw little-endian bits.
        short[] f16 = {0x3e00, (short) 0xc000, 0x7bff, 0x0001};
        short[] bf16 = {0x3fc0, (short) 0xc000, 0x4780, 0x0000};
        Map<String, HostTensor> tensors = Map.of("h", shorts(DType.F16, f16), "b", shorts(DType.BF16, bf16));
        Path file = dir.resolve("half.safetensors");
        SafeTensors.write(file, tensors, Map.of());
        Map<String, HostTensor> back = SafeTensors.read(file);
        assertArrayEquals(new float[]{1.5f, -2f, 65504f, 0x1p-24f}, back.get("h").toFloatArray());
        assertArrayEquals(new float[]{1.5f, -2f, 65536f, 0f}, back.get("b").toFloatArray());
        assertTrue(SafeTensors.readMetadata(file).isEmpty());
    }

    private static HostTensor shorts(DType dtype, short[] bits) {
        ByteBuffer b = ByteBuffer.allocate(bits.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (short s : bits) b.putShort(s);
        return new HostTensor(dtype, new long[]{bits.length}, b.flip());
    }

    @Test
    void writtenBytesFollowTheSpec() throws IOException {
        Random rnd = new Random(3);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        tensors.put("zeta", random(DType.F32, rnd, 2, 3));
        tensors.put("alpha", random(DType.I8, rnd, 5)); // odd size: the next tensor is unaligned
        tensors.put("mid", random(DType.F16, rnd, 1));
        Path file = dir.resolve("spec.safetensors");
        SafeTensors.write(file, tensors, Map.of("format", "pt"));

        // Parse the bytes independently of SafeTensors.
        byte[] all = Files.readAllBytes(file);
        ByteBuffer buf = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        long n = buf.getLong(0);
        assertEquals(0, n % 8, "header length is a multiple of 8");
        assertEquals(0, (8 + n) % 8, "data section starts 8-byte aligned");
        String header = new String(all, 8, (int) n, StandardCharsets.UTF_8);
        String trimmed = header.stripTrailing();
        assertTrue(trimmed.endsWith("}"), header);
        assertTrue(header.substring(trimmed.length()).chars().allMatch(c -> c == ' '), "padding is spaces only");
        assertTrue(header.length() - trimmed.length() < 8, "padding is minimal");

        JsonNode root = new ObjectMapper().readTree(trimmed);
        List<String> keys = new ArrayList<>();
        root.fieldNames().forEachRemaining(keys::add);
        assertEquals(List.of("__metadata__", "alpha", "mid", "zeta"), keys);
        assertEquals("pt", root.get("__metadata__").get("format").asText());
        long expectedBegin = 0;
        int dataStart = 8 + (int) n;
        for (String name : List.of("alpha", "mid", "zeta")) {
            JsonNode e = root.get(name);
            HostTensor t = tensors.get(name);
            assertEquals(t.dtype().safetensorsName(), e.get("dtype").asText());
            long[] shape = new long[e.get("shape").size()];
            for (int i = 0; i < shape.length; i++) shape[i] = e.get("shape").get(i).asLong();
            assertArrayEquals(t.shape(), shape);
            long begin = e.get("data_offsets").get(0).asLong();
            long end = e.get("data_offsets").get(1).asLong();
            assertEquals(expectedBegin, begin, name + " starts where the previous tensor ended");
            assertEquals(t.data().remaining(), end - begin);
            byte[] slice = java.util.Arrays.copyOfRange(all, dataStart + (int) begin, dataStart + (int) end);
            assertArrayEquals(bytesOf(t), slice, name + " bytes");
            expectedBegin = end;
        }
        assertEquals(all.length, dataStart + expectedBegin, "data section ends the file");
    }

    @Test
    void readKeepsFileOrderNotNameOrder() throws IOException {
        Path file = writeRaw("order.safetensors",
                "{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                        + "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 3);
        assertEquals(List.of("b", "a"), new ArrayList<>(SafeTensors.read(file).keySet()));
    }

    @Test
    void writeIsAtomicAndLeavesNoTemporaryFiles() throws IOException {
        Path file = dir.resolve("model.safetensors");
        SafeTensors.write(file, Map.of("a", HostTensor.ofFloats(new float[]{1, 2}, 2)), Map.of());
        byte[] before = Files.readAllBytes(file);
        // A failing write (an illegal tensor name) must leave the old checkpoint as it was.
        Bert4jException ex = assertThrows(Bert4jException.class, () -> SafeTensors.write(file,
                Map.of("__metadata__", HostTensor.ofFloats(new float[]{3}, 1)), Map.of()));
        assertTrue(ex.getMessage().contains("model.safetensors"), ex.getMessage());
        assertArrayEquals(before, Files.readAllBytes(file));
        SafeTensors.write(file, Map.of("a", HostTensor.ofFloats(new float[]{5, 6, 7}, 3)), Map.of());
        assertArrayEquals(new float[]{5, 6, 7}, SafeTensors.read(file).get("a").toFloatArray());
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of("model.safetensors"), s.map(p -> p.getFileName().toString()).toList());
        }
    }

    // ---- hostile and corrupt files ---------------------------------------------------------

    private Path writeRaw(String name, String header, int dataBytes) throws IOException {
        return writeRaw(name, header.getBytes(StandardCharsets.UTF_8), header.length(), dataBytes);
    }

    private Path writeRaw(String name, byte[] header, long declaredLength, int dataBytes) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredLength).put(header);
        Path file = dir.resolve(name);
        Files.write(file, b.array());
        return file;
    }

    private static void assertRejected(Path file, String... fragments) {
        Bert4jException ex = assertThrows(Bert4jException.class, () -> SafeTensors.read(file));
        String msg = ex.getMessage();
        assertTrue(msg.contains(file.getFileName().toString()), "names the file: " + msg);
        for (String f : fragments) {
            assertTrue(msg.contains(f), "message should contain '" + f + "': " + msg);
        }
        // The metadata reader validates the same header.
        assertThrows(Bert4jException.class, () -> SafeTensors.readMetadata(file));
    }

    @Test
    void rejectsFileShorterThanEightBytes() throws IOException {
        Path file = dir.resolve("short.safetensors");
        Files.write(file, new byte[]{1, 2, 3});
        assertRejected(file, "shorter than the 8-byte header length");
        Path empty = dir.resolve("empty.safetensors");
        Files.write(empty, new byte[0]);
        assertRejected(empty, "0 bytes");
    }

    @Test
    void rejectsHeaderLengthBeyondFile() throws IOException {
        assertRejected(writeRaw("long.safetensors", "{}".getBytes(StandardCharsets.UTF_8), 1000, 0),
                "header length 1000 is larger than the file");
    }

    @Test
    void rejectsHeaderOverOneHundredMegabytes() throws IOException {
        assertRejected(writeRaw("huge.safetensors", "{}".getBytes(StandardCharsets.UTF_8), 200L << 20, 0),
                "over the 104857600-byte limit");
        // A u64 with the top bit set must not be mistaken for a small negative number.
        assertRejected(writeRaw("top.safetensors", "{}".getBytes(StandardCharsets.UTF_8), -8L, 0),
                "18446744073709551608");
    }

    @Test
    void rejectsHeaderThatIsNotUtf8() throws IOException {
        byte[] bad = {'{', '"', (byte) 0xff, (byte) 0xfe, '"', ':', '1', '}'};
        assertRejected(writeRaw("latin.safetensors", bad, bad.length, 0), "not valid UTF-8");
    }

    @Test
    void rejectsHeaderThatIsNotAJsonObject() throws IOException {
        assertRejected(writeRaw("broken.safetensors", "{\"a\": ", 0), "not valid JSON");
        assertRejected(writeRaw("array.safetensors", "[1, 2]  ", 0), "must be a JSON object", "ARRAY");
        assertRejected(writeRaw("blank.safetensors", "        ", 0), "must be a JSON object");
        assertRejected(writeRaw("trailing.safetensors", "{} {}", 0), "not valid JSON");
        assertRejected(writeRaw("dup.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                        + "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2), "Duplicate field 'a'");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "no dtype        | {\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}                         | missing \"dtype\"",
            "no shape        | {\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}                     | missing \"shape\"",
            "no offsets      | {\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}                              | missing \"data_offsets\"",
            "entry not obj   | {\"t\":[1,2]}                                                       | entry must be an object",
            "dtype not str   | {\"t\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}             | \"dtype\" must be a string",
            "shape not array | {\"t\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}    | \"shape\" must be an array",
            "shape float     | {\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}     | shape[0] must be an integer",
            "offsets short   | {\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}         | must be [begin, end]",
            "offsets text    | {\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}   | begin must be an integer",
            "unknown dtype   | {\"t\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}        | unsupported dtype \"Q4\"",
            "negative dim    | {\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}      | shape[0] is negative",
            "begin > end     | {\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}       | has begin after end",
            "negative offset | {\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}      | begin is negative",
            "size mismatch   | {\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}       | span 4 bytes but dtype F32 and shape [2] need 8",
            "numel overflow  | {\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}} | overflows a 64-bit size",
            "huge offset     | {\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e30]}}    | end must be an integer",
            "metadata array  | {\"__metadata__\":[1],\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}  | must be an object of strings",
            "metadata number | {\"__metadata__\":{\"k\":1},\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} | value for \"k\" must be a string",
    })
    void rejectsMalformedEntries(String label, String header, String expected) throws IOException {
        Path file = writeRaw(label.replace(' ', '_') + ".safetensors", header, 4);
        assertRejected(file, expected);
        if (!label.startsWith("metadata")) {
            assertRejected(file, "tensor \"t\"");
        }
    }

    @Test
    void rejectsOverlappingTensors() throws IOException {
        assertRejected(writeRaw("overlap.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                        + "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6),
                "tensor \"b\"", "overlaps tensor \"a\"");
        // Two tensors aliasing the same bytes are an overlap too.
        assertRejected(writeRaw("alias.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                        + "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4), "overlaps");
    }

    @Test
    void rejectsGapsAndUncoveredBytes() throws IOException {
        assertRejected(writeRaw("gap.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                        + "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}", 5),
                "gap in the data section", "bytes 2..3", "tensor \"b\"");
        assertRejected(writeRaw("late.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 3), "gap", "bytes 0..1");
        assertRejected(writeRaw("trail.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 9), "7 trailing bytes");
    }

    @Test
    void rejectsTruncatedDataSection() throws IOException {
        assertRejected(writeRaw("cut.safetensors",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 20),
                "data section truncated", "tensor \"b\" ends at byte 24", "only 20 data bytes");
        // A real file cut short is caught the same way.
        Path file = dir.resolve("real.safetensors");
        SafeTensors.write(file, Map.of("w", HostTensor.ofFloats(new float[64], 8, 8)), Map.of());
        byte[] all = Files.readAllBytes(file);
        Path cut = dir.resolve("real-cut.safetensors");
        Files.write(cut, java.util.Arrays.copyOf(all, all.length - 10));
        assertRejected(cut, "data section truncated");
    }

    @Test
    void randomCorruptionNeverEscapesAsAnotherException() throws IOException {
        Random rnd = new Random(11);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        tensors.put("a", random(DType.F32, rnd, 3, 4));
        tensors.put("b", random(DType.BF16, rnd, 5));
        Path good = dir.resolve("good.safetensors");
        SafeTensors.write(good, tensors, Map.of("format", "pt"));
        byte[] original = Files.readAllBytes(good);
        int headerEnd = 8 + (int) ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        Path file = dir.resolve("fuzz.safetensors");
        for (int trial = 0; trial < 500; trial++) {
            byte[] bytes = original.clone();
            // Flip bytes in the length and header, where parsing happens; data bytes are opaque.
            for (int k = 0; k < 1 + rnd.nextInt(3); k++) {
                bytes[rnd.nextInt(headerEnd)] = (byte) rnd.nextInt(256);
            }
            if (rnd.nextInt(4) == 0) {
                bytes = java.util.Arrays.copyOf(bytes, rnd.nextInt(bytes.length));
            }
            Files.write(file, bytes);
            try {
                SafeTensors.read(file);
            } catch (Bert4jException expected) {
                assertTrue(expected.getMessage().contains("fuzz.safetensors"), expected.getMessage());
            }
        }
    }
}
