package io.bert4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.pipeline.Pooling;
import io.bert4j.testing.TestModels;
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
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code bert4j embed} and {@code bert4j import-onnx} as users run them: arguments in, JSON lines and exit codes out. */
class EmbedCommandTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static Path model;

    record Run(int code, String out, String err) {
    }

    @BeforeAll
    static void setUp() {
        model = TestModels.defaultModelDir();
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    static List<JsonNode> lines(String out) throws IOException {
        List<JsonNode> l = new ArrayList<>();
        for (String s : out.split("\n")) {
            if (!s.isBlank()) l.add(JSON.readTree(s));
        }
        return l;
    }

    static float[] vector(JsonNode line) {
        JsonNode e = line.get("embedding");
        float[] v = new float[e.size()];
        for (int i = 0; i < v.length; i++) v[i] = (float) e.get(i).asDouble();
        return v;
    }

    @Test
    void embedPrintsOneJsonLinePerTextInOrderMatchingTheJavaApi() throws IOException {
        List<String> texts = List.of("I like eating apples.", "A much longer second sentence about something else entirely.", "ok");
        Run r = run("embed", "--model", model.toString(), texts.get(0), texts.get(1), texts.get(2));
        assertEquals(0, r.code(), r.err());
        List<JsonNode> l = lines(r.out());
        assertEquals(3, l.size());
        try (Bert bert = Bert.load(model)) {
            float[][] api = bert.embed(texts);
            for (int i = 0; i < 3; i++) {
                assertEquals(texts.get(i), l.get(i).get("text").asText());
                float[] cli = vector(l.get(i));
                assertEquals(384, cli.length);
                for (int k = 0; k < cli.length; k++) {
                    assertEquals(api[i][k], cli[k], 0f, "text " + i + " dim " + k + ": JSON must round-trip the float exactly");
                }
            }
            float[] cls = bert.embed(List.of(texts.get(0)), EmbedOptions.DEFAULTS.withPooling(Pooling.CLS).withNormalize(false))[0];
            Run c = run("embed", "--model", model.toString(), "--pooling", "cls", "--normalize=false", texts.get(0));
            assertEquals(0, c.code(), c.err());
            float[] cliCls = vector(lines(c.out()).get(0));
            for (int k = 0; k < cls.length; k++) assertEquals(cls[k], cliCls[k], 0f);
        }
    }

    @Test
    void inputFileAndOutputFile(@TempDir Path tmp) throws IOException {
        Path in = tmp.resolve("in.txt");
        Files.writeString(in, "first line\nsecond line\nthird, with \"quotes\" and émoji 😀\n", StandardCharsets.UTF_8);
        Path out = tmp.resolve("out.jsonl");
        Run r = run("embed", "--model", model.toString(), "--input", in.toString(), "--output", out.toString(), "--batch-size", "2");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().isEmpty(), "nothing on stdout with --output");
        List<JsonNode> l = lines(Files.readString(out));
        assertEquals(3, l.size());
        assertEquals("third, with \"quotes\" and émoji 😀", l.get(2).get("text").asText());
    }

    @Test
    void defaultModelIsUsedWithoutModelOption() throws IOException {
        // TestModels pointed bert4j.home at the test home, where the default model is already imported.
        Run r = run("embed", "I like eating apples.");
        assertEquals(0, r.code(), r.err());
        assertEquals(384, vector(lines(r.out()).get(0)).length);
    }

    @Test
    void userErrorsExitOneWithOneClearLine(@TempDir Path tmp) throws IOException {
        Run missing = run("embed", "--model", tmp.resolve("nope").toString(), "hello");
        assertEquals(1, missing.code());
        assertTrue(missing.err().startsWith("bert4j: error: ") && missing.err().contains("nope"), missing.err());
        assertFalse(missing.err().contains("\tat "), "no stack trace for a user error: " + missing.err());

        Run empty = run("embed", "--model", model.toString(), "");
        assertEquals(1, empty.code());
        assertTrue(empty.err().contains("text 1 is empty"), empty.err());

        Run tooLong = run("embed", "--model", model.toString(), "word ".repeat(300));
        assertEquals(1, tooLong.code());
        assertTrue(tooLong.err().contains("over the model's limit"), tooLong.err());
        Run truncated = run("embed", "--model", model.toString(), "--max-length", "64", "word ".repeat(300));
        assertEquals(0, truncated.code(), truncated.err());

        Run nothing = run("embed", "--model", model.toString());
        assertEquals(1, nothing.code());
        assertTrue(nothing.err().contains("nothing to embed"), nothing.err());

        Run noFile = run("embed", "--model", model.toString(), "--input", tmp.resolve("absent.txt").toString());
        assertEquals(1, noFile.code());
        assertTrue(noFile.err().contains("absent.txt"), noFile.err());

        Run badPooling = run("embed", "--model", model.toString(), "--pooling", "max", "x");
        assertEquals(1, badPooling.code());
        assertTrue(badPooling.err().contains("unknown pooling \"max\""), badPooling.err());

        Run pooler = run("embed", "--model", model.toString(), "--pooling", "pooler", "x");
        assertEquals(1, pooler.code());
        assertTrue(pooler.err().contains("no pooler"), pooler.err());

        Run badFlag = run("embed", "--no-such-flag");
        assertEquals(2, badFlag.code());

        Run bothPrecisions = run("embed", "--model", model.toString(), "--int8", "--bf16", "x");
        assertEquals(1, bothPrecisions.code());
        assertTrue(bothPrecisions.err().contains("--int8 and --bf16 are exclusive"), bothPrecisions.err());
    }

    /** --bf16 runs on CPUs with AMX (close to float32, not equal) and is refused elsewhere, naming why. */
    @Test
    void bf16RunsWhereTheCpuHasAmxAndIsRefusedElsewhere() throws IOException {
        String text = "I like eating apples.";
        Run r = run("embed", "--model", model.toString(), "--bf16", text);
        if (!io.bert4j.kernels.Kernels.bf16Amx()) {
            assertEquals(1, r.code());
            assertTrue(r.err().contains("AMX-BF16"), r.err());
            return;
        }
        assertEquals(0, r.code(), r.err());
        float[] bf16 = vector(lines(r.out()).get(0));
        float[] fp32 = vector(lines(run("embed", "--model", model.toString(), text).out()).get(0));
        double dot = 0, na = 0, nb = 0;
        for (int k = 0; k < fp32.length; k++) {
            dot += (double) bf16[k] * fp32[k];
            na += (double) bf16[k] * bf16[k];
            nb += (double) fp32[k] * fp32[k];
        }
        double cosine = dot / Math.sqrt(na * nb);
        assertTrue(cosine >= 0.999, "bf16 vs float32 cosine " + cosine);
        assertFalse(java.util.Arrays.equals(bf16, fp32), "bf16 output identical to float32: the bf16 path did not run");
    }

    @Test
    void corruptWeightsExitOneNamingTheFile(@TempDir Path tmp) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("m"));
        for (String f : List.of("config.json", "tokenizer.json")) {
            Files.copy(model.resolve(f), dir.resolve(f));
        }
        byte[] header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}".getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + header.length + 8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).putLong(0); // data section 8 bytes short of the declared 16
        Files.write(dir.resolve("model.safetensors"), b.array());
        Run r = run("embed", "--model", dir.toString(), "hello");
        assertEquals(1, r.code(), r.err());
        assertTrue(r.err().startsWith("bert4j: error: ") && r.err().contains("model.safetensors"), r.err());

        Files.write(dir.resolve("model.safetensors"), new byte[]{1, 2, 3});
        r = run("embed", "--model", dir.toString(), "hello");
        assertEquals(1, r.code(), r.err());
        assertTrue(r.err().contains("model.safetensors"), r.err());
    }

    /** A real process: bad input must end with exit status 1 and a message, never a JVM crash. */
    @Test
    void separateProcessExitsCleanlyOnBadInput(@TempDir Path tmp) throws Exception {
        Path cfgOnly = Files.createDirectories(tmp.resolve("broken"));
        Files.writeString(cfgOnly.resolve("config.json"), "{\"hidden_size\": 384}");
        Run r = runProcess(tmp, List.of(), "embed", "--model", cfgOnly.toString(), "hello");
        String err = r.err();
        assertEquals(1, r.code(), err);
        assertTrue(err.contains("bert4j: error: ") && err.contains("missing required fields"), err);
        try (var files = Files.list(tmp)) {
            assertTrue(files.noneMatch(f -> f.getFileName().toString().startsWith("hs_err")), "no JVM crash log");
        }
    }

    /**
     * A small Java heap must not cap the model's native memory: JavaCPP's default limit (4x the
     * heap maximum, resident memory) killed this exact command at 220 MB with an
     * OutOfMemoryError before bert4j turned that check off (NativeSetup).
     */
    @Test
    void smallJavaHeapDoesNotLimitNativeMemory(@TempDir Path tmp) throws Exception {
        Run r = runProcess(tmp, List.of("-Xmx48m"), "embed", "--model", model.toString(), "I like eating apples.");
        assertEquals(0, r.code(), r.err());
        String out = r.out();
        assertTrue(out.startsWith("{") && out.contains("\"embedding\""), out);
    }

    /** The CLI in a separate JVM (same classpath) with jvmArgs, run in tmp; output kept in tmp. */
    static Run runProcess(Path tmp, List<String> jvmArgs, String... cliArgs) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmArgs);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.bert4j.cli.Main"));
        cmd.addAll(List.of(cliArgs));
        Process p = new ProcessBuilder(cmd)
                .redirectOutput(tmp.resolve("out.txt").toFile())
                .redirectError(tmp.resolve("err.txt").toFile())
                .directory(tmp.toFile())
                .start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "process finished");
        return new Run(p.exitValue(), Files.readString(tmp.resolve("out.txt")), Files.readString(tmp.resolve("err.txt")));
    }

    @Test
    void importOnnxWritesALoadableFolderAndRefusesToOverwrite(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("imported");
        Run r = run("import-onnx", "--onnx", TestModels.onnxFile().toString(), "--tokenizer", TestModels.tokenizerJson().toString(),
                "--out", out.toString(), "--pooling", "mean", "--normalize", "--max-seq-length", "256");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("num_attention_heads = 12"), r.err());
        Run e = run("embed", "--model", out.toString(), "I like eating apples.");
        Run d = run("embed", "--model", model.toString(), "I like eating apples.");
        assertEquals(d.out(), e.out(), "the imported folder embeds exactly as the default model");
        Run again = run("import-onnx", "--onnx", TestModels.onnxFile().toString(), "--tokenizer", TestModels.tokenizerJson().toString(),
                "--out", out.toString());
        assertEquals(1, again.code());
        assertTrue(again.err().contains("already exists"), again.err());
        Path junk = tmp.resolve("junk.onnx");
        Files.write(junk, new byte[]{8, 7, 18, (byte) 0xff, 1, 2});
        Run bad = run("import-onnx", "--onnx", junk.toString(), "--tokenizer", TestModels.tokenizerJson().toString(),
                "--out", tmp.resolve("x").toString());
        assertEquals(1, bad.code());
        assertTrue(bad.err().contains("junk.onnx") && bad.err().contains("not a valid ONNX model"), bad.err());
        assertFalse(Files.exists(tmp.resolve("x")), "no half-written output folder");
    }
}
