package io.bert4j.cli;

import io.bert4j.Bert4jException;
import io.bert4j.train.Trainer;
import io.bert4j.train.TrainerConfig;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shared finetune options: defaults, epochs to steps, the trainer settings they make, validation. */
class TrainingOptionsTest {

    @CommandLine.Command(name = "probe")
    static final class Probe implements Runnable {
        @CommandLine.Mixin
        TrainingOptions training;

        @Override
        public void run() {
        }
    }

    static TrainingOptions parse(String... args) {
        Probe p = new Probe();
        new CommandLine(p).parseArgs(args);
        return p.training;
    }

    @Test
    void defaults() {
        TrainingOptions o = parse();
        assertEquals(3.0, o.epochs);
        assertEquals(5e-5, o.lr);
        assertEquals(32, o.batchSize);
        assertEquals(128, o.maxLength(512));
        assertEquals(64, o.maxLength(64), "the default shrinks to a small model");
        assertEquals(1, o.accumulate);
        assertEquals("fused", o.kernels);
        assertFalse(o.resume);
        o.validate();
    }

    @Test
    void epochsToStepsAndTrainerSettings() {
        TrainingOptions o = parse("--batch-size", "10", "--epochs", "2", "--accumulate", "2", "--warmup", "0.25");
        assertEquals(5, o.stepsPerEpoch(95), "ceil(ceil(95/10) / 2)");
        assertEquals(10, o.totalSteps(95));
        TrainerConfig c = o.trainerConfig(Path.of("out"), 95, true, "eval_accuracy", true);
        assertEquals(10, c.totalSteps());
        assertEquals(3, c.warmupSteps(), "ceil(0.25 * 10)");
        assertEquals(5, c.evalEvery(), "each epoch");
        assertEquals(5, c.saveEvery(), "each epoch");
        assertEquals(2, c.accumulation());
        assertEquals("eval_accuracy", c.bestMetric());
        assertTrue(c.greaterIsBetter() && c.loadBestAtEnd());
        TrainerConfig noEval = o.trainerConfig(Path.of("out"), 95, false, "eval_accuracy", true);
        assertEquals(0, noEval.evalEvery());
        assertFalse(noEval.loadBestAtEnd());
        assertEquals(Trainer.EVAL_LOSS, noEval.bestMetric());

        TrainingOptions s = parse("--max-steps", "7", "--eval-every", "3", "--save-every", "2", "--epochs", "9");
        assertEquals(7, s.totalSteps(1000), "--max-steps wins over --epochs");
        TrainerConfig sc = s.trainerConfig(Path.of("out"), 1000, true, "eval_f1", true);
        assertEquals(3, sc.evalEvery());
        assertEquals(2, sc.saveEvery());
        assertEquals(2, parse("--epochs", "0.5", "--batch-size", "8").totalSteps(30), "fractional epochs round up");
    }

    @Test
    void badValuesAreClearErrors() {
        for (String[] bad : new String[][] {{"--epochs", "0"}, {"--lr", "-1"}, {"--batch-size", "0"}, {"--max-steps", "0"},
                {"--warmup", "1.5"}, {"--keep", "0"}, {"--eval-every", "-2"}, {"--max-length", "4"}, {"--kernels", "gpu"}}) {
            Bert4jException e = assertThrows(Bert4jException.class, () -> parse(bad).validate(), String.join(" ", bad));
            assertFalse(e.getMessage().isBlank());
        }
        Bert4jException e = assertThrows(Bert4jException.class, () -> parse("--max-length", "600").maxLength(512));
        assertTrue(e.getMessage().contains("600") && e.getMessage().contains("512"), e.getMessage());
    }

    @Test
    void parentCommandsNeedATask() {
        for (String parent : new String[] {"finetune", "eval"}) {
            StringWriter err = new StringWriter();
            int code = Main.run(new String[] {parent}, new PrintWriter(new StringWriter(), true), new PrintWriter(err, true));
            assertEquals(2, code, parent);
            assertTrue(err.toString().contains("classify"), "usage lists the tasks: " + err);
        }
    }
}
