package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.data.QaFeatures;
import io.bert4j.data.Squad;
import io.bert4j.eval.SquadMetrics;
import io.bert4j.eval.SquadResult;
import io.bert4j.model.Tensors;
import io.bert4j.pipeline.QuestionAnswerer;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.pytorch.Tensor;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SQuAD v1.1 data for fine-tuning and evaluating extractive QA: checked reading, a split held
 * out by article, training features as run_qa's {@code prepare_train_features} (every window
 * of every question is an example; a window that does not hold the whole first answer is
 * labelled [CLS], position 0), batches padded to their longest window, and exact match / F1.
 */
public final class QaData {
    private QaData() {
    }

    /**
     * A padded batch of training windows: input_ids, token_type_ids, attention_mask [B, S]
     * and the answer's start/end token [B] (int64); {@code tokens} counts the real tokens.
     */
    public record Batch(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor startPositions,
                        Tensor endPositions, long tokens) {
    }

    /** Training (or evaluation) questions and the articles they came from. */
    public record Split(List<Squad.Example> train, List<Squad.Example> validation, List<Integer> validationArticles) {
    }

    /**
     * Reads a SQuAD v1.1 file for training or evaluation: every question must have an answer
     * and every answer must be found at its answer_start (the first mismatches are named).
     */
    public static Squad.Dataset readLabelled(Path file) {
        Squad.Dataset d = Squad.read(file);
        if (!d.mismatches().isEmpty()) {
            List<String> m = d.mismatches();
            throw new Bert4jException(file + ": " + m.size() + " answer(s) do not match the context at their "
                    + "answer_start, e.g. " + String.join("; ", m.subList(0, Math.min(3, m.size()))));
        }
        for (Squad.Example e : d.examples()) {
            if (e.answers().isEmpty()) {
                throw new Bert4jException(file + ": question " + e.id() + " has no answer; training and evaluation "
                        + "need SQuAD v1.1 answers");
            }
        }
        if (d.examples().isEmpty()) {
            throw new Bert4jException(file + ": no questions");
        }
        return d;
    }

    /**
     * Holds out the last articles of the file: {@code amount} below 1 is a share of the
     * articles (rounded, at least one), 1 or more a number of articles. Splitting by article
     * keeps the questions about one text on one side.
     */
    public static Split splitByArticle(Squad.Dataset data, double amount) {
        int articles = data.articles();
        if (!(amount > 0) || (amount >= 1 && amount != Math.rint(amount))) {
            throw new Bert4jException("--validation-split must be a share of the articles in (0, 1) or a whole "
                    + "number of articles, got " + amount);
        }
        int held = amount < 1 ? Math.max(1, (int) Math.round(amount * articles)) : (int) amount;
        if (held >= articles) {
            throw new Bert4jException("--validation-split " + amount + " holds out " + held + " of the "
                    + articles + " articles of " + data.source() + ": nothing is left to train on");
        }
        int first = articles - held;
        List<Squad.Example> train = new ArrayList<>();
        List<Squad.Example> validation = new ArrayList<>();
        for (Squad.Example e : data.examples()) {
            (e.article() >= first ? validation : train).add(e);
        }
        List<Integer> ids = new ArrayList<>();
        for (int a = first; a < articles; a++) {
            ids.add(a);
        }
        return new Split(train, validation, ids);
    }

    /** The training windows of the examples (run_qa's prepare_train_features). */
    public static List<QaFeatures.Feature> trainFeatures(BertTokenizer tokenizer, List<Squad.Example> examples,
                                                         int maxLength, int docStride) {
        return QaFeatures.build(tokenizer, examples, maxLength, docStride);
    }

    /** Pads windows to the longest of them. */
    public static Batch collate(List<QaFeatures.Feature> features, int padId) {
        int b = features.size();
        int s = 0;
        for (QaFeatures.Feature f : features) {
            s = Math.max(s, f.length());
        }
        long[] ids = new long[b * s];
        long[] types = new long[b * s];
        long[] mask = new long[b * s];
        long[] start = new long[b];
        long[] end = new long[b];
        long tokens = 0;
        for (int r = 0; r < b; r++) {
            QaFeatures.Feature f = features.get(r);
            for (int j = 0; j < s; j++) {
                int k = r * s + j;
                if (j < f.length()) {
                    ids[k] = f.inputIds()[j];
                    types[k] = f.typeIds()[j];
                    mask[k] = f.attentionMask()[j];
                } else {
                    ids[k] = padId;
                }
            }
            tokens += f.length();
            start[r] = f.startPosition();
            end[r] = f.endPosition();
        }
        return new Batch(Tensors.fromLongs(ids, b, s), Tensors.fromLongs(types, b, s), Tensors.fromLongs(mask, b, s),
                Tensors.fromLongs(start, b), Tensors.fromLongs(end, b), tokens);
    }

    /**
     * Exact match and F1 (0-100, SQuAD's official normalisation, best over the reference
     * answers) of the answerer's predictions, with {@code examples} (questions) and
     * {@code features} (windows) counted.
     */
    public static Map<String, Double> evaluate(QuestionAnswerer qa, List<Squad.Example> examples) {
        List<QuestionAnswerer.Answer> answers = qa.predict(examples);
        List<String> predictions = new ArrayList<>(answers.size());
        List<List<String>> references = new ArrayList<>(answers.size());
        for (int i = 0; i < examples.size(); i++) {
            predictions.add(answers.get(i).answer());
            references.add(examples.get(i).answers().stream().map(Squad.Answer::text).toList());
        }
        SquadResult r = SquadMetrics.evaluate(predictions, references);
        Map<String, Double> out = new LinkedHashMap<>();
        out.put("exact_match", r.exactMatch());
        out.put("f1", r.f1());
        out.put("examples", (double) r.count());
        return out;
    }
}
