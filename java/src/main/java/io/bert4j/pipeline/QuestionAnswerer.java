package io.bert4j.pipeline;

import io.bert4j.Bert4jException;
import io.bert4j.data.QaAnswers;
import io.bert4j.data.QaFeatures;
import io.bert4j.data.Squad;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForQuestionAnswering;
import io.bert4j.model.Tensors;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Extractive question answering with a {@link BertForQuestionAnswering} folder: the answer to
 * a question is the span of the context with the best start + end logit, found as run_qa
 * does ({@link QaFeatures} windows with a doc stride over a long context, {@link QaAnswers}
 * n-best search over all windows with a maximum answer length).
 *
 * <pre>{@code
 * try (QuestionAnswerer qa = QuestionAnswerer.load(Path.of("squad-model"))) {
 *     QuestionAnswerer.Answer a = qa.answer("Who wrote it?", "It was written by Ada in 1843.");
 *     // a.answer() "Ada", a.start() 18, a.end() 21: chars of the context
 * }
 * }</pre>
 *
 * <p>The windows of all questions of a call are run together, {@link Options#batchSize} at a
 * time, each batch padded only to its longest window. Thread-safe when the model is in eval
 * mode (as {@link #load} leaves it).
 */
public final class QuestionAnswerer implements AutoCloseable {

    /**
     * One answer. {@code start}/{@code end} are UTF-16 char offsets into the context
     * ({@code context.substring(start, end).equals(answer)}); {@code score} is the answer's
     * probability among the n-best candidates (softmax of start + end logits, run_qa's
     * "probability"), summed over the windows that give the same span. When no span passes the rules (e.g. an empty context) the answer is
     * empty, at 0, with score 0.
     */
    public record Answer(String answer, int start, int end, double score) {
    }

    /** A question about a context, for the batch method. */
    public record Query(String question, String context) {
    }

    /**
     * Inference settings; defaults are run_qa's.
     *
     * @param maxLength       tokens per window, special tokens included (capped at the model's
     *                        max_position_embeddings, as run_qa caps it at the tokenizer's limit)
     * @param docStride       context tokens shared by neighbouring windows
     * @param nBest           start and end candidates per window, and candidates kept
     * @param maxAnswerLength longest answer in tokens
     * @param batchSize       windows per forward pass
     */
    public record Options(int maxLength, int docStride, int nBest, int maxAnswerLength, int batchSize) {
        public static final Options DEFAULTS = new Options(384, 128, 20, 30, 32);

        public Options {
            positive("max length", maxLength);
            if (docStride < 0) {
                throw new Bert4jException("QA doc stride must be >= 0, got " + docStride);
            }
            positive("n-best size", nBest);
            positive("max answer length", maxAnswerLength);
            positive("batch size", batchSize);
        }

        private static void positive(String what, int v) {
            if (v < 1) {
                throw new Bert4jException("QA " + what + " must be >= 1, got " + v);
            }
        }

        public Options withMaxLength(int v) {
            return new Options(v, docStride, nBest, maxAnswerLength, batchSize);
        }

        public Options withDocStride(int v) {
            return new Options(maxLength, v, nBest, maxAnswerLength, batchSize);
        }

        public Options withNBest(int v) {
            return new Options(maxLength, docStride, v, maxAnswerLength, batchSize);
        }

        public Options withMaxAnswerLength(int v) {
            return new Options(maxLength, docStride, nBest, v, batchSize);
        }

        public Options withBatchSize(int v) {
            return new Options(maxLength, docStride, nBest, maxAnswerLength, v);
        }
    }

    private final BertForQuestionAnswering model;
    private final BertTokenizer tokenizer;
    private final Options options;
    private final boolean owns;

    /** Wraps a model and tokenizer the caller keeps owning (close them yourself). */
    public QuestionAnswerer(BertForQuestionAnswering model, BertTokenizer tokenizer, Options options) {
        this(model, tokenizer, options, false);
    }

    private QuestionAnswerer(BertForQuestionAnswering model, BertTokenizer tokenizer, Options options, boolean owns) {
        if (model == null || tokenizer == null || options == null) {
            throw new IllegalArgumentException("model, tokenizer and options are required");
        }
        this.model = model;
        this.tokenizer = tokenizer;
        this.options = options;
        this.owns = owns;
    }

    /** Loads a question-answering folder with the fused kernels and run_qa's defaults. */
    public static QuestionAnswerer load(Path dir) {
        return load(dir, KernelMode.FUSED, Options.DEFAULTS);
    }

    /** Loads a question-answering folder and its tokenizer (eval mode); closing closes both. */
    public static QuestionAnswerer load(Path dir, KernelMode kernels, Options options) {
        BertForQuestionAnswering model = BertForQuestionAnswering.load(dir);
        try {
            BertTokenizer tok = BertTokenizer.load(dir);
            if (tok.vocabSize() > model.config().vocabSize()) {
                tok.close();
                throw new Bert4jException(dir + ": the tokenizer has " + tok.vocabSize()
                        + " tokens but config.json says vocab_size " + model.config().vocabSize());
            }
            model.setKernels(kernels);
            model.train(false);
            return new QuestionAnswerer(model, tok, options, true);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    public BertForQuestionAnswering model() {
        return model;
    }

    public BertTokenizer tokenizer() {
        return tokenizer;
    }

    public Options options() {
        return options;
    }

    /** The window length used: {@link Options#maxLength} capped at the model's position limit. */
    public int maxLength() {
        return Math.min(options.maxLength(), model.config().maxPositionEmbeddings());
    }

    /** The best answer to one question. */
    public Answer answer(String question, String context) {
        return answer(List.of(new Query(question, context))).get(0);
    }

    /** The best answer to each query, in order; errors name the query by its 1-based position. */
    public List<Answer> answer(List<Query> queries) {
        List<Squad.Example> examples = new ArrayList<>(queries.size());
        for (int i = 0; i < queries.size(); i++) {
            Query q = queries.get(i);
            examples.add(example("question " + (i + 1), q.question(), q.context()));
        }
        return predict(examples);
    }

    /** A prediction input: a SQuAD example without answers, {@code id} naming it in error messages. */
    public static Squad.Example example(String id, String question, String context) {
        if (question == null || context == null) {
            throw new Bert4jException(id + ": the question and the context are both required");
        }
        return new Squad.Example(id, 0, "", question, context, List.of());
    }

    /** The best answer of each example (their reference answers, if any, are not used). */
    public List<Answer> predict(List<Squad.Example> examples) {
        List<List<QaAnswers.Prediction>> n = nBest(examples, Integer.MAX_VALUE);
        List<Answer> out = new ArrayList<>(n.size());
        for (List<QaAnswers.Prediction> p : n) {
            out.add(p.isEmpty() ? new Answer("", 0, 0, 0.0) : best(p));
        }
        return out;
    }

    /**
     * The best candidate by score (run_qa's choice); its score is the probability of its char
     * span, summed over the windows that propose it: an answer inside the overlap of two
     * windows is found twice, and reporting one copy's share would halve a sure answer.
     */
    private static Answer best(List<QaAnswers.Prediction> candidates) {
        QaAnswers.Prediction top = candidates.get(0);
        double p = 0;
        for (QaAnswers.Prediction c : candidates) {
            if (c.start() == top.start() && c.end() == top.end()) {
                p += c.probability();
            }
        }
        return new Answer(top.text(), top.start(), top.end(), Math.min(1.0, p));
    }

    /**
     * The n-best candidates of each example, best first, at most {@code keep} of them (their
     * probabilities are over the {@link Options#nBest} kept, so they do not depend on
     * {@code keep}); an empty list where no span passes the rules.
     */
    public List<List<QaAnswers.Prediction>> nBest(List<Squad.Example> examples, int keep) {
        int maxLength = maxLength();
        List<QaFeatures.Feature> features = new ArrayList<>();
        int[] firstFeature = new int[examples.size() + 1];
        for (int i = 0; i < examples.size(); i++) {
            firstFeature[i] = features.size();
            features.addAll(QaFeatures.build(tokenizer, examples.get(i), i, maxLength, options.docStride()));
        }
        firstFeature[examples.size()] = features.size();

        float[][] starts = new float[features.size()][];
        float[][] ends = new float[features.size()][];
        logits(features, starts, ends);

        List<List<QaAnswers.Prediction>> out = new ArrayList<>(examples.size());
        for (int i = 0; i < examples.size(); i++) {
            int from = firstFeature[i];
            int to = firstFeature[i + 1];
            List<QaAnswers.Prediction> n = QaAnswers.nBest(examples.get(i).context(), features.subList(from, to),
                    Arrays.asList(starts).subList(from, to), Arrays.asList(ends).subList(from, to),
                    options.nBest(), options.maxAnswerLength());
            out.add(n.subList(0, Math.min(keep, n.size())));
        }
        return out;
    }

    /**
     * Start and end logits of every feature, each exactly the feature's length. Windows are
     * run longest first so that a batch holds windows of similar length (less padding).
     */
    private void logits(List<QaFeatures.Feature> features, float[][] starts, float[][] ends) {
        Integer[] order = new Integer[features.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingInt((Integer i) -> -features.get(i).length()).thenComparingInt(i -> i));
        int pad = tokenizer.padId();
        for (int from = 0; from < order.length; from += options.batchSize()) {
            int b = Math.min(options.batchSize(), order.length - from);
            int s = features.get(order[from]).length();
            long[] ids = new long[b * s];
            long[] types = new long[b * s];
            long[] mask = new long[b * s];
            for (int r = 0; r < b; r++) {
                QaFeatures.Feature f = features.get(order[from + r]);
                for (int j = 0; j < s; j++) {
                    int k = r * s + j;
                    if (j < f.length()) {
                        ids[k] = f.inputIds()[j];
                        types[k] = f.typeIds()[j];
                        mask[k] = f.attentionMask()[j];
                    } else {
                        ids[k] = pad;
                    }
                }
            }
            float[] sl;
            float[] el;
            try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
                Tensor idsT = Tensors.fromLongs(ids, b, s);
                Tensor typesT = Tensors.fromLongs(types, b, s);
                Tensor maskT = Tensors.fromLongs(mask, b, s);
                BertForQuestionAnswering.Output o = model.forward(idsT, typesT, maskT);
                sl = Tensors.toFloatArray(o.startLogits());                                        // [B*S]
                el = Tensors.toFloatArray(o.endLogits());
            }
            for (int r = 0; r < b; r++) {
                int f = order[from + r];
                int len = features.get(f).length();
                starts[f] = Arrays.copyOfRange(sl, r * s, r * s + len);
                ends[f] = Arrays.copyOfRange(el, r * s, r * s + len);
            }
        }
    }

    @Override
    public void close() {
        if (owns) {
            model.close();
            tokenizer.close();
        }
    }
}
