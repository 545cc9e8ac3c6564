package io.bert4j.cli;

import io.bert4j.Bert;
import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.kernels.KernelMode;
import io.bert4j.serve.BertServer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code bert4j serve}: the HTTP server ({@link BertServer}) until SIGINT / SIGTERM. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model over HTTP: POST /embed (text-embeddings-inference shapes), POST /v1/embeddings "
                + "(OpenAI shapes), GET /health, GET /info, GET /metrics (Prometheus).",
                "Requests arriving together are embedded as one padding-free batch. Stops gracefully on SIGINT/SIGTERM: "
                        + "requests in flight finish, new ones get 503."})
final class ServeCommand implements Callable<Integer> {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR",
            description = "Hugging Face model folder (default: " + DefaultModel.NAME + ", imported on first use).")
    Path model;

    @Option(names = "--host", paramLabel = "ADDR", defaultValue = "127.0.0.1",
            description = "Address to listen on (default: ${DEFAULT-VALUE}; 0.0.0.0 for every interface).")
    String host;

    @Option(names = "--port", paramLabel = "N", defaultValue = "8080", description = "TCP port (default: ${DEFAULT-VALUE}; 0 picks a free one).")
    int port;

    @Option(names = "--max-batch-tokens", paramLabel = "N", defaultValue = "8192",
            description = "Token budget of one model batch (default: ${DEFAULT-VALUE}).")
    int maxBatchTokens;

    @Option(names = "--max-wait-ms", paramLabel = "X", defaultValue = "2",
            description = "How long the first text of a batch may wait for others, in ms (default: ${DEFAULT-VALUE}; 0 = no waiting).")
    double maxWaitMs;

    @Option(names = "--max-concurrent", paramLabel = "N", defaultValue = "512",
            description = "Requests in flight before new ones are answered 429 (default: ${DEFAULT-VALUE}).")
    int maxConcurrent;

    @Option(names = "--max-inputs", paramLabel = "N", defaultValue = "256",
            description = "Texts one request may carry (default: ${DEFAULT-VALUE}; more: 413).")
    int maxInputs;

    @Option(names = "--no-batching", description = "Run every request's own forward pass (no dynamic batching; for comparison).")
    boolean noBatching;

    @Option(names = "--auto-truncate", description = "Cut texts over the model's limit instead of answering 413.")
    boolean autoTruncate;

    @Option(names = "--timeout-ms", paramLabel = "N", defaultValue = "30000",
            description = "Per-request timeout in ms; later answers are 504 (default: ${DEFAULT-VALUE}).")
    long timeoutMs;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Option(names = "--int8", description = "Int8 linear layers (faster on CPU; embeddings within ~1% of float32).")
    boolean int8;

    @Option(names = "--bf16", description = "bf16 linear layers on AMX (Intel Sapphire Rapids or later; refused "
            + "elsewhere): batches ~2x as fast as float32, embeddings within ~0.1% of float32.")
    boolean bf16;

    @Override
    public Integer call() throws Exception {
        if (port < 0 || port > 65535) {
            throw new Bert4jException("--port must be in 0..65535, got " + port);
        }
        if (maxBatchTokens < 1 || maxConcurrent < 1 || maxInputs < 1 || timeoutMs < 1 || !(maxWaitMs >= 0)) {
            throw new Bert4jException("--max-batch-tokens, --max-concurrent, --max-inputs and --timeout-ms must be positive "
                    + "and --max-wait-ms at least 0");
        }
        Precision.requireAtMostOne(int8, bf16);
        KernelMode mode = KernelMode.parse(kernels);
        Path dir = model == null ? DefaultModel.ensure() : model;
        Bert bert = Bert.load(dir, mode);
        try {
            Precision.apply(bert.model(), int8, bf16);
        } catch (RuntimeException e) {
            bert.close();
            throw e;
        }
        BertServer.Options o = BertServer.Options.DEFAULTS.withHost(host).withPort(port).withMaxBatchTokens(maxBatchTokens)
                .withMaxWait(Duration.ofNanos((long) (maxWaitMs * 1e6))).withMaxConcurrent(maxConcurrent)
                .withAutoTruncate(autoTruncate).withTimeout(Duration.ofMillis(timeoutMs));
        o = o.withMaxInputs(maxInputs).withBatching(!noBatching);
        BertServer server;
        try {
            server = BertServer.startWithHeads(bert, dir.getFileName().toString(), o, mode);
        } catch (java.net.BindException e) {
            bert.close();
            throw new Bert4jException("cannot listen on " + host + ":" + port + ": " + e.getMessage());
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            spec.commandLine().getErr().println("bert4j: shutting down (finishing requests in flight)");
            spec.commandLine().getErr().flush();
            server.close();
            bert.close();
            stopped.countDown();
        }, "bert4j-serve-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        spec.commandLine().getErr().printf("bert4j: serving %s on http://%s:%d (kernels %s%s; embeddings%s)%n", dir, host,
                server.port(), mode.toString().toLowerCase(), int8 ? ", int8" : bf16 ? ", bf16" : "",
                server.headEndpoints().isEmpty() ? "" : ", " + String.join(", ", server.headEndpoints()));
        spec.commandLine().getErr().flush();
        stopped.await();
        return 0;
    }
}
