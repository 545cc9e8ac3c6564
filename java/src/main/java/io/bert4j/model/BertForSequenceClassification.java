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
 * BERT with a classification (or regression) head on the pooled output, as Hugging Face's
 * {@code BertForSequenceClassification}: the encoder with its pooler under {@code bert.}, then
 * dropout ({@code classifier_dropout}, else {@code hidden_dropout_prob}) and
 * {@code classifier.weight [num_labels, H]}, {@code classifier.bias [num_labels]}.
 *
 * <p>{@code num_labels} is the size of the config's {@code id2label}. One label means
 * regression ({@code problem_type} {@value BertConfig#REGRESSION}, mean squared error on float
 * labels), more mean single-label classification
 * ({@value BertConfig#SINGLE_LABEL}, cross-entropy on class ids), as HF decides when
 * {@code problem_type} is unset; multi-label classification is not supported.
 *
 * <p>Owns its parameters; {@link #close()} releases them. Tensors returned by forward/loss
 * belong to the caller's {@code PointerScope}.
 */
public final class BertForSequenceClassification extends BertTaskModel<BertForSequenceClassification> {

    public static final String ARCHITECTURE = "BertForSequenceClassification";

    static final TaskModel.Spec SPEC = new TaskModel.Spec(ARCHITECTURE, "classifier", true, true);

    /** Labels with this value are left out of the cross-entropy (HF / PyTorch's ignore_index). */
    public static final long IGNORE_INDEX = -100;

    /** One forward pass: {@code logits} [B, num_labels]; {@code pooled} [B, H]. */
    public record Output(Tensor logits, Tensor pooled) {
    }

    /**
     * A loss with autograd history and counts for metrics. Classification: {@code correct} =
     * argmax hits among the {@code count} labelled examples (label != -100), {@code loss} the
     * cross-entropy mean over them (a constant 0 when there are none). Regression:
     * {@code loss} the mean squared error over the {@code count} = B examples,
     * {@code correct} 0. {@code logits} [B, num_labels].
     */
    public record Loss(Tensor loss, Tensor logits, long correct, long count) {
    }

    private final BertConfig config;   // with labels and problem_type resolved

    private BertForSequenceClassification(TaskModel m) {
        super(m);
        this.config = m.config;
    }

    // ------------------------------------------------------------------ construction

    /** HF's state_dict keys: {@code bert.*} (pooler included), {@code classifier.weight}, {@code classifier.bias}. */
    public static List<String> checkpointKeys(BertConfig config) {
        return TaskModel.checkpointKeys(config, SPEC);
    }

    /** A new model with random weights (HF's {@code _init_weights}) and these labels; one label means regression. */
    public static BertForSequenceClassification random(BertConfig config, Map<Integer, String> id2label, long seed) {
        BertConfig c = resolve(config, id2label);
        return new BertForSequenceClassification(TaskModel.random(c, SPEC, c.numLabels(), seed));
    }

    /**
     * {@link #fromPretrained(Path, Map, boolean, long)} with {@code numLabels} labels: the folder's
     * own names when it has that many, else {@code LABEL_0..LABEL_{n-1}} (as HF's
     * {@code num_labels=} argument).
     */
    public static BertForSequenceClassification fromPretrained(Path dir, int numLabels, long seed) {
        Map<Integer, String> fresh = BertConfig.defaultId2Label(numLabels);
        return new BertForSequenceClassification(TaskModel.load(dir, SPEC,
                c -> c.labels().size() == numLabels ? resolve(c, null) : resolve(c, fresh),
                BertConfig::numLabels, false, false, seed));
    }

    /** {@link #fromPretrained(Path, Map, boolean, long)} keeping a head of the right size. */
    public static BertForSequenceClassification fromPretrained(Path dir, Map<Integer, String> id2label, long seed) {
        return fromPretrained(dir, id2label, false, seed);
    }

    /**
     * Starts fine-tuning from any HF BERT folder (a BertModel such as the default model, a
     * BertForPreTraining, a BertForSequenceClassification...), as HF's {@code from_pretrained}:
     * the encoder is loaded, the pooler and classifier are loaded when the folder has them and
     * otherwise newly initialised (weights ~ Normal(0, initializer_range), biases 0, from
     * {@code seed}); {@link #newlyInitialized()} lists them.
     *
     * @param id2label   the labels (ids 0..n-1), or null for the folder's own (HF's 2 default labels if it has none)
     * @param reinitHead initialise a new classifier even if the folder has one; without it a
     *                   classifier of another size is an error
     */
    public static BertForSequenceClassification fromPretrained(Path dir, Map<Integer, String> id2label,
                                                               boolean reinitHead, long seed) {
        return new BertForSequenceClassification(TaskModel.load(dir, SPEC, c -> resolve(c, id2label),
                BertConfig::numLabels, reinitHead, false, seed));
    }

    /** Loads a fine-tuned folder (written by {@link #save} or HF); the classifier must be there. */
    public static BertForSequenceClassification load(Path dir) {
        return new BertForSequenceClassification(TaskModel.load(dir, SPEC, c -> resolve(c, null),
                BertConfig::numLabels, false, true, 0));
    }

    /** From HF checkpoint keys; missing pooler/classifier newly initialised from {@code seed} (see {@link #fromPretrained}). */
    public static BertForSequenceClassification fromStateDict(BertConfig config, Map<String, HostTensor> checkpoint,
                                                              Map<Integer, String> id2label, long seed) {
        BertConfig c = resolve(config, id2label);
        return new BertForSequenceClassification(TaskModel.fromStateDict(c, checkpoint, SPEC, c.numLabels(),
                false, false, seed));
    }

    /**
     * The config with the labels set and problem_type resolved as HF does: new labels re-derive
     * it (regression for one label); a config's own problem_type must agree with its labels.
     */
    static BertConfig resolve(BertConfig config, Map<Integer, String> id2label) {
        BertConfig c = config;
        if (id2label != null) {
            c = c.withId2Label(id2label).withProblemType(null);
        } else {
            c = c.withId2Label(c.labels());
        }
        int n = c.numLabels();
        String derived = n == 1 ? BertConfig.REGRESSION : BertConfig.SINGLE_LABEL;
        String pt = c.problemType();
        if (pt != null && !pt.equals(derived)) {
            throw new Bert4jException("problem_type \"" + pt + "\" with " + n + " label(s) is not supported; bert4j "
                    + "supports " + BertConfig.REGRESSION + " (1 label) and " + BertConfig.SINGLE_LABEL + " (2 or more)");
        }
        return c.withProblemType(derived);
    }

    // ------------------------------------------------------------------ saving

    // ------------------------------------------------------------------ accessors

    public int numLabels() {
        return config.numLabels();
    }

    public boolean isRegression() {
        return config.numLabels() == 1;
    }

    /** Labels by id. */
    public Map<Integer, String> id2label() {
        return config.id2label();
    }

    /** Encoder dropout probabilities; the classifier dropout is set to {@code hiddenP} too. */
    public void setDropout(double hiddenP, double attentionP) {
        m.setDropout(hiddenP, attentionP, hiddenP);
    }

    public void setDropout(double hiddenP, double attentionP, double classifierP) {
        m.setDropout(hiddenP, attentionP, classifierP);
    }

    // ------------------------------------------------------------------ forward

    /** Logits [B, num_labels] from the pooled [CLS] output. Arguments as {@link BertModel#forward}. */
    public Output forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) {
        BertModel.Output out = m.encode(inputIds, tokenTypeIds, attentionMask);
        return new Output(m.head(out.pooled()), out.pooled());
    }

    /**
     * HF's loss. Classification: cross-entropy of the logits against {@code labels} [B] class ids
     * (integer tensor; -100 leaves an example out). Regression: mean squared error between the
     * single logit and {@code labels} [B] (float).
     */
    public Loss loss(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor labels) {
        long b = inputIds.dim() > 0 ? inputIds.size(0) : 0;
        if (labels == null || labels.numel() != b || (labels.dim() > 1 && labels.size(0) != b)) {
            throw new Bert4jException("labels must be [" + b + "] (one per example), got "
                    + (labels == null ? "null" : Arrays.toString(Tensors.shape(labels))));
        }
        int n = numLabels();
        if (n == 1) {
            Tensor target = labels.reshape(-1).to(torch.ScalarType.Float);                    // [B]
            Tensor logits = forward(inputIds, tokenTypeIds, attentionMask).logits();        // [B, 1]
            Tensor loss = torch.mse_loss(logits.reshape(-1), target);
            return new Loss(loss, logits, 0, b);
        }
        if (labels.is_floating_point()) {
            throw new Bert4jException("classification labels must be integer class ids, got a "
                    + labels.scalar_type() + " tensor (float labels mean regression: use one label)");
        }
        Tensor target = labels.reshape(-1).to(torch.ScalarType.Long);                        // [B]
        long count;
        try (NoGradGuard ng = new NoGradGuard()) {
            Tensor labelled = target.ne(new Scalar(IGNORE_INDEX));
            count = labelled.sum().item_long();
            if (count > 0) {
                Tensor valid = target.masked_select(labelled);
                long lo = valid.min().item_long();
                long hi = valid.max().item_long();
                if (lo < 0 || hi >= n) {
                    throw new Bert4jException("labels must be class ids in [0, " + n + ") or " + IGNORE_INDEX
                            + ", got " + (lo < 0 ? lo : hi));
                }
            }
        }
        Tensor logits = forward(inputIds, tokenTypeIds, attentionMask).logits();            // [B, L]
        if (count == 0) {
            return new Loss(logits.sum().mul(new Scalar(0.0)), logits, 0, 0);
        }
        Tensor loss = torch.cross_entropy_loss(logits, target, new TensorOptional(), 1 /* mean */, IGNORE_INDEX, 0.0);
        long correct;
        try (NoGradGuard ng = new NoGradGuard()) {
            correct = logits.argmax(new LongOptional(1), false).eq(target).sum().item_long();
        }
        return new Loss(loss, logits, correct, count);
    }

}
