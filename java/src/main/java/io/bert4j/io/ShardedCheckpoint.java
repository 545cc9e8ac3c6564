package io.bert4j.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Hugging Face sharded checkpoints: an index ({@code model.safetensors.index.json} or
 * {@code pytorch_model.bin.index.json}, {@code {"metadata": {...}, "weight_map": {name: shard}}})
 * beside the shard files it names.
 */
public final class ShardedCheckpoint {

    public static final String SAFETENSORS_FILE = "model.safetensors";
    public static final String SAFETENSORS_INDEX = "model.safetensors.index.json";

    /** HF's shard names, e.g. {@code model-00001-of-00003.safetensors}. */
    private static final Pattern SHARD_NAME = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");

    private ShardedCheckpoint() {
    }

    /** Loads every shard of a safetensors index. */
    public static Map<String, HostTensor> readSafeTensors(Path indexFile) {
        return read(indexFile, SafeTensors::read);
    }

    /** Loads every shard of a {@code pytorch_model.bin.index.json}. */
    public static Map<String, HostTensor> readPyTorchBin(Path indexFile) {
        return read(indexFile, PyTorchBin::read);
    }

    /**
     * Reads the index, checks every shard name stays inside the index's folder, reports all
     * missing shard files at once, loads each shard with {@code shardReader} and checks each
     * tensor the index assigns to a shard is really there. Tensors come back shard by shard.
     */
    public static Map<String, HostTensor> read(Path indexFile, Function<Path, Map<String, HostTensor>> shardReader) {
        Map<String, String> weightMap = readWeightMap(indexFile);
        Path dir = indexFile.toAbsolutePath().getParent();
        // shard -> tensors the index says it holds, in index order
        Map<String, List<String>> byShard = new LinkedHashMap<>();
        weightMap.forEach((tensor, shard) -> byShard.computeIfAbsent(shard, s -> new ArrayList<>()).add(tensor));

        List<String> missing = new ArrayList<>();
        for (String shard : byShard.keySet()) {
            if (!Files.isRegularFile(resolveShard(dir, shard, indexFile))) {
                missing.add(shard);
            }
        }
        if (!missing.isEmpty()) {
            throw new Bert4jException(indexFile + ": missing shard file" + (missing.size() > 1 ? "s " : " ")
                    + String.join(", ", missing) + " in " + dir);
        }

        Map<String, HostTensor> out = new LinkedHashMap<>();
        Map<String, String> seenIn = new LinkedHashMap<>();
        for (Map.Entry<String, List<String>> e : byShard.entrySet()) {
            String shard = e.getKey();
            Map<String, HostTensor> tensors = shardReader.apply(resolveShard(dir, shard, indexFile));
            for (String name : e.getValue()) {
                if (!tensors.containsKey(name)) {
                    throw new Bert4jException(indexFile + ": weight_map puts tensor \"" + name + "\" in " + shard
                            + " but that shard does not contain it");
                }
            }
            for (Map.Entry<String, HostTensor> t : tensors.entrySet()) {
                String previous = seenIn.putIfAbsent(t.getKey(), shard);
                if (previous != null) {
                    throw new Bert4jException(indexFile + ": tensor \"" + t.getKey() + "\" appears in both "
                            + previous + " and " + shard);
                }
                out.put(t.getKey(), t.getValue());
            }
        }
        return out;
    }

    /** The index's weight_map (tensor name to shard file name), validated. */
    public static Map<String, String> readWeightMap(Path indexFile) {
        JsonNode root;
        try {
            root = SafeTensors.JSON.readTree(Files.readString(indexFile));
        } catch (JsonProcessingException ex) {
            throw new Bert4jException(indexFile + ": not valid JSON: " + ex.getOriginalMessage());
        } catch (IOException ex) {
            throw new Bert4jException(indexFile + ": cannot read index: " + ex, ex);
        }
        if (root == null || !root.isObject()) {
            throw new Bert4jException(indexFile + ": index must be a JSON object");
        }
        JsonNode meta = root.get("metadata");
        if (meta != null && !meta.isObject() && !meta.isNull()) {
            throw new Bert4jException(indexFile + ": \"metadata\" must be an object");
        }
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new Bert4jException(indexFile + ": \"weight_map\" must be an object of tensor name to shard file");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new Bert4jException(indexFile + ": weight_map entry for \"" + e.getKey() + "\" must be a file name");
            }
            checkShardName(e.getValue().textValue(), indexFile);
            out.put(e.getKey(), e.getValue().textValue());
        }
        return out;
    }

    /** Shard names come from an untrusted file: they may not point outside the checkpoint folder. */
    private static void checkShardName(String shard, Path indexFile) {
        boolean bad = shard.isEmpty() || shard.startsWith("/") || shard.startsWith("\\")
                || shard.indexOf('\0') >= 0 || shard.matches("^[A-Za-z]:.*");
        for (String part : shard.split("[/\\\\]")) {
            bad |= part.equals("..");
        }
        if (bad) {
            throw new Bert4jException(indexFile + ": shard name \"" + shard
                    + "\" must be a relative path inside the checkpoint folder");
        }
    }

    private static Path resolveShard(Path dir, String shard, Path indexFile) {
        Path p = dir.resolve(shard).normalize();
        if (!p.startsWith(dir)) {
            throw new Bert4jException(indexFile + ": shard name \"" + shard + "\" escapes " + dir);
        }
        return p;
    }

    /**
     * Saves like Hugging Face's {@code save_pretrained}: one {@code model.safetensors} when the
     * tensors fit in {@code maxShardBytes}, otherwise {@code model-0000i-of-0000n.safetensors}
     * shards (tensors in name order, a new shard whenever the next tensor would overflow the
     * current one; a tensor larger than the limit gets a shard of its own) plus
     * {@code model.safetensors.index.json}. Files of an earlier save that the new layout no
     * longer uses are removed afterwards, so a loader never picks up stale weights.
     */
    public static void write(Path dir, Map<String, HostTensor> tensors, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new Bert4jException(dir + ": maxShardBytes must be positive, got " + maxShardBytes);
        }
        Map<String, HostTensor> sorted = new TreeMap<>(tensors);
        List<Map<String, HostTensor>> shards = new ArrayList<>();
        Map<String, HostTensor> current = new LinkedHashMap<>();
        long currentBytes = 0;
        long totalBytes = 0;
        for (Map.Entry<String, HostTensor> e : sorted.entrySet()) {
            long size = e.getValue().data().remaining();
            if (!current.isEmpty() && currentBytes + size > maxShardBytes) {
                shards.add(current);
                current = new LinkedHashMap<>();
                currentBytes = 0;
            }
            current.put(e.getKey(), e.getValue());
            currentBytes += size;
            totalBytes += size;
        }
        shards.add(current);

        Map<String, String> fileMeta = Map.of("format", "pt");
        Set<String> written = new LinkedHashSet<>();
        if (shards.size() == 1) {
            SafeTensors.write(dir.resolve(SAFETENSORS_FILE), shards.get(0), fileMeta);
            written.add(SAFETENSORS_FILE);
        } else {
            ObjectNode index = SafeTensors.JSON.createObjectNode();
            index.putObject("metadata").put("total_size", totalBytes);
            ObjectNode weightMap = index.putObject("weight_map");
            for (int i = 0; i < shards.size(); i++) {
                String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
                SafeTensors.write(dir.resolve(name), shards.get(i), fileMeta);
                written.add(name);
                for (String tensor : shards.get(i).keySet()) {
                    weightMap.put(tensor, name);
                }
            }
            try {
                // The index goes last: until it lands, a loader still sees the previous checkpoint's index.
                AtomicFiles.writeString(dir.resolve(SAFETENSORS_INDEX),
                        SafeTensors.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(index) + "\n");
            } catch (JsonProcessingException ex) {
                throw new Bert4jException(dir + ": cannot encode " + SAFETENSORS_INDEX, ex);
            }
            written.add(SAFETENSORS_INDEX);
        }
        removeStale(dir, written);
    }

    private static void removeStale(Path dir, Set<String> keep) {
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String name = p.getFileName().toString();
                boolean ours = name.equals(SAFETENSORS_FILE) || name.equals(SAFETENSORS_INDEX)
                        || SHARD_NAME.matcher(name).matches();
                if (ours && !keep.contains(name)) {
                    Files.deleteIfExists(p);
                }
            }
        } catch (IOException ex) {
            throw new Bert4jException(dir + ": saved, but cannot remove stale weight files: " + ex, ex);
        }
    }
}
