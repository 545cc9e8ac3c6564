package io.bert4j.eval;

import io.bert4j.Bert4jException;
import io.bert4j.eval.EntityMetrics.Entity;
import io.bert4j.eval.EntityMetrics.Mode;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EntityMetricsTest {
    private static final double EPS = 1e-12;

    private static List<String> s(String tags) {
        return tags.isEmpty() ? List.of() : Arrays.asList(tags.split(" "));
    }

    private static List<List<String>> corpus(String... sentences) {
        List<List<String>> out = new ArrayList<>();
        for (String t : sentences) {
            out.add(s(t));
        }
        return out;
    }

    @Test
    void typeMismatch() {
        // gold PER[0,2) LOC[3,4); predicted PER[0,2) ORG[3,4). Only PER matches: 1 of 2 each way.
        EntityResult r = EntityMetrics.evaluate(corpus("B-PER I-PER O B-LOC"), corpus("B-PER I-PER O B-ORG"));
        assertEquals(new EntityResult.Score(2, 2, 1), r.micro());
        assertEquals(0.5, r.micro().precision(), EPS);
        assertEquals(0.5, r.micro().recall(), EPS);
        assertEquals(0.5, r.micro().f1(), EPS);
        assertEquals(new EntityResult.Score(1, 1, 1), r.perType().get("PER"));
        assertEquals(new EntityResult.Score(1, 0, 0), r.perType().get("LOC"));
        assertEquals(new EntityResult.Score(0, 1, 0), r.perType().get("ORG"));
        assertEquals(0.0, r.perType().get("LOC").precision()); // 0/0 -> 0
        assertEquals(List.of("LOC", "ORG", "PER"), List.copyOf(r.perType().keySet()));
    }

    @Test
    void boundaryMismatchIsWrong() {
        // gold ORG[0,3), predicted ORG[0,2): the same type but a different span scores nothing.
        EntityResult r = EntityMetrics.evaluate(corpus("B-ORG I-ORG I-ORG O"), corpus("B-ORG I-ORG O O"));
        assertEquals(new EntityResult.Score(1, 1, 0), r.micro());
        assertEquals(0.0, r.micro().f1());
    }

    @Test
    void iAfterOutsideDependsOnMode() {
        List<List<String>> gold = corpus("O B-PER I-PER O");
        List<List<String>> pred = corpus("O I-PER I-PER O");
        // Default: I-PER after O opens PER[1,3), equal to gold.
        assertEquals(List.of(new Entity(0, 1, 3, "PER")), EntityMetrics.entities(pred.get(0), Mode.DEFAULT));
        assertEquals(1.0, EntityMetrics.evaluate(gold, pred, Mode.DEFAULT).micro().f1(), EPS);
        // Strict: no B-, so no entity: nothing predicted, the gold entity is missed.
        assertEquals(List.of(), EntityMetrics.entities(pred.get(0), Mode.STRICT));
        EntityResult strict = EntityMetrics.evaluate(gold, pred, Mode.STRICT);
        assertEquals(new EntityResult.Score(1, 0, 0), strict.micro());
        assertEquals(0.0, strict.micro().f1());
        // Also at the start of a sentence.
        assertEquals(List.of(new Entity(0, 0, 1, "LOC")), EntityMetrics.entities(s("I-LOC O"), Mode.DEFAULT));
        assertEquals(List.of(), EntityMetrics.entities(s("I-LOC O"), Mode.STRICT));
    }

    @Test
    void typeChangeInsideEntity() {
        // B-PER I-LOC I-LOC: default reads PER[0,1) then LOC[1,3); strict keeps only PER[0,1).
        assertEquals(List.of(new Entity(0, 0, 1, "PER"), new Entity(0, 1, 3, "LOC")),
                EntityMetrics.entities(s("B-PER I-LOC I-LOC"), Mode.DEFAULT));
        assertEquals(List.of(new Entity(0, 0, 1, "PER")), EntityMetrics.entities(s("B-PER I-LOC I-LOC"), Mode.STRICT));
        // Adjacent B- of the same type are two entities in both modes.
        for (Mode m : Mode.values()) {
            assertEquals(List.of(new Entity(0, 0, 1, "PER"), new Entity(0, 1, 3, "PER")),
                    EntityMetrics.entities(s("B-PER B-PER I-PER"), m));
        }
    }

    @Test
    void entitiesAtSentenceEndDoNotRunIntoTheNextSentence() {
        assertEquals(List.of(new Entity(0, 1, 3, "MISC")), EntityMetrics.entities(s("O B-MISC I-MISC"), Mode.DEFAULT));
        assertEquals(List.of(new Entity(0, 1, 3, "MISC")), EntityMetrics.entities(s("O B-MISC I-MISC"), Mode.STRICT));
        assertEquals(List.of(new Entity(0, 0, 1, "X-Y")), EntityMetrics.entities(s("B-X-Y"), Mode.STRICT));
        // gold: PER at the end of sentence 0 and at the start of sentence 1.
        // predicted: sentence 1 starts with I-PER. Default: a new entity (sentences are never
        // joined), so all is right. Strict: sentence 1 has no entity: P = 1/1, R = 1/2, F1 = 2/3.
        List<List<String>> gold = corpus("O B-PER", "B-PER O");
        List<List<String>> pred = corpus("O B-PER", "I-PER O");
        assertEquals(1.0, EntityMetrics.evaluate(gold, pred, Mode.DEFAULT).micro().f1(), EPS);
        EntityResult strict = EntityMetrics.evaluate(gold, pred, Mode.STRICT);
        assertEquals(1.0, strict.micro().precision(), EPS);
        assertEquals(0.5, strict.micro().recall(), EPS);
        assertEquals(2.0 / 3, strict.micro().f1(), EPS);
    }

    @Test
    void microAverageOverSentencesAndTypes() {
        // gold:  s0 PER[0,2) LOC[3,4)   s1 ORG[0,1) PER[2,3)
        // pred:  s0 PER[0,2) LOC[3,4)   s1 ORG[0,2) PER[2,3)
        // PER 2/2 right, LOC 1/1, ORG 0/1 (boundary): micro 3 correct of 4 and 4 -> 0.75 each.
        EntityResult r = EntityMetrics.evaluate(corpus("B-PER I-PER O B-LOC", "B-ORG O B-PER"),
                corpus("B-PER I-PER O B-LOC", "B-ORG I-ORG B-PER"), Mode.STRICT);
        assertEquals(new EntityResult.Score(4, 4, 3), r.micro());
        assertEquals(0.75, r.micro().f1(), EPS);
        assertEquals(new EntityResult.Score(2, 2, 2), r.perType().get("PER"));
        assertEquals(new EntityResult.Score(1, 1, 0), r.perType().get("ORG"));
        // The same entity in another sentence is a different entity.
        EntityResult moved = EntityMetrics.evaluate(corpus("B-PER", "O"), corpus("O", "B-PER"));
        assertEquals(new EntityResult.Score(1, 1, 0), moved.micro());
    }

    @Test
    void randomInvariants() {
        Random rnd = new Random(5);
        String[] anyTags = {"O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"};
        for (int trial = 0; trial < 200; trial++) {
            List<List<String>> a = new ArrayList<>();
            List<List<String>> b = new ArrayList<>();
            List<List<String>> valid = new ArrayList<>();
            for (int sent = 0; sent < 1 + rnd.nextInt(4); sent++) {
                int n = rnd.nextInt(12);
                List<String> x = new ArrayList<>();
                List<String> y = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    x.add(anyTags[rnd.nextInt(anyTags.length)]);
                    y.add(rnd.nextInt(4) == 0 ? anyTags[rnd.nextInt(anyTags.length)] : x.get(i));
                }
                a.add(x);
                b.add(y);
                valid.add(EntityMetrics.iob1ToIob2(x));
            }
            if (a.stream().mapToInt(List::size).sum() == 0) {
                continue;
            }
            for (Mode m : Mode.values()) {
                EntityResult ab = EntityMetrics.evaluate(a, b, m);
                EntityResult ba = EntityMetrics.evaluate(b, a, m);
                // Swapping gold and predicted swaps precision and recall and keeps F1.
                assertEquals(ab.micro().precision(), ba.micro().recall(), EPS);
                assertEquals(ab.micro().f1(), ba.micro().f1(), EPS);
                EntityResult self = EntityMetrics.evaluate(a, a, m);
                if (self.micro().gold() > 0) {
                    assertEquals(1.0, self.micro().f1(), EPS);
                }
            }
            for (int sent = 0; sent < a.size(); sent++) {
                List<String> x = a.get(sent);
                List<String> v = valid.get(sent);
                // Reading IOB1-style tags the conlleval way finds the same entities as reading
                // their IOB2 conversion strictly; on valid IOB2 the two modes agree.
                assertEquals(EntityMetrics.entities(x, Mode.DEFAULT), EntityMetrics.entities(v, Mode.STRICT), x.toString());
                assertEquals(EntityMetrics.entities(v, Mode.DEFAULT), EntityMetrics.entities(v, Mode.STRICT), v.toString());
            }
        }
    }

    @Test
    void iob1ToIob2() {
        // I-PER at the start opens PER; I-LOC after O opens LOC; B-LOC splits two LOCs;
        // I-ORG after a LOC opens ORG; I-ORG after I-ORG continues.
        assertEquals(s("B-PER I-PER O B-LOC B-LOC I-LOC B-ORG I-ORG"),
                EntityMetrics.iob1ToIob2(s("I-PER I-PER O I-LOC B-LOC I-LOC I-ORG I-ORG")));
        assertEquals(s("O B-MISC"), EntityMetrics.iob1ToIob2(s("O B-MISC")));
        assertEquals(List.of(), EntityMetrics.iob1ToIob2(List.of()));
    }

    @Test
    void badInput() {
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> EntityMetrics.evaluate(corpus("B-PER O"), corpus("X-PER O")));
        assertTrue(e.getMessage().contains("'X-PER'") && e.getMessage().contains("predicted sentence 0, token 0"),
                e.getMessage());
        for (String bad : new String[] {"E-PER", "S-LOC", "B-", "I", "PER", "o", "", "B_PER"}) {
            List<List<String>> c = List.of(List.of("O", bad));
            e = assertThrows(Bert4jException.class, () -> EntityMetrics.evaluate(c, corpus("O O")), bad);
            assertTrue(e.getMessage().contains("gold sentence 0, token 1"), e.getMessage());
        }
        e = assertThrows(Bert4jException.class, () -> EntityMetrics.evaluate(corpus("O", "O"), corpus("O")));
        assertTrue(e.getMessage().contains("number of sentences"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> EntityMetrics.evaluate(corpus("O", "O B-PER"), corpus("O", "O")));
        assertTrue(e.getMessage().contains("sentence 1: gold has 2 tags but predicted has 1"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> EntityMetrics.evaluate(List.of(), List.of()));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        assertThrows(Bert4jException.class, () -> EntityMetrics.evaluate(corpus(""), corpus("")));
        List<String> withNull = Arrays.asList("O", null);
        assertThrows(Bert4jException.class, () -> EntityMetrics.entities(withNull, Mode.DEFAULT));
        assertThrows(Bert4jException.class, () -> EntityMetrics.iob1ToIob2(s("I-PER X-PER")));
    }

    @Test
    void jsonView() {
        EntityResult r = EntityMetrics.evaluate(corpus("B-PER I-PER O B-LOC"), corpus("B-PER I-PER O B-ORG"));
        assertEquals(List.of("precision", "recall", "f1", "LOC_precision", "LOC_recall", "LOC_f1", "LOC_support",
                "ORG_precision", "ORG_recall", "ORG_f1", "ORG_support", "PER_precision", "PER_recall", "PER_f1",
                "PER_support"), List.copyOf(r.asMap().keySet()));
        assertTrue(r.toJson().startsWith("{\"precision\":0.5,\"recall\":0.5,\"f1\":0.5,\"LOC_precision\":0.0,"),
                r.toJson());
    }
}
