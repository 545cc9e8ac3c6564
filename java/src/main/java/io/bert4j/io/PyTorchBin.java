package io.bert4j.io;

import io.bert4j.Bert4jException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * Reads legacy {@code pytorch_model.bin} checkpoints: the zip archive {@code torch.save} has
 * written since PyTorch 1.6 ({@code <name>/data.pkl} plus one {@code <name>/data/<key>} record
 * per storage). Tensors come back as contiguous little-endian {@link HostTensor}s in the
 * pickle's order. See {@link TorchUnpickler} for why this does not go through libtorch's
 * {@code pickle_load}.
 */
public final class PyTorchBin {

    /** Pickles are small (tensor bytes live in separate records); refuse absurd ones early. */
    private static final long MAX_PICKLE_BYTES = 256L * 1024 * 1024;

    private PyTorchBin() {
    }

    /** Reads a {@code torch.save}d dict or OrderedDict of tensors. */
    public static Map<String, HostTensor> read(Path file) {
        checkMagic(file);
        try (ZipFile zip = new ZipFile(file.toFile())) {
            String prefix = archivePrefix(zip, file);
            checkByteOrder(zip, prefix, file);
            ZipEntry pklEntry = zip.getEntry(prefix + "data.pkl");
            byte[] pickle = readEntry(zip, pklEntry, MAX_PICKLE_BYTES, file);
            String where = file + " (" + pklEntry.getName() + ")";
            Object root = new TorchUnpickler(where, pickle, ref -> readStorage(zip, prefix, ref, file)).load();
            return toTensorMap(root, file);
        } catch (ZipException ex) {
            throw new Bert4jException(file + ": not a readable torch.save zip archive: " + ex.getMessage(), ex);
        } catch (IOException ex) {
            throw new Bert4jException(file + ": cannot read: " + ex, ex);
        }
    }

    private static void checkMagic(Path file) {
        byte[] head = new byte[4];
        int n;
        try (InputStream in = Files.newInputStream(file)) {
            n = in.readNBytes(head, 0, 4);
        } catch (IOException ex) {
            throw new Bert4jException(file + ": cannot read: " + ex, ex);
        }
        if (n == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) {
            return;
        }
        if (n >= 2 && (head[0] & 0xff) == 0x80) {
            // A bare pickle stream: torch.save before PyTorch 1.6 (or _use_new_zipfile_serialization=False).
            throw new Bert4jException(file + ": legacy (pre-1.6, non-zip) torch.save format is not supported;"
                    + " convert it to safetensors with a recent PyTorch (load it and save_pretrained again)");
        }
        throw new Bert4jException(file + ": not a torch.save zip archive (" + n + "-byte header does not start with PK)");
    }

    /** torch.save names every record {@code <archive>/...}; the archive name varies, so find data.pkl. */
    private static String archivePrefix(ZipFile zip, Path file) {
        for (Enumeration<? extends ZipEntry> e = zip.entries(); e.hasMoreElements(); ) {
            String name = e.nextElement().getName();
            int slash = name.indexOf('/');
            if (slash > 0 && name.substring(slash + 1).equals("data.pkl")) {
                return name.substring(0, slash + 1);
            }
        }
        throw new Bert4jException(file + ": zip archive has no <archive>/data.pkl; not written by torch.save");
    }

    private static void checkByteOrder(ZipFile zip, String prefix, Path file) throws IOException {
        ZipEntry e = zip.getEntry(prefix + "byteorder");
        if (e == null) {
            return; // older archives have no record and are little-endian
        }
        String order = new String(readEntry(zip, e, 16, file), StandardCharsets.US_ASCII).trim();
        if (!order.equals("little")) {
            throw new Bert4jException(file + ": byte order \"" + order + "\" is not supported (only little-endian)");
        }
    }

    private static ByteBuffer readStorage(ZipFile zip, String prefix, TorchUnpickler.StorageRef ref, Path file) {
        String name = prefix + "data/" + ref.key();
        ZipEntry e = zip.getEntry(name);
        if (e == null) {
            throw new Bert4jException(file + ": storage record " + name + " is missing from the archive");
        }
        long expected;
        try {
            expected = Math.multiplyExact(ref.numel(), (long) ref.dtype().byteSize());
        } catch (ArithmeticException ex) {
            throw new Bert4jException(file + ": storage " + name + " size overflows");
        }
        if (expected > Integer.MAX_VALUE) {
            throw new Bert4jException(file + ": storage " + name + " has " + expected
                    + " bytes, more than one buffer can hold (2 GB)");
        }
        try {
            byte[] bytes = readEntry(zip, e, expected, file);
            if (bytes.length != expected) {
                throw new Bert4jException(file + ": storage record " + name + " holds " + bytes.length
                        + " bytes but " + ref.numel() + " " + ref.dtype() + " elements need " + expected);
            }
            return ByteBuffer.wrap(bytes).asReadOnlyBuffer();
        } catch (IOException ex) {
            throw new Bert4jException(file + ": cannot read storage record " + name + ": " + ex, ex);
        }
    }

    /** Reads an entry, refusing more than {@code max} bytes whatever the (untrusted) directory claims. */
    private static byte[] readEntry(ZipFile zip, ZipEntry e, long max, Path file) throws IOException {
        if (e.getSize() > max) {
            throw new Bert4jException(file + ": archive record " + e.getName() + " is " + e.getSize()
                    + " bytes, expected at most " + max);
        }
        try (InputStream in = zip.getInputStream(e)) {
            byte[] bytes = in.readNBytes((int) max);
            if (in.read() >= 0) {
                throw new Bert4jException(file + ": archive record " + e.getName() + " is longer than " + max + " bytes");
            }
            return bytes;
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, HostTensor> toTensorMap(Object root, Path file) {
        if (!(root instanceof Map)) {
            throw new Bert4jException(file + ": expected a dict of tensors, found " + TorchUnpickler.describe(root));
        }
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (Map.Entry<Object, Object> e : ((Map<Object, Object>) root).entrySet()) {
            if (!(e.getKey() instanceof String name)) {
                throw new Bert4jException(file + ": state dict key " + TorchUnpickler.describe(e.getKey()) + " is not a string");
            }
            if (!(e.getValue() instanceof HostTensor t)) {
                throw new Bert4jException(file + ": entry \"" + name + "\" is " + TorchUnpickler.describe(e.getValue())
                        + ", not a tensor; expected a model state dict");
            }
            out.put(name, t);
        }
        return out;
    }
}
