package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real default model (MiniLM-L6) fine-tuned for a few steps on 192 SST-2 rows: the held-out
 * loss falls clearly below ln 2, the loss of the freshly initialised head (logits near 0).
 */
class ClassifyMiniLmTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void aFewStepsOnSst2LowerTheLoss(@TempDir Path tmp) throws Exception {
        Path data = TestModels.sharedData();
        assertNotNull(data, "the shared data folder is needed");
        List<String> lines = Files.readAllLines(data.resolve("sst2/train.tsv"), StandardCharsets.UTF_8);
        Path train = tmp.resolve("train.tsv"), eval = tmp.resolve("eval.tsv");
        List<String> t = new ArrayList<>(List.of(lines.get(0)));
        t.addAll(lines.subList(1, 193));
        List<String> e = new ArrayList<>(List.of(lines.get(0)));
        e.addAll(lines.subList(5001, 5065));
        Files.write(train, t, StandardCharsets.UTF_8);
        Files.write(eval, e, StandardCharsets.UTF_8);
        Path out = tmp.resolve("out");
        ClassifyCommandTest.Run r = ClassifyCommandTest.cli("finetune", "classify", "--model", TestModels.defaultModelDir().toString(),
                "--train", train.toString(), "--eval", eval.toString(), "--out", out.toString(), "--max-steps", "10",
                "--eval-every", "10", "--batch-size", "16", "--lr", "3e-4", "--max-length", "64", "--log-every", "4");
        assertEquals(0, r.code(), r.err());
        JsonNode last = null;
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"))) {
            last = JSON.readTree(line);
        }
        assertNotNull(last);
        double loss = last.get("eval_loss").asDouble();
        assertTrue(loss < Math.log(2) - 0.03, "held-out loss after 10 steps: " + loss + " (ln 2 = 0.693); " + last);
        assertTrue(last.get("eval_accuracy").asDouble() > 0.65, last.toString());
    }
}
