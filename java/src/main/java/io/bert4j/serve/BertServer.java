package io.bert4j.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * bert4j's HTTP server: sentence embeddings with request and response shapes of Hugging Face
 * text-embeddings-inference ({@code POST /embed}) and of OpenAI ({@code POST /v1/embeddings}), so
 * existing clients work unchanged, plus {@code GET /health}, {@code GET /info} and
 * {@code GET /metrics} (Prometheus text format). Requests from all connections go through one
 * {@link EmbeddingPredictor}: texts arriving together are embedded as one padding-free batch.
 *
 * <p>Built on the JDK's own HTTP server ({@code com.sun.net.httpserver}) with a bounded thread pool
 * that grows with the concurrency seen ({@link HandlerPool}):
 * no extra dependency, and on loopback its per-request overhead is far below a model forward.
 * Metrics use the Prometheus Java client ({@code io.prometheus:prometheus-metrics-core}).
 *
 * <p>Backpressure instead of collapse: with {@code maxConcurrent} requests in flight a new one
 * gets 429 at once; a text over the model's limit is 413 unless {@code autoTruncate}; malformed
 * JSON is 400 and a well-formed body with wrong types or values 422; a request not answered
 * within {@code timeout} is 504. {@link #close()} is graceful: new requests get 503, the ones in
 * flight finish (up to a grace period), then the server stops.
 */
public final class BertServer implements AutoCloseable {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
        // The JDK server leaves Nagle's algorithm on unless told otherwise (read once, when its
        // first server is created): a response's headers and body then go out as two small
        // segments and the second waits for the client's delayed ACK, ~40 ms per request.
        if (System.getProperty("sun.net.httpserver.nodelay") == null) {
            System.setProperty("sun.net.httpserver.nodelay", "true");
        }
    }

    /**
     * @param host address to bind (e.g. 127.0.0.1, or 0.0.0.0 for all interfaces)
     * @param port TCP port; 0 picks a free one ({@link #port()})
     * @param maxConcurrent requests in flight before new ones get 429
     * @param maxInputs texts one request may carry (more: 413)
     */
    public record Options(String host, int port, int maxBatchTokens, Duration maxWait, int maxConcurrent,
                          int maxInputs, boolean autoTruncate, Duration timeout, Duration shutdownGrace, boolean batching) {
        public static final Options DEFAULTS = new Options("127.0.0.1", 8080, 8192, Duration.ofMillis(2), 512,
                256, false, Duration.ofSeconds(30), Duration.ofSeconds(30), true);

        /** The same server with dynamic batching off: every request runs its own forward pass. */
        public Options withBatching(boolean b) {
            return new Options(host, port, maxBatchTokens, maxWait, maxConcurrent, maxInputs, autoTruncate, timeout, shutdownGrace, b);
        }

        public Options withMaxInputs(int n) {
            return new Options(host, port, maxBatchTokens, maxWait, maxConcurrent, n, autoTruncate, timeout, shutdownGrace, batching);
        }

        public Options withPort(int p) {
            return new Options(host, p, maxBatchTokens, maxWait, maxConcurrent, maxInputs, autoTruncate, timeout, shutdownGrace, batching);
        }

        public Options withHost(String h) {
            return new Options(h, port, maxBatchTokens, maxWait, maxConcurrent, maxInputs, autoTruncate, timeout, shutdownGrace, batching);
        }

        public Options withMaxBatchTokens(int n) {
            return new Options(host, port, n, maxWait, maxConcurrent, maxInputs, autoTruncate, timeout, shutdownGrace, batching);
        }

        public Options withMaxWait(Duration d) {
            return new Options(host, port, maxBatchTokens, d, maxConcurrent, maxInputs, autoTruncate, timeout, shutdownGrace, batching);
        }

        public Options withMaxConcurrent(int n) {
            return new Options(host, port, maxBatchTokens, maxWait, n, maxInputs, autoTruncate, timeout, shutdownGrace, batching);
        }

        public Options withAutoTruncate(boolean t) {
            return new Options(host, port, maxBatchTokens, maxWait, maxConcurrent, maxInputs, t, timeout, shutdownGrace, batching);
        }

        public Options withTimeout(Duration d) {
            return new Options(host, port, maxBatchTokens, maxWait, maxConcurrent, maxInputs, autoTruncate, d, shutdownGrace, batching);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Bert bert;
    private final String modelId;
    private final Options options;
    private final EmbeddingPredictor predictor;
    private final TaskHeads heads;
    private final HttpServer http;
    private final ExecutorService executor;
    private final Semaphore slots;
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile boolean draining;
    private boolean closed;

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final Counter requests;
    private final Counter tokens;
    private final Histogram latency;
    private final Histogram batchSizes;

    private BertServer(Bert bert, String modelId, Options o, TaskHeads heads) throws IOException {
        if (o.maxConcurrent() < 1 || o.maxInputs() < 1) {
            throw new Bert4jException("max concurrent requests and max inputs must be at least 1");
        }
        this.bert = bert;
        this.modelId = modelId;
        this.options = o;
        this.heads = heads;
        heads.prepareInference(); // the embedding model is prepared by its EmbeddingPredictor
        this.predictor = new EmbeddingPredictor(bert, EmbeddingPredictor.Settings.DEFAULTS
                .withMaxBatchTokens(o.maxBatchTokens()).withMaxWait(o.maxWait())
                .withMaxQueued(Math.max(1, o.maxConcurrent()) * o.maxInputs())
                .withTimeout(o.timeout()).withTruncate(o.autoTruncate()).withBatching(o.batching()));
        this.slots = new Semaphore(o.maxConcurrent());
        requests = Counter.builder().name("bert4j_http_requests_total").help("HTTP requests by endpoint and status")
                .labelNames("endpoint", "status").register(registry);
        tokens = Counter.builder().name("bert4j_embedded_tokens_total").help("Tokens embedded (rate() gives tokens/s)")
                .register(registry);
        latency = Histogram.builder().name("bert4j_request_duration_seconds").help("Request latency by endpoint")
                .labelNames("endpoint").classicOnly()
                .classicUpperBounds(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
                .register(registry);
        batchSizes = Histogram.builder().name("bert4j_batch_size").help("Texts per model batch").classicOnly()
                .classicUpperBounds(1, 2, 4, 8, 16, 32, 64, 128, 256, 512).register(registry);
        GaugeWithCallback.builder().name("bert4j_queue_depth").help("Texts waiting for a batch")
                .callback(cb -> cb.call(predictor.batcher().queued())).register(registry);
        GaugeWithCallback.builder().name("bert4j_requests_in_flight").help("Requests being served")
                .callback(cb -> cb.call(inFlight.get())).register(registry);
        predictor.batcher().onBatch(n -> batchSizes.observe(n));

        this.http = HttpServer.create(new InetSocketAddress(o.host(), o.port()), 1024);
        // Handler threads block while their texts are batched, so up to one per admitted request
        // plus the quick ones (health, metrics, refusals); started only as concurrency needs them.
        this.executor = new HandlerPool(o.maxConcurrent() + 8, 60, TimeUnit.SECONDS, "bert4j-http");
        http.setExecutor(executor);
        http.createContext("/", this::handle);
        http.start();
    }

    /** Starts serving {@code bert}'s embeddings (named {@code modelId} in /info and OpenAI responses). */
    public static BertServer start(Bert bert, String modelId, Options options) throws IOException {
        return new BertServer(bert, modelId, options, TaskHeads.none());
    }

    /**
     * Starts serving embeddings and the task heads {@code bert}'s folder has (its config's
     * {@code architectures}): {@code /predict}, {@code /ner}, {@code /qa}, {@code /fill-mask}. The
     * heads are loaded from the folder (a second copy of the encoder weights) and closed with the
     * server.
     */
    public static BertServer startWithHeads(Bert bert, String modelId, Options options, io.bert4j.kernels.KernelMode kernels)
            throws IOException {
        TaskHeads heads = bert.source() == null ? TaskHeads.none() : TaskHeads.load(bert.source(), kernels);
        try {
            return new BertServer(bert, modelId, options, heads);
        } catch (IOException | RuntimeException e) {
            heads.close();
            throw e;
        }
    }

    /** The task endpoints this server answers besides the embedding ones. */
    public List<String> headEndpoints() {
        return heads.endpoints();
    }

    /** The bound port (useful with port 0). */
    public int port() {
        return http.getAddress().getPort();
    }

    private void handle(HttpExchange ex) throws IOException {
        long start = System.nanoTime();
        String path = ex.getRequestURI().getPath();
        String endpoint = switch (path) {
            case "/embed", "/v1/embeddings", "/health", "/info", "/metrics" -> path;
            default -> heads.serves(path) ? path : "other";
        };
        int status;
        try {
            status = route(ex, path);
        } catch (HttpError e) {
            status = e.status;
            ObjectNode body = JSON.createObjectNode();
            body.put("error", e.getMessage());
            body.put("error_type", e.type);
            send(ex, status, "application/json", JSON.writeValueAsBytes(body));
        } catch (RuntimeException e) {
            status = 500;
            ObjectNode body = JSON.createObjectNode();
            body.put("error", "internal error: " + e.getMessage());
            body.put("error_type", "Backend");
            send(ex, status, "application/json", JSON.writeValueAsBytes(body));
        } finally {
            ex.close();
        }
        requests.labelValues(endpoint, Integer.toString(status)).inc();
        latency.labelValues(endpoint).observe((System.nanoTime() - start) / 1e9);
    }

    private int route(HttpExchange ex, String path) throws IOException {
        String method = ex.getRequestMethod();
        switch (path) {
            case "/health" -> {
                requireMethod(method, "GET");
                if (draining) {
                    throw new HttpError(503, "Unhealthy", "shutting down");
                }
                return send(ex, 200, "application/json", "{\"status\":\"ok\"}".getBytes(StandardCharsets.UTF_8));
            }
            case "/info" -> {
                requireMethod(method, "GET");
                return send(ex, 200, "application/json", JSON.writeValueAsBytes(info()));
            }
            case "/metrics" -> {
                requireMethod(method, "GET");
                ByteArrayOutputStream buf = new ByteArrayOutputStream();
                PrometheusTextFormatWriter.create().write(buf, registry.scrape());
                return send(ex, 200, PrometheusTextFormatWriter.CONTENT_TYPE, buf.toByteArray());
            }
            case "/embed", "/v1/embeddings" -> {
                requireMethod(method, "POST");
                return admitted(ex, path.equals("/embed"));
            }
            default -> {
                if (heads.serves(path)) {
                    requireMethod(method, "POST");
                    return admittedHead(ex, path);
                }
                throw new HttpError(404, "NotFound", "no such endpoint: " + path + " (POST /embed, POST /v1/embeddings"
                        + heads.endpoints().stream().map(e -> ", POST " + e).collect(java.util.stream.Collectors.joining())
                        + ", GET /health, GET /info, GET /metrics)");
            }
        }
    }

    private static void requireMethod(String got, String want) {
        if (!got.equals(want)) {
            throw new HttpError(405, "MethodNotAllowed", "use " + want + ", not " + got);
        }
    }

    /** Runs an embedding request within the concurrency limit. */
    private int admitted(HttpExchange ex, boolean tei) throws IOException {
        if (draining) {
            throw new HttpError(503, "Unhealthy", "shutting down: not taking new requests");
        }
        if (!slots.tryAcquire()) {
            throw new HttpError(429, "Overloaded", "overloaded: " + options.maxConcurrent()
                    + " requests already in flight; retry later");
        }
        inFlight.incrementAndGet();
        try {
            JsonNode body = readJson(ex.getRequestBody());
            return tei ? embedTei(ex, body) : embedOpenAi(ex, body);
        } finally {
            inFlight.decrementAndGet();
            slots.release();
        }
    }

    /** Runs a task-head request within the concurrency limit. */
    private int admittedHead(HttpExchange ex, String path) throws IOException {
        if (draining) {
            throw new HttpError(503, "Unhealthy", "shutting down: not taking new requests");
        }
        if (!slots.tryAcquire()) {
            throw new HttpError(429, "Overloaded", "overloaded: " + options.maxConcurrent()
                    + " requests already in flight; retry later");
        }
        inFlight.incrementAndGet();
        try {
            JsonNode answer = heads.handle(path, readJson(ex.getRequestBody()));
            return send(ex, 200, "application/json", JSON.writeValueAsBytes(answer));
        } finally {
            inFlight.decrementAndGet();
            slots.release();
        }
    }

    private static JsonNode readJson(InputStream in) throws IOException {
        byte[] bytes = in.readAllBytes();
        if (bytes.length == 0) {
            throw new HttpError(400, "Validation", "empty request body: expected a JSON object");
        }
        try {
            return JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw new HttpError(400, "Validation", "malformed JSON: " + e.getOriginalMessage());
        }
    }

    /** The texts of an "inputs"/"input" field: a string or a non-empty array of strings. */
    private List<String> texts(JsonNode body, String field) {
        if (body == null || !body.isObject()) {
            throw new HttpError(422, "Validation", "the body must be a JSON object with \"" + field + "\"");
        }
        JsonNode in = body.get(field);
        if (in == null) {
            throw new HttpError(422, "Validation", "missing field \"" + field + "\"");
        }
        List<String> texts = new ArrayList<>();
        if (in.isTextual()) {
            texts.add(in.asText());
        } else if (in.isArray()) {
            for (JsonNode t : in) {
                if (!t.isTextual()) {
                    throw new HttpError(422, "Validation", "\"" + field + "\" must be a string or an array of strings; item "
                            + texts.size() + " is " + t.getNodeType().toString().toLowerCase());
                }
                texts.add(t.asText());
            }
        } else {
            throw new HttpError(422, "Validation", "\"" + field + "\" must be a string or an array of strings, got "
                    + in.getNodeType().toString().toLowerCase());
        }
        if (texts.isEmpty()) {
            throw new HttpError(422, "Validation", "\"" + field + "\" is an empty array");
        }
        if (texts.size() > options.maxInputs()) {
            throw new HttpError(413, "Validation", texts.size() + " inputs in one request; the limit is " + options.maxInputs());
        }
        return texts;
    }

    private static boolean bool(JsonNode body, String field, boolean dflt) {
        JsonNode n = body.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw new HttpError(422, "Validation", "\"" + field + "\" must be true or false, got " + n);
        }
        return n.booleanValue();
    }

    private EmbeddingPredictor.Embeddings embed(List<String> texts, boolean normalize) {
        try {
            EmbeddingPredictor.Embeddings e = predictor.embedCounted(texts, normalize);
            tokens.inc(e.tokens());
            return e;
        } catch (EmbeddingPredictor.InputTooLong e) {
            throw new HttpError(413, "Validation", e.getMessage() + " (the server truncates only with --auto-truncate)");
        } catch (DynamicBatcher.Overloaded e) {
            throw new HttpError(429, "Overloaded", e.getMessage());
        } catch (DynamicBatcher.Closed e) {
            throw new HttpError(503, "Unhealthy", "shutting down");
        } catch (TimeoutException e) {
            throw new HttpError(504, "Timeout", e.getMessage());
        } catch (Bert4jException e) {
            throw new HttpError(422, "Validation", e.getMessage());
        }
    }

    private int embedTei(HttpExchange ex, JsonNode body) throws IOException {
        List<String> texts = texts(body, "inputs");
        boolean normalize = bool(body, "normalize", true);
        if (body.has("truncate") && bool(body, "truncate", false) && !options.autoTruncate()) {
            // Honoured per request only when the server was started to allow it.
            throw new HttpError(422, "Validation", "\"truncate\": true needs a server started with --auto-truncate");
        }
        float[][] v = embed(texts, normalize).vectors();
        ArrayNode out = JSON.createArrayNode();
        for (float[] row : v) {
            ArrayNode a = out.addArray();
            for (float x : row) {
                a.add(x);
            }
        }
        return send(ex, 200, "application/json", JSON.writeValueAsBytes(out));
    }

    private int embedOpenAi(HttpExchange ex, JsonNode body) throws IOException {
        List<String> texts = texts(body, "input");
        JsonNode format = body.get("encoding_format");
        if (format != null && !format.isNull() && !"float".equals(format.asText())) {
            throw new HttpError(422, "Validation", "encoding_format " + format + " is not supported; use \"float\"");
        }
        EmbeddingPredictor.Embeddings e = embed(texts, true);
        float[][] v = e.vectors();
        int n = e.tokens();
        ObjectNode out = JSON.createObjectNode();
        out.put("object", "list");
        ArrayNode data = out.putArray("data");
        for (int i = 0; i < v.length; i++) {
            ObjectNode d = data.addObject();
            d.put("object", "embedding");
            d.put("index", i);
            ArrayNode a = d.putArray("embedding");
            for (float x : v[i]) {
                a.add(x);
            }
        }
        out.put("model", body.hasNonNull("model") ? body.get("model").asText() : modelId);
        ObjectNode usage = out.putObject("usage");
        usage.put("prompt_tokens", n);
        usage.put("total_tokens", n);
        return send(ex, 200, "application/json", JSON.writeValueAsBytes(out));
    }

    private ObjectNode info() {
        ObjectNode o = JSON.createObjectNode();
        o.put("model_id", modelId);
        o.put("model_dir", bert.source() == null ? null : bert.source().toString());
        o.put("model_type", "bert");
        o.put("dim", bert.config().hiddenSize());
        o.put("max_input_length", predictor.maxLength());
        o.put("pooling", predictor.pooling().toString().toLowerCase());
        o.put("kernels", bert.model().kernels().toString().toLowerCase());
        o.put("int8", bert.model().isInt8());
        o.put("bf16", bert.model().isBf16());
        o.put("batching", options.batching());
        o.put("max_batch_tokens", options.maxBatchTokens());
        o.put("max_wait_ms", options.maxWait().toNanos() / 1e6);
        o.put("max_concurrent_requests", options.maxConcurrent());
        o.put("max_client_batch_size", options.maxInputs());
        o.put("auto_truncate", options.autoTruncate());
        ArrayNode h = o.putArray("heads");
        heads.endpoints().forEach(h::add);
        return o;
    }

    private static int send(HttpExchange ex, int status, String type, byte[] body) throws IOException {
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        if (body.length > 0) {
            try (OutputStream os = ex.getResponseBody()) {
                os.write(body);
            }
        }
        return status;
    }

    /**
     * Graceful shutdown: new requests get 503, requests in flight finish (at most the grace
     * period), then the listener, the batcher and the threads stop. The model is not closed.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        draining = true;
        long deadline = System.nanoTime() + options.shutdownGrace().toNanos();
        while (inFlight.get() > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        http.stop(0);
        predictor.close();
        heads.close();
        executor.shutdown();
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
