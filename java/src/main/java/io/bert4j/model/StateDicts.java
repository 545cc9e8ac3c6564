package io.bert4j.model;

import io.bert4j.io.HostTensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Key handling between Hugging Face checkpoints and bert4j modules, the way
 * {@code PreTrainedModel.from_pretrained} does it: task checkpoints prefix the encoder with
 * {@code bert.}; old TF-converted checkpoints call LayerNorm parameters {@code gamma}/{@code beta};
 * {@code embeddings.position_ids} is a buffer, not a weight.
 */
public final class StateDicts {
    private StateDicts() {
    }

    public static final String BASE_PREFIX = "bert.";

    /** Keys that are buffers rather than weights, dropped silently as HF does. */
    private static final Set<String> IGNORED = Set.of("embeddings.position_ids");

    /** The result of selecting a BertModel's weights from a checkpoint. */
    public record Selection(Map<String, HostTensor> weights, List<String> unexpected) {
    }

    /** Renames legacy LayerNorm names (gamma → weight, beta → bias). */
    public static String modernName(String key) {
        if (key.endsWith(".gamma")) {
            return key.substring(0, key.length() - 6) + ".weight";
        }
        if (key.endsWith(".beta")) {
            return key.substring(0, key.length() - 5) + ".bias";
        }
        return key;
    }

    /**
     * The encoder's weights under BertModel names. Keys with the {@code bert.} prefix are
     * stripped of it when the checkpoint is a task model; everything that is not part of the
     * encoder (heads such as {@code cls.*}, {@code classifier.*}) is returned as unexpected.
     */
    public static Selection forBertModel(Map<String, HostTensor> checkpoint) {
        boolean prefixed = checkpoint.keySet().stream().anyMatch(k -> k.startsWith(BASE_PREFIX));
        Map<String, HostTensor> out = new LinkedHashMap<>();
        List<String> unexpected = new ArrayList<>();
        for (Map.Entry<String, HostTensor> e : checkpoint.entrySet()) {
            String key = modernName(e.getKey());
            if (prefixed) {
                if (!key.startsWith(BASE_PREFIX)) {
                    unexpected.add(e.getKey());
                    continue;
                }
                key = key.substring(BASE_PREFIX.length());
            }
            String bare = key.endsWith(".position_ids") ? "embeddings.position_ids" : key;
            if (IGNORED.contains(bare)) {
                continue;
            }
            if (key.startsWith("embeddings.") || key.startsWith("encoder.") || key.startsWith("pooler.")) {
                out.put(key, e.getValue());
            } else {
                unexpected.add(e.getKey());
            }
        }
        return new Selection(out, unexpected);
    }
}
