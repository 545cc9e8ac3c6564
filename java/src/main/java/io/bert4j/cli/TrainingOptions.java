package io.bert4j.cli;

import io.bert4j.Bert4jException;
import io.bert4j.kernels.KernelMode;
import io.bert4j.train.DataSource;
import io.bert4j.train.EpochBatches;
import io.bert4j.train.Trainer;
import io.bert4j.train.TrainerConfig;
import io.bert4j.train.TrainingTask;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.ToIntFunction;

/**
 * The training options every {@code bert4j finetune} command shares ({@code @Mixin}), and the
 * run itself: epochs to steps, the trainer's settings, resume, and the shuffled, length-grouped
 * batches of an in-memory training set.
 */
public final class TrainingOptions {

    @Option(names = "--epochs", paramLabel = "N", defaultValue = "3", description = "Passes over the training data (default: ${DEFAULT-VALUE}).")
    public double epochs;

    @Option(names = "--max-steps", paramLabel = "N", description = "Optimizer steps in all; overrides --epochs.")
    public Long maxSteps;

    @Option(names = "--lr", paramLabel = "X", defaultValue = "5e-5", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    public double lr;

    @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32", description = "Examples per batch (default: ${DEFAULT-VALUE}).")
    public int batchSize;

    @Option(names = "--max-length", paramLabel = "N",
            description = "Tokens per input; longer inputs are truncated and counted (default: 128, or the model's "
                    + "max_position_embeddings if smaller).")
    public Integer maxLength;

    @Option(names = "--warmup", paramLabel = "RATIO", defaultValue = "0.1",
            description = "Share of steps with linear warmup (default: ${DEFAULT-VALUE}).")
    public double warmup;

    @Option(names = "--weight-decay", paramLabel = "X", defaultValue = "0.01", description = "AdamW weight decay (default: ${DEFAULT-VALUE}).")
    public double weightDecay;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42",
            description = "Seed for the head's initialisation, shuffling and dropout (default: ${DEFAULT-VALUE}).")
    public long seed;

    @Option(names = "--eval-every", paramLabel = "N", description = "Evaluate every N steps (default: at the end of each epoch).")
    public Long evalEvery;

    @Option(names = "--save-every", paramLabel = "N",
            description = "Checkpoint every N steps (default: at the end of each epoch; the best checkpoint is always kept).")
    public Long saveEvery;

    @Option(names = "--keep", paramLabel = "K", defaultValue = "1",
            description = "Newest checkpoints kept besides the best (default: ${DEFAULT-VALUE}).")
    public int keep;

    @Option(names = "--accumulate", paramLabel = "N", defaultValue = "1", description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
    public int accumulate;

    @Option(names = "--max-grad-norm", paramLabel = "X", defaultValue = "1.0", description = "Gradient clipping (default: ${DEFAULT-VALUE}; 0 = off).")
    public double maxGradNorm;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    public String kernels;

    @Option(names = "--log-every", paramLabel = "N", defaultValue = "10",
            description = "Progress line every N steps when not on a terminal (default: ${DEFAULT-VALUE}).")
    public long logEvery;

    @Option(names = "--resume", description = "Continue from the latest checkpoint in --out.")
    public boolean resume;

    /** Checks the values a user can get wrong, before any data is read. */
    public void validate() {
        if (!(epochs > 0) || !Double.isFinite(epochs)) {
            throw new Bert4jException("--epochs must be positive, got " + epochs);
        }
        positive("--max-steps", maxSteps);
        positive("--eval-every", evalEvery);
        positive("--save-every", saveEvery);
        positive("--batch-size", (long) batchSize);
        positive("--accumulate", (long) accumulate);
        positive("--keep", (long) keep);
        if (maxLength != null && maxLength < 8) {
            throw new Bert4jException("--max-length must be at least 8, got " + maxLength);
        }
        if (!(lr > 0) || !Double.isFinite(lr)) {
            throw new Bert4jException("--lr must be a positive number, got " + lr);
        }
        if (!(warmup >= 0 && warmup <= 1)) {
            throw new Bert4jException("--warmup must lie in [0, 1], got " + warmup);
        }
        if (!(weightDecay >= 0)) {
            throw new Bert4jException("--weight-decay must be >= 0, got " + weightDecay);
        }
        kernelMode();
    }

    private static void positive(String name, Long v) {
        if (v != null && v <= 0) {
            throw new Bert4jException(name + " must be positive, got " + v);
        }
    }

    /** The token budget for a model with {@code positions} positions: --max-length, or min(128, positions). */
    public int maxLength(int positions) {
        return resolveMaxLength(maxLength, positions);
    }

    /** An explicit budget must fit the model; the default of 128 shrinks to fit it. */
    static int resolveMaxLength(Integer requested, int positions) {
        if (requested == null) {
            return Math.min(128, positions);
        }
        if (requested > positions) {
            throw new Bert4jException("--max-length " + requested + " exceeds the model's max_position_embeddings (" + positions + ")");
        }
        if (requested < 3) {
            throw new Bert4jException("--max-length must be at least 3, got " + requested);
        }
        return requested;
    }

    public KernelMode kernelMode() {
        return KernelMode.parse(kernels);
    }

    /** Optimizer steps per epoch for a training set of {@code examples}. */
    public long stepsPerEpoch(int examples) {
        return EpochBatches.stepsPerEpoch(examples, batchSize, accumulate);
    }

    /** --max-steps, or --epochs (fractions allowed) times the steps per epoch, rounded up. */
    public long totalSteps(int examples) {
        return maxSteps != null ? maxSteps : Math.max(1, (long) Math.ceil(epochs * stepsPerEpoch(examples)));
    }

    /**
     * The trainer's settings. With an eval set the best checkpoint by {@code bestMetric} becomes the
     * final model; without one the last step's model does.
     */
    public TrainerConfig trainerConfig(Path out, int examples, boolean hasEval, String bestMetric, boolean greaterIsBetter) {
        long total = totalSteps(examples);
        long epoch = stepsPerEpoch(examples);
        TrainerConfig c = TrainerConfig.of(out, total).withLr(lr).withWeightDecay(weightDecay).withWarmupRatio(warmup)
                .withMaxGradNorm(maxGradNorm).withAccumulation(accumulate)
                .withSaveEvery(saveEvery != null ? saveEvery : epoch).withKeepLast(keep)
                .withLogEvery(logEvery).withSeed(seed);
        if (hasEval) {
            c = c.withEvalEvery(evalEvery != null ? evalEvery : epoch).withBestMetric(bestMetric, greaterIsBetter)
                    .withLoadBestAtEnd(true);
        }
        return c;
    }

    /** --resume needs a checkpoint; a fresh run needs a folder without one. */
    public void checkOutputFolder(Path out) {
        if (!resume && Trainer.latestCheckpoint(out).isPresent()) {
            throw new Bert4jException(out + " already holds checkpoints; use --resume to continue, or another --out");
        }
        if (resume && Trainer.latestCheckpoint(out).isEmpty()) {
            throw new Bert4jException(out + " holds no checkpoint to resume from");
        }
    }

    /**
     * Trains {@code task} on {@code examples}: restores the latest checkpoint with --resume, then
     * feeds shuffled batches, grouped by {@code length} (each batch padded to its own longest
     * example by {@code collate}), until the configured steps are done.
     */
    public <E, B> Trainer.Result train(TrainerConfig config, TrainingTask<B> task, List<E> examples,
                                       ToIntFunction<E> length, Function<List<E>, B> collate, PrintWriter err) {
        try (Trainer<B> trainer = new Trainer<>(config, task)) {
            Optional<Trainer.ResumePoint> from = resume ? trainer.restoreLatest() : Optional.empty();
            from.ifPresent(r -> {
                err.println("bert4j: resuming from " + r.checkpoint() + " (step " + r.step() + ")");
                err.flush();
            });
            DataSource<B> data = new EpochBatches<>(examples, batchSize, seed, length, collate,
                    from.map(Trainer.ResumePoint::dataPosition).orElse(null));
            return trainer.train(data);
        }
    }
}
