package io.bert4j.io;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.pipeline.SentenceTransformerConfig;
import io.bert4j.tokenize.BertTokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.Map;
import java.util.stream.Stream;

/** Writes a Hugging Face model folder: model.safetensors, config.json, tokenizer files, sentence-transformers config. */
public final class ModelFolder {
    private ModelFolder() {
    }

    /** Shards above this size, as HF's default {@code max_shard_size} of 5 GB. */
    public static final long MAX_SHARD_BYTES = 5L * 1000 * 1000 * 1000;

    /**
     * Writes every file of the folder; each file is replaced atomically, and config.json goes
     * last, so a folder whose config.json is present has all its weights.
     */
    public static void write(Path dir, BertConfig config, Map<String, HostTensor> weights,
                             BertTokenizer tokenizer, SentenceTransformerConfig st) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new Bert4jException(dir + ": cannot create model folder: " + e.getMessage(), e);
        }
        SafeTensors.write(dir.resolve("model.safetensors"), weights, Map.of("format", "pt"));
        if (tokenizer != null) {
            tokenizer.save(dir);
        }
        if (st != null) {
            st.write(dir, config.hiddenSize());
        }
        config.write(dir.resolve("config.json"));
    }

    /**
     * Builds a folder somewhere private, then renames it to {@code target} in one step, so that
     * a crash or a concurrent builder never leaves a half-written folder at {@code target}. If
     * another process finished first, its folder is kept and ours is discarded.
     */
    public static void createAtomically(Path target, java.util.function.Consumer<Path> builder) {
        Path parent = target.toAbsolutePath().getParent();
        Path tmp;
        try {
            Files.createDirectories(parent);
            tmp = Files.createTempDirectory(parent, "." + target.getFileName() + ".partial-");
        } catch (IOException e) {
            throw new Bert4jException(target + ": cannot create folder: " + e.getMessage(), e);
        }
        try {
            builder.accept(tmp);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (java.nio.file.FileAlreadyExistsException | java.nio.file.DirectoryNotEmptyException e) {
                if (!Files.isRegularFile(target.resolve("config.json"))) {
                    throw new Bert4jException(target + " exists and is not a model folder; remove it or choose another output");
                }
            }
        } catch (IOException e) {
            throw new Bert4jException(target + ": cannot move the finished folder into place: " + e.getMessage(), e);
        } finally {
            deleteRecursivelyQuietly(tmp);
        }
    }

    public static void deleteRecursivelyQuietly(Path p) {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            s.sorted(Comparator.reverseOrder()).forEach(f -> {
                try {
                    Files.deleteIfExists(f);
                } catch (IOException ignored) {
                    // best effort: a leftover temp folder is harmless
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }
}
