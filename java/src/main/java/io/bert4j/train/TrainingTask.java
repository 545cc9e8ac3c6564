package io.bert4j.train;

import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.Map;

/**
 * What the {@link Trainer} trains: a model with a loss. The trainer owns the optimisation
 * (accumulation, clipping, AdamW, schedule, checkpoints); the task owns the model, the
 * forward pass and the model's file format, so pretraining and fine-tuning share one loop.
 *
 * @param <B> the batch type its {@link DataSource} produces
 */
public interface TrainingTask<B> extends AutoCloseable {

    /**
     * The trainable leaves by checkpoint name, with {@code requires_grad} set. The same
     * tensors (not copies) on every call, in a stable order: the optimizer keeps state per name.
     */
    Map<String, Tensor> parameters();

    /**
     * Forward pass on one (micro-)batch in training mode. The loss is a scalar that still
     * carries its autograd graph; the trainer scales it for accumulation and calls backward.
     * Runs inside the trainer's per-micro-step {@code PointerScope}.
     */
    StepResult step(B batch);

    /**
     * Held-out metrics (e.g. {@code eval_loss}), called every {@code evalEvery} optimizer steps
     * under a {@code NoGradGuard}. The task switches itself to eval mode and back (dropout).
     */
    Map<String, Double> evaluate();

    /** Writes the model's Hugging Face files into {@code dir}, which exists and is empty. */
    void saveModel(Path dir);

    /** Restores the parameter values from a folder written by {@link #saveModel}, for resuming. */
    void loadModel(Path dir);

    /**
     * Called before each optimizer step with a seed derived from (config seed, step), so that
     * task-owned randomness (e.g. {@code BertModel.setDropoutSeed}) restarts identically on
     * resume without saving generator states. The trainer also calls
     * {@code torch.manual_seed} with the same value for randomness drawn from libtorch's
     * default generator.
     */
    default void setStepSeed(long seed) {
    }

    @Override
    default void close() {
    }
}
