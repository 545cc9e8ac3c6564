package io.bert4j.io;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.ByteVector;
import org.bytedeco.pytorch.GenericDict;
import org.bytedeco.pytorch.GenericDictEntryRef;
import org.bytedeco.pytorch.GenericDictIterator;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fixtures are made by {@code make_torch_save_fixture.py} (next to them in test resources):
 * byte-for-byte the layout Python's torch.save writes, without needing torch.
 */
class PyTorchBinTest {

    @TempDir
    Path dir;

    private Path fixture(String name) throws IOException {
        Path p = dir.resolve(name);
        try (InputStream in = getClass().getResourceAsStream(name)) {
            Files.copy(in, p, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return p;
    }

    @Test
    void readsPythonStateDictOrderedDict() throws IOException {
        Map<String, HostTensor> t = PyTorchBin.read(fixture("state_dict_python.bin"));
        assertEquals(List.of("encoder.weight", "encoder.ids", "encoder.row1", "encoder.half"), new ArrayList<>(t.keySet()));
        assertEquals(DType.F32, t.get("encoder.weight").dtype());
        assertArrayEquals(new long[]{2, 3}, t.get("encoder.weight").shape());
        assertArrayEquals(new float[]{-1, -0.5f, 0, 0.5f, 1, 1.5f}, t.get("encoder.weight").toFloatArray());
        assertEquals(DType.I64, t.get("encoder.ids").dtype());
        assertArrayEquals(new long[]{3, -1, 1L << 40}, longs(t.get("encoder.ids")));
        // A view at storage offset 3 of the shared weight storage.
        assertArrayEquals(new float[]{0.5f, 1, 1.5f}, t.get("encoder.row1").toFloatArray());
        assertEquals(DType.F16, t.get("encoder.half").dtype());
        assertArrayEquals(new float[]{1.5f, -2}, t.get("encoder.half").toFloatArray());
    }

    @Test
    void readsPlainDictWithStridedScalarAndBf16Tensors() throws IOException {
        Map<String, HostTensor> t = PyTorchBin.read(fixture("plain_dict_python.bin"));
        checkPlainDict(t);
    }

    private static void checkPlainDict(Map<String, HostTensor> t) {
        assertEquals(6, t.size());
        assertArrayEquals(new float[]{-1, -0.5f, 0, 0.5f, 1, 1.5f}, t.get("encoder.weight").toFloatArray());
        assertArrayEquals(new long[]{3, 2}, t.get("encoder.weight_t").shape());
        assertArrayEquals(new float[]{-1, 0.5f, -0.5f, 1, 0, 1.5f}, t.get("encoder.weight_t").toFloatArray(),
                "transposed view gathered into row-major order");
        assertEquals(DType.BF16, t.get("encoder.bf16").dtype());
        assertArrayEquals(new float[]{1.5f, -2}, t.get("encoder.bf16").toFloatArray());
        assertArrayEquals(new long[0], t.get("encoder.scalar").shape());
        assertArrayEquals(new float[]{1.5f}, t.get("encoder.scalar").toFloatArray());
        assertArrayEquals(new long[]{3, -1, 1L << 40}, longs(t.get("encoder.ids")));
    }

    /**
     * libtorch as the independent reference: it loads the plain-dict file, we compare its
     * tensors with ours, then it re-saves the dict with torch::pickle_save (the zip format
     * torch.save writes) and we read that file back.
     */
    @Test
    void agreesWithLibtorchPickleLoadAndReadsPickleSaveOutput() throws IOException {
        Path original = fixture("plain_dict_python.bin");
        IValue loaded = torch.pickle_load(new ByteVector(Files.readAllBytes(original)));
        assertTrue(loaded.isGenericDict());
        Map<String, HostTensor> reference = toHost(loaded.toGenericDict());
        Map<String, HostTensor> ours = PyTorchBin.read(original);
        assertEquals(reference.keySet(), ours.keySet());
        reference.forEach((name, ref) -> {
            assertEquals(ref.dtype(), ours.get(name).dtype(), name);
            assertArrayEquals(ref.shape(), ours.get(name).shape(), name);
            assertEquals(ref.data(), ours.get(name).data(), name);
        });

        Path resaved = dir.resolve("resaved.bin");
        Files.write(resaved, torch.pickle_save(loaded).get());
        checkPlainDict(PyTorchBin.read(resaved));
    }

    /**
     * Why PyTorchBin has its own unpickler: libtorch 2.10 still cannot read the OrderedDict
     * that Python's torch.save(model.state_dict()) writes (pytorch/pytorch#100741). Failing
     * here means libtorch fixed it; the error must stay a Java exception, never a crash.
     */
    @Test
    void libtorchPickleLoadRejectsPythonStateDict() throws IOException {
        byte[] bytes = Files.readAllBytes(fixture("state_dict_python.bin"));
        RuntimeException ex = assertThrows(RuntimeException.class, () -> torch.pickle_load(new ByteVector(bytes)));
        assertTrue(ex.getMessage().contains("Expected GenericDict but got None"), ex.getMessage());
    }

    /** Tensor values copied out of libtorch into contiguous HostTensors. */
    private static Map<String, HostTensor> toHost(GenericDict dict) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (GenericDictIterator it = dict.begin(); !it.equals(dict.end()); it.increment()) {
            GenericDictEntryRef e = it.access();
            Tensor t = e.value().toTensor().contiguous();
            // A plain switch on scalar_type() fell through here even though it printed "Float":
            // the presets return an enum object that is not the constant; intern() maps it back.
            DType dtype = switch (t.scalar_type().intern()) {
                case Float -> DType.F32;
                case Long -> DType.I64;
                case Half -> DType.F16;
                case BFloat16 -> DType.BF16;
                default -> throw new AssertionError("unexpected " + t.scalar_type());
            };
            byte[] bytes = new byte[(int) t.nbytes()];
            new BytePointer(t.data_ptr()).capacity(bytes.length).get(bytes);
            out.put(e.key().toStringRef().getString(), new HostTensor(dtype, t.sizes().vec().get(), ByteBuffer.wrap(bytes)));
        }
        return out;
    }

    private static long[] longs(HostTensor t) {
        long[] out = new long[(int) t.numel()];
        t.data().duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(out);
        return out;
    }

    // ---- corrupt files ----------------------------------------------------------------------

    private static void assertRejected(Path file, String fragment) {
        Bert4jException ex = assertThrows(Bert4jException.class, () -> PyTorchBin.read(file));
        assertTrue(ex.getMessage().contains(file.getFileName().toString()), "names the file: " + ex.getMessage());
        assertTrue(ex.getMessage().contains(fragment), "should say '" + fragment + "': " + ex.getMessage());
    }

    @Test
    void rejectsTruncatedAndGarbageFiles() throws IOException {
        byte[] good = Files.readAllBytes(fixture("state_dict_python.bin"));
        Path half = dir.resolve("half.bin");
        Files.write(half, Arrays.copyOf(good, good.length / 2));
        assertRejected(half, "not a readable torch.save zip archive");
        Path garbage = dir.resolve("garbage.bin");
        Files.write(garbage, "hello world".getBytes(StandardCharsets.UTF_8));
        assertRejected(garbage, "not a torch.save zip archive");
        Path legacy = dir.resolve("legacy.bin");
        Files.write(legacy, new byte[]{(byte) 0x80, 2, 'K', 1, '.'});
        assertRejected(legacy, "legacy (pre-1.6, non-zip)");
        Path empty = dir.resolve("empty.bin");
        Files.write(empty, new byte[0]);
        assertRejected(empty, "not a torch.save zip archive");
    }

    /** Rewrites one record of the good fixture (null content drops it). */
    private Path mutate(String name, String record, byte[] content) throws IOException {
        Path out = dir.resolve(name);
        try (java.util.zip.ZipFile zip = new java.util.zip.ZipFile(fixture("state_dict_python.bin").toFile());
             ZipOutputStream zos = new ZipOutputStream(Files.newOutputStream(out))) {
            for (ZipEntry e : java.util.Collections.list(zip.entries())) {
                byte[] bytes = zip.getInputStream(e).readAllBytes();
                if (e.getName().equals(record)) {
                    if (content == null) continue;
                    bytes = content;
                }
                zos.putNextEntry(new ZipEntry(e.getName()));
                zos.write(bytes);
                zos.closeEntry();
            }
        }
        return out;
    }

    private byte[] pickle() throws IOException {
        try (java.util.zip.ZipFile zip = new java.util.zip.ZipFile(fixture("state_dict_python.bin").toFile())) {
            return zip.getInputStream(zip.getEntry("archive/data.pkl")).readAllBytes();
        }
    }

    @Test
    void rejectsCorruptRecords() throws IOException {
        assertRejected(mutate("nostorage.bin", "archive/data/0", null), "storage record archive/data/0 is missing");
        assertRejected(mutate("shortstorage.bin", "archive/data/0", new byte[5]), "holds 5 bytes but 6 F32 elements need 24");
        assertRejected(mutate("bigendian.bin", "archive/byteorder", "big".getBytes(StandardCharsets.US_ASCII)), "byte order \"big\"");
        assertRejected(mutate("nopickle.bin", "archive/data.pkl", null), "no <archive>/data.pkl");
        byte[] p = pickle();
        assertRejected(mutate("cutpickle.bin", "archive/data.pkl", Arrays.copyOf(p, p.length / 2)), "pickle is truncated");
    }

    @Test
    void refusesToRunArbitraryPickledCode() throws IOException {
        // GLOBAL 'os system' + ('echo pwned',) + REDUCE: the classic pickle exploit.
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        b.writeBytes(new byte[]{(byte) 0x80, 2});
        b.writeBytes("cos\nsystem\nX".getBytes(StandardCharsets.US_ASCII));
        b.writeBytes(new byte[]{10, 0, 0, 0});
        b.writeBytes("echo pwned".getBytes(StandardCharsets.US_ASCII));
        b.writeBytes(new byte[]{(byte) 0x85, 'R', '.'});
        byte[] evil = b.toByteArray();
        assertRejected(mutate("evil.bin", "archive/data.pkl", evil), "unsupported pickle global os.system");
    }

    @Test
    void randomPickleCorruptionNeverEscapesAsAnotherException() throws IOException {
        byte[] p = pickle();
        java.util.Random rnd = new java.util.Random(5);
        for (int trial = 0; trial < 300; trial++) {
            byte[] bad = p.clone();
            for (int k = 0; k < 1 + rnd.nextInt(3); k++) {
                bad[rnd.nextInt(bad.length)] = (byte) rnd.nextInt(256);
            }
            Path f = mutate("fuzz" + trial + ".bin", "archive/data.pkl", bad);
            try {
                PyTorchBin.read(f);
            } catch (Bert4jException expected) {
                assertTrue(expected.getMessage().contains(f.getFileName().toString()), expected.getMessage());
            }
            Files.delete(f);
        }
    }

    @Test
    void libtorchCorruptInputIsAJavaExceptionNotACrash() {
        // The presets surface c10::Error as RuntimeException; the JVM survives.
        RuntimeException ex = assertThrows(RuntimeException.class,
                () -> torch.pickle_load(new ByteVector((byte) 1, (byte) 2, (byte) 3)));
        assertTrue(ex.getMessage().contains("not a ZIP archive"), ex.getMessage());
    }
}
