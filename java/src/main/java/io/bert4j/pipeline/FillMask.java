package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.model.Tensors;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.Encoding;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.T_TensorTensor_T;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Fill-mask as HF's {@code FillMaskPipeline}: for each [MASK] token of a text, the top-k
 * vocabulary entries by softmax probability, with the text decoded with that mask filled in.
 * Needs a model with a masked-LM head ({@code BertForMaskedLM} or {@code BertForPreTraining});
 * the vocabulary projection runs only at the mask positions.
 */
public final class FillMask implements AutoCloseable {

    /**
     * One candidate for one mask, named as HF's pipeline output ({@code score}, {@code token},
     * {@code token_str}, {@code sequence}).
     */
    public record Prediction(double score, int token, String tokenStr, String sequence) {
    }

    private final BertForPreTraining model;
    private final BertTokenizer tokenizer;
    private final boolean owns;

    /** Wraps a model and tokenizer the caller keeps owning (close them yourself). */
    public FillMask(BertForPreTraining model, BertTokenizer tokenizer) {
        this(model, tokenizer, false);
    }

    private FillMask(BertForPreTraining model, BertTokenizer tokenizer, boolean owns) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.owns = owns;
    }

    /** Loads a BertForMaskedLM / BertForPreTraining folder and its tokenizer (eval mode); closing closes both. */
    public static FillMask load(Path dir, KernelMode kernels) {
        BertForPreTraining model = BertForPreTraining.load(dir);
        try {
            BertTokenizer tok = BertTokenizer.load(dir);
            if (tok.vocabSize() > model.config().vocabSize()) {
                tok.close();
                throw new Bert4jException(dir + ": the tokenizer has " + tok.vocabSize()
                        + " tokens but config.json says vocab_size " + model.config().vocabSize());
            }
            model.setKernels(kernels);
            model.train(false);
            return new FillMask(model, tok, true);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    public BertForPreTraining model() {
        return model;
    }

    public BertTokenizer tokenizer() {
        return tokenizer;
    }

    /**
     * Predictions for every [MASK] of {@code text}, in text order: one list of {@code topK}
     * candidates per mask, by descending score. As HF, {@code sequence} drops special tokens
     * when the text has one mask and keeps them (the other [MASK]s) when it has several;
     * {@code topK} above the vocabulary size is capped to it.
     */
    public List<List<Prediction>> predict(String text, int topK) {
        if (topK < 1) {
            throw new Bert4jException("top-k must be at least 1, got " + topK);
        }
        Encoding enc = tokenizer.encode(text);
        int limit = model.config().maxPositionEmbeddings();
        if (enc.length() > limit) {
            throw new Bert4jException("text is " + enc.length() + " tokens long, over the model's limit of " + limit
                    + " (max_position_embeddings)");
        }
        int mask = tokenizer.maskId();
        int[] ids = enc.ids();
        List<Integer> positions = new ArrayList<>();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] == mask) {
                positions.add(i);
            }
        }
        if (positions.isEmpty()) {
            throw new Bert4jException("no " + tokenizer.idToToken(mask) + " token in the text: \"" + text
                    + "\"; fill-mask predicts the tokens at the mask positions");
        }
        // Only ids the tokenizer can decode are candidates (a config may pad vocab_size past the
        // tokenizer's vocabulary); their scores are still the softmax over the whole vocabulary.
        int candidates = Math.min(model.config().vocabSize(), tokenizer.vocabSize());
        int k = Math.min(topK, candidates);
        int m = positions.size();
        float[] scores;
        long[] tokens;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            long s = ids.length;
            Tensor input = Tensors.fromLongs(enc.idsAsLong(), 1, s);
            long[] types = new long[ids.length];
            for (int i = 0; i < types.length; i++) {
                types[i] = enc.typeIds()[i];
            }
            Tensor typeIds = Tensors.fromLongs(types, 1, s);
            Tensor hidden = model.encoder().forward(input, typeIds, null).lastHiddenState().select(0, 0); // [S, H]
            long[] pos = positions.stream().mapToLong(Integer::longValue).toArray();
            Tensor rows = hidden.index_select(0, Tensors.fromLongs(pos, m));                      // [M, H]
            Tensor probs = model.mlmLogits(rows).softmax(-1).narrow(1, 0, candidates);           // [M, V']
            T_TensorTensor_T top = probs.topk(k, -1, true, true);                                 // [M, k] each
            scores = Tensors.toFloatArray(top.get0());
            Tensor idx = top.get1().contiguous();
            tokens = new long[m * k];
            new org.bytedeco.javacpp.LongPointer(idx.data_ptr()).get(tokens);
        }
        List<List<Prediction>> out = new ArrayList<>(m);
        for (int j = 0; j < m; j++) {
            List<Prediction> list = new ArrayList<>(k);
            for (int r = 0; r < k; r++) {
                int token = (int) tokens[j * k + r];
                int[] filled = Arrays.copyOf(ids, ids.length);
                filled[positions.get(j)] = token;
                String tokenStr = tokenizer.decode(new int[]{token});
                String sequence = tokenizer.decode(filled, m == 1);
                list.add(new Prediction(scores[j * k + r], token, tokenStr, sequence));
            }
            out.add(list);
        }
        return out;
    }

    @Override
    public void close() {
        if (owns) {
            model.close();
            tokenizer.close();
        }
    }
}
