package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.model.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/** The fine-tuning tasks' shared {@code loadModel}: weights of a saved folder copied into live parameters. */
final class ModelWeights {
    private ModelWeights() {
    }

    /**
     * Copies {@code dir/model.safetensors} into {@code params} in place (same tensors, so the
     * optimizer's per-name state stays attached); every parameter must be there with its shape.
     */
    static void restore(Path dir, Map<String, Tensor> params) {
        Map<String, HostTensor> saved = SafeTensors.read(dir.resolve("model.safetensors"));
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : params.entrySet()) {
                HostTensor h = saved.get(e.getKey());
                if (h == null || !Arrays.equals(h.shape(), Tensors.shape(e.getValue()))) {
                    throw new Bert4jException(dir + ": the checkpoint does not fit this model (" + e.getKey()
                            + (h == null ? " is missing" : " has shape " + Arrays.toString(h.shape())) + ")");
                }
                e.getValue().copy_(Tensors.toFloatTensor(h));
            }
        }
    }
}
