/**
 * Evaluation metrics for fine-tuned bert4j models, each written to its published definition.
 *
 * <ul>
 *   <li>{@link io.bert4j.eval.ClassificationMetrics}: accuracy, binary F1, macro-F1 and the
 *       Matthews correlation (Gorodkin's multi-class R_K) over integer class ids.</li>
 *   <li>{@link io.bert4j.eval.RegressionMetrics}: Pearson and Spearman correlation.</li>
 *   <li>{@link io.bert4j.eval.EntityMetrics}: entity-level precision/recall/F1 over IOB2 tags,
 *       in the conlleval-compatible default mode and in the strict IOB2 mode, plus an IOB1 to
 *       IOB2 converter.</li>
 *   <li>{@link io.bert4j.eval.SquadMetrics}: SQuAD v1.1 exact match and token F1 with the
 *       official answer normalisation.</li>
 * </ul>
 *
 * Every {@code evaluate} returns an immutable record implementing
 * {@link io.bert4j.eval.EvalResult}, whose {@code asMap()} / {@code toJson()} give the flat
 * view that {@code bert4j eval} prints:
 *
 * <pre>{@code
 * ClassificationResult r = ClassificationMetrics.evaluate(gold, predicted, 2);
 * System.out.println(r.toJson());   // {"accuracy":0.91,"f1":0.92,"macro_f1":0.90,"mcc":0.81}
 * }</pre>
 *
 * Inputs that cannot be scored (length mismatch, empty input, a label or tag outside the
 * declared set) raise {@link io.bert4j.Bert4jException} with a message naming the problem.
 */
package io.bert4j.eval;
