/**
 * Training loop for bert4j models, generic over the task.
 *
 * <pre>{@code
 * TrainerConfig cfg = TrainerConfig.of(outDir, totalSteps).withLr(1e-4).withWeightDecay(0.01)
 *         .withWarmupRatio(0.06).withAccumulation(4).withSaveEvery(1000).withEvalEvery(1000);
 * try (MyTask task = ...; Trainer<MyBatch> trainer = new Trainer<>(cfg, task)) {
 *     Optional<Trainer.ResumePoint> rp = trainer.restoreLatest();          // empty: fresh start
 *     DataSource<MyBatch> data = openData(rp.map(Trainer.ResumePoint::dataPosition).orElse(null));
 *     Trainer.Result r = trainer.train(data);                            // r.stopped() after Ctrl-C
 * }
 * }</pre>
 *
 * A task implements {@link io.bert4j.train.TrainingTask} (parameters, forward loss, eval,
 * save/load of its model folder); the data implements {@link io.bert4j.train.DataSource} with a
 * reopenable position. {@link io.bert4j.train.AdamW}, {@link io.bert4j.train.LinearSchedule} and
 * {@link io.bert4j.train.GradClip} are usable on their own.
 */
package io.bert4j.train;
