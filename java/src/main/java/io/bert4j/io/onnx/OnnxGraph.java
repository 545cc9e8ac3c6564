package io.bert4j.io.onnx;

import io.bert4j.Bert4jException;
import io.bert4j.io.DType;
import io.bert4j.io.HostTensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parts of an ONNX model that weight import needs: the graph's nodes (name, op type,
 * inputs, outputs) and its initializers as {@link HostTensor}s. Reads the protobuf wire
 * format directly (ModelProto → GraphProto → NodeProto / TensorProto), so no ONNX or
 * protobuf library is needed; unknown fields are skipped as the wire format allows.
 */
public final class OnnxGraph {

    /** One graph node; {@code inputs} may contain empty strings for omitted optional inputs. */
    public record Node(String name, String opType, List<String> inputs, List<String> outputs,
                       Map<String, HostTensor> tensorAttributes, Map<String, Float> floatAttributes) {
    }

    private final Path file;
    private final List<Node> nodes = new ArrayList<>();
    private final Map<String, HostTensor> initializers = new LinkedHashMap<>();

    private OnnxGraph(Path file) {
        this.file = file;
    }

    public List<Node> nodes() {
        return nodes;
    }

    public Map<String, HostTensor> initializers() {
        return initializers;
    }

    public Path file() {
        return file;
    }

    public static OnnxGraph read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new Bert4jException(file + ": ONNX file not found");
        }
        OnnxGraph g = new OnnxGraph(file);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size > Integer.MAX_VALUE) {
                throw new Bert4jException(file + ": ONNX files over 2 GB keep weights as external data, "
                        + "which bert4j does not import");
            }
            MappedByteBuffer buf = ch.map(FileChannel.MapMode.READ_ONLY, 0, size);
            g.parseModel(new Reader(buf, 0, (int) size));
        } catch (IOException e) {
            throw new Bert4jException(file + ": cannot read ONNX file: " + e.getMessage(), e);
        } catch (ProtoException | IndexOutOfBoundsException | IllegalArgumentException e) {
            throw new Bert4jException(file + ": not a valid ONNX model (" + e.getMessage() + ")", e);
        }
        if (g.nodes.isEmpty()) {
            throw new Bert4jException(file + ": not a valid ONNX model (no graph nodes)");
        }
        return g;
    }

    private void parseModel(Reader r) {
        boolean sawGraph = false;
        while (r.hasMore()) {
            long tag = r.varint();
            int field = (int) (tag >>> 3);
            int wire = (int) (tag & 7);
            if (field == 7 && wire == 2) {
                parseGraph(r.sub());
                sawGraph = true;
            } else {
                r.skip(wire);
            }
        }
        if (!sawGraph) {
            throw new ProtoException("ModelProto has no graph");
        }
    }

    private void parseGraph(Reader r) {
        while (r.hasMore()) {
            long tag = r.varint();
            int field = (int) (tag >>> 3);
            int wire = (int) (tag & 7);
            if (field == 1 && wire == 2) {
                nodes.add(parseNode(r.sub()));
            } else if (field == 5 && wire == 2) {
                Map.Entry<String, HostTensor> t = parseTensor(r.sub());
                initializers.put(t.getKey(), t.getValue());
            } else {
                r.skip(wire);
            }
        }
    }

    private Node parseNode(Reader r) {
        List<String> in = new ArrayList<>();
        List<String> out = new ArrayList<>();
        String name = "";
        String op = "";
        Map<String, HostTensor> tensorAttrs = new LinkedHashMap<>();
        Map<String, Float> floatAttrs = new LinkedHashMap<>();
        while (r.hasMore()) {
            long tag = r.varint();
            int field = (int) (tag >>> 3);
            int wire = (int) (tag & 7);
            switch (field) {
                case 1 -> in.add(r.string());
                case 2 -> out.add(r.string());
                case 3 -> name = r.string();
                case 4 -> op = r.string();
                case 5 -> parseAttribute(r.sub(), tensorAttrs, floatAttrs);
                default -> r.skip(wire);
            }
        }
        return new Node(name, op, List.copyOf(in), List.copyOf(out), tensorAttrs, floatAttrs);
    }

    /** Keeps tensor-valued attributes (a Constant node's value) and float ones (epsilon). */
    private void parseAttribute(Reader r, Map<String, HostTensor> tensorAttrs, Map<String, Float> floatAttrs) {
        String name = "";
        HostTensor t = null;
        Float f = null;
        while (r.hasMore()) {
            long tag = r.varint();
            int field = (int) (tag >>> 3);
            int wire = (int) (tag & 7);
            if (field == 1 && wire == 2) {
                name = r.string();
            } else if (field == 2 && wire == 5) {
                f = r.fixed32Float();
            } else if (field == 5 && wire == 2) {
                t = parseTensor(r.sub()).getValue();
            } else {
                r.skip(wire);
            }
        }
        if (t != null) {
            tensorAttrs.put(name, t);
        }
        if (f != null) {
            floatAttrs.put(name, f);
        }
    }

    private Map.Entry<String, HostTensor> parseTensor(Reader r) {
        List<Long> dims = new ArrayList<>();
        int dataType = 0;
        String name = "";
        ByteBuffer raw = null;
        ByteBuffer floatData = null; // packed repeated float
        List<Long> int64Data = new ArrayList<>();
        List<Long> int32Data = new ArrayList<>();
        boolean external = false;
        while (r.hasMore()) {
            long tag = r.varint();
            int field = (int) (tag >>> 3);
            int wire = (int) (tag & 7);
            switch (field) {
                case 1 -> {
                    if (wire == 2) {
                        Reader p = r.sub();
                        while (p.hasMore()) dims.add(p.varint());
                    } else {
                        dims.add(r.varint());
                    }
                }
                case 2 -> dataType = (int) r.varint();
                case 4 -> {
                    if (wire == 2) {
                        floatData = r.bytes();
                    } else {
                        r.skip(wire); // unpacked floats do not occur in exporter output
                    }
                }
                case 5 -> {
                    if (wire == 2) {
                        Reader p = r.sub();
                        while (p.hasMore()) int32Data.add(p.varint());
                    } else {
                        int32Data.add(r.varint());
                    }
                }
                case 7 -> {
                    if (wire == 2) {
                        Reader p = r.sub();
                        while (p.hasMore()) int64Data.add(p.varint());
                    } else {
                        int64Data.add(r.varint());
                    }
                }
                case 8 -> name = r.string();
                case 9 -> raw = r.bytes();
                case 14 -> external = r.varint() == 1;
                default -> r.skip(wire);
            }
        }
        if (external) {
            throw new ProtoException("tensor " + name + " keeps its data in an external file, which bert4j does not import");
        }
        DType dtype = switch (dataType) {
            case 1 -> DType.F32;
            case 2 -> DType.U8;
            case 3 -> DType.I8;
            case 5 -> DType.I16;
            case 6 -> DType.I32;
            case 7 -> DType.I64;
            case 9 -> DType.BOOL;
            case 10 -> DType.F16;
            case 11 -> DType.F64;
            case 16 -> DType.BF16;
            default -> throw new ProtoException("tensor " + name + " has unsupported ONNX data type " + dataType);
        };
        long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
        long numel = HostTensor.numel(shape);
        ByteBuffer data;
        if (raw != null) {
            data = copyOf(raw);
        } else if (floatData != null && dtype == DType.F32) {
            data = copyOf(floatData);
        } else if (dtype == DType.I64 && !int64Data.isEmpty()) {
            data = ByteBuffer.allocate(int64Data.size() * 8).order(ByteOrder.LITTLE_ENDIAN);
            for (long v : int64Data) data.putLong(v);
            data.flip();
        } else if ((dtype == DType.I32 || dtype == DType.BOOL || dtype == DType.U8 || dtype == DType.I8) && !int32Data.isEmpty()) {
            data = ByteBuffer.allocate(int32Data.size() * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
            for (long v : int32Data) {
                if (dtype == DType.I32) data.putInt((int) v); else data.put((byte) v);
            }
            data.flip();
        } else if (numel == 0) {
            data = ByteBuffer.allocate(0);
        } else {
            throw new ProtoException("tensor " + name + " has no data this reader understands");
        }
        if (data.remaining() != numel * dtype.byteSize()) {
            throw new ProtoException("tensor " + name + " holds " + data.remaining() + " bytes, but its "
                    + dtype + " shape " + java.util.Arrays.toString(shape) + " needs " + numel * dtype.byteSize());
        }
        return Map.entry(name, new HostTensor(dtype, shape, data));
    }

    private static ByteBuffer copyOf(ByteBuffer src) {
        ByteBuffer copy = ByteBuffer.allocate(src.remaining()).order(ByteOrder.LITTLE_ENDIAN);
        copy.put(src.duplicate());
        copy.flip();
        return copy;
    }

    private static final class ProtoException extends RuntimeException {
        ProtoException(String m) {
            super(m);
        }
    }

    /** Protobuf wire-format reader over a window [pos, end) of a buffer. */
    private static final class Reader {
        private final ByteBuffer buf;
        private int pos;
        private final int end;

        Reader(ByteBuffer buf, int pos, int end) {
            this.buf = buf;
            this.pos = pos;
            this.end = end;
        }

        boolean hasMore() {
            return pos < end;
        }

        long varint() {
            long result = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= end) {
                    throw new ProtoException("truncated varint at byte " + pos);
                }
                byte b = buf.get(pos++);
                result |= (long) (b & 0x7f) << shift;
                if ((b & 0x80) == 0) {
                    return result;
                }
            }
            throw new ProtoException("malformed varint at byte " + pos);
        }

        int length() {
            long len = varint();
            if (len < 0 || len > end - pos) {
                throw new ProtoException("length " + len + " at byte " + pos + " runs past the end of its message");
            }
            return (int) len;
        }

        Reader sub() {
            int len = length();
            Reader r = new Reader(buf, pos, pos + len);
            pos += len;
            return r;
        }

        ByteBuffer bytes() {
            int len = length();
            ByteBuffer b = buf.duplicate();
            b.position(pos).limit(pos + len);
            pos += len;
            return b.slice().order(ByteOrder.LITTLE_ENDIAN);
        }

        String string() {
            ByteBuffer b = bytes();
            byte[] a = new byte[b.remaining()];
            b.get(a);
            return new String(a, StandardCharsets.UTF_8);
        }

        float fixed32Float() {
            if (end - pos < 4) {
                throw new ProtoException("truncated float at byte " + pos);
            }
            float v = buf.duplicate().order(ByteOrder.LITTLE_ENDIAN).getFloat(pos);
            pos += 4;
            return v;
        }

        void skip(int wire) {
            switch (wire) {
                case 0 -> varint();
                case 1 -> advance(8);
                case 2 -> advance(length());
                case 5 -> advance(4);
                default -> throw new ProtoException("unsupported wire type " + wire + " at byte " + pos);
            }
        }

        private void advance(int n) {
            if (n > end - pos) {
                throw new ProtoException("field runs past the end of its message at byte " + pos);
            }
            pos += n;
        }
    }
}
