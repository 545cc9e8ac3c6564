package io.bert4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;
import io.bert4j.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongToDoubleFunction;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Keeping the best checkpoint by a task metric: selection, rotation, the final model, trainer_state.json, resume. */
class TrainerBestCheckpointTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BATCH = 8;

    /**
     * TinyTask whose evaluation adds a scripted "score" as a function of the trainer's step, so the
     * best step is known in advance whatever the loss does; it also remembers the parameters at each
     * evaluation.
     */
    static final class ScoredTask implements TrainingTask<TinyTask.Batch> {
        final TinyTask inner;
        final LongToDoubleFunction score;
        final Map<Long, Map<String, float[]>> atEval = new HashMap<>();
        Trainer<TinyTask.Batch> trainer;
        boolean omitScore;

        ScoredTask(long seed, LongToDoubleFunction score) {
            this.inner = new TinyTask(seed, 0.1);
            this.score = score;
        }

        @Override
        public Map<String, org.bytedeco.pytorch.Tensor> parameters() {
            return inner.parameters();
        }

        @Override
        public StepResult step(TinyTask.Batch batch) {
            return inner.step(batch);
        }

        @Override
        public Map<String, Double> evaluate() {
            Map<String, Double> m = new HashMap<>(inner.evaluate());
            if (!omitScore) {
                m.put("eval_score", score.applyAsDouble(trainer.step()));
            }
            atEval.put(trainer.step(), inner.snapshot());
            return m;
        }

        @Override
        public void saveModel(Path dir) {
            inner.saveModel(dir);
        }

        @Override
        public void loadModel(Path dir) {
            inner.loadModel(dir);
        }

        @Override
        public void setStepSeed(long seed) {
            inner.setStepSeed(seed);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    /** Evaluations at steps 2, 4, 6, 8, 10 score 0.5, 0.9, 0.7, 0.9 (a tie: the earlier stays), 0.6: best is step 4. */
    private static double score(long step) {
        return switch ((int) step) {
            case 2 -> 0.5;
            case 4 -> 0.9;
            case 6 -> 0.7;
            case 8 -> 0.9;
            default -> 0.6;
        };
    }

    private static TrainerConfig config(Path out) {
        return TrainerConfig.of(out, 10).withLr(3e-2).withWarmupSteps(2).withSaveEvery(0).withKeepLast(1)
                .withEvalEvery(2).withLogEvery(1).withSeed(77).withBestMetric("eval_score", true).withLoadBestAtEnd(true);
    }

    private static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    }

    private static List<String> checkpointNames(Path out) throws IOException {
        try (Stream<Path> s = Files.list(out)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("checkpoint-")).sorted().toList();
        }
    }

    private static Map<String, float[]> folderParams(Path dir) {
        Map<String, float[]> m = new HashMap<>();
        SafeTensors.read(dir.resolve("model.safetensors")).forEach((n, t) -> m.put(n, t.toFloatArray()));
        return m;
    }

    private static void assertSame(Map<String, float[]> a, Map<String, float[]> b, String what) {
        assertEquals(a.keySet(), b.keySet(), what);
        a.forEach((n, v) -> assertArrayEquals(v, b.get(n), 0f, what + ": " + n));
    }

    private static void assertDiffer(Map<String, float[]> a, Map<String, float[]> b, String what) {
        boolean differ = a.entrySet().stream().anyMatch(e -> !java.util.Arrays.equals(e.getValue(), b.get(e.getKey())));
        assertTrue(differ, what);
    }

    @Test
    void finalModelIsTheBestCheckpointAndRotationKeepsIt(@TempDir Path out) throws IOException {
        Map<String, float[]> atBest, atEnd;
        Trainer.Result r;
        try (ScoredTask task = new ScoredTask(1, TrainerBestCheckpointTest::score);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            task.trainer = t;
            r = t.train(new TinyTask.TinyData(BATCH, null));
            atBest = task.atEval.get(4L);
            atEnd = task.atEval.get(10L);
            assertSame(atBest, task.inner.snapshot(), "the task holds the best model after training");
            assertEquals(Path.of(out.toString(), "checkpoint-4"), t.bestCheckpoint().orElseThrow());
        }
        assertEquals(10, r.step());
        assertEquals(4, r.bestStep());
        assertEquals(0.9, r.bestMetric());
        assertDiffer(atBest, atEnd, "training moved the weights after the best step");
        // keepLast 1: the newest plus the best; the checkpoints of steps 2 and 8 (new best then, or a tie) are gone.
        assertEquals(List.of("checkpoint-10", "checkpoint-4"), checkpointNames(out));
        assertSame(atBest, folderParams(out), "the output folder's model is the best checkpoint's");
        assertSame(atBest, folderParams(out.resolve("checkpoint-4")), "checkpoint-4");
        assertSame(atEnd, folderParams(out.resolve("checkpoint-10")), "checkpoint-10 holds the last step");
        for (Path st : List.of(out.resolve(Trainer.STATE_FILE), out.resolve("checkpoint-10").resolve(Trainer.STATE_FILE))) {
            JsonNode best = JSON.readTree(st.toFile()).get("best_metric");
            assertEquals("eval_score", best.get("name").asText(), st.toString());
            assertEquals(4, best.get("step").asLong(), st.toString());
            assertEquals(0.9, best.get("value").asDouble(), st.toString());
            assertEquals("checkpoint-4", best.get("checkpoint").asText(), st.toString());
            assertTrue(best.get("greater_is_better").asBoolean());
        }
        // Every evaluation (including the final step's) is in metrics.jsonl.
        long evals = Files.readAllLines(out.resolve(Trainer.METRICS_FILE)).stream().filter(l -> l.contains("eval_score")).count();
        assertEquals(5, evals);
    }

    @Test
    void lowerIsBetterPicksTheSmallestAndEvaluatesTheLastStepOffCadence(@TempDir Path out) throws IOException {
        // eval every 3 of 10 steps: 3, 6, 9 and (off the cadence) 10; the score is smallest at step 6.
        TrainerConfig cfg = config(out).withEvalEvery(3).withBestMetric("eval_score", false);
        try (ScoredTask task = new ScoredTask(2, s -> Math.abs(s - 6));
             Trainer<TinyTask.Batch> t = new Trainer<>(cfg, task, quiet(), false)) {
            task.trainer = t;
            Trainer.Result r = t.train(new TinyTask.TinyData(BATCH, null));
            assertEquals(6, r.bestStep());
            assertEquals(List.of(3L, 6L, 9L, 10L), task.atEval.keySet().stream().sorted().toList());
            assertSame(task.atEval.get(6L), folderParams(out), "final model = step 6");
        }
    }

    @Test
    void withoutLoadBestAtEndTheFinalModelIsTheLastStep(@TempDir Path out) throws IOException {
        TrainerConfig cfg = config(out).withLoadBestAtEnd(false).withSaveEvery(2).withKeepLast(1);
        try (ScoredTask task = new ScoredTask(1, TrainerBestCheckpointTest::score);
             Trainer<TinyTask.Batch> t = new Trainer<>(cfg, task, quiet(), false)) {
            task.trainer = t;
            Trainer.Result r = t.train(new TinyTask.TinyData(BATCH, null));
            assertEquals(4, r.bestStep(), "the best is still recorded");
            assertSame(task.atEval.get(10L), folderParams(out), "final model = last step");
        }
        assertEquals(List.of("checkpoint-10"), checkpointNames(out), "plain rotation");
        JsonNode best = JSON.readTree(out.resolve("checkpoint-10").resolve(Trainer.STATE_FILE).toFile()).get("best_metric");
        assertEquals(4, best.get("step").asLong());
        assertTrue(best.get("checkpoint").isNull(), "checkpoint-4 was not kept, so it is not named: " + best);
    }

    @Test
    void resumeRemembersTheBest(@TempDir Path dir) throws IOException {
        Path straight = dir.resolve("straight");
        try (ScoredTask task = new ScoredTask(1, TrainerBestCheckpointTest::score);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(straight), task, quiet(), false)) {
            task.trainer = t;
            t.train(new TinyTask.TinyData(BATCH, null));
        }
        Path out = dir.resolve("resumed");
        try (ScoredTask task = new ScoredTask(1, TrainerBestCheckpointTest::score);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            task.trainer = t;
            TinyTask.TinyData data = new TinyTask.TinyData(BATCH, null);
            data.onNext = i -> {
                if (i == 6) {
                    t.requestStop(); // during step 7: stop after it, past the best (step 4)
                }
            };
            Trainer.Result r = t.train(data);
            assertTrue(r.stopped());
            assertEquals(7, r.step());
        }
        assertEquals(List.of("checkpoint-4", "checkpoint-7"), checkpointNames(out));
        try (ScoredTask task = new ScoredTask(99, TrainerBestCheckpointTest::score);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            task.trainer = t;
            Trainer.ResumePoint rp = t.restoreLatest().orElseThrow();
            assertEquals(7, rp.step());
            Trainer.Result r = t.train(new TinyTask.TinyData(BATCH, rp.dataPosition()));
            assertEquals(4, r.bestStep(), "the tie at step 8 does not displace the remembered best");
        }
        assertSame(folderParams(straight), folderParams(out), "resumed final (best) model = uninterrupted one");
        assertEquals(List.of("checkpoint-10", "checkpoint-4"), checkpointNames(out));
    }

    @Test
    void aMissingBestMetricIsAClearError(@TempDir Path out) {
        try (ScoredTask task = new ScoredTask(1, TrainerBestCheckpointTest::score);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            task.trainer = t;
            task.omitScore = true;
            Bert4jException e = assertThrows(Bert4jException.class, () -> t.train(new TinyTask.TinyData(BATCH, null)));
            assertTrue(e.getMessage().contains("eval_score") && e.getMessage().contains("eval_loss"), e.getMessage());
        }
        assertThrows(Bert4jException.class, () -> TrainerConfig.of(out, 10).withLoadBestAtEnd(true),
                "keeping the best needs evaluation");
        assertFalse(Files.exists(out.resolve("model.safetensors")));
    }
}
