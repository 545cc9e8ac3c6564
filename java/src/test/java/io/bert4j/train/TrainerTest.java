package io.bert4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The training loop on {@link TinyTask}: accumulation, resume, checkpoints, crash safety, NaN stop, outputs. */
class TrainerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BATCH = 8;

    /** Dropout on, warmup, decay, clipping: everything that could break exact continuation. */
    private static TrainerConfig config(Path out) {
        return TrainerConfig.of(out, 10).withLr(3e-2).withWarmupSteps(3).withWeightDecay(0.01)
                .withMaxGradNorm(0.5).withSaveEvery(2).withKeepLast(10).withEvalEvery(5).withLogEvery(1).withSeed(1234);
    }

    private static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    }

    private static List<JsonNode> metrics(Path out) throws IOException {
        List<JsonNode> l = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve(Trainer.METRICS_FILE))) {
            l.add(JSON.readTree(line));
        }
        return l;
    }

    private static double[] losses(Path out) throws IOException {
        return metrics(out).stream().mapToDouble(n -> n.get("loss").asDouble()).toArray();
    }

    private static List<String> checkpointNames(Path out) throws IOException {
        try (Stream<Path> s = Files.list(out)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("checkpoint-")).sorted().toList();
        }
    }

    private static List<String> hidden(Path out) throws IOException {
        try (Stream<Path> s = Files.list(out)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(".")).toList();
        }
    }

    /** Runs a whole uninterrupted training and returns (losses, final parameters). */
    private static Object[] straightRun(Path out) throws IOException {
        try (TinyTask task = new TinyTask(1, 0.1); Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            Trainer.Result r = t.train(new TinyTask.TinyData(BATCH, null));
            assertEquals(10, r.step());
            assertFalse(r.stopped());
            return new Object[] {losses(out), task.snapshot()};
        }
    }

    @SuppressWarnings("unchecked")
    private static void assertSameParams(Map<String, float[]> a, Map<String, float[]> b) {
        assertEquals(a.keySet(), b.keySet());
        a.forEach((n, v) -> assertArrayEquals(v, b.get(n), 1e-6f, n));
    }

    /** Stops after {@code steps} optimizer steps via requestStop(), from inside the data source. */
    private static Trainer.Result runAndStop(Path out, TinyTask task, int steps) {
        try (Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            TinyTask.TinyData data = new TinyTask.TinyData(BATCH, null);
            data.onNext = i -> {
                if (i == steps - 1) {
                    t.requestStop(); // while step 'steps' runs: it finishes, checkpoints and returns
                }
            };
            return t.train(data);
        }
    }

    /** A fresh process: a task with different initial weights, restored from the newest checkpoint. */
    private static Object[] resumeToEnd(Path out, long expectStep) throws IOException {
        try (TinyTask task = new TinyTask(99, 0.1); Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            Trainer.ResumePoint rp = t.restoreLatest().orElseThrow();
            assertEquals(expectStep, rp.step());
            assertEquals(Long.toString(expectStep), rp.dataPosition()); // one batch per step
            assertEquals(expectStep, t.step());
            Trainer.Result r = t.train(new TinyTask.TinyData(BATCH, rp.dataPosition()));
            assertEquals(10, r.step());
            return new Object[] {losses(out), task.snapshot()};
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void resumeAfterStopGivesTheSameTrajectory(@TempDir Path dir) throws IOException {
        Object[] straight = straightRun(dir.resolve("straight"));
        double[] ref = (double[]) straight[0];
        assertEquals(10, ref.length);
        assertTrue(ref[9] < ref[0], "the loss should fall: " + ref[0] + " -> " + ref[9]);

        Path out = dir.resolve("resumed");
        try (TinyTask task = new TinyTask(1, 0.1)) {
            Trainer.Result r = runAndStop(out, task, 4);
            assertTrue(r.stopped());
            assertEquals(4, r.step());
            assertEquals(out.resolve("checkpoint-4"), r.checkpoint());
        }
        assertEquals(List.of("checkpoint-2", "checkpoint-4"), checkpointNames(out));
        assertFalse(Files.exists(out.resolve("model.safetensors")), "no final model after a stop");
        Object[] resumed = resumeToEnd(out, 4);
        double[] got = (double[]) resumed[0];
        assertEquals(10, got.length, "metrics.jsonl holds each step once");
        for (int i = 0; i < 10; i++) {
            assertEquals(ref[i], got[i], 1e-6, "loss at step " + (i + 1));
        }
        assertSameParams((Map<String, float[]>) straight[1], (Map<String, float[]>) resumed[1]);
        // The final model went into the output folder and holds the final parameters.
        Map<String, HostTensor> fin = SafeTensors.read(out.resolve("model.safetensors"));
        assertArrayEquals(((Map<String, float[]>) resumed[1]).get("out.weight"), fin.get("out.weight").toFloatArray());
    }

    @Test
    void dropoutSeedsDependOnTheStep(@TempDir Path dir) throws IOException {
        // Guards the resume test against passing trivially: with another seed the dropout masks,
        // and so the losses, differ.
        double[] a = (double[]) straightRun(dir.resolve("a"))[0];
        Path out = dir.resolve("b");
        try (TinyTask task = new TinyTask(1, 0.1);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out).withSeed(4321), task, quiet(), false)) {
            t.train(new TinyTask.TinyData(BATCH, null));
        }
        double[] b = losses(out);
        assertNotEquals(a[1], b[1]);
    }

    @Test
    @SuppressWarnings("unchecked")
    void accumulatingTwoHalfBatchesEqualsOneFullBatch(@TempDir Path dir) throws IOException {
        Map<String, float[]>[] params = new Map[2];
        double[][] losses = new double[2][];
        for (int k = 0; k < 2; k++) {
            Path out = dir.resolve("run" + k);
            TrainerConfig c = TrainerConfig.of(out, 4).withLr(1e-2).withWeightDecay(0.01).withMaxGradNorm(0.5)
                    .withAccumulation(k == 0 ? 2 : 1).withSaveEvery(0);
            try (TinyTask task = new TinyTask(5, 0.0); Trainer<TinyTask.Batch> t = new Trainer<>(c, task, quiet(), false)) {
                t.train(new TinyTask.TinyData(k == 0 ? BATCH / 2 : BATCH, null));
                params[k] = task.snapshot();
            }
            losses[k] = losses(out);
            List<JsonNode> m = metrics(out);
            assertEquals(BATCH, m.get(0).get("tokens").asLong(), "tokens of a step sum over its micro-batches");
            assertEquals(BATCH / (k == 0 ? 2.0 : 1.0), m.get(0).get("rows").asDouble(), 1e-12, "task metrics average over micro-batches");
        }
        assertArrayEquals(losses[1], losses[0], 1e-6);
        assertSameParams(params[1], params[0]);
    }

    @Test
    void keepsOnlyTheLastKCheckpoints(@TempDir Path out) throws IOException {
        try (TinyTask task = new TinyTask(1, 0.1);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out).withKeepLast(2), task, quiet(), false)) {
            t.train(new TinyTask.TinyData(BATCH, null));
        }
        assertEquals(List.of("checkpoint-10", "checkpoint-8"), checkpointNames(out));
        assertEquals(List.of(), hidden(out), "no temporary folders left");
        JsonNode st = JSON.readTree(out.resolve("checkpoint-10").resolve(Trainer.STATE_FILE).toFile());
        assertEquals(10, st.get("step").asLong());
        assertEquals("10", st.get("data_position").asText());
        assertEquals(10, st.get("best_metric").get("step").asLong());
        assertTrue(Files.isRegularFile(out.resolve("checkpoint-10").resolve(Trainer.OPTIMIZER_FILE)));
        assertTrue(Files.isRegularFile(out.resolve("checkpoint-10").resolve("model.safetensors")));
    }

    @Test
    @SuppressWarnings("unchecked")
    void crashWhileCheckpointingKeepsThePreviousOneAndResumeUsesIt(@TempDir Path dir) throws IOException {
        Object[] straight = straightRun(dir.resolve("straight"));
        Path out = dir.resolve("crash");
        try (TinyTask task = new TinyTask(1, 0.1); Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            task.failOnSaveCall = 3; // checkpoint-6
            Bert4jException e = assertThrows(Bert4jException.class, () -> t.train(new TinyTask.TinyData(BATCH, null)));
            assertTrue(e.getMessage().contains("injected failure"), e.getMessage());
        }
        assertEquals(List.of("checkpoint-2", "checkpoint-4"), checkpointNames(out));
        // What a hard crash (no finally blocks) would leave: a half-built temporary folder, and
        // a checkpoint-named folder without its state file.
        Path partial = Files.createDirectory(out.resolve(".checkpoint-6.partial-123"));
        Files.writeString(partial.resolve("model.safetensors"), "torn");
        Path incomplete = Files.createDirectory(out.resolve("checkpoint-8"));
        Files.writeString(incomplete.resolve("model.safetensors"), "torn");
        assertEquals(out.resolve("checkpoint-4"), Trainer.latestCheckpoint(out).orElseThrow());

        Object[] resumed = resumeToEnd(out, 4);
        assertFalse(Files.exists(partial), "leftover temporary folder cleaned");
        assertEquals(List.of(), hidden(out));
        assertArrayEquals((double[]) straight[0], (double[]) resumed[0], 1e-6);
        assertSameParams((Map<String, float[]>) straight[1], (Map<String, float[]>) resumed[1]);
        assertTrue(Files.isRegularFile(out.resolve("checkpoint-8").resolve(Trainer.STATE_FILE)), "stale folder replaced");
    }

    @Test
    void nanLossStopsWithoutApplyingAndKeepsTheLastGoodCheckpoint(@TempDir Path out) throws IOException {
        try (TinyTask task = new TinyTask(1, 0.1);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out).withSaveEvery(5), task, quiet(), false)) {
            task.nanOnStepCall = 7;
            Bert4jException e = assertThrows(Bert4jException.class, () -> t.train(new TinyTask.TinyData(BATCH, null)));
            assertTrue(e.getMessage().contains("step 7"), e.getMessage());
            assertTrue(e.getMessage().contains("NaN"), e.getMessage());
            assertTrue(e.getMessage().contains("checkpoint-5"), e.getMessage());
            assertSameParams(task.atNan, task.snapshot()); // the update was not applied
            assertEquals(6, t.step());
        }
        assertEquals(List.of("checkpoint-5"), checkpointNames(out));
        assertEquals(6, metrics(out).size());
        try (TinyTask task = new TinyTask(2, 0.1); Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            assertEquals(5, t.restoreLatest().orElseThrow().step());
        }
        assertEquals(5, metrics(out).size(), "metrics cut back to the checkpoint");

        Path fresh = out.resolveSibling(out.getFileName() + "-first");
        try (TinyTask task = new TinyTask(1, 0.1);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(fresh).withSaveEvery(5), task, quiet(), false)) {
            task.nanOnStepCall = 1;
            Bert4jException e = assertThrows(Bert4jException.class, () -> t.train(new TinyTask.TinyData(BATCH, null)));
            assertTrue(e.getMessage().contains("step 1") && e.getMessage().contains("no checkpoint"), e.getMessage());
        }
    }

    @Test
    void metricsProgressAndPlot(@TempDir Path out) throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        try (TinyTask task = new TinyTask(1, 0.1);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out).withLogEvery(5), task,
                     new PrintStream(log, true, StandardCharsets.UTF_8), false)) {
            t.train(new TinyTask.TinyData(BATCH, null));
        }
        List<JsonNode> m = metrics(out);
        assertEquals(10, m.size());
        for (int i = 0; i < m.size(); i++) {
            JsonNode n = m.get(i);
            assertEquals(i + 1, n.get("step").asLong());
            for (String f : List.of("loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")) {
                assertTrue(n.get(f).isNumber(), "line " + (i + 1) + " lacks " + f + ": " + n);
            }
            assertEquals((i + 1) % 5 == 0, n.has(Trainer.EVAL_LOSS), "eval only every 5 steps: " + n);
        }
        assertEquals(0.0, m.get(0).get("lr").asDouble(), "first warmup step has lr 0");
        assertEquals(3e-2, m.get(3).get("lr").asDouble(), 1e-12);
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("step 5/10") && text.contains("step 10/10") && !text.contains("step 4/10"), text);
        assertTrue(text.contains("ETA"), text);

        BufferedImage img = ImageIO.read(out.resolve(Trainer.PLOT_FILE).toFile());
        assertNotNull(img, "loss.png is a readable PNG");
        assertEquals(LossPlot.WIDTH, img.getWidth());
        assertEquals(LossPlot.HEIGHT, img.getHeight());
        // Something besides the white background and grey grid was drawn: the blue curve.
        boolean blue = false;
        for (int x = 0; x < img.getWidth() && !blue; x++) {
            for (int y = 0; y < img.getHeight() && !blue; y++) {
                int rgb = img.getRGB(x, y);
                blue = ((rgb & 0xff) > 150) && (((rgb >> 16) & 0xff) < 80);
            }
        }
        assertTrue(blue, "the training curve is drawn");
    }

    @Test
    void terminalProgressRewritesOneLine(@TempDir Path out) {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        try (TinyTask task = new TinyTask(1, 0.1);
             Trainer<TinyTask.Batch> t = new Trainer<>(config(out).withEvalEvery(0), task,
                     new PrintStream(log, true, StandardCharsets.UTF_8), true)) {
            t.train(new TinyTask.TinyData(BATCH, null));
        }
        String text = log.toString(StandardCharsets.UTF_8);
        assertEquals(10, text.chars().filter(c -> c == '\r').count(), text);
        assertEquals(1, text.chars().filter(c -> c == '\n').count(), "one newline at the end: " + text);
        assertTrue(text.contains("step 10/10 [========================]"), text);
    }

    @Test
    void refusesAFolderWithCheckpointsUnlessRestored(@TempDir Path base) {
        // Every folder inside the temporary directory: a rerun must not meet an earlier run's files.
        Path out = base.resolve("run");
        try (TinyTask task = new TinyTask(1, 0.1); Trainer<TinyTask.Batch> t = new Trainer<>(config(out), task, quiet(), false)) {
            runAndStop(out, task, 2);
            Bert4jException e = assertThrows(Bert4jException.class, () -> t.train(new TinyTask.TinyData(BATCH, null)));
            assertTrue(e.getMessage().contains("already holds checkpoints"), e.getMessage());
        }
        assertThrows(Bert4jException.class, () -> TrainerConfig.of(out, 10).withAccumulation(0));
        // The trainer that wrote the checkpoints may carry on after its stop, in-process.
        Path own = base.resolve("own");
        try (TinyTask task = new TinyTask(1, 0.1)) {
            assertTrue(runAndStop(own, task, 2).stopped());
        }
        try (TinyTask task = new TinyTask(1, 0.1); Trainer<TinyTask.Batch> t = new Trainer<>(config(base.resolve("own2")), task, quiet(), false)) {
            TinyTask.TinyData data = new TinyTask.TinyData(BATCH, null);
            data.onNext = i -> {
                if (i == 2) {
                    t.requestStop();
                }
            };
            assertTrue(t.train(data).stopped());
            data.onNext = i -> { };
            Trainer.Result r = t.train(data);
            assertEquals(10, r.step());
            assertFalse(r.stopped());
        }
        assertThrows(Bert4jException.class, () -> TrainerConfig.of(out, 10).withWarmupSteps(11));
    }
}
