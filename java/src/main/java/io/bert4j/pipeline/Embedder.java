package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.model.BertModel;
import io.bert4j.model.Tensors;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.InferenceMode;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Sentence embeddings: tokenize, run the encoder in length-sorted batches (so a batch pads
 * only to its own longest text), pool, optionally L2-normalise, and return vectors in input
 * order. Each batch runs inside its own {@link PointerScope}, so native memory is released
 * batch by batch.
 */
public final class Embedder {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }


    private final BertModel model;
    private final BertTokenizer tokenizer;
    private final SentenceTransformerConfig st;

    public Embedder(BertModel model, BertTokenizer tokenizer, SentenceTransformerConfig st) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.st = st;
    }

    /** The pooling used when the options do not say: the sentence-transformers config's, else mean. */
    public Pooling defaultPooling() {
        return st != null ? st.pooling() : Pooling.MEAN;
    }

    public boolean defaultNormalize() {
        return st != null && st.normalize();
    }

    /** The longest input accepted without truncation: the trained max_seq_length if known, else the position table. */
    public int lengthLimit() {
        int positions = model.config().maxPositionEmbeddings();
        return st != null && st.maxSeqLength() > 0 ? Math.min(st.maxSeqLength(), positions) : positions;
    }

    /** Tokenizes and checks every text before any model work, so a bad text fails fast with its index. */
    public List<Encoding> encode(List<String> texts, EmbedOptions options) {
        int positions = model.config().maxPositionEmbeddings();
        if (options.maxLength() > positions) {
            throw new Bert4jException("max length " + options.maxLength() + " exceeds the model's "
                    + positions + " positions (max_position_embeddings)");
        }
        EncodeOptions enc = options.maxLength() > 0
                ? EncodeOptions.DEFAULT.withMaxLength(options.maxLength()).withTruncation(EncodeOptions.Truncation.LONGEST_FIRST)
                : EncodeOptions.DEFAULT;
        int limit = lengthLimit();
        List<Encoding> out = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            String t = texts.get(i);
            if (t == null) {
                throw new Bert4jException("text " + (i + 1) + " is null");
            }
            Encoding e = tokenizer.encode(t, enc);
            if (e.length() <= 2 && t.isBlank()) {
                throw new Bert4jException("text " + (i + 1) + " is empty" + (t.isEmpty() ? "" : " (only whitespace)")
                        + "; there is nothing to embed");
            }
            if (options.maxLength() == 0 && e.length() > limit) {
                throw new Bert4jException("text " + (i + 1) + " is " + e.length() + " tokens long, over the model's limit of "
                        + limit + " tokens" + (limit < positions ? " (sentence-transformers max_seq_length)" : "")
                        + "; shorten it or pass a max length (--max-length N) to truncate");
            }
            out.add(e);
        }
        return out;
    }

    public float[][] embed(List<String> texts, EmbedOptions options) {
        Pooling pooling = options.pooling() != null ? options.pooling() : defaultPooling();
        boolean normalize = options.normalize() != null ? options.normalize() : defaultNormalize();
        if (pooling == Pooling.POOLER && !model.hasPooler()) {
            throw new Bert4jException("this model has no pooler weights, so it has no pooler output; use cls or mean pooling");
        }
        List<Encoding> encodings = encode(texts, options);
        Integer[] order = new Integer[texts.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, Comparator.comparingInt(i -> encodings.get(i).length()));
        float[][] result = new float[texts.size()][];
        for (int start = 0; start < order.length; start += options.batchSize()) {
            int end = Math.min(order.length, start + options.batchSize());
            List<Encoding> chunk = new ArrayList<>(end - start);
            for (int i = start; i < end; i++) {
                chunk.add(encodings.get(order[i]));
            }
            float[][] vectors = embedBatch(chunk, pooling, normalize);
            for (int i = start; i < end; i++) {
                result[order[i]] = vectors[i - start];
            }
        }
        return result;
    }

    /**
     * One forward pass over encodings of any lengths; returns [B][H]. With fused kernels on CPU the
     * batch runs padding-free ({@link BertModel#forwardPacked}); otherwise padded to its longest text.
     */
    public float[][] embedBatch(List<Encoding> chunk, Pooling pooling, boolean normalize) {
        try (PointerScope scope = new PointerScope(); InferenceMode guard = new InferenceMode()) {
            Tensor pooled;                                                              // [B, H]
            if (model.packsWithoutPadding()) {
                pooled = packedPooled(chunk, pooling);
            } else {
                Batch batch = Batch.of(chunk, tokenizer.padId());
                BertModel.Output out = model.forward(batch.inputIds(), batch.tokenTypeIds(), batch.attentionMask());
                pooled = pool(out, batch, pooling);
            }
            if (normalize) {
                Tensor norm = pooled.norm(new org.bytedeco.pytorch.ScalarOptional(new org.bytedeco.pytorch.Scalar(2.0)),
                        new long[]{1}, true).clamp_min(new org.bytedeco.pytorch.Scalar(1e-12));
                pooled = pooled.div(norm);
            }
            float[] flat = Tensors.toFloatArray(pooled);
            int h = (int) pooled.size(1);
            float[][] vectors = new float[chunk.size()][h];
            for (int i = 0; i < chunk.size(); i++) {
                System.arraycopy(flat, i * h, vectors[i], 0, h);
            }
            return vectors;
        }
    }

    /** The padding-free forward and pooling of {@link #embedBatch}: [B, H]. */
    private Tensor packedPooled(List<Encoding> chunk, Pooling pooling) {
        int n = chunk.size();
        int[] lengths = new int[n];
        int total = 0;
        for (int i = 0; i < n; i++) {
            lengths[i] = chunk.get(i).length();
            total += lengths[i];
        }
        long[] ids = new long[total];
        long[] types = new long[total];
        long[] segment = new long[total];
        long[] starts = new long[n];
        float[] counts = new float[n];
        for (int i = 0, t = 0; i < n; i++) {
            Encoding e = chunk.get(i);
            starts[i] = t;
            for (int j = 0; j < lengths[i]; j++, t++) {
                ids[t] = e.ids()[j];
                types[t] = e.typeIds()[j];
                segment[t] = i;
            }
            counts[i] = lengths[i];
        }
        BertModel.PackedOutput out = model.forwardPacked(Tensors.fromLongs(ids, total), Tensors.fromLongs(types, total), lengths);
        Tensor h = out.lastHiddenState();                                               // [T, H]
        return switch (pooling) {
            case CLS -> h.index_select(0, Tensors.fromLongs(starts, n));
            case POOLER -> out.pooled();
            case MEAN -> torch.zeros(new long[]{n, h.size(1)}, Tensors.options(torch.ScalarType.Float))
                    .index_add(0, Tensors.fromLongs(segment, total), h)
                    .div(Tensors.fromFloats(counts, n, 1));
        };
    }

    static Tensor pool(BertModel.Output out, Batch batch, Pooling pooling) {
        Tensor h = out.lastHiddenState();                                               // [B, S, H]
        return switch (pooling) {
            case CLS -> h.select(1, 0);
            case POOLER -> out.pooled();
            case MEAN -> {
                Tensor mask = batch.attentionMask().to(torch.ScalarType.Float).unsqueeze(2);  // [B, S, 1]
                Tensor summed = h.mul(mask).sum(new long[]{1}, false, null);            // [B, H]
                Tensor counts = mask.sum(new long[]{1}, false, null).clamp_min(new org.bytedeco.pytorch.Scalar(1e-9));
                yield summed.div(counts);
            }
        };
    }
}
