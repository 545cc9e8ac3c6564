package io.bert4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.kernels.KernelMode;
import io.bert4j.pipeline.FillMask;
import io.bert4j.pipeline.QuestionAnswerer;
import io.bert4j.pipeline.TextClassifier;
import io.bert4j.pipeline.TokenClassifier;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The task heads a model folder has, by its config's {@code architectures}: sequence
 * classification ({@code POST /predict}), token classification ({@code POST /ner}), extractive QA
 * ({@code POST /qa}), masked LM ({@code POST /fill-mask}). Each head is one of bert4j's pipelines;
 * calls to one head run one at a time (the heads are not batched across requests).
 */
final class TaskHeads implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final TextClassifier classifier;
    private final TokenClassifier ner;
    private final QuestionAnswerer qa;
    private final FillMask fillMask;

    private TaskHeads(TextClassifier classifier, TokenClassifier ner, QuestionAnswerer qa, FillMask fillMask) {
        this.classifier = classifier;
        this.ner = ner;
        this.qa = qa;
        this.fillMask = fillMask;
    }

    static TaskHeads none() {
        return new TaskHeads(null, null, null, null);
    }

    /** Loads the heads the folder's config names (none for a plain encoder). */
    static TaskHeads load(Path dir, KernelMode kernels) {
        List<String> arch = BertConfig.read(dir.resolve("config.json")).architectures();
        TextClassifier c = null;
        TokenClassifier t = null;
        QuestionAnswerer q = null;
        FillMask f = null;
        try {
            if (arch.contains("BertForSequenceClassification")) {
                c = TextClassifier.load(dir, 0, kernels);
            }
            if (arch.contains("BertForTokenClassification")) {
                t = TokenClassifier.load(dir, kernels);
            }
            if (arch.contains("BertForQuestionAnswering")) {
                q = QuestionAnswerer.load(dir, kernels, QuestionAnswerer.Options.DEFAULTS);
            }
            if (arch.contains("BertForPreTraining") || arch.contains("BertForMaskedLM")) {
                f = FillMask.load(dir, kernels);
            }
        } catch (RuntimeException e) {
            new TaskHeads(c, t, q, f).close();
            throw e;
        }
        return new TaskHeads(c, t, q, f);
    }

    /** {@link io.bert4j.model.BertModel#prepareInference} on every head's encoder, before serving. */
    void prepareInference() {
        if (classifier != null) classifier.model().encoder().prepareInference();
        if (ner != null) ner.model().encoder().prepareInference();
        if (qa != null) qa.model().encoder().prepareInference();
        if (fillMask != null) fillMask.model().encoder().prepareInference();
    }

    /** The endpoints served, for /info and 404 messages. */
    List<String> endpoints() {
        List<String> out = new ArrayList<>();
        if (classifier != null) out.add("/predict");
        if (ner != null) out.add("/ner");
        if (qa != null) out.add("/qa");
        if (fillMask != null) out.add("/fill-mask");
        return out;
    }

    boolean serves(String path) {
        return endpoints().contains(path);
    }

    /** Answers a head's request body; the path is one of {@link #endpoints()}. */
    JsonNode handle(String path, JsonNode body) {
        if (body == null || !body.isObject()) {
            throw HttpError.invalid("the body must be a JSON object");
        }
        try {
            return switch (path) {
                case "/predict" -> predict(body);
                case "/ner" -> ner(body);
                case "/qa" -> qa(body);
                case "/fill-mask" -> fillMask(body);
                default -> throw new HttpError(404, "NotFound", "no such endpoint: " + path);
            };
        } catch (Bert4jException e) {
            if (e.getMessage() != null && e.getMessage().contains("over the model's limit")) {
                throw new HttpError(413, "Validation", e.getMessage());
            }
            throw HttpError.invalid(e.getMessage());
        }
    }

    /** {"inputs": "text" | ["t1", ...] | [["a", "b"], ...]} -> {label, score} (or {value}) per input. */
    private JsonNode predict(JsonNode body) {
        JsonNode in = body.get("inputs");
        if (in == null) {
            throw HttpError.invalid("missing field \"inputs\"");
        }
        List<String> texts = new ArrayList<>();
        List<String> pairs = new ArrayList<>();
        boolean single = in.isTextual();
        if (single) {
            texts.add(in.asText());
            pairs.add(null);
        } else if (in.isArray() && !in.isEmpty()) {
            for (JsonNode x : in) {
                if (x.isTextual()) {
                    texts.add(x.asText());
                    pairs.add(null);
                } else if (x.isArray() && x.size() == 2 && x.get(0).isTextual() && x.get(1).isTextual()) {
                    texts.add(x.get(0).asText());
                    pairs.add(x.get(1).asText());
                } else {
                    throw HttpError.invalid("\"inputs\" items must be strings or [text, text_pair] pairs; item "
                            + texts.size() + " is " + x);
                }
            }
        } else {
            throw HttpError.invalid("\"inputs\" must be a string, an array of strings or an array of [text, text_pair] pairs");
        }
        List<TextClassifier.Prediction> ps;
        synchronized (classifier) {
            ps = classifier.classifyBatch(texts, pairs);
        }
        ArrayNode out = JSON.createArrayNode();
        for (TextClassifier.Prediction p : ps) {
            ObjectNode o = out.addObject();
            if (classifier.isRegression()) {
                o.put("value", p.value());
            } else {
                o.put("label", p.label());
                o.put("score", p.score());
            }
        }
        return single ? out.get(0) : out;
    }

    /** {"inputs": "text" | [...], "aggregation": "simple"} -> {"entities": [...]} per input. */
    private JsonNode ner(JsonNode body) {
        JsonNode in = body.get("inputs");
        List<String> texts = strings(in, "inputs");
        TokenClassifier.Aggregation agg = TokenClassifier.Aggregation.SIMPLE;
        JsonNode a = body.get("aggregation");
        if (a != null && !a.isNull()) {
            if (!a.isTextual()) {
                throw HttpError.invalid("\"aggregation\" must be none, simple, first, average or max");
            }
            agg = TokenClassifier.Aggregation.parse(a.asText());
        }
        List<List<TokenClassifier.Entity>> all;
        synchronized (ner) {
            all = ner.predictBatch(texts, agg);
        }
        ArrayNode out = JSON.createArrayNode();
        for (int i = 0; i < texts.size(); i++) {
            ObjectNode o = out.addObject();
            o.put("text", texts.get(i));
            ArrayNode es = o.putArray("entities");
            for (TokenClassifier.Entity e : all.get(i)) {
                ObjectNode x = es.addObject();
                x.put("label", e.label());
                x.put("start", e.start());
                x.put("end", e.end());
                x.put("text", e.text());
                x.put("score", e.score());
            }
        }
        return in.isTextual() ? out.get(0) : out;
    }

    /** {"question", "context"} or {"inputs": [{"question", "context"}, ...]} -> {answer, start, end, score}. */
    private JsonNode qa(JsonNode body) {
        List<QuestionAnswerer.Query> queries = new ArrayList<>();
        boolean single = !body.has("inputs");
        if (single) {
            queries.add(query(body, 0));
        } else {
            JsonNode in = body.get("inputs");
            if (!in.isArray() || in.isEmpty()) {
                throw HttpError.invalid("\"inputs\" must be a non-empty array of {\"question\", \"context\"} objects");
            }
            for (JsonNode q : in) {
                queries.add(query(q, queries.size()));
            }
        }
        List<QuestionAnswerer.Answer> answers;
        synchronized (qa) {
            answers = qa.answer(queries);
        }
        ArrayNode out = JSON.createArrayNode();
        for (QuestionAnswerer.Answer a : answers) {
            ObjectNode o = out.addObject();
            o.put("answer", a.answer());
            o.put("start", a.start());
            o.put("end", a.end());
            o.put("score", a.score());
        }
        return single ? out.get(0) : out;
    }

    private static QuestionAnswerer.Query query(JsonNode q, int i) {
        if (q == null || !q.isObject() || !q.path("question").isTextual() || !q.path("context").isTextual()) {
            throw HttpError.invalid("query " + i + " needs string fields \"question\" and \"context\"");
        }
        return new QuestionAnswerer.Query(q.get("question").asText(), q.get("context").asText());
    }

    /** {"inputs": "text with [MASK]", "top_k": 5} -> per mask, the top k fillings. */
    private JsonNode fillMask(JsonNode body) {
        JsonNode in = body.get("inputs");
        if (in == null || !in.isTextual()) {
            throw HttpError.invalid("\"inputs\" must be a string containing the mask token");
        }
        int k = 5;
        JsonNode t = body.get("top_k");
        if (t != null && !t.isNull()) {
            if (!t.isInt() || t.asInt() < 1 || t.asInt() > 1000) {
                throw HttpError.invalid("\"top_k\" must be an integer in 1..1000, got " + t);
            }
            k = t.asInt();
        }
        List<List<FillMask.Prediction>> preds;
        synchronized (fillMask) {
            preds = fillMask.predict(in.asText(), k);
        }
        ArrayNode out = JSON.createArrayNode();
        for (List<FillMask.Prediction> mask : preds) {
            ArrayNode m = out.addArray();
            for (FillMask.Prediction p : mask) {
                ObjectNode o = m.addObject();
                o.put("score", p.score());
                o.put("token", p.token());
                o.put("token_str", p.tokenStr());
                o.put("sequence", p.sequence());
            }
        }
        return out;
    }

    private static List<String> strings(JsonNode in, String field) {
        List<String> out = new ArrayList<>();
        if (in != null && in.isTextual()) {
            out.add(in.asText());
            return out;
        }
        if (in == null || !in.isArray() || in.isEmpty()) {
            throw HttpError.invalid("\"" + field + "\" must be a string or a non-empty array of strings");
        }
        for (JsonNode x : in) {
            if (!x.isTextual()) {
                throw HttpError.invalid("\"" + field + "\" items must be strings; item " + out.size() + " is " + x);
            }
            out.add(x.asText());
        }
        return out;
    }

    @Override
    public void close() {
        if (classifier != null) classifier.close();
        if (ner != null) ner.close();
        if (qa != null) qa.close();
        if (fillMask != null) fillMask.close();
    }
}
