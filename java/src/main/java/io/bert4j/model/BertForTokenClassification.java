package io.bert4j.model;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * BERT with a per-token classification head, as Hugging Face's
 * {@code BertForTokenClassification} (NER, tagging): the encoder without pooler under
 * {@code bert.} (HF's {@code add_pooling_layer=False}; a pooler in the source checkpoint is
 * ignored silently, as HF does), then dropout ({@code classifier_dropout}, else
 * {@code hidden_dropout_prob}) on the last hidden state and
 * {@code classifier.weight [num_labels, H]}, {@code classifier.bias [num_labels]}.
 * {@code num_labels} is the size of the config's {@code id2label}.
 *
 * <p>Owns its parameters; {@link #close()} releases them. Tensors returned by forward/loss
 * belong to the caller's {@code PointerScope}.
 */
public final class BertForTokenClassification extends BertTaskModel<BertForTokenClassification> {

    public static final String ARCHITECTURE = "BertForTokenClassification";

    static final TaskModel.Spec SPEC = new TaskModel.Spec(ARCHITECTURE, "classifier", false, true);

    /** Tokens labelled with this value are left out of the loss (sub-word continuations, special tokens, padding). */
    public static final long IGNORE_INDEX = -100;

    /** One forward pass: {@code logits} [B, S, num_labels]; {@code lastHiddenState} [B, S, H]. */
    public record Output(Tensor logits, Tensor lastHiddenState) {
    }

    /**
     * Cross-entropy mean over the {@code count} labelled tokens (label != -100; a constant 0
     * with history when there are none, where HF would give NaN), with autograd history;
     * {@code correct} = argmax hits among them; {@code logits} [B, S, num_labels].
     */
    public record Loss(Tensor loss, Tensor logits, long correct, long count) {
    }


    private BertForTokenClassification(TaskModel m) {
        super(m);
    }

    // ------------------------------------------------------------------ construction

    /** HF's state_dict keys: {@code bert.*} (no pooler), {@code classifier.weight}, {@code classifier.bias}. */
    public static List<String> checkpointKeys(BertConfig config) {
        return TaskModel.checkpointKeys(config, SPEC);
    }

    /** A new model with random weights (HF's {@code _init_weights}) and these labels. */
    public static BertForTokenClassification random(BertConfig config, Map<Integer, String> id2label, long seed) {
        BertConfig c = resolve(config, id2label);
        return new BertForTokenClassification(TaskModel.random(c, SPEC, c.numLabels(), seed));
    }

    /**
     * {@link #fromPretrained(Path, Map, boolean, long)} with {@code numLabels} labels: the folder's
     * own names when it has that many, else {@code LABEL_0..LABEL_{n-1}} (as HF's
     * {@code num_labels=} argument).
     */
    public static BertForTokenClassification fromPretrained(Path dir, int numLabels, long seed) {
        Map<Integer, String> fresh = BertConfig.defaultId2Label(numLabels);
        return new BertForTokenClassification(TaskModel.load(dir, SPEC,
                c -> c.labels().size() == numLabels ? resolve(c, null) : resolve(c, fresh),
                BertConfig::numLabels, false, false, seed));
    }

    /** {@link #fromPretrained(Path, Map, boolean, long)} keeping a head of the right size. */
    public static BertForTokenClassification fromPretrained(Path dir, Map<Integer, String> id2label, long seed) {
        return fromPretrained(dir, id2label, false, seed);
    }

    /**
     * Starts fine-tuning from any HF BERT folder, as HF's {@code from_pretrained}: the encoder is
     * loaded, {@code classifier.*} too when the folder has it, otherwise newly initialised
     * (weight ~ Normal(0, initializer_range), bias 0, from {@code seed}); see
     * {@link #newlyInitialized()}. Like HF, a folder with a {@code classifier} of the same size
     * (e.g. a sequence classifier) lends it its weights; pass {@code reinitHead} to start afresh.
     *
     * @param id2label   the labels (ids 0..n-1), or null for the folder's own (HF's 2 default labels if it has none)
     * @param reinitHead initialise a new classifier even if the folder has one; without it a
     *                   classifier of another size is an error
     */
    public static BertForTokenClassification fromPretrained(Path dir, Map<Integer, String> id2label,
                                                            boolean reinitHead, long seed) {
        return new BertForTokenClassification(TaskModel.load(dir, SPEC, c -> resolve(c, id2label),
                BertConfig::numLabels, reinitHead, false, seed));
    }

    /** Loads a fine-tuned folder (written by {@link #save} or HF); the classifier must be there. */
    public static BertForTokenClassification load(Path dir) {
        return new BertForTokenClassification(TaskModel.load(dir, SPEC, c -> resolve(c, null),
                BertConfig::numLabels, false, true, 0));
    }

    /** From HF checkpoint keys; a missing classifier is newly initialised from {@code seed}. */
    public static BertForTokenClassification fromStateDict(BertConfig config, Map<String, HostTensor> checkpoint,
                                                           Map<Integer, String> id2label, long seed) {
        BertConfig c = resolve(config, id2label);
        return new BertForTokenClassification(TaskModel.fromStateDict(c, checkpoint, SPEC, c.numLabels(),
                false, false, seed));
    }

    /** Labels set (the given ones, else the config's); HF's token classifier has no problem_type. */
    static BertConfig resolve(BertConfig config, Map<Integer, String> id2label) {
        return config.withId2Label(id2label != null ? id2label : config.labels()).withProblemType(null);
    }

    // ------------------------------------------------------------------ saving

    // ------------------------------------------------------------------ accessors

    public int numLabels() {
        return m.config.numLabels();
    }

    public Map<Integer, String> id2label() {
        return m.config.id2label();
    }

    /** Encoder dropout probabilities; the classifier dropout is set to {@code hiddenP} too. */
    public void setDropout(double hiddenP, double attentionP) {
        m.setDropout(hiddenP, attentionP, hiddenP);
    }

    public void setDropout(double hiddenP, double attentionP, double classifierP) {
        m.setDropout(hiddenP, attentionP, classifierP);
    }

    // ------------------------------------------------------------------ forward

    /** Logits [B, S, num_labels] for every token. Arguments as {@link BertModel#forward}. */
    public Output forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) {
        BertModel.Output out = m.encode(inputIds, tokenTypeIds, attentionMask);
        return new Output(m.head(out.lastHiddenState()), out.lastHiddenState());
    }

    /**
     * HF's loss: cross-entropy over all tokens with {@code ignore_index} -100, averaged over the
     * labelled ones (the attention mask plays no part: label padding -100).
     *
     * @param labels [B, S] integer class ids or -100
     */
    public Loss loss(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor labels) {
        if (labels == null || !Arrays.equals(Tensors.shape(labels), Tensors.shape(inputIds))) {
            throw new Bert4jException("labels must have the shape of input_ids " + Arrays.toString(Tensors.shape(inputIds))
                    + ", got " + (labels == null ? "null" : Arrays.toString(Tensors.shape(labels))));
        }
        if (labels.is_floating_point()) {
            throw new Bert4jException("token labels must be integer class ids, got a " + labels.scalar_type() + " tensor");
        }
        int n = numLabels();
        Tensor target = labels.reshape(-1).to(torch.ScalarType.Long);                        // [B*S]
        long count;
        Tensor labelled;
        try (NoGradGuard ng = new NoGradGuard()) {
            labelled = target.ne(new Scalar(IGNORE_INDEX));
            count = labelled.sum().item_long();
            if (count > 0) {
                Tensor valid = target.masked_select(labelled);
                long lo = valid.min().item_long();
                long hi = valid.max().item_long();
                if (lo < 0 || hi >= n) {
                    throw new Bert4jException("token labels must be class ids in [0, " + n + ") or " + IGNORE_INDEX
                            + ", got " + (lo < 0 ? lo : hi));
                }
            }
        }
        Tensor logits = forward(inputIds, tokenTypeIds, attentionMask).logits();            // [B, S, L]
        if (count == 0) {
            return new Loss(logits.sum().mul(new Scalar(0.0)), logits, 0, 0);
        }
        Tensor flat = logits.reshape(-1, n);                                                  // [B*S, L]
        Tensor loss = torch.cross_entropy_loss(flat, target, new TensorOptional(), 1 /* mean */, IGNORE_INDEX, 0.0);
        long correct;
        try (NoGradGuard ng = new NoGradGuard()) {
            correct = flat.argmax(new LongOptional(1), false).eq(target).logical_and(labelled).sum().item_long();
        }
        return new Loss(loss, logits, correct, count);
    }

}
