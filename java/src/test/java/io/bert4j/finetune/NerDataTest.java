package io.bert4j.finetune;

import io.bert4j.Bert4jException;
import io.bert4j.config.BertConfig;
import io.bert4j.data.Conll;
import io.bert4j.data.NerFeatures;
import io.bert4j.eval.EntityMetrics;
import io.bert4j.model.BertForTokenClassification;
import io.bert4j.model.Tensors;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** NER data and metrics on a small CoNLL file and a tiny random token classifier. */
class NerDataTest {

    @TempDir
    static Path tmp;
    static BertTokenizer tokenizer;
    static BertForTokenClassification model;
    static Conll.Corpus corpus;
    static Map<String, Integer> label2id;

    static final String CONLL = String.join("\n",
            "-DOCSTART- -X- -X- O", "",
            "EU NNP B-NP B-ORG", "rejects VBZ B-VP O", "German JJ B-NP B-MISC", "call NN I-NP O", "to TO B-VP O",
            "boycott VB I-VP O", "British JJ B-NP B-MISC", "lamb NN I-NP O", ". . O O", "",
            "Peter NNP B-NP B-PER", "Blackburn NNP I-NP I-PER", "",
            "BRUSSELS NNP B-NP B-LOC", "1996-08-22 CD I-NP O", "",
            "The DT B-NP O", "European NNP I-NP B-ORG", "Commission NNP I-NP I-ORG", "said VBD B-VP O",
            "on IN B-PP O", "Thursday NNP B-NP O", "it PRP B-NP O", "disagreed VBD B-VP O", "with IN B-PP O",
            "German JJ B-NP B-MISC", "advice NN I-NP O", "to TO B-PP O", "consumers NNS B-NP O", "to TO B-VP O",
            "shun VB I-VP O", "British JJ B-NP B-MISC", "lamb NN I-NP O", "until IN B-SBAR O", "scientists NNS B-NP O",
            "determine VBP B-VP O", "whether IN B-SBAR O", "mad JJ B-NP O", "cow NN I-NP O", "disease NN I-NP O", "", "");

    @BeforeAll
    static void setUp() throws Exception {
        Path f = tmp.resolve("small.txt");
        Files.writeString(f, CONLL, StandardCharsets.UTF_8);
        corpus = Conll.read(f);
        tokenizer = BertTokenizer.load(TestModels.defaultModelDir());
        Map<Integer, String> id2label = new HashMap<>();
        label2id = new HashMap<>();
        for (int i = 0; i < corpus.labels().size(); i++) {
            id2label.put(i, corpus.labels().get(i));
            label2id.put(corpus.labels().get(i), i);
        }
        model = BertForTokenClassification.random(BertConfig.of(tokenizer.vocabSize(), 32, 2, 2, 64, 64), id2label, 3);
        model.train(false);
    }

    @AfterAll
    static void tearDown() {
        model.close();
        tokenizer.close();
    }

    @Test
    void collatePadsWithIgnoredLabels() {
        NerData.Encoded enc = NerData.encode(corpus, tokenizer, 64, label2id, "");
        assertEquals(4, enc.features().size());
        assertEquals(0, enc.truncated());
        try (PointerScope scope = new PointerScope()) {
            NerData.Batch b = NerData.collate(enc.features().subList(1, 4), tokenizer.padId());
            int s = enc.features().stream().skip(1).mapToInt(NerFeatures.Feature::length).max().getAsInt();
            assertArrayEquals(new long[]{3, s}, Tensors.shape(b.labels()));
            float[] labels = Tensors.toFloatArray(b.labels());
            float[] mask = Tensors.toFloatArray(b.attentionMask());
            NerFeatures.Feature f = enc.features().get(1);   // Peter Blackburn: shorter than the longest
            for (int t = 0; t < s; t++) {
                assertEquals(t < f.length() ? f.labels()[t] : -100, (int) labels[t]);
                assertEquals(t < f.length() ? 1 : 0, (int) mask[t]);
            }
            assertEquals(enc.features().stream().skip(1).mapToInt(NerFeatures.Feature::length).sum(), b.tokens());
        }
    }

    @Test
    void evaluateMatchesTheModelsLossAndSeqevalOnItsOwnTags() {
        NerData.Encoded enc = NerData.encode(corpus, tokenizer, 64, label2id, "");
        Map<String, Double> m = NerData.evaluate(model, enc, 3, tokenizer.padId());
        double loss;
        try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard()) {
            NerData.Batch b = NerData.collate(enc.features(), tokenizer.padId());
            loss = model.loss(b.inputIds(), b.tokenTypeIds(), b.attentionMask(), b.labels()).loss().item_double();
        }
        assertEquals(loss, m.get("loss"), 1e-5);
        List<List<String>> pred = NerData.predictedTags(model, enc.features(), 2, tokenizer.padId());
        List<List<String>> gold = new ArrayList<>();
        corpus.sentences().forEach(s -> gold.add(s.tags()));
        var loose = EntityMetrics.evaluate(gold, pred, EntityMetrics.Mode.DEFAULT);
        var strict = EntityMetrics.evaluate(gold, pred, EntityMetrics.Mode.STRICT);
        assertEquals(loose.micro().f1(), m.get("f1"), 1e-12);
        assertEquals(strict.micro().f1(), m.get("strict_f1"), 1e-12);
        assertEquals(strict.micro().precision(), m.get("strict_precision"), 1e-12);
        assertEquals(loose.micro().recall(), m.get("recall"), 1e-12);
        assertEquals(4.0, m.get("MISC_support"));   // German, British, German, British
        assertEquals(1.0, m.get("PER_support"));
        assertTrue(m.get("accuracy") >= 0 && m.get("accuracy") <= 1);
        // The untrained model tags something, so the comparison above is not 0 == 0 throughout.
        assertTrue(pred.stream().flatMap(List::stream).anyMatch(t -> !t.equals("O")), pred.toString());
    }

    @Test
    void truncatedWordsArePredictedO() {
        NerData.Encoded enc = NerData.encode(corpus, tokenizer, 8, label2id, "");
        assertEquals(2, enc.truncated());
        List<List<String>> pred = NerData.predictedTags(model, enc.features(), 4, tokenizer.padId());
        List<String> last = pred.get(3);
        assertEquals(corpus.sentences().get(3).words().size(), last.size());
        int[] first = enc.features().get(3).firstTokenOfWord();
        for (int w = 0; w < last.size(); w++) {
            if (first[w] < 0) {
                assertEquals("O", last.get(w));
            }
        }
        assertTrue(first[last.size() - 1] < 0);
    }

    @Test
    void aTagOutsideTheLabelSetNamesItsLine() throws Exception {
        Path f = tmp.resolve("other.txt");
        Files.writeString(f, "Paris NNP B-NP B-LOC\nis VBZ B-VP O\n\nAcme NNP B-NP B-COMPANY\nInc NNP I-NP I-COMPANY\n",
                StandardCharsets.UTF_8);
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> NerData.encode(Conll.read(f), tokenizer, 64, label2id, "of the training file"));
        assertTrue(e.getMessage().contains(f + ":4: tag 'B-COMPANY'") && e.getMessage().contains("of the training file"),
                e.getMessage());
    }
}
