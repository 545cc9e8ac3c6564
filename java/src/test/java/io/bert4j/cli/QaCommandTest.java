package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.config.BertConfig;
import io.bert4j.data.Squad;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.pipeline.QuestionAnswerer;
import io.bert4j.pretrain.data.WordPieceTrainer;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code bert4j finetune qa}, {@code eval qa} and {@code qa} end to end on a tiny random BERT
 * (a WordPiece vocabulary learnt from the SQuAD slice) and real SQuAD questions: a file cut
 * from the first three articles (two paragraphs with four questions or more, four questions each), training with the last
 * article held out, best-by-F1 checkpoint, eval reproducing it, the command against the Java
 * API, exact resume, and bad input.
 */
class QaCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path base;        // a random BertForPreTraining folder with the learnt vocabulary
    static Path squadFile;   // articles 0-2, 2 paragraphs x 4 questions each
    static Path heldOutFile; // article 2 alone (what --validation-split 1 holds out)
    static ObjectNode squad;

    record Run(int code, String out, String err) {
    }

    static Run cli(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    @BeforeAll
    static void setUp() throws IOException {
        Path data = TestModels.sharedData();
        assertNotNull(data, "the shared data folder is needed");
        JsonNode full = JSON.readTree(data.resolve("squad_v1.1/squad-v1.1-dev-articles-00-35.json").toFile());
        squad = JSON.createObjectNode();
        squad.put("version", "1.1");
        ArrayNode articles = squad.putArray("data");
        WordPieceTrainer wp = new WordPieceTrainer(1200, true, 1);
        for (int a = 0; a < 3; a++) {
            JsonNode article = full.get("data").get(a);
            ObjectNode cut = articles.addObject();
            cut.put("title", article.get("title").asText());
            ArrayNode paragraphs = cut.putArray("paragraphs");
            for (int p = 0, taken = 0; taken < 2; p++) {
                JsonNode para = article.get("paragraphs").get(p);
                if (para.get("qas").size() < 4) {
                    continue;
                }
                taken++;
                ObjectNode cp = paragraphs.addObject();
                cp.put("context", para.get("context").asText());
                wp.addText(para.get("context").asText());
                ArrayNode qas = cp.putArray("qas");
                for (int q = 0; q < 4; q++) {
                    qas.add(para.get("qas").get(q));
                    wp.addText(para.get("qas").get(q).get("question").asText());
                }
            }
        }
        squadFile = tmp.resolve("squad-small.json");
        JSON.writeValue(squadFile.toFile(), squad);
        ObjectNode held = squad.deepCopy();
        ArrayNode heldArticles = held.putArray("data");
        heldArticles.add(squad.get("data").get(2));
        heldOutFile = tmp.resolve("squad-held-out.json");
        JSON.writeValue(heldOutFile.toFile(), held);

        Path vocab = tmp.resolve("vocab");
        WordPieceTrainer.writeTokenizerFolder(vocab, wp.train(), true);
        base = tmp.resolve("base");
        try (BertTokenizer tok = BertTokenizer.load(vocab);
             BertForPreTraining m = BertForPreTraining.random(BertConfig.of(tok.vocabSize(), 32, 2, 2, 64, 128), 3)) {
            m.save(base, tok);
        }
    }

    static List<JsonNode> metrics(Path out) throws IOException {
        List<JsonNode> l = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve(Trainer.METRICS_FILE))) {
            l.add(JSON.readTree(line));
        }
        return l;
    }

    static Map<String, HostTensor> weights(Path dir) {
        return SafeTensors.read(dir.resolve("model.safetensors"));
    }

    static void assertSameWeights(Map<String, HostTensor> a, Map<String, HostTensor> b, String what) {
        assertEquals(a.keySet(), b.keySet(), what);
        a.forEach((k, v) -> assertArrayEquals(v.toFloatArray(), b.get(k).toFloatArray(), 0f, what + ": " + k));
    }

    static final String[] WINDOWS = {"--max-length", "64", "--doc-stride", "16"};

    static String[] finetune(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("finetune", "qa", "--model", base.toString(), "--train",
                squadFile.toString(), "--out", out.toString(), "--lr", "5e-3", "--warmup", "0", "--log-every", "1000"));
        a.addAll(List.of(WINDOWS));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void finetuneEvalAndAnswerEndToEnd() throws IOException {
        Path out = tmp.resolve("e2e");
        Run r = cli(finetune(out, "--validation-split", "1", "--epochs", "3", "--batch-size", "16"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("holding out articles [2] (8 questions)"), r.err());
        JsonNode summary = JSON.readTree(r.out());

        JsonNode cfg = JSON.readTree(out.resolve("config.json").toFile());
        assertEquals("BertForQuestionAnswering", cfg.get("architectures").get(0).asText());
        assertTrue(weights(out).containsKey("qa_outputs.weight"));
        assertFalse(weights(out).containsKey("bert.pooler.dense.weight"), "HF's QA model has no pooler");

        // Evaluated once per epoch with EM and F1; the training loss fell.
        List<JsonNode> m = metrics(out);
        long steps = summary.get("step").asLong();
        assertEquals(steps, m.size());
        assertEquals(0, steps % 3, "3 epochs of whole steps");
        List<JsonNode> evals = m.stream().filter(n -> n.has("eval_f1")).toList();
        assertEquals(3, evals.size());
        for (JsonNode e : evals) {
            assertEquals(8, e.get("eval_examples").asInt());
            double em = e.get("eval_exact_match").asDouble();
            double f1 = e.get("eval_f1").asDouble();
            assertTrue(em >= 0 && em <= f1 + 1e-9 && f1 <= 100, e.toString());
        }
        double first = m.subList(0, 3).stream().mapToDouble(n -> n.get("loss").asDouble()).average().orElseThrow();
        double last = m.subList(m.size() - 3, m.size()).stream().mapToDouble(n -> n.get("loss").asDouble()).average()
                .orElseThrow();
        assertTrue(last < first - 0.3, "training loss should fall: first 3 steps " + first + ", last 3 " + last);

        // The best F1's checkpoint is the final model.
        JsonNode bestEval = evals.stream().reduce((a, b) -> b.get("eval_f1").asDouble() > a.get("eval_f1").asDouble() ? b : a)
                .orElseThrow();
        long bestStep = bestEval.get("step").asLong();
        assertEquals(bestStep, summary.get("best_step").asLong());
        assertSameWeights(weights(out.resolve("checkpoint-" + bestStep)), weights(out), "final model = best checkpoint");

        // eval qa on the held-out article with the same windows reproduces the best evaluation.
        Run ev = cli(concat(new String[] {"eval", "qa", "--model", out.toString(), "--data", heldOutFile.toString()},
                WINDOWS));
        assertEquals(0, ev.code(), ev.err());
        JsonNode em = JSON.readTree(ev.out());
        assertEquals(8, em.get("examples").asInt());
        assertEquals(1, em.get("articles").asInt());
        assertEquals(bestEval.get("eval_exact_match").asDouble(), em.get("exact_match").asDouble(), 1e-9);
        assertEquals(bestEval.get("eval_f1").asDouble(), em.get("f1").asDouble(), 1e-9);

        // qa: JSON lines in and out, equal to the Java API, offsets into the context.
        List<Squad.Example> held = Squad.read(heldOutFile).examples();
        StringBuilder in = new StringBuilder();
        for (Squad.Example e : held.subList(0, 3)) {
            ObjectNode o = JSON.createObjectNode();
            o.put("question", e.question());
            o.put("context", e.context());
            in.append(o).append("\n\n");   // blank lines are skipped
        }
        Path input = tmp.resolve("questions.jsonl");
        Files.writeString(input, in.toString());
        Run q = cli(concat(new String[] {"qa", "--model", out.toString(), "--input", input.toString()}, WINDOWS));
        assertEquals(0, q.code(), q.err());
        String[] lines = q.out().strip().split("\n");
        assertEquals(3, lines.length);
        QuestionAnswerer.Options opt = QuestionAnswerer.Options.DEFAULTS.withMaxLength(64).withDocStride(16);
        try (QuestionAnswerer qa = QuestionAnswerer.load(out, io.bert4j.kernels.KernelMode.FUSED, opt)) {
            for (int i = 0; i < 3; i++) {
                JsonNode n = JSON.readTree(lines[i]);
                Squad.Example e = held.get(i);
                QuestionAnswerer.Answer a = qa.answer(e.question(), e.context());
                assertEquals(a.answer(), n.get("answer").asText());
                assertEquals(a.start(), n.get("start").asInt());
                assertEquals(a.end(), n.get("end").asInt());
                assertEquals(a.score(), n.get("score").asDouble(), 1e-6, "alone vs in a padded batch");
                assertEquals(e.context().substring(a.start(), a.end()), a.answer());
                assertTrue(a.score() > 0 && a.score() <= 1, lines[i]);
            }
        }
    }

    @Test
    void resumeContinuesExactly(@TempDir Path dir) throws IOException {
        String[] opts = {"--batch-size", "4", "--max-steps", "4", "--save-every", "2", "--keep", "5"};
        Path straight = dir.resolve("straight");
        Run a = cli(concat(finetune(straight), opts));
        assertEquals(0, a.code(), a.err());
        Path cut = dir.resolve("cut");
        Run b = cli(concat(finetune(cut), opts));
        assertEquals(0, b.code(), b.err());
        // As if the run died after checkpoint-2.
        io.bert4j.io.ModelFolder.deleteRecursivelyQuietly(cut.resolve("checkpoint-4"));
        Files.delete(cut.resolve("model.safetensors"));
        Run again = cli(concat(finetune(cut), opts));
        assertEquals(1, again.code(), "checkpoints there and no --resume");
        assertTrue(again.err().contains("--resume"), again.err());
        Run resumed = cli(concat(finetune(cut), concat(opts, "--resume")));
        assertEquals(0, resumed.code(), resumed.err());
        assertTrue(resumed.err().contains("resuming from"), resumed.err());
        double[] la = metrics(straight).stream().mapToDouble(n -> n.get("loss").asDouble()).toArray();
        double[] lb = metrics(cut).stream().mapToDouble(n -> n.get("loss").asDouble()).toArray();
        assertEquals(4, la.length);
        assertArrayEquals(la, lb, 1e-6);
        assertSameWeights(weights(straight), weights(cut), "resumed = uninterrupted");
    }

    @Test
    void badInputIsAClearError(@TempDir Path dir) throws IOException {
        // An answer whose answer_start does not point at its text.
        ObjectNode bad = squad.deepCopy();
        ObjectNode qa0 = (ObjectNode) bad.get("data").get(0).get("paragraphs").get(0).get("qas").get(0);
        ((ObjectNode) qa0.get("answers").get(0)).put("answer_start", 3);
        Path badOffset = dir.resolve("bad-offset.json");
        JSON.writeValue(badOffset.toFile(), bad);
        Run r = cli(finetune(dir.resolve("a"), "--max-steps", "1", "--eval", badOffset.toString()));
        assertEquals(1, r.code());
        assertTrue(r.err().contains("do not match") && r.err().contains(qa0.get("id").asText()), r.err());
        assertFalse(r.err().contains("Exception"), r.err());

        // A question without answers in a training file.
        ObjectNode noAnswer = squad.deepCopy();
        ObjectNode qa1 = (ObjectNode) noAnswer.get("data").get(1).get("paragraphs").get(0).get("qas").get(1);
        qa1.putArray("answers");
        Path noAnswerFile = dir.resolve("no-answer.json");
        JSON.writeValue(noAnswerFile.toFile(), noAnswer);
        r = cli("finetune", "qa", "--model", base.toString(), "--train", noAnswerFile.toString(), "--out",
                dir.resolve("b").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains(qa1.get("id").asText()) && r.err().contains("no answer"), r.err());

        r = cli(finetune(dir.resolve("c"), "--validation-split", "3"));
        assertEquals(1, r.code());
        assertTrue(r.err().contains("nothing is left to train on"), r.err());
        r = cli(finetune(dir.resolve("d"), "--validation-split", "1", "--eval", squadFile.toString()));
        assertEquals(1, r.code());
        // A doc stride that leaves no room in a window.
        r = cli("finetune", "qa", "--model", base.toString(), "--train", squadFile.toString(), "--out",
                dir.resolve("e").toString(), "--max-steps", "1", "--max-length", "64", "--doc-stride", "60");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("doc stride 60"), r.err());

        // qa: malformed lines are named by line number; a too-long question too.
        Path lines = dir.resolve("in.jsonl");
        Files.writeString(lines, "{\"question\": \"who?\", \"context\": \"Ada did.\"}\n{\"question\": \"who?\"\n");
        r = cli("qa", "--model", base.toString(), "--input", lines.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains(lines + ":2") && r.err().contains("JSON"), r.err());
        Files.writeString(lines, "{\"question\": \"who?\", \"context\": \"Ada did.\"}\n\n{\"question\": \"who?\", \"context\": 5}\n");
        r = cli("qa", "--model", base.toString(), "--input", lines.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains(lines + ":3") && r.err().contains("\"context\""), r.err());
        Files.writeString(lines, "[1, 2]\n");
        r = cli("qa", "--model", base.toString(), "--input", lines.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains(lines + ":1"), r.err());

        // base is not a QA folder (no qa_outputs): a clear error, not random answers.
        Files.writeString(lines, "{\"question\": \"who?\", \"context\": \"Ada did.\"}\n");
        r = cli("qa", "--model", base.toString(), "--input", lines.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("bert4j: error:") && r.err().contains("qa_outputs"), r.err());
        r = cli("eval", "qa", "--model", base.toString(), "--data", squadFile.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("bert4j: error:"), r.err());

        // A QA folder, and a question longer than the window allows.
        Path qaDir = dir.resolve("qa-model");
        r = cli(finetune(qaDir, "--max-steps", "1", "--batch-size", "4"));
        assertEquals(0, r.code(), r.err());
        Files.writeString(lines, "{\"question\": \"who?\", \"context\": \"Ada did.\"}\n{\"question\": \""
                + "why ".repeat(80) + "\", \"context\": \"Ada did.\"}\n");
        r = cli(concat(new String[] {"qa", "--model", qaDir.toString(), "--input", lines.toString()}, WINDOWS));
        assertEquals(1, r.code());
        assertTrue(r.err().contains(lines + ":2") && r.err().contains("the question has"), r.err());
        assertEquals("", r.out(), "nothing answered before the error");
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(1, s.filter(p -> Files.exists(p.resolve("model.safetensors"))).count(), "only qa-model trained");
        }
    }

    static String[] concat(String[] a, String... b) {
        String[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
