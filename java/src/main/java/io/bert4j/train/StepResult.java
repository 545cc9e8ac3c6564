package io.bert4j.train;

import org.bytedeco.pytorch.Tensor;

import java.util.Map;

/**
 * One micro-batch's forward result.
 *
 * @param loss    scalar loss with its autograd graph (mean over the micro-batch)
 * @param tokens  tokens (or examples) in the micro-batch, for the throughput figure
 * @param metrics extra per-batch numbers to log (averaged over the micro-batches of a step); may be empty
 */
public record StepResult(Tensor loss, long tokens, Map<String, Double> metrics) {
    public StepResult {
        metrics = metrics == null ? Map.of() : Map.copyOf(metrics);
    }

    public StepResult(Tensor loss, long tokens) {
        this(loss, tokens, Map.of());
    }
}
