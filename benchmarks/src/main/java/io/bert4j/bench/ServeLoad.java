package io.bert4j.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Load benchmark of {@code bert4j serve} on loopback: the real server in a child JVM, closed-loop
 * clients (each sends its next request as soon as the previous answer arrives), real short texts
 * (SST-2 sentences), bounded in time and count. For each mode (dynamic batching on, and the same
 * server with {@code --no-batching}) and each concurrency it reports throughput, p50/p99 latency
 * and the answers by HTTP status; then, with batching on at the highest concurrency, the server's
 * resident memory after the first 10,000 requests and after 100,000.
 *
 * <pre>
 * ServeLoad [--concurrency 1,8,64] [--seconds S] [--warmup S] [--rss-requests N] [--sst2 FILE] [--out FILE]
 *           [--server-jvm-opt=OPT]... [--server-arg=ARG]...
 * </pre>
 *
 * {@code --server-jvm-opt} (repeatable; also {@code --server-jvm-opt OPT}) adds a JVM option to
 * the server's command line, after the defaults, e.g.
 * {@code --server-jvm-opt=-Dbert4j.packedLinearMaxRows=0} to compare without the prepacked
 * small-batch kernel; {@code --server-arg} (repeatable) adds an argument to {@code bert4j serve},
 * e.g. {@code --server-arg=--max-wait-ms --server-arg=10} (applies to both modes). The report
 * lists both.
 */
public final class ServeLoad {
    private ServeLoad() {
    }

    /**
     * One measured level; serverCpu and clientCpu: CPU seconds the server process and this
     * (client) process used during it (both share the machine's cores on loopback).
     */
    record Level(String mode, int concurrency, long requests, double seconds, double p50, double p99,
                 Map<Integer, Long> statuses, double serverCpu, double clientCpu) {
        double throughput() {
            return requests / seconds;
        }
    }

    /** CPU seconds this JVM process has used. */
    static double ownCpuSeconds() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime() / 1e9;
    }

    public static void main(String[] args) throws Exception {
        int[] levels = {1, 8, 64};
        double seconds = 20;
        double warmup = 3;
        long rssRequests = 100_000;
        Path sst2 = Path.of(System.getProperty("bert4j.shared.data", "../shared/data"), "sst2", "train.tsv");
        Path out = null;
        List<String> serverJvmOpts = new ArrayList<>();
        List<String> serverArgs = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            if (args[i].startsWith("--server-jvm-opt=")) {
                serverJvmOpts.add(args[i].substring("--server-jvm-opt=".length()));
                continue;
            }
            if (args[i].startsWith("--server-arg=")) {
                serverArgs.add(args[i].substring("--server-arg=".length()));
                continue;
            }
            switch (args[i]) {
                case "--concurrency" -> { levels = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray(); i++; }
                case "--seconds" -> { seconds = Double.parseDouble(v); i++; }
                case "--warmup" -> { warmup = Double.parseDouble(v); i++; }
                case "--rss-requests" -> { rssRequests = Long.parseLong(v); i++; }
                case "--sst2" -> { sst2 = Path.of(v); i++; }
                case "--out" -> { out = Path.of(v); i++; }
                case "--server-jvm-opt" -> { serverJvmOpts.add(v); i++; }
                case "--server-arg" -> { serverArgs.add(v); i++; }
                default -> usage();
            }
        }
        for (String o : concat(serverJvmOpts, serverArgs)) {
            if (o == null || o.isBlank()) {
                usage();
            }
        }
        List<String> texts = Files.readAllLines(sst2, StandardCharsets.UTF_8).stream().skip(1)
                .map(l -> l.substring(0, l.indexOf('\t'))).filter(t -> !t.isBlank()).limit(20_000).toList();
        List<Level> results = new ArrayList<>();
        String rss = "";
        for (boolean batching : new boolean[] {true, false}) {
            try (Server s = Server.start(batching, serverJvmOpts, serverArgs)) {
                for (int c : levels) {
                    run(s, texts, c, warmup, Long.MAX_VALUE);                        // warm-up, not reported
                    Level l = run(s, texts, c, seconds, Long.MAX_VALUE);
                    Level named = new Level(batching ? "batching" : "no batching", l.concurrency, l.requests, l.seconds,
                            l.p50, l.p99, l.statuses, l.serverCpu, l.clientCpu);
                    results.add(named);
                    System.err.printf(Locale.ROOT, "%s, concurrency %d: %.1f req/s, p50 %.1f ms, p99 %.1f ms, statuses %s, "
                                    + "CPU ms per request server %.2f client %.2f%n",
                            named.mode, c, named.throughput(), named.p50, named.p99, named.statuses,
                            1e3 * named.serverCpu / named.requests, 1e3 * named.clientCpu / named.requests);
                }
                if (batching && rssRequests > 0) {
                    int c = levels[levels.length - 1];
                    long first = Math.min(10_000, rssRequests);
                    Level a = run(s, texts, c, 1e9, first);
                    long rss1 = s.rssKb();
                    Level b = run(s, texts, c, 1e9, rssRequests - first);
                    long rss2 = s.rssKb();
                    rss = String.format(Locale.ROOT, "resident memory of the server (batching, concurrency %d): %.1f MB after %,d requests, "
                                    + "%.1f MB after %,d (%+.1f%%); statuses %s then %s",
                            c, rss1 / 1024.0, first, rss2 / 1024.0, rssRequests, 100.0 * (rss2 - rss1) / rss1, a.statuses, b.statuses);
                    System.err.println(rss);
                }
            }
        }
        String md = markdown(results, rss, seconds, serverJvmOpts, serverArgs);
        System.out.println(md);
        if (out != null) {
            Files.writeString(out, md, StandardCharsets.UTF_8);
        }
    }

    private static void usage() {
        System.err.println("usage: ServeLoad [--concurrency 1,8,64] [--seconds S] [--warmup S] "
                + "[--rss-requests N] [--sst2 FILE] [--out FILE] [--server-jvm-opt=OPT]... [--server-arg=ARG]...\n"
                + "  --server-jvm-opt=OPT  a JVM option for the server's child JVM (repeatable), "
                + "e.g. --server-jvm-opt=-Dbert4j.packedLinearMaxRows=0\n"
                + "  --server-arg=ARG      an argument for bert4j serve (repeatable), "
                + "e.g. --server-arg=--max-wait-ms --server-arg=10");
        System.exit(2);
    }

    /** Closed-loop clients for {@code seconds} or {@code maxRequests}, whichever ends first. */
    static Level run(Server s, List<String> texts, int concurrency, double seconds, long maxRequests) throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
        URI uri = URI.create("http://127.0.0.1:" + s.port + "/embed");
        AtomicInteger next = new AtomicInteger();
        AtomicLong issued = new AtomicLong();
        Map<Integer, Long> statuses = new ConcurrentHashMap<>();
        List<long[]> lat = new ArrayList<>();
        long end = System.nanoTime() + (long) (seconds * 1e9);
        Thread[] workers = new Thread[concurrency];
        double server0 = s.cpuSeconds(), client0 = ownCpuSeconds();
        long t0 = System.nanoTime();
        for (int w = 0; w < concurrency; w++) {
            long[] mine = new long[1 << 20];
            lat.add(mine);
            int slot = w;
            workers[w] = new Thread(() -> {
                int n = 0;
                while (System.nanoTime() < end && issued.incrementAndGet() <= maxRequests) {
                    String text = texts.get(Math.floorMod(next.getAndIncrement(), texts.size()));
                    String body = "{\"inputs\": " + quote(text) + "}";
                    long a = System.nanoTime();
                    int status;
                    try {
                        status = client.send(HttpRequest.newBuilder(uri).header("Content-Type", "application/json")
                                .POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                                HttpResponse.BodyHandlers.discarding()).statusCode();
                    } catch (IOException e) {
                        status = -1;
                    } catch (InterruptedException e) {
                        return;
                    }
                    if (n < mine.length - 1) {
                        mine[++n] = System.nanoTime() - a;
                    }
                    mine[0] = n;
                    statuses.merge(status, 1L, Long::sum);
                }
            }, "load-" + slot);
            workers[w].start();
        }
        for (Thread t : workers) {
            t.join();
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        double serverCpu = s.cpuSeconds() - server0, clientCpu = ownCpuSeconds() - client0;
        int total = 0;
        for (long[] l : lat) {
            total += (int) l[0];
        }
        long[] all = new long[total];
        int k = 0;
        for (long[] l : lat) {
            System.arraycopy(l, 1, all, k, (int) l[0]);
            k += (int) l[0];
        }
        Arrays.sort(all);
        double p50 = all.length == 0 ? Double.NaN : all[(int) (0.50 * (all.length - 1))] / 1e6;
        double p99 = all.length == 0 ? Double.NaN : all[(int) (0.99 * (all.length - 1))] / 1e6;
        return new Level("", concurrency, total, secs, p50, p99, new TreeMap<>(statuses), serverCpu, clientCpu);
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    static String markdown(List<Level> results, String rss, double seconds, List<String> serverJvmOpts,
                           List<String> serverArgs) {
        StringBuilder sb = new StringBuilder();
        sb.append("### bert4j serve under load (loopback, closed-loop clients, SST-2 sentences)\n\n");
        sb.append("- date: ").append(ZonedDateTime.now()).append('\n');
        sb.append("- machine: ").append(Runtime.getRuntime().availableProcessors()).append(" cpus, ")
                .append(cpuModel()).append('\n');
        if (!serverJvmOpts.isEmpty()) {
            sb.append("- server JVM options added: ").append(String.join(" ", serverJvmOpts)).append('\n');
        }
        if (!serverArgs.isEmpty()) {
            sb.append("- bert4j serve arguments added: ").append(String.join(" ", serverArgs)).append('\n');
        }
        sb.append("- each level: ").append(seconds).append(" s after a warm-up; one text per request (POST /embed)\n\n");
        sb.append("| mode | concurrency | requests | req/s | p50 ms | p99 ms | statuses | server CPU ms / request "
                + "| client CPU ms / request |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for (Level l : results) {
            sb.append(String.format(Locale.ROOT, "| %s | %d | %d | %.1f | %.1f | %.1f | %s | %.2f | %.2f |%n", l.mode,
                    l.concurrency, l.requests, l.throughput(), l.p50, l.p99, l.statuses, 1e3 * l.serverCpu / l.requests,
                    1e3 * l.clientCpu / l.requests));
        }
        sb.append('\n');
        for (Level on : results) {
            if (!on.mode.equals("batching")) {
                continue;
            }
            for (Level off : results) {
                if (off.mode.equals("no batching") && off.concurrency == on.concurrency) {
                    sb.append(String.format(Locale.ROOT, "- concurrency %d: batching / no batching throughput = %.2fx%n",
                            on.concurrency, on.throughput() / off.throughput()));
                }
            }
        }
        if (!rss.isEmpty()) {
            sb.append("- ").append(rss).append('\n');
        }
        return sb.toString();
    }

    static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException e) {
            // not Linux
        }
        return "unknown CPU";
    }

    /** {@code bert4j serve} in a child JVM on a free port, stopped with SIGTERM. */
    static final class Server implements AutoCloseable {
        final Process process;
        final int port;

        private Server(Process process, int port) {
            this.process = process;
            this.port = port;
        }

        /**
         * @param jvmOpts options for the child JVM, after the defaults (so a later -Xmx wins)
         * @param serveArgs arguments for {@code bert4j serve}, after the defaults (a later value wins)
         */
        static Server start(boolean batching, List<String> jvmOpts, List<String> serveArgs) throws Exception {
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx2g"));
            cmd.addAll(jvmOpts);
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.bert4j.cli.Main", "serve", "--port", "0",
                    "--max-concurrent", "1024"));
            if (!batching) {
                cmd.add("--no-batching");
            }
            cmd.addAll(serveArgs);
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.environment().putIfAbsent("OMP_WAIT_POLICY", "passive");
            pb.redirectOutput(ProcessBuilder.Redirect.DISCARD);
            Process p = pb.start();
            BufferedReader err = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8));
            Pattern serving = Pattern.compile("on http://[^:]+:(\\d+)");
            String line;
            while ((line = err.readLine()) != null) {
                System.err.println("  server: " + line);
                Matcher m = serving.matcher(line);
                if (m.find()) {
                    int port = Integer.parseInt(m.group(1));
                    Thread drain = new Thread(() -> {
                        try {
                            String l;
                            while ((l = err.readLine()) != null) {
                                System.err.println("  server: " + l);
                            }
                        } catch (IOException e) {
                            // the server exited
                        }
                    });
                    drain.setDaemon(true);
                    drain.start();
                    return new Server(p, port);
                }
            }
            throw new IllegalStateException("the server exited before listening (status " + p.waitFor() + ")");
        }

        /** CPU seconds (user + system) the server process has used, from /proc/PID/stat. */
        double cpuSeconds() throws IOException {
            String stat = Files.readString(Path.of("/proc/" + process.pid() + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            // after "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based) -> indices 11, 12
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0; // USER_HZ = 100 on Linux
        }

        long rssKb() throws IOException {
            for (String l : Files.readAllLines(Path.of("/proc/" + process.pid() + "/status"))) {
                if (l.startsWith("VmRSS:")) {
                    return Long.parseLong(l.replaceAll("\\D", ""));
                }
            }
            throw new IOException("no VmRSS for pid " + process.pid());
        }

        @Override
        public void close() throws Exception {
            process.destroy(); // SIGTERM: the server finishes requests in flight and exits
            if (!process.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
    }
}
