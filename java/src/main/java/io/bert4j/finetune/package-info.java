/**
 * Fine-tuning tasks for the {@link io.bert4j.train.Trainer}: {@link io.bert4j.finetune.ClassificationTask}
 * (text and text-pair classification, regression) and its data and metrics helpers in
 * {@link io.bert4j.finetune.ClassificationData}.
 *
 * <pre>{@code
 * GlueTsv train = GlueTsv.read(Path.of("sst2/train.tsv"));
 * Map<String, Integer> label2id = Map.of("0", 0, "1", 1);
 * try (BertTokenizer tok = BertTokenizer.load(base);
 *      BertForSequenceClassification model = BertForSequenceClassification.fromPretrained(base, Map.of(0, "0", 1, "1"), 42)) {
 *     List<ClassificationData.Example> ex = ClassificationData.encode(train, tok, 128, label2id, "").examples();
 *     TrainerConfig cfg = TrainerConfig.of(out, EpochBatches.stepsPerEpoch(ex.size(), 32, 1));
 *     try (Trainer<ClassificationData.Batch> t = new Trainer<>(cfg, new ClassificationTask(model, tok, List.of(), 32))) {
 *         t.train(new EpochBatches<>(ex, 32, 42, ClassificationData.Example::length,
 *                 b -> ClassificationData.collate(b, tok.padId(), false), null));
 *     }
 * }
 * }</pre>
 */
package io.bert4j.finetune;
