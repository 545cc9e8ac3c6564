package io.bert4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.io.AtomicFiles;
import io.bert4j.io.ModelFolder;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The training loop: per optimizer step, {@code accumulation} micro-batches (each in its own
 * {@code PointerScope}, loss divided by the count), global-norm clipping, AdamW with the
 * linear warmup/decay schedule, zeroed gradients; evaluation, metrics, progress and
 * checkpoints on their cadences.
 *
 * <h2>Output folder</h2>
 * <ul>
 *   <li>{@code metrics.jsonl}: one JSON object per optimizer step ({@code step, loss, lr,
 *       grad_norm, tokens, tokens_per_s, elapsed_s}, the task's per-batch metrics, and its
 *       eval metrics on eval steps);</li>
 *   <li>{@code loss.png}: training loss per step and {@code eval_loss} points, rewritten at
 *       each checkpoint and at the end;</li>
 *   <li>{@code checkpoint-<step>/}: the task's model files, {@code optimizer.safetensors},
 *       {@code trainer_state.json}. Built in a hidden temporary folder and renamed into place,
 *       so a checkpoint folder is always complete; only the newest {@code keepLast} are kept;</li>
 *   <li>the final model's files, written into the folder itself when training completes, with a
 *       {@code trainer_state.json} beside them.</li>
 * </ul>
 *
 * <h2>Best checkpoint</h2>
 * Each evaluation's {@link TrainerConfig#bestMetric()} is compared with the best so far (larger or
 * smaller is better by {@link TrainerConfig#greaterIsBetter()}; ties keep the earlier step), and
 * trainer_state.json records the best as {@code best_metric: {name, value, step, checkpoint}}.
 * With {@link TrainerConfig#loadBestAtEnd()} the trainer also writes a checkpoint at every new best,
 * never deletes that checkpoint when rotating (so up to {@code keepLast + 1} folders remain),
 * evaluates at the last step even off the cadence, and at the end loads the best checkpoint back
 * into the task before writing the final model: the output folder then holds the best model, as
 * Hugging Face's {@code load_best_model_at_end} does.
 *
 * <h2>Randomness and resume</h2>
 * Before optimizer step {@code s} (0-based) the trainer calls {@code torch.manual_seed(k)} and
 * {@link TrainingTask#setStepSeed(long) task.setStepSeed(k)} with {@code k = stepSeed(seed, s)}.
 * All randomness is thus a function of (seed, step), and a checkpoint stores no generator
 * state: resuming at step {@code s} re-seeds exactly as the uninterrupted run did. The data
 * order is restored by the caller reopening its {@link DataSource} at the saved position.
 *
 * <h2>Stopping</h2>
 * {@link #requestStop()} (also called by a JVM shutdown hook on Ctrl-C, which then waits up to
 * 60 s) lets the current optimizer step finish, writes a checkpoint and returns. A NaN or
 * infinite loss or gradient norm stops at once without applying the step and without writing
 * anything, and throws a {@link Bert4jException} naming the last good checkpoint.
 *
 * <p>One trainer per output folder at a time; nothing locks the folder.
 */
public final class Trainer<B> implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }

    public static final String CHECKPOINT_PREFIX = "checkpoint-";
    public static final String STATE_FILE = "trainer_state.json";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    public static final String METRICS_FILE = "metrics.jsonl";
    public static final String PLOT_FILE = "loss.png";
    /** The eval metric plotted, and the default best metric (lower is better). */
    public static final String EVAL_LOSS = "eval_loss";
    private static final Pattern CHECKPOINT_NAME = Pattern.compile(Pattern.quote(CHECKPOINT_PREFIX) + "(\\d+)");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long HOOK_WAIT_SECONDS = 60;

    /** Where {@link #restoreLatest()} put the run back. */
    public record ResumePoint(long step, String dataPosition, Path checkpoint) {
    }

    /**
     * How {@link #train} ended.
     *
     * @param step       optimizer steps done in total
     * @param stopped    true when {@link #requestStop()} ended it early (a checkpoint was written)
     * @param lastLoss   mean loss of the last step (NaN if no step ran)
     * @param checkpoint the checkpoint written last, or null
     * @param bestStep   the step with the best eval metric so far, or -1 if none
     * @param bestMetric that metric's value, or null if none
     */
    public record Result(long step, boolean stopped, double lastLoss, Path checkpoint, long bestStep, Double bestMetric) {
    }

    private final TrainerConfig config;
    private final TrainingTask<B> task;
    private final Map<String, Tensor> params;
    private final AdamW optimizer;
    private final LinearSchedule schedule;
    private final PrintStream progressOut;
    private final boolean terminal;
    private volatile boolean stopRequested;

    private long step;
    private boolean restored;
    private long tokensSeen;
    private double elapsedBefore; // seconds spent by earlier runs (resume)
    private Double bestMetric;
    private long bestStep = -1;
    private Path lastCheckpoint;
    private final List<LossPlot.Point> trainHistory = new ArrayList<>();
    private final List<LossPlot.Point> evalHistory = new ArrayList<>();

    /** Progress on {@code System.err}: a carriage-return bar on a terminal, log lines otherwise. */
    public Trainer(TrainerConfig config, TrainingTask<B> task) {
        this(config, task, System.err, System.console() != null);
    }

    /** Progress on {@code progress}; {@code terminal} picks the one-line bar over log lines. */
    public Trainer(TrainerConfig config, TrainingTask<B> task, PrintStream progress, boolean terminal) {
        this.config = config;
        this.task = task;
        this.params = new LinkedHashMap<>(task.parameters());
        if (params.isEmpty()) {
            throw new Bert4jException("trainer: the task has no trainable parameters");
        }
        params.forEach((name, p) -> {
            if (!p.requires_grad()) {
                throw new Bert4jException("trainer: parameter " + name + " does not require grad");
            }
        });
        this.optimizer = new AdamW(params, config.weightDecay(), config.adamBeta1(), config.adamBeta2(), config.adamEps());
        this.schedule = new LinearSchedule(config.lr(), config.warmupSteps(), config.totalSteps());
        this.progressOut = progress;
        this.terminal = terminal;
    }

    public TrainerConfig config() {
        return config;
    }

    /** Optimizer steps done so far (after a restore: the checkpoint's step). */
    public long step() {
        return step;
    }

    /** Asks the loop to finish the current optimizer step, write a checkpoint and return. Thread-safe. */
    public void requestStop() {
        stopRequested = true;
    }

    /** The seed of optimizer step {@code step} (0-based): a SplitMix64 mix of both, so nearby seeds do not correlate. */
    public static long stepSeed(long seed, long step) {
        return mix(seed ^ mix(step + 0x9E3779B97F4A7C15L));
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    // ------------------------------------------------------------------ resume

    /** The newest complete checkpoint under {@code outDir} (one whose trainer_state.json parses), if any. */
    public static Optional<Path> latestCheckpoint(Path outDir) {
        return checkpoints(outDir).stream().reduce((a, b) -> b);
    }

    /** Complete checkpoints, oldest first. */
    static List<Path> checkpoints(Path outDir) {
        if (!Files.isDirectory(outDir)) {
            return List.of();
        }
        List<Path> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(outDir)) {
            s.filter(p -> CHECKPOINT_NAME.matcher(p.getFileName().toString()).matches())
                    .filter(Files::isDirectory)
                    .filter(p -> readState(p).isPresent())
                    .sorted(Comparator.comparingLong(Trainer::checkpointStep))
                    .forEach(out::add);
        } catch (IOException e) {
            throw new Bert4jException(outDir + ": cannot list checkpoints: " + e.getMessage(), e);
        }
        return out;
    }

    private static long checkpointStep(Path dir) {
        Matcher m = CHECKPOINT_NAME.matcher(dir.getFileName().toString());
        if (!m.matches()) {
            throw new IllegalArgumentException(dir.toString());
        }
        return Long.parseLong(m.group(1));
    }

    private static Optional<JsonNode> readState(Path checkpoint) {
        Path f = checkpoint.resolve(STATE_FILE);
        if (!Files.isRegularFile(f)) {
            return Optional.empty();
        }
        try {
            JsonNode n = JSON.readTree(f.toFile());
            if (n == null || !n.path("step").canConvertToLong() || n.path("step").asLong() != checkpointStep(checkpoint)) {
                return Optional.empty();
            }
            return Optional.of(n);
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /**
     * Puts the run back to the newest complete checkpoint in the output folder: parameter
     * values (via {@link TrainingTask#loadModel}), optimizer state, step, tokens seen, elapsed
     * time, best metric, and metrics.jsonl cut back to that step. Returns the data position to
     * reopen the {@link DataSource} at, or empty when there is no checkpoint (fresh start).
     * Leftover temporary folders of an interrupted checkpoint write are deleted first.
     */
    public Optional<ResumePoint> restoreLatest() {
        cleanPartials();
        Optional<Path> latest = latestCheckpoint(config.outDir());
        if (latest.isEmpty()) {
            return Optional.empty();
        }
        Path dir = latest.get();
        JsonNode st = readState(dir).orElseThrow();
        task.loadModel(dir);
        optimizer.load(dir.resolve(OPTIMIZER_FILE));
        step = st.path("step").asLong();
        tokensSeen = st.path("tokens_seen").asLong(0);
        elapsedBefore = st.path("elapsed_s").asDouble(0);
        JsonNode best = st.path("best_metric");
        bestMetric = null;
        bestStep = -1;
        if (best.isObject() && best.path("value").isNumber()) {
            String name = best.path("name").asText(EVAL_LOSS);
            if (name.equals(config.bestMetric())) {
                bestMetric = best.path("value").asDouble();
                bestStep = best.path("step").asLong(-1);
            } else {
                progressOut.println("bert4j: warning: " + dir + " ranked checkpoints by " + name + ", this run by "
                        + config.bestMetric() + "; the best so far is forgotten");
            }
        }
        String hash = st.path("config_hash").asText("");
        if (!hash.equals(config.trajectoryHash())) {
            progressOut.println("bert4j: warning: " + dir + " was written with different training settings "
                    + "(config hash " + hash + ", now " + config.trajectoryHash() + "); the resumed run will not "
                    + "reproduce an uninterrupted one");
        }
        truncateMetrics(step);
        lastCheckpoint = dir;
        restored = true;
        String position = st.path("data_position").isNull() ? null : st.path("data_position").asText();
        return Optional.of(new ResumePoint(step, position, dir));
    }

    // ------------------------------------------------------------------ loop

    /**
     * Trains from the current step (0, or where {@link #restoreLatest()} put it) to
     * {@code totalSteps}, or until {@link #requestStop()}. On completion writes a final
     * checkpoint, the final model into the output folder and loss.png. Refuses an output folder
     * that holds checkpoints unless the run was restored from them (or this trainer wrote
     * them: calling train again after a stop continues in-process).
     */
    public Result train(DataSource<B> data) {
        Path out = config.outDir();
        try {
            Files.createDirectories(out);
        } catch (IOException e) {
            throw new Bert4jException(out + ": cannot create the output folder: " + e.getMessage(), e);
        }
        cleanPartials();
        boolean fresh = !restored && lastCheckpoint == null; // neither resumed nor continuing after a stop
        if (fresh && latestCheckpoint(out).isPresent()) {
            throw new Bert4jException(out + " already holds checkpoints (newest " + latestCheckpoint(out).get().getFileName()
                    + "); resume from them or choose an empty output folder");
        }
        if (fresh && step == 0) {
            truncateMetrics(0);
        }
        stopRequested = false;
        CountDownLatch finished = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            requestStop();
            try {
                finished.await(HOOK_WAIT_SECONDS, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "bert4j-trainer-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        try (BufferedWriter metrics = Files.newBufferedWriter(out.resolve(METRICS_FILE), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            return loop(data, metrics);
        } catch (IOException e) {
            throw new Bert4jException(out.resolve(METRICS_FILE) + ": cannot write: " + e.getMessage(), e);
        } finally {
            finished.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // The hook is running and waits on 'finished', released above.
            }
        }
    }

    private Result loop(DataSource<B> data, BufferedWriter metrics) throws IOException {
        long startNanos = System.nanoTime();
        long startStep = step;
        double smoothed = Double.NaN, lastLoss = Double.NaN, tokPerSmoothed = Double.NaN;
        long lastSavedStep = restored ? step : -1;
        int accum = config.accumulation();
        while (step < config.totalSteps() && !stopRequested) {
            long t0 = System.nanoTime();
            long k = stepSeed(config.seed(), step);
            torch.manual_seed(k);
            task.setStepSeed(k);
            double loss = 0;
            long tokens = 0;
            Map<String, Double> batchMetrics = new LinkedHashMap<>();
            for (int micro = 0; micro < accum; micro++) {
                try (PointerScope scope = new PointerScope()) {
                    StepResult r = task.step(data.next());
                    double lv = r.loss().item_double();
                    if (!Double.isFinite(lv)) {
                        throw nonFinite("the loss is " + lv + (accum > 1 ? " (micro-batch " + (micro + 1) + " of " + accum + ")" : ""));
                    }
                    Tensor scaled = accum == 1 ? r.loss() : r.loss().div(new Scalar((double) accum));
                    scaled.backward();
                    loss += lv / accum;
                    tokens += r.tokens();
                    r.metrics().forEach((name, v) -> batchMetrics.merge(name, v / accum, Double::sum));
                }
            }
            double gradNorm = GradClip.clipGlobalNorm(params.values(), config.maxGradNorm());
            if (!Double.isFinite(gradNorm)) {
                throw nonFinite("the gradient norm is " + gradNorm);
            }
            double lr = schedule.lr(step);
            optimizer.step(lr);
            zeroGrads();
            step++;
            tokensSeen += tokens;
            lastLoss = loss;

            double stepSeconds = (System.nanoTime() - t0) / 1e9;
            double elapsed = elapsedBefore + (System.nanoTime() - startNanos) / 1e9;
            double tokPerS = tokens / Math.max(stepSeconds, 1e-9);
            smoothed = Double.isNaN(smoothed) ? loss : 0.9 * smoothed + 0.1 * loss;
            tokPerSmoothed = Double.isNaN(tokPerSmoothed) ? tokPerS : 0.9 * tokPerSmoothed + 0.1 * tokPerS;

            ObjectNode line = JSON.createObjectNode();
            line.put("step", step);
            line.put("loss", loss);
            line.put("lr", lr);
            line.put("grad_norm", gradNorm);
            line.put("tokens", tokens);
            line.put("tokens_per_s", tokPerS);
            line.put("elapsed_s", elapsed);
            batchMetrics.forEach(line::put);
            trainHistory.add(new LossPlot.Point(step, loss));
            boolean newBest = false;
            boolean evalDue = config.evalEvery() > 0 && (step % config.evalEvery() == 0
                    || (config.loadBestAtEnd() && step == config.totalSteps()));
            if (evalDue) {
                Map<String, Double> eval;
                try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                    eval = task.evaluate();
                }
                eval.forEach(line::put);
                Double el = eval.get(EVAL_LOSS);
                if (el != null) {
                    evalHistory.add(new LossPlot.Point(step, el));
                }
                Double m = eval.get(config.bestMetric());
                if (m == null && config.loadBestAtEnd()) {
                    throw new Bert4jException("trainer: the evaluation gives no " + config.bestMetric()
                            + " to pick the best checkpoint by (it gives " + new java.util.TreeSet<>(eval.keySet()) + ")");
                }
                if (m != null && Double.isFinite(m) && (bestMetric == null || better(m, bestMetric))) {
                    bestMetric = m;
                    bestStep = step;
                    newBest = true;
                }
                progressOut.println(String.format(Locale.ROOT, "%sstep %d: eval %s", terminal ? "\n" : "", step, eval));
            }
            metrics.write(JSON.writeValueAsString(line));
            metrics.newLine();
            metrics.flush();

            double rate = (step - startStep) / Math.max((System.nanoTime() - startNanos) / 1e9, 1e-9);
            double eta = (config.totalSteps() - step) / Math.max(rate, 1e-12);
            progress(smoothed, lr, gradNorm, tokPerSmoothed, elapsed, eta);

            boolean due = (config.saveEvery() > 0 && step % config.saveEvery() == 0) || (newBest && config.loadBestAtEnd());
            if (due || stopRequested || step == config.totalSteps()) {
                saveCheckpoint(data.position(), elapsed);
                lastSavedStep = step;
            }
        }
        if (terminal) {
            progressOut.println();
        }
        boolean stopped = step < config.totalSteps();
        if (stopped && lastSavedStep != step) { // stop requested before any step of this run
            saveCheckpoint(data.position(), elapsedBefore + (System.nanoTime() - startNanos) / 1e9);
        }
        if (stopped) {
            writePlot();
            // Said here rather than by the caller: on Ctrl-C the JVM exits as soon as this returns.
            progressOut.println("stopped at step " + step + " of " + config.totalSteps() + "; checkpoint "
                    + (lastCheckpoint == null ? "(none)" : lastCheckpoint) + "; continue with --resume");
            progressOut.flush();
        }
        if (!stopped) {
            if (lastSavedStep != step) { // already complete when restored
                saveCheckpoint(data.position(), elapsedBefore + (System.nanoTime() - startNanos) / 1e9);
            }
            if (config.loadBestAtEnd()) {
                loadBest();
            }
            writeFinalModel();
            AtomicFiles.writeString(out().resolve(STATE_FILE), stateJson(null, elapsedBefore + (System.nanoTime() - startNanos) / 1e9));
            writePlot();
        }
        return new Result(step, stopped, lastLoss, lastCheckpoint, bestStep, bestMetric);
    }

    private boolean better(double candidate, double best) {
        return config.greaterIsBetter() ? candidate > best : candidate < best;
    }

    private Path out() {
        return config.outDir();
    }

    /** The best checkpoint's folder, if one was recorded and is still complete on disk. */
    public Optional<Path> bestCheckpoint() {
        if (bestStep < 0) {
            return Optional.empty();
        }
        Path dir = out().resolve(CHECKPOINT_PREFIX + bestStep);
        return readState(dir).isPresent() ? Optional.of(dir) : Optional.empty();
    }

    /** Puts the best checkpoint's parameters back into the task (unless they are the current ones). */
    private void loadBest() {
        if (bestStep < 0 || bestStep == step) {
            return;
        }
        Optional<Path> best = bestCheckpoint();
        if (best.isEmpty()) {
            progressOut.println("bert4j: warning: the best checkpoint (step " + bestStep + ") is gone; the final model is the last step's");
            return;
        }
        task.loadModel(best.get());
        progressOut.println(String.format(Locale.ROOT, "bert4j: the final model is the best checkpoint, %s (%s = %.6g)",
                best.get().getFileName(), config.bestMetric(), bestMetric));
    }

    private Bert4jException nonFinite(String what) {
        zeroGrads();
        String where = lastCheckpoint != null
                ? "the last good checkpoint is " + lastCheckpoint.getFileName() + " (" + lastCheckpoint + ")"
                : "no checkpoint has been written yet";
        return new Bert4jException("training stopped at step " + (step + 1) + ": " + what
                + "; the update was not applied and no checkpoint was written; " + where);
    }

    private void zeroGrads() {
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (Tensor p : params.values()) {
                Tensor g = p.grad();
                if (g.defined()) {
                    g.zero_();
                }
            }
        }
    }

    private void progress(double loss, double lr, double gradNorm, double tokPerS, double elapsed, double eta) {
        long total = config.totalSteps();
        if (terminal) {
            int width = 24;
            int filled = (int) (width * step / total);
            String bar = "=".repeat(filled) + (filled < width ? ">" : "") + " ".repeat(Math.max(0, width - filled - 1));
            progressOut.print(String.format(Locale.ROOT, "\rstep %d/%d [%s] loss %.4f | %s tok/s | %s elapsed | ETA %s   ",
                    step, total, bar, loss, human(tokPerS), clock(elapsed), clock(eta)));
            progressOut.flush();
        } else if (config.logEvery() > 0 && (step % config.logEvery() == 0 || step == total)) {
            progressOut.println(String.format(Locale.ROOT,
                    "step %d/%d loss %.4f lr %.3g grad_norm %.3g %s tok/s elapsed %s ETA %s",
                    step, total, loss, lr, gradNorm, human(tokPerS), clock(elapsed), clock(eta)));
        }
    }

    private static String human(double v) {
        if (v >= 1e6) {
            return String.format(Locale.ROOT, "%.2fM", v / 1e6);
        }
        if (v >= 1e3) {
            return String.format(Locale.ROOT, "%.1fk", v / 1e3);
        }
        return String.format(Locale.ROOT, "%.0f", v);
    }

    private static String clock(double seconds) {
        if (!Double.isFinite(seconds)) {
            return "?";
        }
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
    }

    // ------------------------------------------------------------------ files

    /**
     * Builds checkpoint-{step} in a hidden temporary folder (model, optimizer, then
     * trainer_state.json last) and renames it into place; then deletes checkpoints beyond
     * keepLast. A failure leaves earlier checkpoints untouched.
     */
    private void saveCheckpoint(String dataPosition, double elapsed) {
        Path out = config.outDir();
        Path target = out.resolve(CHECKPOINT_PREFIX + step);
        Path tmp;
        try {
            tmp = Files.createTempDirectory(out, "." + target.getFileName() + ".partial-");
            openUp(tmp);
        } catch (IOException e) {
            throw new Bert4jException(out + ": cannot create a checkpoint folder: " + e.getMessage(), e);
        }
        try {
            task.saveModel(tmp);
            optimizer.save(tmp.resolve(OPTIMIZER_FILE));
            AtomicFiles.writeString(tmp.resolve(STATE_FILE), stateJson(dataPosition, elapsed));
            if (Files.exists(target)) { // a stale folder of that name, e.g. incomplete: swap it out
                Path old = Files.createTempDirectory(out, "." + target.getFileName() + ".old-");
                Files.delete(old);
                Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
                ModelFolder.deleteRecursivelyQuietly(old);
            } else {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            }
            fsyncDirectory(out);
        } catch (IOException e) {
            throw new Bert4jException(target + ": cannot write the checkpoint: " + e.getMessage(), e);
        } finally {
            ModelFolder.deleteRecursivelyQuietly(tmp);
        }
        lastCheckpoint = target;
        List<Path> all = checkpoints(out);
        Path best = config.loadBestAtEnd() && bestStep >= 0 ? out.resolve(CHECKPOINT_PREFIX + bestStep) : null;
        for (int i = 0; i < all.size() - config.keepLast(); i++) {
            if (!all.get(i).equals(target) && !all.get(i).equals(best)) {
                ModelFolder.deleteRecursivelyQuietly(all.get(i));
            }
        }
        writePlot();
    }

    private String stateJson(String dataPosition, double elapsed) throws IOException {
        ObjectNode n = JSON.createObjectNode();
        n.put("format", "bert4j-trainer-state");
        n.put("version", 1);
        n.put("step", step);
        n.put("total_steps", config.totalSteps());
        n.put("warmup_steps", config.warmupSteps());
        n.put("next_lr", schedule.lr(step)); // the schedule is a function of step; stored for reading only
        n.put("data_position", dataPosition);
        n.put("seed", config.seed());
        n.put("rng", "before optimizer step s: torch.manual_seed(k) and task.setStepSeed(k), k = Trainer.stepSeed(seed, s); no generator state is stored");
        n.put("tokens_seen", tokensSeen);
        n.put("elapsed_s", elapsed);
        if (bestMetric != null) {
            ObjectNode b = n.putObject("best_metric");
            b.put("name", config.bestMetric());
            b.put("value", bestMetric);
            b.put("step", bestStep);
            b.put("greater_is_better", config.greaterIsBetter());
            // Named only when it is sure to exist: written at every new best, or this very checkpoint.
            if (config.loadBestAtEnd() || bestStep == step || Files.isDirectory(config.outDir().resolve(CHECKPOINT_PREFIX + bestStep))) {
                b.put("checkpoint", CHECKPOINT_PREFIX + bestStep);
            } else {
                b.putNull("checkpoint");
            }
        } else {
            n.putNull("best_metric");
        }
        n.put("config_hash", config.trajectoryHash());
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(n) + "\n";
    }

    /** Writes the final model's files into the output folder, each file moved into place whole. */
    private void writeFinalModel() {
        Path out = config.outDir();
        Path tmp;
        try {
            tmp = Files.createTempDirectory(out, ".final.partial-");
        } catch (IOException e) {
            throw new Bert4jException(out + ": cannot write the final model: " + e.getMessage(), e);
        }
        try {
            task.saveModel(tmp);
            try (Stream<Path> s = Files.list(tmp)) {
                for (Path p : (Iterable<Path>) s::iterator) {
                    Path dst = out.resolve(p.getFileName().toString());
                    if (Files.isDirectory(dst) && !Files.isSymbolicLink(dst)) {
                        ModelFolder.deleteRecursivelyQuietly(dst);
                    }
                    Files.move(p, dst, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                }
            }
            fsyncDirectory(out);
        } catch (IOException e) {
            throw new Bert4jException(out + ": cannot write the final model: " + e.getMessage(), e);
        } finally {
            ModelFolder.deleteRecursivelyQuietly(tmp);
        }
    }

    /** The plot is a convenience: failing to draw it warns but never fails a checkpoint or the run. */
    private void writePlot() {
        try {
            LossPlot.write(config.outDir().resolve(PLOT_FILE), trainHistory, evalHistory);
        } catch (RuntimeException | Error e) {
            progressOut.println("bert4j: warning: cannot write " + PLOT_FILE + ": " + e);
        }
    }

    /** Deletes hidden temporary folders left by a checkpoint or final-model write that never finished. */
    private void cleanPartials() {
        Path out = config.outDir();
        if (!Files.isDirectory(out)) {
            return;
        }
        try (Stream<Path> s = Files.list(out)) {
            s.filter(p -> {
                String n = p.getFileName().toString();
                return (n.startsWith("." + CHECKPOINT_PREFIX) && (n.contains(".partial-") || n.contains(".old-")))
                        || n.startsWith(".final.partial-");
            }).forEach(ModelFolder::deleteRecursivelyQuietly);
        } catch (IOException e) {
            throw new Bert4jException(out + ": cannot list: " + e.getMessage(), e);
        }
    }

    /** Keeps metrics.jsonl lines up to {@code upTo} (those a resumed run will not repeat) and reloads the plot history. */
    private void truncateMetrics(long upTo) {
        trainHistory.clear();
        evalHistory.clear();
        Path f = config.outDir().resolve(METRICS_FILE);
        if (!Files.isRegularFile(f)) {
            return;
        }
        StringBuilder kept = new StringBuilder();
        try {
            for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode n;
                try {
                    n = JSON.readTree(line);
                } catch (IOException torn) {
                    continue; // a line cut short by a crash
                }
                long s = n.path("step").asLong(-1);
                if (s < 1 || s > upTo) {
                    continue;
                }
                kept.append(line).append('\n');
                trainHistory.add(new LossPlot.Point(s, n.path("loss").asDouble(Double.NaN)));
                if (n.path(EVAL_LOSS).isNumber()) {
                    evalHistory.add(new LossPlot.Point(s, n.path(EVAL_LOSS).asDouble()));
                }
            }
        } catch (IOException e) {
            throw new Bert4jException(f + ": cannot read: " + e.getMessage(), e);
        }
        AtomicFiles.writeString(f, kept.toString());
    }

    /** Temporary folders are created owner-only; a checkpoint should read like any other folder. */
    private static void openUp(Path dir) {
        try {
            Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        } catch (IOException | UnsupportedOperationException ignored) {
            // Not a POSIX file system: keep the defaults.
        }
    }

    private static void fsyncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // Not supported on every system; the files themselves were forced.
        }
    }

    /** Frees the optimizer state; the task stays open (the caller owns it). */
    @Override
    public void close() {
        optimizer.close();
    }
}
