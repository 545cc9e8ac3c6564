package io.bert4j.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/** Facts about the machine and the checkout that a results table must carry to be comparable. */
final class Machine {
    private Machine() {
    }

    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    static String cpuModel() {
        String v = cpuinfo("model name");
        return v != null ? v : System.getProperty("os.arch");
    }

    /**
     * The SIMD flags that decide which GEMM paths libtorch (oneDNN/MKL), FBGEMM and ORT take:
     * AVX-512 and VNNI change the int8 results most, so they are listed whether present or not.
     */
    static String simdFlags() {
        String flags = cpuinfo("flags");
        if (flags == null) {
            return "flags unknown";
        }
        Set<String> have = Set.of(flags.split("\\s+"));
        List<String> out = new ArrayList<>();
        for (String f : new String[]{"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"}) {
            out.add(f + (have.contains(f) ? " yes" : " no"));
        }
        return String.join(", ", out);
    }

    private static String cpuinfo(String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith(key)) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException e) {
            // not Linux: the caller says "unknown"
        }
        return null;
    }

    static String gitCommit() {
        String prop = System.getProperty("bench.commit");
        if (prop != null && !prop.isBlank()) {
            return prop;
        }
        try {
            String head = run("git", "rev-parse", "--short=12", "HEAD");
            String dirty = run("git", "status", "--porcelain", "--untracked-files=no");
            return head.isEmpty() ? "unknown" : head + (dirty.isEmpty() ? "" : " (with uncommitted changes)");
        } catch (IOException | InterruptedException e) {
            return "unknown";
        }
    }

    /** A /proc/self/status field in kB (VmHWM: peak resident set; VmRSS: now), or -1 off Linux. */
    static long procStatusKb(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.substring(field.length() + 1).trim().split("\\s+")[0]);
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return -1;
    }

    /** Whether a shared library whose file name contains {@code name} is mapped into this process. */
    static boolean mapped(String name) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
                int slash = line.lastIndexOf('/');
                if (slash >= 0 && line.substring(slash + 1).contains(name)) {
                    return true;
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: report not mapped
        }
        return false;
    }

    private static String run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String s = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        return p.waitFor() == 0 ? s : "";
    }
}
