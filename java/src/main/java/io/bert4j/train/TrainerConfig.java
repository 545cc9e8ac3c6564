package io.bert4j.train;

import io.bert4j.Bert4jException;

import java.nio.file.Path;

/**
 * Settings of one training run. Start from {@link #of(Path, long)} (the defaults of HF's
 * Trainer where it has one) and change fields with the {@code with...} methods.
 *
 * @param lr            peak learning rate
 * @param weightDecay   AdamW decoupled weight decay for the decayed group
 * @param warmupSteps   linear warmup length in optimizer steps
 * @param totalSteps    optimizer steps of the whole run (the schedule reaches 0 here)
 * @param maxGradNorm   global-norm clipping threshold; {@code <= 0} disables clipping
 * @param accumulation  micro-batches per optimizer step
 * @param evalEvery     run {@code task.evaluate()} every this many steps (0: never)
 * @param saveEvery     write a checkpoint every this many steps (0: only on stop and at the end)
 * @param keepLast      checkpoints to keep (older ones are deleted); at least 1
 * @param logEvery      a progress line every this many steps when stderr is not a terminal
 * @param seed          base of the per-step seeds
 * @param outDir        where checkpoints, metrics.jsonl, loss.png and the final model go
 * @param adamBeta1     AdamW beta1
 * @param adamBeta2     AdamW beta2
 * @param adamEps       AdamW eps
 * @param bestMetric    the eval metric that ranks checkpoints (recorded as {@code best_metric} in
 *                      trainer_state.json)
 * @param greaterIsBetter true when a larger {@code bestMetric} is better (accuracy), false when smaller is
 *                      (a loss)
 * @param loadBestAtEnd keep the best checkpoint: write a checkpoint whenever the eval metric improves, never
 *                      delete it when rotating, evaluate at the last step too, and make the final model in the
 *                      output folder the best checkpoint's (as HF's {@code load_best_model_at_end})
 */
public record TrainerConfig(double lr, double weightDecay, long warmupSteps, long totalSteps, double maxGradNorm,
                            int accumulation, long evalEvery, long saveEvery, int keepLast, long logEvery, long seed,
                            Path outDir, double adamBeta1, double adamBeta2, double adamEps,
                            String bestMetric, boolean greaterIsBetter, boolean loadBestAtEnd) {

    public TrainerConfig {
        if (outDir == null) {
            throw new Bert4jException("trainer: an output folder is required");
        }
        require(lr >= 0 && Double.isFinite(lr), "learning rate must be a finite number >= 0, got " + lr);
        require(weightDecay >= 0, "weight decay must be >= 0, got " + weightDecay);
        require(totalSteps > 0, "total steps must be > 0, got " + totalSteps);
        require(warmupSteps >= 0 && warmupSteps <= totalSteps,
                "warmup steps must lie in [0, total steps = " + totalSteps + "], got " + warmupSteps);
        require(accumulation >= 1, "gradient accumulation must be >= 1, got " + accumulation);
        require(evalEvery >= 0 && saveEvery >= 0 && logEvery >= 0, "evalEvery, saveEvery and logEvery must be >= 0");
        require(keepLast >= 1, "keepLast must be >= 1, got " + keepLast);
        require(adamBeta1 >= 0 && adamBeta1 < 1 && adamBeta2 >= 0 && adamBeta2 < 1,
                "Adam betas must lie in [0, 1), got " + adamBeta1 + ", " + adamBeta2);
        require(adamEps >= 0, "Adam eps must be >= 0, got " + adamEps);
        require(bestMetric != null && !bestMetric.isBlank(), "the best metric needs a name");
        require(!loadBestAtEnd || evalEvery > 0, "keeping the best checkpoint needs evaluation (evalEvery > 0)");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new Bert4jException("trainer: " + message);
        }
    }

    /**
     * lr 5e-5, no decay, no warmup, clip at 1.0, no accumulation, save every 500, keep 3, log every 10, seed 42;
     * best metric {@code eval_loss} (lower is better), recorded but not loaded at the end.
     */
    public static TrainerConfig of(Path outDir, long totalSteps) {
        return new TrainerConfig(5e-5, 0.0, 0, totalSteps, 1.0, 1, 0, 500, 3, 10, 42, outDir, 0.9, 0.999, 1e-8,
                Trainer.EVAL_LOSS, false, false);
    }

    public TrainerConfig withLr(double v) {
        return new TrainerConfig(v, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withWeightDecay(double v) {
        return new TrainerConfig(lr, v, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withWarmupSteps(long v) {
        return new TrainerConfig(lr, weightDecay, v, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    /** Warmup as a fraction of total steps, rounded up as HF's {@code warmup_ratio}. */
    public TrainerConfig withWarmupRatio(double ratio) {
        require(ratio >= 0 && ratio <= 1, "warmup ratio must lie in [0, 1], got " + ratio);
        return withWarmupSteps((long) Math.ceil(ratio * totalSteps));
    }

    public TrainerConfig withTotalSteps(long v) {
        return new TrainerConfig(lr, weightDecay, Math.min(warmupSteps, v), v, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withMaxGradNorm(double v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, v, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withAccumulation(int v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, v, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withEvalEvery(long v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, v, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withSaveEvery(long v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, v, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withKeepLast(int v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, v, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withLogEvery(long v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, v, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withSeed(long v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, v, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withOutDir(Path v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, v, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    public TrainerConfig withAdam(double beta1, double beta2, double eps) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, beta1, beta2, eps, bestMetric, greaterIsBetter, loadBestAtEnd);
    }

    /** The eval metric that ranks checkpoints and whether larger is better (e.g. {@code eval_accuracy}, true). */
    public TrainerConfig withBestMetric(String name, boolean greaterIsBetter) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, name, greaterIsBetter, loadBestAtEnd);
    }

    /** See {@code loadBestAtEnd} in the class comment. */
    public TrainerConfig withLoadBestAtEnd(boolean v) {
        return new TrainerConfig(lr, weightDecay, warmupSteps, totalSteps, maxGradNorm, accumulation, evalEvery, saveEvery, keepLast, logEvery, seed, outDir, adamBeta1, adamBeta2, adamEps, bestMetric, greaterIsBetter, v);
    }

    /**
     * A hash of the fields that shape the loss trajectory (not outDir, logging, eval or save
     * cadence). A resumed run with a different hash still runs, with a warning that it will not
     * reproduce the uninterrupted run.
     */
    public String trajectoryHash() {
        String key = lr + "|" + weightDecay + "|" + warmupSteps + "|" + totalSteps + "|" + maxGradNorm + "|"
                + accumulation + "|" + seed + "|" + adamBeta1 + "|" + adamBeta2 + "|" + adamEps;
        try {
            byte[] d = java.security.MessageDigest.getInstance("SHA-256").digest(key.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return java.util.HexFormat.of().formatHex(d, 0, 8);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
