package io.bert4j.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads and writes the safetensors format: an 8-byte little-endian u64 header length, a UTF-8
 * JSON header (an optional {@code "__metadata__"} string map plus one entry per tensor with
 * {@code dtype}, {@code shape} and {@code data_offsets} relative to the data section), then the
 * tensor bytes, contiguous and in no particular order.
 *
 * <p>Reading validates the whole header before touching any data, because a checkpoint is
 * untrusted input: every inconsistency ends in a {@link Bert4jException} naming the file, the
 * tensor and what is wrong. Tensor data is memory-mapped one tensor at a time, so files larger
 * than 2 GB work (each tensor's bytes must still fit a {@link ByteBuffer}).
 */
public final class SafeTensors {

    /** The header key that holds free-form string metadata rather than a tensor. */
    public static final String METADATA_KEY = "__metadata__";

    /** Headers above this are rejected as hostile: the reference implementation uses the same cap. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private SafeTensors() {
    }

    /** One tensor's header entry after validation; offsets are relative to the data section. */
    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    }

    /** The validated header and where the data section starts and ends. */
    private record Header(Map<String, String> metadata, List<Entry> entries, long dataStart, long dataLength) {
    }

    /**
     * Reads every tensor, in the order the header lists them. The returned buffers are
     * read-only memory maps of the file (zero-copy); they stay valid after this returns.
     */
    public static Map<String, HostTensor> read(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            Header header = readHeader(ch, file);
            Map<String, HostTensor> out = new LinkedHashMap<>();
            for (Entry e : header.entries()) {
                long length = e.end() - e.begin();
                if (length > Integer.MAX_VALUE) {
                    throw new Bert4jException(file + ": tensor \"" + e.name() + "\" has " + length
                            + " bytes, more than one buffer can hold (2 GB)");
                }
                // A zero-length map is legal but pointless; an empty heap buffer says the same.
                ByteBuffer data = length == 0
                        ? ByteBuffer.allocate(0)
                        : ch.map(FileChannel.MapMode.READ_ONLY, header.dataStart() + e.begin(), length);
                out.put(e.name(), new HostTensor(e.dtype(), e.shape(), data.order(ByteOrder.LITTLE_ENDIAN)));
            }
            return out;
        } catch (IOException ex) {
            throw new Bert4jException(file + ": cannot read safetensors file: " + ex.getMessage(), ex);
        }
    }

    /** The {@code __metadata__} map (empty when absent); the header is fully validated first. */
    public static Map<String, String> readMetadata(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return readHeader(ch, file).metadata();
        } catch (IOException ex) {
            throw new Bert4jException(file + ": cannot read safetensors file: " + ex.getMessage(), ex);
        }
    }

    private static Header readHeader(FileChannel ch, Path file) throws IOException {
        long fileSize = ch.size();
        if (fileSize < 8) {
            throw new Bert4jException(file + ": not a safetensors file: " + fileSize
                    + " bytes is shorter than the 8-byte header length");
        }
        ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(ch, lenBuf, 0);
        long headerLen = lenBuf.getLong(0); // a u64 above 2^63 reads negative: too large either way
        if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
            throw new Bert4jException(file + ": header length " + Long.toUnsignedString(headerLen)
                    + " is over the " + MAX_HEADER_BYTES + "-byte limit (corrupt or hostile file)");
        }
        if (headerLen > fileSize - 8) {
            throw new Bert4jException(file + ": header length " + headerLen + " is larger than the file ("
                    + fileSize + " bytes); the file is truncated or not safetensors");
        }
        ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
        readFully(ch, headerBuf, 8);
        JsonNode root = parseHeaderJson(headerBuf.flip(), file);
        long dataStart = 8 + headerLen;
        Header header = validate(root, file, dataStart, fileSize - dataStart);
        return header;
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long position) throws IOException {
        while (dst.hasRemaining()) {
            int n = ch.read(dst, position);
            if (n < 0) {
                throw new IOException("unexpected end of file at byte " + position);
            }
            position += n;
        }
    }

    private static JsonNode parseHeaderJson(ByteBuffer bytes, Path file) {
        String text;
        try {
            // Strict decoding: a lenient decoder would silently turn bad bytes into U+FFFD.
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(bytes);
            text = chars.toString();
        } catch (CharacterCodingException ex) {
            throw new Bert4jException(file + ": header is not valid UTF-8 (" + ex + ")");
        }
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JsonProcessingException ex) {
            throw new Bert4jException(file + ": header is not valid JSON: " + ex.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new Bert4jException(file + ": header must be a JSON object, found "
                    + (root == null || root.isMissingNode() ? "nothing" : root.getNodeType()));
        }
        return root;
    }

    private static Header validate(JsonNode root, Path file, long dataStart, long dataLength) {
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> entries = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> field = it.next();
            String name = field.getKey();
            JsonNode node = field.getValue();
            if (name.equals(METADATA_KEY)) {
                readMetadataNode(node, file, metadata);
            } else {
                entries.add(readEntry(name, node, file));
            }
        }
        checkLayout(entries, file, dataLength);
        return new Header(metadata, entries, dataStart, dataLength);
    }

    private static void readMetadataNode(JsonNode node, Path file, Map<String, String> out) {
        if (!node.isObject()) {
            throw new Bert4jException(file + ": \"" + METADATA_KEY + "\" must be an object of strings, found "
                    + node.getNodeType());
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> kv = it.next();
            if (!kv.getValue().isTextual()) {
                throw new Bert4jException(file + ": \"" + METADATA_KEY + "\" value for \"" + kv.getKey()
                        + "\" must be a string, found " + kv.getValue().getNodeType());
            }
            out.put(kv.getKey(), kv.getValue().textValue());
        }
    }

    private static Entry readEntry(String name, JsonNode node, Path file) {
        String where = file + ": tensor \"" + name + "\"";
        if (!node.isObject()) {
            throw new Bert4jException(where + ": header entry must be an object, found " + node.getNodeType());
        }
        JsonNode dtypeNode = required(node, "dtype", where);
        if (!dtypeNode.isTextual()) {
            throw new Bert4jException(where + ": \"dtype\" must be a string, found " + dtypeNode.getNodeType());
        }
        DType dtype = DType.fromSafetensors(dtypeNode.textValue(), where);

        JsonNode shapeNode = required(node, "shape", where);
        if (!shapeNode.isArray()) {
            throw new Bert4jException(where + ": \"shape\" must be an array, found " + shapeNode.getNodeType());
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(shapeNode.get(i), where + ": shape[" + i + "]");
        }

        JsonNode offsetsNode = required(node, "data_offsets", where);
        if (!offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw new Bert4jException(where + ": \"data_offsets\" must be [begin, end], found " + offsetsNode);
        }
        long begin = nonNegativeLong(offsetsNode.get(0), where + ": data_offsets begin");
        long end = nonNegativeLong(offsetsNode.get(1), where + ": data_offsets end");
        if (begin > end) {
            throw new Bert4jException(where + ": data_offsets [" + begin + ", " + end + "] has begin after end");
        }

        long expected;
        try {
            expected = Math.multiplyExact(HostTensor.numel(shape), (long) dtype.byteSize());
        } catch (ArithmeticException ex) {
            throw new Bert4jException(where + ": shape " + Arrays.toString(shape) + " overflows a 64-bit size");
        }
        if (end - begin != expected) {
            throw new Bert4jException(where + ": data_offsets [" + begin + ", " + end + "] span " + (end - begin)
                    + " bytes but dtype " + dtype.safetensorsName() + " and shape " + Arrays.toString(shape)
                    + " need " + expected);
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    private static JsonNode required(JsonNode node, String key, String where) {
        JsonNode v = node.get(key);
        if (v == null) {
            throw new Bert4jException(where + ": header entry is missing \"" + key + "\"");
        }
        return v;
    }

    private static long nonNegativeLong(JsonNode n, String what) {
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong()) {
            throw new Bert4jException(what + " must be an integer, found " + n);
        }
        long v = n.longValue();
        if (v < 0) {
            throw new Bert4jException(what + " is negative (" + v + ")");
        }
        return v;
    }

    /**
     * Tensors must tile the data section exactly: sorted by offset, each starts where the last
     * ended, the first at 0 and the last at the end of the file. That rules out overlaps (one
     * tensor's bytes read as another's), gaps (hidden payloads) and truncation in one pass.
     */
    private static void checkLayout(List<Entry> entries, Path file, long dataLength) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expectedBegin = 0;
        String previous = null;
        for (Entry e : sorted) {
            if (e.begin() < expectedBegin) {
                throw new Bert4jException(file + ": tensor \"" + e.name() + "\" (bytes " + e.begin() + ".." + e.end()
                        + ") overlaps tensor \"" + previous + "\" which ends at " + expectedBegin);
            }
            if (e.begin() > expectedBegin) {
                throw new Bert4jException(file + ": gap in the data section: bytes " + expectedBegin + ".." + e.begin()
                        + " before tensor \"" + e.name() + "\" belong to no tensor");
            }
            expectedBegin = e.end();
            previous = e.name();
        }
        if (expectedBegin > dataLength) {
            throw new Bert4jException(file + ": data section truncated: tensor \"" + previous + "\" ends at byte "
                    + expectedBegin + " of the data section but the file holds only " + dataLength + " data bytes");
        }
        if (expectedBegin < dataLength) {
            throw new Bert4jException(file + ": data section has " + (dataLength - expectedBegin)
                    + " trailing bytes after the last tensor that belong to no tensor");
        }
    }

    /**
     * Writes {@code tensors} (sorted by name, so the same weights always give the same bytes)
     * with {@code metadata} as {@code __metadata__}. The file appears atomically: bytes go to a
     * temporary file in the same folder, are fsynced, then renamed over {@code file}, so a crash
     * leaves either the old checkpoint or the new one, never half of one.
     */
    public static void write(Path file, Map<String, HostTensor> tensors, Map<String, String> metadata) {
        Map<String, HostTensor> sorted = new TreeMap<>(tensors);
        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject(METADATA_KEY);
            new TreeMap<>(metadata).forEach(meta::put);
        }
        long offset = 0;
        for (Map.Entry<String, HostTensor> e : sorted.entrySet()) {
            String name = e.getKey();
            if (name.isEmpty() || name.equals(METADATA_KEY)) {
                throw new Bert4jException(file + ": cannot write a tensor named \"" + name + "\"");
            }
            HostTensor t = e.getValue();
            ObjectNode entry = header.putObject(name);
            entry.put("dtype", t.dtype().safetensorsName());
            ArrayNode shape = entry.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            long size = t.data().remaining();
            entry.putArray("data_offsets").add(offset).add(offset + size);
            offset += size;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (JsonProcessingException ex) {
            throw new Bert4jException(file + ": cannot encode safetensors header: " + ex.getOriginalMessage(), ex);
        }
        // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned,
        // which lets readers map tensors of any dtype without unaligned loads.
        int padded = (json.length + 7) & ~7;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        prefix.flip();
        AtomicFiles.write(file, ch -> {
            writeFully(ch, prefix);
            for (HostTensor t : sorted.values()) {
                writeFully(ch, t.data().duplicate());
            }
        });
    }

    private static void writeFully(FileChannel ch, ByteBuffer src) throws IOException {
        while (src.hasRemaining()) {
            ch.write(src);
        }
    }
}
