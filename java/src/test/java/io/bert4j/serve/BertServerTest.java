package io.bert4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.EmbedOptions;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * The HTTP server over real HTTP on an ephemeral loopback port, with the real MiniLM: each
 * endpoint, embeddings equal to {@link Bert#embed} (what the CLI prints), every error status,
 * concurrent callers getting their own answers, 429 under load and a graceful shutdown.
 */
class BertServerTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    static Bert bert;
    static BertServer server;
    static List<String> sentences;

    @BeforeAll
    static void start() throws Exception {
        bert = Bert.load(TestModels.defaultModelDir(), KernelMode.FUSED);
        server = BertServer.start(bert, "all-MiniLM-L6-v2", BertServer.Options.DEFAULTS.withPort(0)
                .withMaxConcurrent(32).withMaxWait(Duration.ofMillis(5)));
        List<String> lines = Files.readAllLines(TestModels.sharedData().resolve("sst2/train.tsv"));
        sentences = lines.subList(1, 65).stream().map(l -> l.substring(0, l.indexOf('\t'))).toList();
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
        if (bert != null) bert.close();
    }

    static HttpResponse<String> post(BertServer s, String path, String body) throws Exception {
        return CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> get(BertServer s, String path) throws Exception {
        return CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + path)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static double maxDiff(JsonNode row, float[] ref) {
        assertEquals(ref.length, row.size());
        double d = 0;
        for (int i = 0; i < ref.length; i++) {
            d = Math.max(d, Math.abs(row.get(i).floatValue() - ref[i]));
        }
        return d;
    }

    @Test
    void embedMatchesTheLibraryInBothShapes() throws Exception {
        List<String> texts = List.of("I like eating apples.", "Padding-free batches spend nothing on padding.");
        float[][] ref = bert.embed(texts, EmbedOptions.DEFAULTS.withNormalize(true));
        HttpResponse<String> r = post(server, "/embed", JSON.writeValueAsString(java.util.Map.of("inputs", texts)));
        assertEquals(200, r.statusCode(), r.body());
        JsonNode v = JSON.readTree(r.body());
        assertEquals(2, v.size());
        assertTrue(maxDiff(v.get(0), ref[0]) <= 1e-6 && maxDiff(v.get(1), ref[1]) <= 1e-6);

        r = post(server, "/embed", "{\"inputs\": \"I like eating apples.\", \"normalize\": false}");
        assertEquals(200, r.statusCode(), r.body());
        float[] raw = bert.embed(List.of("I like eating apples."), EmbedOptions.DEFAULTS.withNormalize(false))[0];
        assertTrue(maxDiff(JSON.readTree(r.body()).get(0), raw) <= 1e-5);

        r = post(server, "/v1/embeddings", "{\"input\": [\"I like eating apples.\"], \"model\": \"minilm\"}");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode o = JSON.readTree(r.body());
        assertEquals("list", o.get("object").asText());
        assertEquals("minilm", o.get("model").asText());
        assertEquals(0, o.get("data").get(0).get("index").asInt());
        assertTrue(maxDiff(o.get("data").get(0).get("embedding"), ref[0]) <= 1e-6);
        assertEquals(bert.tokenizer().encode("I like eating apples.").length(), o.get("usage").get("prompt_tokens").asInt());
    }

    @Test
    void healthInfoAndMetrics() throws Exception {
        assertEquals(200, get(server, "/health").statusCode());
        JsonNode info = JSON.readTree(get(server, "/info").body());
        assertEquals(384, info.get("dim").asInt());
        assertEquals(256, info.get("max_input_length").asInt());
        assertEquals("fused", info.get("kernels").asText());
        post(server, "/embed", "{\"inputs\": \"metrics please\"}");
        post(server, "/embed", "{\"inputs\": 7}");
        HttpResponse<String> m = get(server, "/metrics");
        assertEquals(200, m.statusCode());
        assertTrue(m.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"));
        String text = m.body();
        for (String want : new String[] {"bert4j_http_requests_total{endpoint=\"/embed\",status=\"200\"}",
                "bert4j_http_requests_total{endpoint=\"/embed\",status=\"422\"}", "bert4j_request_duration_seconds_bucket",
                "bert4j_batch_size_count", "bert4j_queue_depth", "bert4j_embedded_tokens_total"}) {
            assertTrue(text.contains(want), "metrics lack " + want + ":\n" + text);
        }
    }

    @Test
    void badRequestsGetTheRightStatus() throws Exception {
        record Case(String path, String body, int status, String message) {
        }
        String tooLong = "apples ".repeat(400);
        for (Case c : List.of(
                new Case("/embed", "{\"inputs\": [\"a\", ", 400, "malformed JSON"),
                new Case("/embed", "", 400, "empty request body"),
                new Case("/embed", "[1, 2]", 422, "JSON object"),
                new Case("/embed", "{\"text\": \"a\"}", 422, "missing field \"inputs\""),
                new Case("/embed", "{\"inputs\": 3}", 422, "must be a string or an array of strings"),
                new Case("/embed", "{\"inputs\": [\"a\", 3]}", 422, "item 1 is number"),
                new Case("/embed", "{\"inputs\": []}", 422, "empty array"),
                new Case("/embed", "{\"inputs\": \"a\", \"normalize\": \"yes\"}", 422, "must be true or false"),
                new Case("/embed", "{\"inputs\": \"   \"}", 422, "empty"),
                new Case("/embed", "{\"inputs\": \"" + tooLong + "\"}", 413, "over the model's limit"),
                new Case("/v1/embeddings", "{\"input\": \"a\", \"encoding_format\": \"base64\"}", 422, "encoding_format"),
                new Case("/nope", "{}", 404, "no such endpoint"))) {
            HttpResponse<String> r = post(server, c.path, c.body);
            assertEquals(c.status, r.statusCode(), c.body + " -> " + r.body());
            assertTrue(JSON.readTree(r.body()).get("error").asText().contains(c.message), r.body());
        }
        assertEquals(405, get(server, "/embed").statusCode());
    }

    @Test
    void concurrentRequestsGetTheirOwnAnswers() throws Exception {
        float[][] ref = bert.embed(sentences, EmbedOptions.DEFAULTS.withNormalize(true));
        ExecutorService pool = Executors.newFixedThreadPool(16);
        List<Future<Double>> diffs = new ArrayList<>();
        for (int i = 0; i < sentences.size(); i++) {
            int k = i;
            diffs.add(pool.submit(() -> {
                HttpResponse<String> r = post(server, "/embed", JSON.writeValueAsString(java.util.Map.of("inputs", sentences.get(k))));
                assertEquals(200, r.statusCode(), r.body());
                return maxDiff(JSON.readTree(r.body()).get(0), ref[k]);
            }));
        }
        double worst = 0;
        for (Future<Double> f : diffs) {
            worst = Math.max(worst, f.get(120, TimeUnit.SECONDS));
        }
        pool.shutdown();
        assertTrue(worst <= 1e-5, "an answer differs from Bert.embed by " + worst);
    }

    @Test
    void overloadIs429AndShutdownFinishesRequestsInFlight() throws Exception {
        BertServer s = BertServer.start(bert, "m", BertServer.Options.DEFAULTS.withPort(0).withMaxConcurrent(1));
        try {
            // A long request keeps the single slot busy for a while.
            List<String> many = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                many.add("apples and pears ".repeat(14) + i);
            }
            String big = JSON.writeValueAsString(java.util.Map.of("inputs", many));
            CompletableFuture<HttpResponse<String>> first = CompletableFuture.supplyAsync(() -> {
                try {
                    return post(s, "/embed", big);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            waitForInFlight(s, 1);
            HttpResponse<String> refused = post(s, "/embed", "{\"inputs\": \"me too\"}");
            assertEquals(429, refused.statusCode(), refused.body());

            CompletableFuture<Void> closing = CompletableFuture.runAsync(s::close);
            Thread.sleep(50);
            assertEquals(200, first.get(60, TimeUnit.SECONDS).statusCode(), "the request in flight must finish");
            closing.get(60, TimeUnit.SECONDS);
        } finally {
            s.close();
        }
    }

    /** Polls /metrics until the server reports {@code n} requests in flight. */
    static void waitForInFlight(BertServer s, int n) throws Exception {
        for (int i = 0; i < 500; i++) {
            String m = get(s, "/metrics").body();
            if (m.contains("bert4j_requests_in_flight " + n + ".0") || m.contains("bert4j_requests_in_flight " + n + "\n")) {
                return;
            }
            Thread.sleep(5);
        }
        throw new AssertionError("the server never had " + n + " request(s) in flight");
    }
}
