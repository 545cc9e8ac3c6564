package io.bert4j.model;

import io.bert4j.config.BertConfig;
import io.bert4j.io.HostTensor;
import io.bert4j.kernels.KernelMode;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What the task models ({@link BertForSequenceClassification}, {@link BertForTokenClassification},
 * {@link BertForQuestionAnswering}) share: a BERT encoder and a head, saved and loaded under Hugging
 * Face's keys, trained through {@link #parameters()}, switched between kernels and between
 * training and eval mode.
 *
 * @param <T> the task model itself (what {@link #train(boolean)} returns)
 */
public abstract sealed class BertTaskModel<T extends BertTaskModel<T>> implements AutoCloseable
        permits BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering {
    static {
        io.bert4j.NativeSetup.ensure(); // before anything loads libtorch
    }


    final TaskModel m;

    BertTaskModel(TaskModel m) {
        this.m = m;
    }

    /** The config, with {@code id2label} and {@code problem_type} as this model uses them. */
    public BertConfig config() {
        return m.config;
    }

    /** The weights under the model's Hugging Face checkpoint keys (float32 host copies). */
    public Map<String, HostTensor> stateDict() {
        return m.stateDict();
    }

    /**
     * Writes a HF folder: config.json (the model's {@code architectures}, and {@code id2label},
     * {@code label2id}, {@code problem_type} where the task has them), model.safetensors with HF's
     * keys, and the tokenizer files when {@code tokenizer} is not null. Atomic: built beside
     * {@code dir}, then renamed; an existing model folder there is replaced.
     */
    public void save(Path dir, BertTokenizer tokenizer) {
        m.save(dir, config(), tokenizer);
    }

    /** The encoder (parameters named without the {@code bert.} prefix). */
    public BertModel encoder() {
        return m.encoder;
    }

    /** What loading noticed: unused weights, newly initialised ones. */
    public List<String> warnings() {
        return m.warnings();
    }

    /** Checkpoint keys that were not in the source and were initialised (HF's "newly initialized" list). */
    public List<String> newlyInitialized() {
        return m.newlyInitialized();
    }

    /** Every parameter under its checkpoint key; live tensors for optimizers, do not close them. */
    public Map<String, Tensor> parameters() {
        return m.parameters();
    }

    public void setTrainable(boolean trainable) {
        m.setTrainable(trainable);
    }

    /** Training mode (dropout on) or eval mode (the default). Returns this. */
    @SuppressWarnings("unchecked")
    public T train(boolean on) {
        m.encoder.train(on);
        return (T) this;
    }

    /** Restarts all dropout randomness (encoder and head) from {@code seed}. */
    public void setDropoutSeed(long seed) {
        m.setDropoutSeed(seed);
    }

    public void setKernels(KernelMode mode) {
        m.setKernels(mode);
    }

    public KernelMode kernels() {
        return m.encoder.kernels();
    }

    @Override
    public void close() {
        m.close();
    }
}
