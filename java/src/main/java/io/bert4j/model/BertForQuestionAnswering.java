package io.bert4j.model;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * BERT for extractive question answering, as Hugging Face's {@code BertForQuestionAnswering}:
 * the encoder without pooler under {@code bert.} (a pooler in the source checkpoint is ignored
 * silently, as HF does), then {@code qa_outputs.weight [2, H]}, {@code qa_outputs.bias [2]}
 * giving a start and an end logit per token. No dropout on the head (HF has none).
 *
 * <p>Owns its parameters; {@link #close()} releases them. Tensors returned by forward/loss
 * belong to the caller's {@code PointerScope}.
 */
public final class BertForQuestionAnswering extends BertTaskModel<BertForQuestionAnswering> {

    public static final String ARCHITECTURE = "BertForQuestionAnswering";

    static final TaskModel.Spec SPEC = new TaskModel.Spec(ARCHITECTURE, "qa_outputs", false, false);

    /** One forward pass: {@code startLogits}, {@code endLogits} [B, S]; {@code lastHiddenState} [B, S, H]. */
    public record Output(Tensor startLogits, Tensor endLogits, Tensor lastHiddenState) {
    }

    /**
     * HF's loss, (CE(start) + CE(end)) / 2, with autograd history. Counts over the {@code count}
     * examples whose clamped start position is inside the sequence (the others are ignored, as
     * HF ignores them): {@code startCorrect}/{@code endCorrect} argmax hits,
     * {@code exactCorrect} both right.
     */
    public record Loss(Tensor loss, Tensor startLogits, Tensor endLogits, long startCorrect, long endCorrect,
                       long exactCorrect, long count) {
    }


    private BertForQuestionAnswering(TaskModel m) {
        super(m);
    }

    // ------------------------------------------------------------------ construction

    /** HF's state_dict keys: {@code bert.*} (no pooler), {@code qa_outputs.weight}, {@code qa_outputs.bias}. */
    public static List<String> checkpointKeys(BertConfig config) {
        return TaskModel.checkpointKeys(config, SPEC);
    }

    /** A new model with random weights (HF's {@code _init_weights}). */
    public static BertForQuestionAnswering random(BertConfig config, long seed) {
        return new BertForQuestionAnswering(TaskModel.random(resolve(config), SPEC, 2, seed));
    }

    /**
     * Starts fine-tuning from any HF BERT folder, as HF's {@code from_pretrained}: the encoder is
     * loaded, {@code qa_outputs.*} too when the folder has them (a question-answering folder),
     * otherwise newly initialised (weight ~ Normal(0, initializer_range), bias 0, from
     * {@code seed}); see {@link #newlyInitialized()}.
     */
    public static BertForQuestionAnswering fromPretrained(Path dir, long seed) {
        return fromPretrained(dir, false, seed);
    }

    /** As {@link #fromPretrained(Path, long)}; {@code reinitHead} initialises new qa_outputs even if the folder has them. */
    public static BertForQuestionAnswering fromPretrained(Path dir, boolean reinitHead, long seed) {
        return new BertForQuestionAnswering(TaskModel.load(dir, SPEC, BertForQuestionAnswering::resolve, c -> 2,
                reinitHead, false, seed));
    }

    /** Loads a fine-tuned folder (written by {@link #save} or HF); qa_outputs must be there. */
    public static BertForQuestionAnswering load(Path dir) {
        return new BertForQuestionAnswering(TaskModel.load(dir, SPEC, BertForQuestionAnswering::resolve, c -> 2,
                false, true, 0));
    }

    /** From HF checkpoint keys; missing qa_outputs newly initialised from {@code seed}. */
    public static BertForQuestionAnswering fromStateDict(BertConfig config, Map<String, HostTensor> checkpoint, long seed) {
        return new BertForQuestionAnswering(TaskModel.fromStateDict(resolve(config), checkpoint, SPEC, 2,
                false, false, seed));
    }

    /**
     * HF builds qa_outputs with num_labels outputs and splits them into start and end, so its
     * question-answering configs have 2 labels (the defaults {@code LABEL_0}, {@code LABEL_1});
     * a source config with another label set (e.g. a tagger's) gets those defaults.
     */
    static BertConfig resolve(BertConfig config) {
        Map<Integer, String> labels = config.id2label().size() == 2 ? config.id2label() : BertConfig.defaultId2Label(2);
        return config.withId2Label(labels).withProblemType(null);
    }

    // ------------------------------------------------------------------ saving

    // ------------------------------------------------------------------ accessors

    public void setDropout(double hiddenP, double attentionP) {
        m.setDropout(hiddenP, attentionP, 0.0);
    }

    // ------------------------------------------------------------------ forward

    /** Start and end logits [B, S] for every token. Arguments as {@link BertModel#forward}. */
    public Output forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) {
        BertModel.Output out = m.encode(inputIds, tokenTypeIds, attentionMask);
        Tensor logits = m.head(out.lastHiddenState());                                    // [B, S, 2]
        return new Output(logits.select(2, 0).contiguous(), logits.select(2, 1).contiguous(), out.lastHiddenState());
    }

    /**
     * HF's loss: positions are clamped to [0, S]; S (a position past the sequence, e.g. an
     * answer truncated away) is the ignore_index; loss = (CE(start) + CE(end)) / 2, each a mean
     * over its non-ignored examples (a part with none counts 0, where HF would give NaN).
     *
     * @param startPositions [B] (or [B, 1]) integer token index of the answer's first token
     * @param endPositions   [B] (or [B, 1]) integer token index of its last token
     */
    public Loss loss(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor startPositions,
                     Tensor endPositions) {
        long b = inputIds.dim() > 0 ? inputIds.size(0) : 0;
        Tensor start = positions("start_positions", startPositions, b);
        Tensor end = positions("end_positions", endPositions, b);
        Output out = forward(inputIds, tokenTypeIds, attentionMask);
        long s = out.startLogits().size(1);
        // HF: ignored_index = S; clamp(0, S) so that out-of-range positions are ignored, never indexed.
        Tensor st = start.clamp(new ScalarOptional(new Scalar(0L)), new ScalarOptional(new Scalar(s)));
        Tensor en = end.clamp(new ScalarOptional(new Scalar(0L)), new ScalarOptional(new Scalar(s)));
        Tensor startLoss = part(out.startLogits(), st, s);
        Tensor endLoss = part(out.endLogits(), en, s);
        Tensor loss = startLoss.add(endLoss).div(new Scalar(2.0));
        long startHit, endHit, exact, count;
        try (NoGradGuard ng = new NoGradGuard()) {
            Tensor valid = st.ne(new Scalar(s));
            Tensor sHit = out.startLogits().argmax(new LongOptional(1), false).eq(st).logical_and(valid);
            Tensor eHit = out.endLogits().argmax(new LongOptional(1), false).eq(en).logical_and(valid);
            startHit = sHit.sum().item_long();
            endHit = eHit.sum().item_long();
            exact = sHit.logical_and(eHit).sum().item_long();
            count = valid.sum().item_long();
        }
        return new Loss(loss, out.startLogits(), out.endLogits(), startHit, endHit, exact, count);
    }

    private static Tensor positions(String name, Tensor p, long b) {
        if (p == null || p.numel() != b || (p.dim() > 1 && p.size(0) != b)) {
            throw new Bert4jException(name + " must be [" + b + "] (one per example), got "
                    + (p == null ? "null" : Arrays.toString(Tensors.shape(p))));
        }
        if (p.is_floating_point()) {
            throw new Bert4jException(name + " must be integer token indices, got a " + p.scalar_type() + " tensor");
        }
        return p.reshape(-1).to(torch.ScalarType.Long);                                       // [B]
    }

    private static Tensor part(Tensor logits, Tensor target, long s) {
        long valid;
        try (NoGradGuard ng = new NoGradGuard()) {
            valid = target.ne(new Scalar(s)).sum().item_long();
        }
        if (valid == 0) {
            return logits.sum().mul(new Scalar(0.0));
        }
        return torch.cross_entropy_loss(logits, target, new TensorOptional(), 1 /* mean */, s, 0.0);
    }

}
