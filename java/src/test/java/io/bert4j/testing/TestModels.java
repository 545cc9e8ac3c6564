package io.bert4j.testing;

import io.bert4j.DefaultModel;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Real models for tests: the default MiniLM-L6 folder, imported once per build into
 * {@code target/bert4j-test-home} (not the user's cache), and the ONNX file it came from, for
 * the independent reference runtime.
 */
public final class TestModels {
    private TestModels() {
    }

    private static final Path HOME = Path.of("target", "bert4j-test-home").toAbsolutePath();

    public static synchronized Path defaultModelDir() {
        System.setProperty("bert4j.home", HOME.toString());
        return DefaultModel.ensure();
    }

    public static synchronized Path onnxFile() {
        return extract("/all-minilm-l6-v2.onnx", "all-minilm-l6-v2.onnx");
    }

    public static synchronized Path tokenizerJson() {
        return extract("/all-minilm-l6-v2-tokenizer.json", "all-minilm-l6-v2-tokenizer.json");
    }

    private static Path extract(String resource, String name) {
        Path p = HOME.resolve("resources").resolve(name);
        if (Files.isRegularFile(p)) {
            return p;
        }
        try (InputStream in = TestModels.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException(resource + " is not on the test classpath");
            }
            Files.createDirectories(p.getParent());
            Path tmp = Files.createTempFile(p.getParent(), name, ".tmp");
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, p, StandardCopyOption.ATOMIC_MOVE);
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The shared data folder (../shared/data), or null when this checkout has none. */
    public static Path sharedData() {
        String prop = System.getProperty("bert4j.shared.data");
        Path p = prop != null ? Path.of(prop) : Path.of("..", "..", "shared", "data");
        return Files.isDirectory(p) ? p.toAbsolutePath().normalize() : null;
    }
}
