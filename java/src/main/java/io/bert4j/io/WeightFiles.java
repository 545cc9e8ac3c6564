package io.bert4j.io;

import io.bert4j.Bert4jException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** Finds and loads the weights in a Hugging Face model folder, whichever format they are in. */
public final class WeightFiles {

    public static final String PYTORCH_BIN = "pytorch_model.bin";
    public static final String PYTORCH_BIN_INDEX = "pytorch_model.bin.index.json";

    /** The file names looked for, in order of preference (safetensors first: safe and mappable). */
    public static final List<String> CANDIDATES = List.of(
            ShardedCheckpoint.SAFETENSORS_FILE, ShardedCheckpoint.SAFETENSORS_INDEX, PYTORCH_BIN, PYTORCH_BIN_INDEX);

    private WeightFiles() {
    }

    /** Loads the first of {@link #CANDIDATES} present in {@code modelDir}. */
    public static Map<String, HostTensor> load(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            throw new Bert4jException(modelDir + ": not a folder (expected a Hugging Face model folder)");
        }
        for (String name : CANDIDATES) {
            Path p = modelDir.resolve(name);
            if (Files.isRegularFile(p)) {
                return switch (name) {
                    case ShardedCheckpoint.SAFETENSORS_FILE -> SafeTensors.read(p);
                    case ShardedCheckpoint.SAFETENSORS_INDEX -> ShardedCheckpoint.readSafeTensors(p);
                    case PYTORCH_BIN -> PyTorchBin.read(p);
                    default -> ShardedCheckpoint.readPyTorchBin(p);
                };
            }
        }
        throw new Bert4jException(modelDir + ": no model weights found; looked for " + String.join(", ", CANDIDATES));
    }
}
