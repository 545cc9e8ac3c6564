/**
 * Fine-tuning data: readers for the standard task files and the turning of their examples
 * into model inputs and back.
 *
 * <ul>
 *   <li>{@link io.bert4j.data.Conll}: CoNLL column files (NER), IOB1 converted to IOB2, and
 *       the label list; {@link io.bert4j.data.NerFeatures}: words to tokens with labels on
 *       each word's first sub-token, and token predictions back to word tags.</li>
 *   <li>{@link io.bert4j.data.Squad}: SQuAD v1.1 JSON; {@link io.bert4j.data.QaFeatures}:
 *       question + context windows with {@code doc_stride} overlap and answer token
 *       positions; {@link io.bert4j.data.QaAnswers}: start/end logits back to answer text.</li>
 * </ul>
 *
 * <p>Everything here is plain Java over {@link io.bert4j.tokenize.BertTokenizer}; no tensors.
 * Bad input ends in a {@link io.bert4j.Bert4jException} that names the file and line (or
 * example id).
 */
package io.bert4j.data;
