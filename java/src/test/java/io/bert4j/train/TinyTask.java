package io.bert4j.train;

import io.bert4j.io.HostTensor;
import io.bert4j.io.SafeTensors;
import io.bert4j.model.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.function.LongConsumer;

/**
 * A small real libtorch task for trainer tests: a 4 -> 8 -> 1 MLP (tanh, an elementwise
 * "LayerNorm" scale, optional dropout from libtorch's default generator) regressing a fixed
 * linear function of seeded Gaussian inputs with MSE. Parameter names follow the BERT
 * convention so both AdamW groups are exercised.
 */
final class TinyTask implements TrainingTask<TinyTask.Batch> {
    static final int IN = 4, HIDDEN = 8;

    record Batch(Tensor x, Tensor y, int rows) { // x [B, IN], y [B]
    }

    private final Map<String, Tensor> params = new LinkedHashMap<>();
    private final double dropout;
    private final Batch evalSet;
    private boolean training = true;
    int saveCalls;
    /** saveModel throws on this call (1-based); 0: never. */
    int failOnSaveCall;
    int stepCalls;
    /** step() returns a NaN loss on this call (1-based); 0: never. */
    int nanOnStepCall;
    /** Parameter values when the NaN loss was returned. */
    Map<String, float[]> atNan;

    TinyTask(long initSeed, double dropout) {
        this.dropout = dropout;
        Random r = new Random(initSeed);
        add("hidden.dense.weight", r, 0.5, HIDDEN, IN);
        add("hidden.dense.bias", r, 0.1, HIDDEN);
        add("hidden.LayerNorm.weight", r, 0.1, HIDDEN);
        try (NoGradGuard ng = new NoGradGuard()) {
            params.get("hidden.LayerNorm.weight").add_(new Scalar(1.0));
        }
        add("out.weight", r, 0.5, 1, HIDDEN);
        add("out.bias", r, 0.1, 1);
        Batch e = TinyData.batch(1_000_000, 32);
        e.x().retainReference();
        e.y().retainReference();
        evalSet = e;
    }

    private void add(String name, Random r, double scale, long... shape) {
        float[] v = new float[(int) HostTensor.numel(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextGaussian() * scale);
        }
        Tensor t = Tensors.fromFloats(v, shape);
        t.requires_grad_(true);
        t.retainReference();
        params.put(name, t);
    }

    @Override
    public Map<String, Tensor> parameters() {
        return params;
    }

    private Tensor loss(Batch b) {
        Tensor h = torch.tanh(torch.linear(b.x(), params.get("hidden.dense.weight"), params.get("hidden.dense.bias"))) // [B, H]
                .mul(params.get("hidden.LayerNorm.weight"));
        if (training && dropout > 0) {
            h = torch.dropout(h, dropout, true);
        }
        Tensor yHat = torch.linear(h, params.get("out.weight"), params.get("out.bias")).squeeze(-1); // [B]
        return yHat.sub(b.y()).pow(new Scalar(2)).mean();
    }

    @Override
    public StepResult step(Batch batch) {
        stepCalls++;
        Tensor l = loss(batch);
        if (stepCalls == nanOnStepCall) {
            atNan = snapshot();
            l = l.mul(new Scalar(Double.NaN));
        }
        return new StepResult(l, batch.rows(), Map.of("rows", (double) batch.rows()));
    }

    @Override
    public Map<String, Double> evaluate() {
        training = false;
        try {
            return Map.of(Trainer.EVAL_LOSS, loss(evalSet).item_double());
        } finally {
            training = true;
        }
    }

    @Override
    public void saveModel(Path dir) {
        saveCalls++;
        Map<String, HostTensor> out = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            params.forEach((n, t) -> out.put(n, Tensors.toHost(t.detach())));
        }
        SafeTensors.write(dir.resolve("model.safetensors"), out, Map.of("format", "pt"));
        if (saveCalls == failOnSaveCall) {
            throw new io.bert4j.Bert4jException("injected failure while saving (call " + saveCalls + ")");
        }
    }

    @Override
    public void loadModel(Path dir) {
        Map<String, HostTensor> in = SafeTensors.read(dir.resolve("model.safetensors"));
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            params.forEach((n, t) -> t.copy_(Tensors.toFloatTensor(in.get(n))));
        }
    }

    Map<String, float[]> snapshot() {
        Map<String, float[]> s = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            params.forEach((n, t) -> s.put(n, Tensors.toFloatArray(t.detach())));
        }
        return s;
    }

    @Override
    public void close() {
        params.values().forEach(Tensor::releaseReference);
        evalSet.x().releaseReference();
        evalSet.y().releaseReference();
    }

    /** Batches of consecutive rows; row k is a pure function of k, so the position is just the batch index. */
    static final class TinyData implements DataSource<Batch> {
        private static final double[] COEF = {0.7, -1.2, 0.4, 2.0};
        private final int batchSize;
        private long index;
        LongConsumer onNext = i -> { };

        TinyData(int batchSize, String position) {
            this.batchSize = batchSize;
            this.index = position == null ? 0 : Long.parseLong(position);
        }

        static Batch batch(long firstRow, int rows) {
            float[] x = new float[rows * IN];
            float[] y = new float[rows];
            for (int i = 0; i < rows; i++) {
                Random r = new Random(0x5EEDL * 1_000_003L + firstRow + i);
                double t = 0;
                for (int j = 0; j < IN; j++) {
                    x[i * IN + j] = (float) r.nextGaussian();
                    t += COEF[j] * x[i * IN + j];
                }
                y[i] = (float) (Math.sin(t) + 0.1 * r.nextGaussian());
            }
            return new Batch(Tensors.fromFloats(x, rows, IN), Tensors.fromFloats(y, rows), rows);
        }

        @Override
        public Batch next() {
            onNext.accept(index);
            Batch b = batch(index * batchSize, batchSize);
            index++;
            return b;
        }

        @Override
        public String position() {
            return Long.toString(index);
        }
    }
}
