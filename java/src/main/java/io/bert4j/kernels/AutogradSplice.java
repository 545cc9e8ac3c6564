package io.bert4j.kernels;

import io.bert4j.Bert4jException;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Edge;
import org.bytedeco.pytorch.GradMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorBase;
import org.bytedeco.pytorch.TensorTensorHook;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Puts a fused op with a hand-written backward into libtorch autograd, so that an ordinary
 * {@code loss.backward()} (or {@code torch::autograd::grad}) runs the fused backward. The
 * JavaCPP presets map no {@code autograd.Function}, so the op is spliced in with stock
 * autograd nodes and tensor hooks.
 *
 * <h2>The graph</h2>
 * For {@code y = f(x1, ..., xn)} computed by a fused kernel without recording, with {@code s} a
 * private leaf of shape [0, y.size(1), ...] (the sentinel, no elements) and {@code EMPTY} an
 * empty index:
 * <pre>
 *   vi  = xi.view(xi.sizes())        // per input that requires grad: a private alias, hook i on it
 *   src = s + vb + ... + vc.sum() + ... // vb: inputs that broadcast to s's shape (a bias), as
 *                                    //   they are; vc: the others (k, v of attention), 0-dim sums
 *   y.index_add_(0, EMPTY, src)      // in place, O(1): node N = y.grad_fn()
 *   N.set_next_edge(0, Edge(v1.grad_fn(), 0))   // when x1 is shaped like y (x, q)
 *   s.requires_grad_(false)
 *   hook on y: g = dL/dy -> kept
 *   hook on vi: (whatever arrives) -> replaced by dL/dxi; the first vi hook of a backward pass
 *               runs the fused backward on the kept g, once for all inputs
 * </pre>
 * For bias + GELU that is one {@code IndexAddBackward0}, one {@code AddBackward0} and two views:
 * nothing of the size of x is computed in either direction.
 * Why this is correct:
 * <ul>
 * <li>{@code index_add_} with an empty index adds nothing, so y keeps the fused values, but y
 *     now has a grad_fn ({@code IndexAddBackward0}, recorded with y's full shape) whose inputs
 *     lead to every vi. A tensor hook on y is a pre-hook of that node: it receives exactly
 *     dL/dy, the sum of every use of y downstream, and nothing else.</li>
 * <li>The node hands its incoming gradient unchanged to its self edge and an empty [0, ...]
 *     slice of it to its source edge. y had no history, so the self edge is empty; the splice
 *     points it at v1's node, which libtorch's edge check accepts because x1 has y's shape. The
 *     edge is set right after the node is created, before anything uses y (libtorch refuses to
 *     change a node's edges once it has a parent). Through the additions the empty slice
 *     reaches the sentinel as it is, a broadcast input as libtorch's sum of it to the input's
 *     shape (zeros of a bias's size), a carried input as an expanded 0-dim zero; each vi hook
 *     replaces what it receives.</li>
 * <li>The sentinel's {@code AccumulateGrad} node is part of the graph and holds it. It requires
 *     grad only while the graph is recorded; afterwards that node returns at once (libtorch's
 *     AccumulateGrad does nothing for a leaf that does not require grad), so the sentinel never
 *     gets a .grad and no gradient is copied into it.</li>
 * <li>Each vi is a fresh view used only by this splice, so the gradient arriving at vi is
 *     this op's contribution alone; a hook on vi that returns a tensor replaces it, and
 *     {@code ViewBackward0} hands the replacement to xi's own grad_fn (or accumulator), where
 *     libtorch adds it to xi's other contributions as usual. (A hook on xi itself would see
 *     the total of all uses of xi, which is why the private alias exists.)</li>
 * <li>Order: the engine runs a node only after all its inputs are ready and, among ready nodes,
 *     the later-created first. The vi are reachable only through y's node, so the y hook runs
 *     before any vi hook, and y's node has run (and, without {@code retain_graph}, released
 *     its saved empty index) before the first vi hook computes the gradients. That hook can
 *     therefore tell the backward whether this is the saved tensors' last use
 *     ({@code lastUse}: the index is ours alone): if so, it may write its results over them
 *     (bias + GELU writes dx over the saved gelu', so the backward allocates no [rows, cols]
 *     buffer). v1 is created after the node and the other views before it, so v1's hook runs
 *     first.</li>
 * <li>Cost: forward adds O(1) bookkeeping (plus, for carried inputs, one read of each); backward
 *     adds nothing of size N: y's node passes dL/dy through and gives its source an empty
 *     slice, and the values reaching the vi are discarded by their hooks. The dL/dy buffer is
 *     passed through untouched.</li>
 * </ul>
 * The "seams" alternative (cut the graph and drive backward segment by segment) needs a custom
 * backward driver instead of {@code loss.backward()}, and re-entrant per-op backward calls
 * would run shared upstream nodes once per op; the splice needs neither.
 *
 * <h2>Lifetimes</h2>
 * <ul>
 * <li>Hooks are JavaCPP callbacks: the native graph calls into a Java object, which must stay
 *     reachable (and not be deallocated by a {@link PointerScope}) for as long as any graph
 *     node can call it, i.e. until the graph is destroyed, not merely until the hook ran
 *     (a retained graph calls it again). Each splice is a record in a registry; its hooks
 *     and tensors are created in a private scope and retained, so the caller's scopes never
 *     free them.</li>
 * <li>Graph death is observed through the sentinel: the sentinel's {@code AccumulateGrad}
 *     node holds it strongly for the node's lifetime, so {@code sentinel.use_count() == 1}
 *     (our handle only) means no node of the graph is left and nothing can call the hooks.
 *     Dead records are reaped (tensors released; the hooks, the empty index and the sentinel,
 *     which no node refers to any more, pooled for later splices, up to a bound) at the next
 *     {@link #attach} or explicit {@link #reap()}.</li>
 * <li>Saved tensors are freed as soon as the graph cannot be backwarded again, like
 *     libtorch's own saved variables: the empty index is a saved variable of
 *     {@code IndexAddBackward0}; when a vi hook runs and our handle is its only owner, libtorch
 *     released it (no {@code retain_graph}), so the saved inputs are released too. With {@code retain_graph=true} they are kept and a second backward recomputes.</li>
 * <li>The gradient a vi hook returns is copied into libtorch by value; our Java handle to
 *     it is released at the same thread's next hook or attach call (a per-thread pending
 *     list), so at most one such buffer per thread outlives its use, until then. The direct
 *     input's hook runs first and the others in input order (see Order above), so the one left
 *     waiting is the last input's: FusedOps passes the large inputs first (x before bias), so
 *     what waits is a bias gradient.</li>
 * </ul>
 * Not supported: double backward ({@code create_graph=true}): the fused backward records no
 * graph, so the hook fails with a clear message rather than return silently wrong
 * second-order gradients.
 */
public final class AutogradSplice {
    private AutogradSplice() {}

    /** The fused backward of one op. */
    @FunctionalInterface
    public interface Backward {
        /**
         * @param gradOutput dL/dy, contiguous, shaped like the op's output
         * @param saved the tensors given to {@link #attach} as {@code saved} (detached)
         * @param needsGrad which inputs want a gradient
         * @param lastUse true when the graph was not retained: the saved tensors are released
         *     after this call and the backward may overwrite those it owns (never one that
         *     aliases a caller's tensor)
         * @return one gradient per input, shaped like it; entries whose needsGrad is false
         *     may be null
         */
        Tensor[] apply(Tensor gradOutput, Tensor[] saved, boolean[] needsGrad, boolean lastUse);
    }

    private static final List<Record> LIVE = new ArrayList<>();
    /** Hooks and empty indices of reaped splices, bound to later ones (guarded by LIVE). */
    private static final ArrayDeque<Hook> FREE_HOOKS = new ArrayDeque<>();
    private static final ArrayDeque<Tensor> FREE_INDICES = new ArrayDeque<>();
    /** Sentinels of reaped splices by shape ([0, ...]), for later splices of the same shape. */
    private static final Map<Shape, ArrayDeque<Tensor>> FREE_SENTINELS = new HashMap<>();
    private static int freeSentinels;
    private static final int MAX_FREE = 256;
    /**
     * Gradients a hook returned on this thread: libtorch copies a hook's result after the Java
     * call returns, so the handle is released by the thread's next hook or attach (which
     * cannot start before that copy), never by another thread.
     */
    private static final ThreadLocal<List<Pointer>> PENDING_RELEASE = ThreadLocal.withInitial(ArrayList::new);

    /**
     * Attaches {@code output}, computed by a fused kernel without autograd, to the graph of
     * {@code inputs}, so that backward through it calls {@code backward}. {@code output} is
     * modified in place (an O(1) {@code index_add_} that changes no value) and returned.
     *
     * @param op name used in error messages
     * @param output a fresh tensor with no autograd history, at least 1-dimensional
     * @param inputs the differentiable inputs; those that do not require grad get no gradient
     * @param saved tensors the backward needs (held, detached, until the graph can no
     *     longer be backwarded)
     */
    public static Tensor attach(String op, Tensor output, Tensor[] inputs, Tensor[] saved, Backward backward) {
        if (output.requires_grad()) {
            throw new Bert4jException(op + ": the fused output already has autograd history");
        }
        if (output.dim() < 1) {
            throw new Bert4jException(op + ": the fused output must have at least 1 dimension");
        }
        boolean[] needs = new boolean[inputs.length];
        boolean any = false;
        for (int i = 0; i < inputs.length; i++) {
            needs[i] = inputs[i].requires_grad();
            any |= needs[i];
        }
        if (!any || !GradMode.is_enabled()) {
            return output; // nothing to record
        }
        reap();
        Record r = new Record(op, backward, needs);
        try (PointerScope scope = new PointerScope()) {
            r.saved = new Tensor[saved.length];
            for (int i = 0; i < saved.length; i++) {
                // A handle of our own; kernel results have no history, so only what has is detached.
                r.saved[i] = keep(saved[i].requires_grad() ? saved[i].detach() : new Tensor(saved[i]));
            }
            long[] outShape = sizes(output);
            long[] srcShape = outShape.clone();
            srcShape[0] = 0; // index_add_'s source: [0, ...], adds nothing
            // The sentinel: a private leaf with no elements, index_add_'s source (pooled by shape).
            r.sentinelShape = new Shape(srcShape);
            Tensor index;
            Tensor sentinel;
            synchronized (LIVE) {
                index = FREE_INDICES.pollLast();
                ArrayDeque<Tensor> same = FREE_SENTINELS.get(r.sentinelShape);
                sentinel = same == null ? null : same.pollLast();
                if (sentinel != null) {
                    freeSentinels--;
                }
            }
            r.sentinel = sentinel != null ? sentinel : keep(torch.empty(srcShape, Kernels.FLOAT_OPTIONS, null));
            r.sentinel.requires_grad_(true);
            r.index = index != null ? index : keep(torch.empty(new long[] {0}, Kernels.LONG_OPTIONS, null));
            long[][] shapes = new long[inputs.length][];
            for (int i = 0; i < inputs.length; i++) {
                shapes[i] = needs[i] ? sizes(inputs[i]) : null;
            }
            int[] route = routes(output, outShape, srcShape, inputs, shapes);
            // The source of index_add_: the sentinel plus, last input first (so that their hooks
            // run in input order), each other input's view, broadcast into the empty shape when
            // it can be (a bias), else as a 0-dim sum.
            Tensor src = r.sentinel;
            for (int i = inputs.length - 1; i >= 0; i--) {
                if (route[i] == BROADCAST) {
                    src = src.add(hookedView(r, inputs[i], shapes[i], i));
                } else if (route[i] == CARRIED) {
                    src = src.add(hookedView(r, inputs[i], shapes[i], i).sum());
                }
            }
            output.index_add_(0, r.index, src);
            if (route[0] == DIRECT) {
                // y had no history, so IndexAddBackward0's self edge (slot 0) is empty: point it at
                // x's private view. The node passes dL/dy to it unchanged (same shape as x), and
                // the view's hook replaces it with dL/dx. Created after the node, so it runs first.
                Tensor v = hookedView(r, inputs[0], shapes[0], 0);
                output.grad_fn().set_next_edge(0, new Edge(v.grad_fn(), 0));
            }
            // From now on the sentinel's AccumulateGrad returns at once (a leaf that does not
            // require grad gets no .grad) while the node keeps holding it.
            r.sentinel.requires_grad_(false);
            output.register_hook(hook(r, Hook.OUTPUT));
        }
        synchronized (LIVE) {
            LIVE.add(r);
        }
        return output;
    }

    private static final int NONE = 0, DIRECT = 1, BROADCAST = 2, CARRIED = 3;

    /**
     * How each input joins the graph: DIRECT (input 0 shaped like the output: the node's own
     * self edge), BROADCAST (a shape that broadcasts to the empty source shape, e.g. a bias:
     * added to the sentinel as it is, an empty result; its gradient is libtorch's sum of an
     * empty slice, a few zeros), CARRIED (anything else: a 0-dim sum added to the sentinel).
     * DIRECT and BROADCAST also need the output's dtype and device kind, which libtorch's edge
     * check would otherwise cast or refuse (dtypes compared by their ScalarType's value:
     * JavaCPP's ScalarType objects are not canonical, and a dtype() TypeMeta is a native
     * allocation per call).
     */
    private static int[] routes(Tensor output, long[] outShape, long[] srcShape, Tensor[] inputs, long[][] shapes) {
        int[] route = new int[inputs.length];
        torch.ScalarType outType = output.scalar_type();
        boolean outCuda = output.is_cuda();
        for (int i = 0; i < inputs.length; i++) {
            long[] shape = shapes[i]; // null: no gradient wanted
            if (shape == null) {
                route[i] = NONE;
                continue;
            }
            boolean like = sameType(inputs[i], output, outType) && inputs[i].is_cuda() == outCuda;
            if (i == 0 && like && Arrays.equals(shape, outShape)) {
                route[i] = DIRECT;
            } else if (like && broadcastsTo(shape, srcShape)) {
                route[i] = BROADCAST;
            } else {
                route[i] = CARRIED;
            }
        }
        return route;
    }

    /** Same dtype as b, whose ScalarType is tb ({@link Kernels#hasScalarType}; TypeMeta if tb is null). */
    private static boolean sameType(Tensor a, Tensor b, torch.ScalarType tb) {
        return tb != null ? Kernels.hasScalarType(a, tb) : a.dtype().equals(b.dtype());
    }

    /** Whether a tensor of {@code shape} broadcasts to {@code target} (numpy rules). */
    static boolean broadcastsTo(long[] shape, long[] target) {
        if (shape.length > target.length) {
            return false;
        }
        for (int i = 1; i <= shape.length; i++) {
            long s = shape[shape.length - i];
            if (s != 1 && s != target[target.length - i]) {
                return false;
            }
        }
        return true;
    }

    /** A private view of input i with the splice's input hook i on it. */
    private static Tensor hookedView(Record r, Tensor input, long[] shape, int i) {
        Tensor v = input.view(shape);
        v.register_hook(hook(r, i));
        return v;
    }

    /** A hook bound to record r and input i (or {@link Hook#OUTPUT}): a pooled one if any. */
    private static Hook hook(Record r, int input) {
        Hook h;
        synchronized (LIVE) {
            h = FREE_HOOKS.pollLast();
        }
        if (h == null) {
            h = keep(new Hook());
        }
        h.bind(r, input);
        r.hooks.add(h);
        return h;
    }

    /**
     * Releases every splice whose graph is gone (hooks, saved tensors, kept gradients), and
     * the gradient handles this thread's hooks left awaiting release (another thread's are
     * released by that thread's next call, or by the garbage collector once it has ended).
     * Called by {@link #attach}; call it after the last training step, on the thread that ran
     * the backward, to release the last step's records without waiting for the next op.
     */
    public static void reap() {
        flushPending();
        List<Record> dead = new ArrayList<>();
        synchronized (LIVE) {
            for (Iterator<Record> it = LIVE.iterator(); it.hasNext(); ) {
                Record r = it.next();
                if (r.sentinel.use_count() <= 1) {
                    it.remove();
                    dead.add(r);
                }
            }
        }
        for (Record r : dead) {
            r.releaseAll();
        }
        if (dead.isEmpty()) {
            return;
        }
        // Their hooks, indices and sentinels are no longer referenced by any node: pooled for reuse.
        List<Pointer> surplus = new ArrayList<>();
        synchronized (LIVE) {
            for (Record r : dead) {
                for (Hook h : r.hooks) {
                    h.bind(null, 0);
                    offer(FREE_HOOKS, h, FREE_HOOKS.size(), surplus);
                }
                r.hooks.clear();
                offer(FREE_INDICES, r.index, FREE_INDICES.size(), surplus);
                r.index = null;
                // The sentinel: no node holds it any more, it does not require grad and never got
                // a .grad, so a later splice of the same shape can take it as it is.
                if (offer(FREE_SENTINELS.computeIfAbsent(r.sentinelShape, k -> new ArrayDeque<>()),
                        r.sentinel, freeSentinels, surplus)) {
                    freeSentinels++;
                }
                r.sentinel = null;
            }
        }
        surplus.forEach(AutogradSplice::release);
    }

    /** Splices whose graph may still be alive (for tests and leak checks). */
    public static int liveCount() {
        synchronized (LIVE) {
            return LIVE.size();
        }
    }

    /** Splices still holding saved tensors (for tests: 0 after a plain backward). */
    public static int holdingSavedCount() {
        synchronized (LIVE) {
            int n = 0;
            for (Record r : LIVE) {
                n += r.saved != null ? 1 : 0;
            }
            return n;
        }
    }

    private static <P extends Pointer> P keep(P p) {
        p.retainReference(); // survives the private scope; released by releaseAll/flushPending
        return p;
    }

    private static void release(Pointer p) {
        if (p != null && !p.isNull()) {
            p.releaseReference();
        }
    }

    private static void flushPending() {
        List<Pointer> pending = PENDING_RELEASE.get();
        if (pending.isEmpty()) {
            return;
        }
        List<Pointer> todo = new ArrayList<>(pending);
        pending.clear();
        todo.forEach(AutogradSplice::release);
    }

    /** Adds p to pool while the pool (of which {@code pooled} are held) has room, else to surplus. */
    private static <P extends Pointer> boolean offer(ArrayDeque<P> pool, P p, int pooled, List<Pointer> surplus) {
        if (pooled < MAX_FREE) {
            pool.addLast(p);
            return true;
        }
        surplus.add(p);
        return false;
    }

    static long[] sizes(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int d = 0; d < s.length; d++) {
            s[d] = t.size(d);
        }
        return s;
    }

    /** A shape as a map key (a record would compare its long[] by reference). */
    private static final class Shape {
        final long[] dims;
        final int hash;

        Shape(long[] dims) {
            this.dims = dims;
            this.hash = Arrays.hashCode(dims);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Shape other && Arrays.equals(dims, other.dims);
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }

    /** One spliced op call: what its hooks share. Guarded by its own monitor. */
    private static final class Record {
        final String op;
        final boolean[] needs;
        Backward backward;
        Tensor[] saved;           // null once released
        Tensor gradOutput;        // dL/dy, kept by the output hook until the first input hook
        final Tensor[] grads;     // computed by the first input hook, handed out by each
        Tensor sentinel;
        Shape sentinelShape;
        Tensor index;
        final List<Hook> hooks = new ArrayList<>();

        Record(String op, Backward backward, boolean[] needs) {
            this.op = op;
            this.backward = backward;
            this.needs = needs;
            this.grads = new Tensor[needs.length];
        }

        /** The output hook: keeps dL/dy for the input hooks (nothing is computed yet). */
        synchronized void keepGradOutput(TensorBase grad) {
            if (GradMode.is_enabled()) {
                throw new Bert4jException(op + ": double backward (create_graph=true) through a fused op "
                        + "is not supported; use KernelMode.TORCH for higher-order gradients");
            }
            clearGrads();
            if (saved == null) {
                // Released after a backward without retain_graph: libtorch reports the second
                // backward itself when IndexAddBackward0 unpacks its freed saved index.
                return;
            }
            try (PointerScope scope = new PointerScope()) {
                gradOutput = keep(new Tensor(grad));
            }
        }

        /** The first input hook of a backward pass: runs the fused backward on the kept dL/dy. */
        private void computeGrads() {
            Tensor g0 = gradOutput;
            gradOutput = null;
            // IndexAddBackward0 has run: without retain_graph it released the saved index, so
            // nothing can backward through this splice again.
            boolean lastUse = index.use_count() <= 1;
            try (PointerScope scope = new PointerScope()) {
                Tensor g = g0.contiguous();
                Tensor[] out = backward.apply(g, saved, needs, lastUse);
                if (out == null || out.length != needs.length) {
                    throw new IllegalStateException(op + ": backward returned "
                            + (out == null ? "null" : out.length + " gradients") + " for " + needs.length + " inputs");
                }
                for (int i = 0; i < needs.length; i++) {
                    if (needs[i]) {
                        if (out[i] == null) {
                            throw new IllegalStateException(op + ": backward returned no gradient for input " + i);
                        }
                        grads[i] = keep(out[i]);
                    }
                }
            } finally {
                release(g0);
            }
        }

        synchronized Tensor takeGrad(int i) {
            if (gradOutput != null && saved != null) {
                computeGrads();
            }
            Tensor g = grads[i];
            if (g == null) {
                throw new IllegalStateException(op + ": input " + i + " hook ran without a fused gradient "
                        + "(the output hook did not run first)");
            }
            grads[i] = null;
            // Our handle must outlive this call (libtorch copies the returned tensor after it).
            PENDING_RELEASE.get().add(g);
            if (index.use_count() <= 1) {
                releaseSaved(); // IndexAddBackward0 freed its saved index: no second backward
            }
            return g;
        }

        private void clearGrads() {
            for (int i = 0; i < grads.length; i++) {
                release(grads[i]);
                grads[i] = null;
            }
            release(gradOutput);
            gradOutput = null;
        }

        private void releaseSaved() {
            if (saved != null) {
                for (Tensor t : saved) {
                    release(t);
                }
                saved = null;
                backward = null;
            }
        }

        synchronized void releaseAll() {
            releaseSaved();
            clearGrads();
            // hooks, index and sentinel: pooled by reap()
        }
    }

    /**
     * A splice's hook: on y ({@link #OUTPUT}) it keeps dL/dy, on the view of input i it hands out
     * dL/dxi. Bound to one record at a time: once that record's graph is gone, nothing can call
     * it, and reap() returns it to a pool from which a later splice binds it again (a JavaCPP
     * callback costs a native allocation and a global reference to make and to free).
     */
    private static final class Hook extends TensorTensorHook {
        static final int OUTPUT = -1;
        private volatile int input;
        private volatile Record record; // written after input, read before it

        void bind(Record r, int i) {
            input = i;
            record = r;
        }

        @Override
        public TensorBase call(TensorBase grad) {
            Record r = record;
            int i = input;
            flushPending(); // the previous hook's result was copied before this call began
            if (i == OUTPUT) {
                r.keepGradOutput(grad);
                return grad; // passed on untouched: the index_add_ nodes take empty slices of it
            }
            return r.takeGrad(i);
        }
    }
}
