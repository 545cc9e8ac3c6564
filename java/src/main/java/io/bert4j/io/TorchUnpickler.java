package io.bert4j.io;

import io.bert4j.Bert4jException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A deliberately small pickle interpreter for the {@code data.pkl} that {@code torch.save}
 * writes: dicts and OrderedDicts of tensors rebuilt from persistent storages. It never runs
 * pickled code; any global outside a short allow-list (OrderedDict, the tensor/parameter
 * rebuild functions, typed storage classes, libtorch's type-tag wrapper) is an error. Every malformed input ends in a
 * {@link Bert4jException} naming the file and the byte offset.
 *
 * <p>Why not libtorch's {@code torch::pickle_load}: it turns {@code collections.OrderedDict}
 * into None and then fails with "Expected GenericDict but got None" on the state_dict that
 * Python's {@code torch.save(model.state_dict())} writes (pytorch/pytorch#100741, still so in
 * libtorch 2.10), which is how most existing {@code pytorch_model.bin} files were made.
 */
final class TorchUnpickler {

    /** Python's None (lists and the stack hold it; Java null would be ambiguous). */
    enum None { NONE }

    /** An allow-listed global such as {@code torch._utils._rebuild_tensor_v2}. */
    record Global(String module, String name) {
        @Override
        public String toString() {
            return module + "." + name;
        }
    }

    /** A pickled tuple (kept distinct from lists only for messages). */
    record Tuple(List<Object> items) {
    }

    /** A persistent reference to storage bytes in the archive. */
    record StorageRef(DType dtype, String key, long numel) {
    }

    private static final Map<String, DType> STORAGE_TYPES = Map.of(
            "FloatStorage", DType.F32, "DoubleStorage", DType.F64, "HalfStorage", DType.F16,
            "BFloat16Storage", DType.BF16, "LongStorage", DType.I64, "IntStorage", DType.I32,
            "ShortStorage", DType.I16, "CharStorage", DType.I8, "ByteStorage", DType.U8,
            "BoolStorage", DType.BOOL);

    private static final Object MARK = new Object();

    private final String where;
    private final byte[] in;
    private final Function<StorageRef, ByteBuffer> storages;
    private final Map<String, ByteBuffer> storageCache = new HashMap<>();
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private int pos;

    /**
     * @param where    the file (and archive member) for messages
     * @param storages returns the little-endian bytes of a storage record, checked against its size
     */
    TorchUnpickler(String where, byte[] pickle, Function<StorageRef, ByteBuffer> storages) {
        this.where = where;
        this.in = pickle;
        this.storages = storages;
    }

    /** Runs the pickle to its STOP opcode and returns the one object it built. */
    Object load() {
        try {
            while (true) {
                int at = pos;
                int op = u8();
                if (op == '.') {
                    if (stack.size() != 1 || !marks.isEmpty()) {
                        throw fail(at, "pickle ended with " + stack.size() + " objects on the stack, expected 1");
                    }
                    return stack.get(0);
                }
                step(op, at);
            }
        } catch (ClassCastException | IndexOutOfBoundsException | ArithmeticException | NegativeArraySizeException ex) {
            // Explicit checks cover the expected shapes; this is the net for the rest.
            throw new Bert4jException(where + ": malformed pickle near byte " + pos + " (" + ex + ")", ex);
        }
    }

    private void step(int op, int at) {
        switch (op) {
            case 0x80 -> u8(); // PROTO: any version; we only support the opcodes below anyway
            case 0x95 -> bytes(8); // FRAME (protocol 4): a size hint
            case 'c' -> push(global(line(), line(), at));
            case 0x93 -> { // STACK_GLOBAL
                String name = as(String.class, pop(), at, "global name");
                String module = as(String.class, pop(), at, "global module");
                push(global(module, name, at));
            }
            case 'q' -> memo.put((long) u8(), peek(at));
            case 'r' -> memo.put(u32(), peek(at));
            case 0x94 -> memo.put((long) memo.size(), peek(at)); // MEMOIZE
            case 'h' -> push(memoGet(u8(), at));
            case 'j' -> push(memoGet(u32(), at));
            case '(' -> {
                marks.add(stack.size());
                push(MARK);
            }
            case ')' -> push(new Tuple(List.of()));
            case 't' -> push(new Tuple(popToMark(at)));
            case 0x85 -> push(new Tuple(popN(1, at)));
            case 0x86 -> push(new Tuple(popN(2, at)));
            case 0x87 -> push(new Tuple(popN(3, at)));
            case ']' -> push(new ArrayList<>());
            case 'l' -> push(new ArrayList<>(popToMark(at)));
            case '}' -> push(new LinkedHashMap<>());
            case 'd' -> {
                Map<Object, Object> dict = new LinkedHashMap<>();
                putPairs(dict, popToMark(at), at);
                push(dict);
            }
            case 'a' -> {
                Object item = pop();
                asList(peek(at), at).add(item);
            }
            case 'e' -> {
                List<Object> items = popToMark(at);
                asList(peek(at), at).addAll(items);
            }
            case 's' -> {
                Object value = pop();
                Object key = pop();
                asDict(peek(at), at).put(key, value);
            }
            case 'u' -> {
                List<Object> items = popToMark(at);
                putPairs(asDict(peek(at), at), items, at);
            }
            case 'J' -> push((long) le(4).getInt());
            case 'K' -> push((long) u8());
            case 'M' -> push((long) (le(2).getShort() & 0xffff));
            case 0x8a -> push(long1(at));
            case 'X' -> push(utf8(u32(), at));
            case 0x8c -> push(utf8(u8(), at));
            case 0x8d -> push(utf8(le(8).getLong(), at));
            case 'G' -> push(ByteBuffer.wrap(bytes(8)).getDouble()); // BINFLOAT is big-endian
            case 'N' -> push(None.NONE);
            case 0x88 -> push(Boolean.TRUE);
            case 0x89 -> push(Boolean.FALSE);
            case 'Q' -> push(persistent(pop(), at));
            case 'R', 0x81 -> { // REDUCE, NEWOBJ: call an allow-listed global
                Tuple args = as(Tuple.class, pop(), at, "call arguments");
                Global fn = as(Global.class, pop(), at, "callable");
                push(call(fn, args.items(), at));
            }
            case 'b' -> { // BUILD: set state on the object below
                pop();
                Object target = peek(at);
                // An OrderedDict's state is its _metadata attribute (module versions); a
                // tensor's is Python-side attributes. Neither carries weights.
                if (!(target instanceof Map) && !(target instanceof HostTensor)) {
                    throw fail(at, "BUILD on unexpected object " + describe(target));
                }
            }
            default -> throw fail(at, String.format("unsupported pickle opcode 0x%02x", op));
        }
    }

    private Global global(String module, String name, int at) {
        boolean allowed = switch (module) {
            case "collections" -> name.equals("OrderedDict");
            case "torch._utils" -> name.equals("_rebuild_tensor_v2") || name.equals("_rebuild_parameter")
                    || name.equals("_rebuild_parameter_with_state");
            case "torch" -> STORAGE_TYPES.containsKey(name);
            // libtorch's own pickler (torch::pickle_save, TorchScript) wraps typed containers in it.
            case "torch.jit._pickle" -> name.equals("restore_type_tag");
            default -> false;
        };
        if (!allowed) {
            throw fail(at, "unsupported pickle global " + module + "." + name
                    + " (only tensor state dicts are loaded; pickled code is never run)");
        }
        return new Global(module, name);
    }

    private Object call(Global fn, List<Object> args, int at) {
        switch (fn.toString()) {
            case "collections.OrderedDict" -> {
                Map<Object, Object> dict = new LinkedHashMap<>();
                if (!args.isEmpty()) { // OrderedDict([(k, v), ...])
                    for (Object pair : asList(args.get(0), at)) {
                        List<Object> kv = items(pair, at);
                        if (kv.size() != 2) {
                            throw fail(at, "OrderedDict item is not a (key, value) pair");
                        }
                        dict.put(kv.get(0), kv.get(1));
                    }
                }
                return dict;
            }
            case "torch._utils._rebuild_tensor_v2" -> {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.size() < 4) {
                    throw fail(at, "_rebuild_tensor_v2 needs at least 4 arguments, got " + args.size());
                }
                StorageRef storage = as(StorageRef.class, args.get(0), at, "tensor storage");
                long offset = as(Long.class, args.get(1), at, "storage offset");
                long[] size = longs(args.get(2), at, "tensor size");
                long[] stride = longs(args.get(3), at, "tensor stride");
                return rebuild(storage, offset, size, stride, at);
            }
            case "torch.jit._pickle.restore_type_tag" -> {
                // (container, "Dict[str, Tensor]"): the type string only matters to TorchScript.
                if (args.isEmpty()) {
                    throw fail(at, fn + " without arguments");
                }
                return args.get(0);
            }
            case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state" -> {
                if (args.isEmpty()) {
                    throw fail(at, fn + " without arguments");
                }
                return as(HostTensor.class, args.get(0), at, "parameter data");
            }
            default -> throw fail(at, fn + " cannot be called");
        }
    }

    private StorageRef persistent(Object pid, int at) {
        // ('storage', torch.FloatStorage, key, location, numel)
        List<Object> t = items(pid, at);
        if (t.size() < 5 || !"storage".equals(t.get(0))) {
            throw fail(at, "unsupported persistent id " + describe(pid));
        }
        Global type = as(Global.class, t.get(1), at, "storage type");
        DType dtype = STORAGE_TYPES.get(type.name());
        if (dtype == null || !type.module().equals("torch")) {
            throw fail(at, "unsupported storage type " + type);
        }
        String key = as(String.class, t.get(2), at, "storage key");
        long numel = as(Long.class, t.get(4), at, "storage size");
        if (numel < 0) {
            throw fail(at, "storage " + key + " has negative size " + numel);
        }
        return new StorageRef(dtype, key, numel);
    }

    /** A contiguous HostTensor from a (possibly strided, possibly shared) storage view. */
    private HostTensor rebuild(StorageRef ref, long offset, long[] size, long[] stride, int at) {
        if (size.length != stride.length) {
            throw fail(at, "tensor size and stride have different ranks");
        }
        long numel = 1;
        long lastIndex = offset;
        for (int i = 0; i < size.length; i++) {
            if (size[i] < 0 || stride[i] < 0) {
                throw fail(at, "tensor with negative size or stride in storage " + ref.key());
            }
            numel = Math.multiplyExact(numel, size[i]);
        }
        if (numel > ref.numel()) {
            // Only overlapping or expanded (stride-0) views can outnumber their storage; state
            // dicts never hold them, and a hostile file could use them to demand huge copies.
            throw fail(at, "tensor view of " + numel + " elements is larger than its storage " + ref.key()
                    + " (" + ref.numel() + " elements); overlapping or expanded views are not supported");
        }
        int es = ref.dtype().byteSize();
        if (numel == 0) {
            return new HostTensor(ref.dtype(), size, ByteBuffer.allocate(0));
        }
        for (int i = 0; i < size.length; i++) {
            lastIndex = Math.addExact(lastIndex, Math.multiplyExact(size[i] - 1, stride[i]));
        }
        if (offset < 0 || lastIndex >= ref.numel()) {
            throw fail(at, "tensor view reaches element " + lastIndex + " of storage " + ref.key()
                    + " which holds " + ref.numel());
        }
        ByteBuffer storage = storageCache.computeIfAbsent(ref.key(), k -> storages.apply(ref));
        if (isContiguous(size, stride)) {
            // Zero-copy: shared storages (tied weights) stay shared, read-only.
            ByteBuffer view = storage.duplicate();
            view.position(Math.toIntExact(offset * es)).limit(Math.toIntExact((offset + numel) * es));
            return new HostTensor(ref.dtype(), size, view.slice());
        }
        // Strided view (e.g. a saved transpose): gather into row-major order.
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(Math.multiplyExact(numel, (long) es)));
        long[] idx = new long[size.length];
        byte[] element = new byte[es];
        for (long n = 0; n < numel; n++) {
            long src = offset;
            for (int d = 0; d < size.length; d++) {
                src += idx[d] * stride[d];
            }
            storage.get(Math.toIntExact(src * es), element);
            out.put(element);
            for (int d = size.length - 1; d >= 0 && ++idx[d] == size[d]; d--) {
                idx[d] = 0;
            }
        }
        return new HostTensor(ref.dtype(), size, out.flip());
    }

    private static boolean isContiguous(long[] size, long[] stride) {
        long expected = 1;
        for (int d = size.length - 1; d >= 0; d--) {
            if (size[d] != 1 && stride[d] != expected) {
                return false;
            }
            expected *= size[d];
        }
        return true;
    }

    // ---- stack and byte helpers -----------------------------------------------------------

    private void push(Object o) {
        stack.add(o);
    }

    private Object pop() {
        if (stack.isEmpty()) {
            throw fail(pos, "pickle stack underflow");
        }
        Object o = stack.remove(stack.size() - 1);
        if (o == MARK) {
            throw fail(pos, "unexpected MARK on the pickle stack");
        }
        return o;
    }

    private Object peek(int at) {
        if (stack.isEmpty() || stack.get(stack.size() - 1) == MARK) {
            throw fail(at, "pickle stack has no object here");
        }
        return stack.get(stack.size() - 1);
    }

    private List<Object> popN(int n, int at) {
        List<Object> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(0, pop());
        }
        return out;
    }

    private List<Object> popToMark(int at) {
        if (marks.isEmpty()) {
            throw fail(at, "pickle uses a MARK that was never set");
        }
        int start = marks.remove(marks.size() - 1);
        List<Object> top = stack.subList(start + 1, stack.size());
        List<Object> items = new ArrayList<>(top);
        top.clear();
        stack.remove(start); // the MARK itself
        return items;
    }

    private void putPairs(Map<Object, Object> dict, List<Object> items, int at) {
        if (items.size() % 2 != 0) {
            throw fail(at, "dict items come in an odd count (" + items.size() + ")");
        }
        for (int i = 0; i < items.size(); i += 2) {
            dict.put(items.get(i), items.get(i + 1));
        }
    }

    private Object memoGet(long key, int at) {
        Object o = memo.get(key);
        if (o == null) {
            throw fail(at, "pickle refers to memo entry " + key + " that was never stored");
        }
        return o;
    }

    private int u8() {
        need(1);
        return in[pos++] & 0xff;
    }

    private long u32() {
        return le(4).getInt() & 0xffffffffL;
    }

    private ByteBuffer le(int n) {
        return ByteBuffer.wrap(bytes(n)).order(ByteOrder.LITTLE_ENDIAN);
    }

    private byte[] bytes(long n) {
        need(n);
        byte[] b = new byte[(int) n];
        System.arraycopy(in, pos, b, 0, (int) n);
        pos += (int) n;
        return b;
    }

    private void need(long n) {
        if (n < 0 || n > in.length - pos) {
            throw fail(pos, "pickle is truncated: needs " + n + " more bytes, " + (in.length - pos) + " left");
        }
    }

    private String line() {
        int start = pos;
        while (pos < in.length && in[pos] != '\n') {
            pos++;
        }
        if (pos == in.length) {
            throw fail(start, "pickle is truncated inside a GLOBAL name");
        }
        return new String(in, start, pos++ - start, StandardCharsets.UTF_8);
    }

    private String utf8(long n, int at) {
        return new String(bytes(n), StandardCharsets.UTF_8);
    }

    private long long1(int at) {
        int n = u8();
        if (n > 8) {
            throw fail(at, "integer of " + n + " bytes is out of range");
        }
        byte[] b = bytes(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) {
            v = (v << 8) | (b[i] & 0xff);
        }
        if (n > 0 && n < 8 && (b[n - 1] & 0x80) != 0) {
            v -= 1L << (8 * n); // two's complement sign of the top byte
        }
        return v;
    }

    private <T> T as(Class<T> type, Object o, int at, String what) {
        if (!type.isInstance(o)) {
            throw fail(at, what + " should be " + type.getSimpleName() + " but is " + describe(o));
        }
        return type.cast(o);
    }

    @SuppressWarnings("unchecked")
    private List<Object> asList(Object o, int at) {
        return as(List.class, o, at, "list target");
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> asDict(Object o, int at) {
        return as(Map.class, o, at, "dict target");
    }

    private List<Object> items(Object o, int at) {
        if (o instanceof Tuple t) {
            return t.items();
        }
        return asList(o, at);
    }

    private long[] longs(Object o, int at, String what) {
        List<Object> items = items(o, at);
        long[] out = new long[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = as(Long.class, items.get(i), at, what + "[" + i + "]");
        }
        return out;
    }

    static String describe(Object o) {
        if (o == null) {
            return "nothing";
        }
        if (o instanceof HostTensor t) {
            return "a " + t.dtype() + " tensor";
        }
        String text = o.toString().lines().findFirst().orElse("");
        return "a " + o.getClass().getSimpleName() + " (" + (text.length() > 80 ? text.substring(0, 80) + "..." : text) + ")";
    }

    private Bert4jException fail(int at, String what) {
        return new Bert4jException(where + ": " + what + " (pickle byte " + at + ")");
    }
}
