package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.config.BertConfig;
import io.bert4j.data.Conll;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.pipeline.TokenClassifier;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code bert4j finetune ner}, {@code bert4j eval ner} and {@code bert4j ner} end to end on a slice
 * of CoNLL-2003 train.txt (about 64 sentences to train, the next 32 blank-line blocks to evaluate) with a tiny random BERT
 * (hidden 32, 2 layers) over a 400-token WordPiece vocabulary learnt from the slice.
 */
class NerFinetuneCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static Path base;
    static Path trainFile;
    static Path evalFile;

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
        List<String> lines = Files.readAllLines(data.resolve("conll2003/train.txt"), StandardCharsets.UTF_8);
        // Sentences are blank-line separated; cut after the 64th and the 96th (the -DOCSTART- header stays in the first).
        int blanks = 0;
        int cut1 = -1;
        int cut2 = -1;
        for (int i = 2; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) {
                blanks++;
                if (blanks == 64) {
                    cut1 = i + 1;
                } else if (blanks == 96) {
                    cut2 = i + 1;
                    break;
                }
            }
        }
        trainFile = tmp.resolve("train.txt");
        evalFile = tmp.resolve("eval.txt");
        Files.write(trainFile, lines.subList(0, cut1), StandardCharsets.UTF_8);
        Files.write(evalFile, lines.subList(cut1, cut2), StandardCharsets.UTF_8);
        WordPieceTrainer wp = new WordPieceTrainer(400, true, 2);
        for (String l : lines.subList(0, cut2)) {
            if (!l.isBlank() && !l.startsWith("-DOCSTART-")) {
                wp.addText(l.substring(0, l.indexOf(' ')));
            }
        }
        Path vocab = tmp.resolve("vocab");
        WordPieceTrainer.writeTokenizerFolder(vocab, wp.train(), true);
        base = tmp.resolve("base");
        try (BertTokenizer tok = BertTokenizer.load(vocab);
             BertForPreTraining m = BertForPreTraining.random(BertConfig.of(tok.vocabSize(), 32, 2, 2, 64, 64), 3)) {
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

    static String[] finetune(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("finetune", "ner", "--model", base.toString(), "--train", trainFile.toString(),
                "--out", out.toString(), "--lr", "5e-3", "--max-length", "48", "--warmup", "0", "--log-every", "1000"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    static String[] concat(String[] a, String... b) {
        String[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    @Test
    void finetuneEvalAndNerEndToEnd() throws IOException {
        Path out = tmp.resolve("e2e");
        Run r = cli(finetune(out, "--eval", evalFile.toString(), "--epochs", "6", "--batch-size", "16"));
        assertEquals(0, r.code(), r.err());
        JsonNode summary = JSON.readTree(r.out());
        int trainSentences = Conll.read(trainFile).sentences().size();
        assertTrue(trainSentences > 48 && trainSentences <= 64, "sentences: " + trainSentences);
        assertEquals(24, summary.get("step").asLong(), "6 epochs of 4 steps of 16");

        // HF folder; labels: O, then B-/I- of the training slice's types, sorted.
        JsonNode cfg = JSON.readTree(out.resolve("config.json").toFile());
        assertEquals("BertForTokenClassification", cfg.get("architectures").get(0).asText());
        List<String> want = Conll.read(trainFile).labels();
        assertEquals(List.of("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"), want);
        for (int i = 0; i < want.size(); i++) {
            assertEquals(want.get(i), cfg.get("id2label").get(Integer.toString(i)).asText());
            assertEquals(i, cfg.get("label2id").get(want.get(i)).asInt());
        }

        // Evaluated each epoch with both counts; the training loss fell.
        List<JsonNode> m = metrics(out);
        List<JsonNode> evals = m.stream().filter(n -> n.has("eval_strict_f1")).toList();
        assertEquals(List.of(4L, 8L, 12L, 16L, 20L, 24L), evals.stream().map(n -> n.get("step").asLong()).toList());
        for (JsonNode e : evals) {
            for (String k : List.of("eval_loss", "eval_accuracy", "eval_precision", "eval_recall", "eval_f1",
                    "eval_strict_precision", "eval_strict_recall")) {
                assertTrue(e.has(k), k + " in " + e);
            }
        }
        double first = m.subList(0, 4).stream().mapToDouble(n -> n.get("loss").asDouble()).average().orElseThrow();
        double last = m.subList(20, 24).stream().mapToDouble(n -> n.get("loss").asDouble()).average().orElseThrow();
        assertTrue(last < first - 0.3, "training loss should fall: first 4 steps " + first + ", last 4 " + last);

        // Best checkpoint by strict F1 is the final model (ties: the earliest, as the trainer keeps it).
        JsonNode bestEval = evals.stream().reduce((a, b) -> b.get("eval_strict_f1").asDouble() > a.get("eval_strict_f1").asDouble() ? b : a)
                .orElseThrow();
        long bestStep = bestEval.get("step").asLong();
        assertEquals(bestStep, summary.get("best_step").asLong());
        assertSameWeights(weights(out.resolve("checkpoint-" + bestStep)), weights(out), "final model = best checkpoint");

        // eval ner reproduces the best evaluation.
        Run ev = cli("eval", "ner", "--model", out.toString(), "--data", evalFile.toString(), "--max-length", "48");
        assertEquals(0, ev.code(), ev.err());
        JsonNode em = JSON.readTree(ev.out());
        assertEquals(Conll.read(evalFile).sentences().size(), em.get("sentences").asInt());
        for (String k : List.of("loss", "accuracy", "precision", "recall", "f1", "strict_precision", "strict_recall", "strict_f1")) {
            assertEquals(bestEval.get("eval_" + k).asDouble(), em.get(k).asDouble(), 1e-5, k);
        }
        assertTrue(em.has("PER_f1") && em.has("LOC_support"), em.toString());

        // ner on the fine-tuned folder: the Java API's entities.
        String text = "Peter Blackburn said the European Commission in Brussels rejects German calls .";
        Run n = cli("ner", "--model", out.toString(), "--aggregation", "first", text);
        assertEquals(0, n.code(), n.err());
        JsonNode line = JSON.readTree(n.out());
        assertEquals(text, line.get("text").asText());
        try (TokenClassifier tc = TokenClassifier.load(out, KernelMode.FUSED)) {
            List<TokenClassifier.Entity> api = tc.predict(text, TokenClassifier.Aggregation.FIRST);
            assertEquals(api.size(), line.get("entities").size());
            for (int i = 0; i < api.size(); i++) {
                assertEquals(api.get(i).label(), line.get("entities").get(i).get("label").asText());
                assertEquals(api.get(i).start(), line.get("entities").get(i).get("start").asInt());
                assertEquals(api.get(i).end(), line.get("entities").get(i).get("end").asInt());
            }
        }
    }

    @Test
    void resumeContinuesExactly(@TempDir Path dir) throws IOException {
        // About 60 sentences in batches of 24: 3 steps an epoch, so 4 steps cross into the second epoch.
        String[] opts = {"--batch-size", "24", "--max-steps", "4", "--save-every", "2", "--keep", "5"};
        Path straight = dir.resolve("straight");
        Run a = cli(concat(finetune(straight), opts));
        assertEquals(0, a.code(), a.err());
        Path cut = dir.resolve("cut");
        Run b = cli(concat(finetune(cut), opts));
        assertEquals(0, b.code(), b.err());
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
    void iob1InputGivesTheSameLabels(@TempDir Path dir) throws IOException {
        // The slice rewritten in IOB1 (an entity starts with I- unless it follows one of its type).
        List<String> iob1 = new ArrayList<>();
        String prevType = null;
        for (String l : Files.readAllLines(trainFile)) {
            if (l.isBlank() || l.startsWith("-DOCSTART-")) {
                iob1.add(l);
                prevType = null;
                continue;
            }
            String[] c = l.split(" ");
            String tag = c[3];
            String type = tag.equals("O") ? null : tag.substring(2);
            if (tag.startsWith("B-") && !type.equals(prevType)) {
                c[3] = "I-" + type;
            }
            prevType = type;
            iob1.add(String.join(" ", c));
        }
        Path f = dir.resolve("iob1.txt");
        Files.write(f, iob1);
        Path out = dir.resolve("out");
        Run r = cli("finetune", "ner", "--model", base.toString(), "--train", f.toString(), "--out", out.toString(),
                "--scheme", "iob1", "--label-column", "3", "--max-steps", "1", "--batch-size", "8", "--max-length", "32");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("IOB1"), r.err());
        Run ev = cli("eval", "ner", "--model", out.toString(), "--data", evalFile.toString(), "--scheme", "iob2");
        assertEquals(0, ev.code(), ev.err());
        JsonNode cfg = JSON.readTree(out.resolve("config.json").toFile());
        assertEquals(9, cfg.get("id2label").size());
    }

    @Test
    void badInputIsAClearError(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("o");
        Path company = dir.resolve("company.txt");
        Files.writeString(company, "Acme NNP B-NP B-COMPANY\nsells VBZ B-VP O\n\nPeter NNP B-NP B-PER\n");
        expect(finetune(out, "--eval", company.toString(), "--max-steps", "1"), company + ":1: tag 'B-COMPANY'");
        Path threeCols = dir.resolve("three.txt");
        Files.writeString(threeCols, "EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP\n");
        expect(concat(finetune(out, "--max-steps", "1"), "--eval", threeCols.toString()), "three.txt");
        Path allO = dir.resolve("allo.txt");
        Files.writeString(allO, "the DT O\ncat NN O\n");
        expect(new String[]{"finetune", "ner", "--model", base.toString(), "--train", allO.toString(), "--out", out.toString()},
                "needs at least one entity");
        expect(finetune(out, "--scheme", "bio"), "unknown --scheme 'bio'");
        expect(finetune(out, "--label-column", "0"), "--label-column must be >= 1");
        expect(new String[]{"finetune", "ner", "--model", base.toString(), "--train", dir.resolve("none.txt").toString(),
                "--out", out.toString()}, "none.txt");
        expect(new String[]{"eval", "ner", "--model", base.toString(), "--data", evalFile.toString()}, "classifier");
        assertTrue(!Files.exists(out.resolve("model.safetensors")));
    }

    static void expect(String[] args, String text) {
        Run r = cli(args);
        assertEquals(1, r.code(), String.join(" ", args) + ": " + r.out() + r.err());
        assertTrue(r.err().contains("bert4j: error: ") && r.err().contains(text), text + " in: " + r.err());
    }
}
