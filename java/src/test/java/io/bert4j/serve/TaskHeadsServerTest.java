package io.bert4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert;
import io.bert4j.config.BertConfig;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.model.BertForQuestionAnswering;
import io.bert4j.model.BertForSequenceClassification;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.pipeline.FillMask;
import io.bert4j.pipeline.QuestionAnswerer;
import io.bert4j.pipeline.TextClassifier;
import io.bert4j.pipeline.TokenClassifier;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The task endpoints over real HTTP: a server started on a task folder answers the head that
 * folder has (and only that one), with the same answers as the pipeline used directly. The heads
 * are freshly initialised on MiniLM (their answers are arbitrary but deterministic, which is all
 * the comparison needs); fill-mask uses a tiny random masked-LM model.
 */
class TaskHeadsServerTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static JsonNode ok(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body());
    }

    static BertServer serve(Bert bert) throws Exception {
        return BertServer.startWithHeads(bert, "m", BertServer.Options.DEFAULTS.withPort(0), KernelMode.FUSED);
    }

    @Test
    void eachFolderServesItsHead(@TempDir Path tmp) throws Exception {
        Path minilm = TestModels.defaultModelDir();
        Path cls = tmp.resolve("cls"), tok = tmp.resolve("tok"), qa = tmp.resolve("qa"), mlm = tmp.resolve("mlm");
        try (BertTokenizer t = BertTokenizer.load(minilm)) {
            try (var m = BertForSequenceClassification.fromPretrained(minilm, Map.of(0, "neg", 1, "pos"), 1)) {
                m.save(cls, t);
            }
            try (var m = BertForTokenClassification.fromPretrained(minilm, Map.of(0, "O", 1, "B-PER", 2, "I-PER"), 1)) {
                m.save(tok, t);
            }
            try (var m = BertForQuestionAnswering.fromPretrained(minilm, 1)) {
                m.save(qa, t);
            }
            try (var m = BertForPreTraining.randomMaskedLM(BertConfig.preset("tiny", t.vocabSize()), 1)) {
                m.save(mlm, t);
            }
        }

        try (Bert bert = Bert.load(cls, KernelMode.FUSED); BertServer s = serve(bert);
             TextClassifier ref = TextClassifier.load(cls)) {
            assertEquals(List.of("/predict"), s.headEndpoints());
            JsonNode one = ok(BertServerTest.post(s, "/predict", "{\"inputs\": \"a gorgeous , witty film\"}"));
            TextClassifier.Prediction p = ref.classify("a gorgeous , witty film");
            assertEquals(p.label(), one.get("label").asText());
            assertEquals(p.score(), one.get("score").asDouble(), 1e-6);
            JsonNode pairs = ok(BertServerTest.post(s, "/predict", "{\"inputs\": [[\"a\", \"b\"], \"c\"]}"));
            assertEquals(2, pairs.size());
            assertEquals(ref.classify("a", "b").label(), pairs.get(0).get("label").asText());
            assertEquals(404, BertServerTest.post(s, "/ner", "{\"inputs\": \"x\"}").statusCode());
            assertEquals(422, BertServerTest.post(s, "/predict", "{\"inputs\": [[\"a\"]]}").statusCode());
            assertEquals(200, BertServerTest.post(s, "/embed", "{\"inputs\": \"embeddings work too\"}").statusCode());
            assertTrue(JSON.readTree(BertServerTest.get(s, "/info").body()).get("heads").toString().contains("/predict"));
        }

        try (Bert bert = Bert.load(tok, KernelMode.FUSED); BertServer s = serve(bert);
             TokenClassifier ref = TokenClassifier.load(tok, KernelMode.FUSED)) {
            String text = "Angela Merkel visited Paris.";
            JsonNode r = ok(BertServerTest.post(s, "/ner", "{\"inputs\": \"" + text + "\", \"aggregation\": \"none\"}"));
            List<TokenClassifier.Entity> want = ref.predict(text, TokenClassifier.Aggregation.NONE);
            assertEquals(want.size(), r.get("entities").size());
            for (int i = 0; i < want.size(); i++) {
                assertEquals(want.get(i).label(), r.get("entities").get(i).get("label").asText());
                assertEquals(want.get(i).start(), r.get("entities").get(i).get("start").asInt());
            }
            assertEquals(422, BertServerTest.post(s, "/ner", "{\"inputs\": \"x\", \"aggregation\": 3}").statusCode());
        }

        try (Bert bert = Bert.load(qa, KernelMode.FUSED); BertServer s = serve(bert); QuestionAnswerer ref = QuestionAnswerer.load(qa)) {
            String q = "Who visited Paris?", c = "Angela Merkel visited Paris in May.";
            JsonNode r = ok(BertServerTest.post(s, "/qa", JSON.writeValueAsString(Map.of("question", q, "context", c))));
            QuestionAnswerer.Answer a = ref.answer(q, c);
            assertEquals(a.answer(), r.get("answer").asText());
            assertEquals(a.start(), r.get("start").asInt());
            assertEquals(c.substring(a.start(), a.end()), r.get("answer").asText());
            assertEquals(422, BertServerTest.post(s, "/qa", "{\"question\": \"q\"}").statusCode());
        }

        try (Bert bert = Bert.load(mlm, KernelMode.FUSED); BertServer s = serve(bert); FillMask ref = FillMask.load(mlm, KernelMode.FUSED)) {
            String text = "the city is in the [MASK] of the country .";
            JsonNode r = ok(BertServerTest.post(s, "/fill-mask", "{\"inputs\": \"" + text + "\", \"top_k\": 3}"));
            List<List<FillMask.Prediction>> want = ref.predict(text, 3);
            assertEquals(1, r.size());
            assertEquals(3, r.get(0).size());
            assertEquals(want.get(0).get(0).tokenStr(), r.get(0).get(0).get("token_str").asText());
            assertEquals(422, BertServerTest.post(s, "/fill-mask", "{\"inputs\": \"no mask here\"}").statusCode());
            assertEquals(422, BertServerTest.post(s, "/fill-mask", "{\"inputs\": \"[MASK]\", \"top_k\": 0}").statusCode());
        }
    }
}
