package io.bert4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code bert4j serve} as a real process: it reports the port it bound, answers over HTTP with
 * the same vectors {@code bert4j embed} prints, and stops on SIGTERM after saying so. Flag
 * errors exit 1 with a message before anything is loaded.
 */
class ServeCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void aServeProcessAnswersLikeTheEmbedCommandAndStopsOnSigterm(@TempDir Path tmp) throws Exception {
        Path model = TestModels.defaultModelDir();
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx1g", "-cp", System.getProperty("java.class.path"), "io.bert4j.cli.Main",
                "serve", "--model", model.toString(), "--port", "0", "--max-wait-ms", "1"));
        Path err = tmp.resolve("serve.err");
        Process p = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(err.toFile()).start();
        try {
            int port = -1;
            Pattern serving = Pattern.compile("serving .* on http://127\\.0\\.0\\.1:(\\d+) ");
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (port < 0) {
                assertTrue(p.isAlive(), () -> "serve exited early: " + read(err));
                assertTrue(System.nanoTime() < deadline, () -> "no 'serving' line within 120 s: " + read(err));
                Matcher m = serving.matcher(read(err));
                if (m.find()) {
                    port = Integer.parseInt(m.group(1));
                } else {
                    Thread.sleep(100);
                }
            }
            assertNotEquals(0, port, "the bound port, not the requested 0");

            String text = "I like eating apples.";
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/embed"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"inputs\": \"" + text + "\", \"normalize\": true}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            JsonNode served = JSON.readTree(r.body()).get(0);

            StringWriter out = new StringWriter();
            StringWriter cliErr = new StringWriter();
            int code = Main.run(new String[]{"embed", "--model", model.toString(), "--normalize", text},
                    new PrintWriter(out, true), new PrintWriter(cliErr, true));
            assertEquals(0, code, cliErr.toString());
            JsonNode printed = JSON.readTree(out.toString().strip()).get("embedding");
            assertEquals(printed.size(), served.size());
            for (int i = 0; i < printed.size(); i++) {
                assertEquals(printed.get(i).asDouble(), served.get(i).asDouble(), 1e-6, "dimension " + i);
            }

            HttpResponse<String> health = client.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + port + "/health")).GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, health.statusCode());

            Process term = new ProcessBuilder("kill", "-TERM", Long.toString(p.pid())).start();
            assertEquals(0, term.waitFor(), "kill -TERM");
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), () -> "serve did not stop after SIGTERM: " + read(err));
            assertEquals(143, p.exitValue(), "the usual status after SIGTERM: " + read(err));
            assertTrue(read(err).contains("shutting down"), read(err));
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void badFlagsExitWithAMessage() {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(new String[]{"serve", "--port", "70000"}, new PrintWriter(out, true), new PrintWriter(err, true));
        assertEquals(1, code, err.toString());
        assertTrue(err.toString().contains("--port must be in 0..65535, got 70000"), err.toString());
        err.getBuffer().setLength(0);
        code = Main.run(new String[]{"serve", "--max-batch-tokens", "0"}, new PrintWriter(out, true), new PrintWriter(err, true));
        assertEquals(1, code, err.toString());
        assertTrue(err.toString().contains("--max-batch-tokens"), err.toString());
        err.getBuffer().setLength(0);
        code = Main.run(new String[]{"serve", "--kernels", "fast"}, new PrintWriter(out, true), new PrintWriter(err, true));
        assertNotEquals(0, code, err.toString());
        assertTrue(err.toString().contains("fast"), err.toString());
    }

    private static String read(Path p) {
        try {
            return Files.exists(p) ? Files.readString(p) : "";
        } catch (java.io.IOException e) {
            return "(" + e + ")";
        }
    }
}
