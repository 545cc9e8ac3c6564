package io.bert4j.train;

import io.bert4j.Bert4jException;

/**
 * Linear warmup from 0 to {@code lr} over {@code warmupSteps}, then linear decay to 0 at
 * {@code totalSteps}, as Hugging Face's {@code get_linear_schedule_with_warmup}: the
 * optimizer step with 0-based index {@code s} uses {@link #lr(long) lr(s)}, so with warmup
 * the very first step has learning rate 0. The schedule is a pure function of the step,
 * which is all a checkpoint needs to store.
 */
public record LinearSchedule(double peakLr, long warmupSteps, long totalSteps) {
    public LinearSchedule {
        if (!(peakLr >= 0) || warmupSteps < 0 || totalSteps <= 0) {
            throw new Bert4jException("schedule needs lr >= 0, warmup >= 0 and total steps > 0, got lr " + peakLr
                    + ", warmup " + warmupSteps + ", total " + totalSteps);
        }
    }

    public double lr(long step) {
        if (step < warmupSteps) {
            return peakLr * step / Math.max(1, warmupSteps);
        }
        return peakLr * Math.max(0.0, (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    }
}
