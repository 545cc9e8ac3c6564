package io.bert4j.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class SquadMetricsTest {
    private static final double EPS = 1e-12;

    @Test
    void normalisation() {
        // lower -> "the cat's hat!"; punctuation out -> "the cats hat"; article -> " cats hat"; spaces.
        assertEquals("cats hat", SquadMetrics.normalize("The Cat's hat!"));
        assertEquals("apple banana", SquadMetrics.normalize("  An  apple,\ta banana \n"));
        // Articles only as whole words: "theater", "another", "area" keep their letters.
        assertEquals("theater another area", SquadMetrics.normalize("The theater, another area"));
        // Punctuation goes first, so "A-Team" becomes one word "ateam" and "the." becomes an article.
        assertEquals("ateam", SquadMetrics.normalize("A-Team"));
        assertEquals("", SquadMetrics.normalize("the."));
        assertEquals("anapple", SquadMetrics.normalize("an_apple")); // '_' is ASCII punctuation
        // No-break space separates words (Python's str.split does so; Java's isWhitespace does not).
        assertEquals("saint peter", SquadMetrics.normalize("Saint\u00a0Peter"));
        // Only ASCII punctuation is removed: the em dash and guillemets stay; « and » are not
        // word characters, so "the" between them is a whole word and goes.
        assertEquals("café—bar", SquadMetrics.normalize("Café—bar"));
        assertEquals("« »", SquadMetrics.normalize("«the»"));
        // An article next to a non-ASCII letter is not a whole word.
        assertEquals("théa", SquadMetrics.normalize("théa"));
        assertEquals("1990s", SquadMetrics.normalize("the 1990s"));
        // Capital sigma lowercases to the final form when a cased letter precedes it and none
        // follows, skipping case-ignorable characters such as '.' (but not '-'), as Python does.
        assertEquals("οδος", SquadMetrics.normalize("ΟΔΟΣ."));   // '.' ignorable, then the end: final
        assertEquals("ας β", SquadMetrics.normalize("ΑΣ Β"));     // space is not ignorable: final
        assertEquals("αςβ", SquadMetrics.normalize("ΑΣ-Β"));      // '-' stops the look-ahead: final
        assertEquals("theσ", SquadMetrics.normalize("THE-Σ"));    // '-' before it: no cased letter precedes
        assertEquals("σασα", SquadMetrics.normalize("ΣΑΣ.Α"));    // '.' skipped, a letter follows: not final
        assertEquals(List.of("new", "york", "new", "york"), SquadMetrics.tokens("New York, new York."));
        assertEquals(List.of(), SquadMetrics.tokens(" a  an the "));
    }

    @Test
    void exactMatchAndF1HandWorked() {
        assertEquals(1.0, SquadMetrics.exactMatch("the Eiffel Tower", "Eiffel Tower."));
        assertEquals(0.0, SquadMetrics.exactMatch("Eiffel Tower in Paris", "the Eiffel Tower"));
        // tokens (eiffel tower in paris) vs (eiffel tower): same 2, P = 2/4, R = 2/2, F1 = 2*.5*1/1.5 = 2/3.
        assertEquals(2.0 / 3, SquadMetrics.f1("Eiffel Tower in Paris", "the Eiffel Tower"), EPS);
        // Multiset intersection: (new york new york) vs (new york) share 2, not 4: P = 1/2, R = 1.
        assertEquals(2.0 / 3, SquadMetrics.f1("new york new york", "New York"), EPS);
        // (york new) vs (new york city): order does not matter; same 2, P = 1, R = 2/3 -> F1 0.8.
        assertEquals(0.8, SquadMetrics.f1("York new", "new york city"), EPS);
        // Both normalise to nothing: EM 1 but F1 0 (v1.1 returns 0 when nothing is shared).
        assertEquals(1.0, SquadMetrics.exactMatch("the", "a"));
        assertEquals(0.0, SquadMetrics.f1("the", "a"));
        assertEquals(0.0, SquadMetrics.f1("Paris", "London"));
        // Symmetric for a single reference.
        assertEquals(SquadMetrics.f1("a b c d", "b c e"), SquadMetrics.f1("b c e", "a b c d"), EPS);
    }

    @Test
    void maximumOverReferences() {
        List<String> refs = List.of("Denver Broncos", "Broncos", "the Denver Broncos team");
        assertEquals(1.0, SquadMetrics.exactMatch("the Broncos", refs));
        assertEquals(1.0, SquadMetrics.f1("the Broncos", refs));
        // "Denver" vs each: (denver broncos) 2/3, (broncos) 0, (denver broncos team) 2*1*(1/3)/(4/3) = 1/2.
        assertEquals(0.0, SquadMetrics.exactMatch("Denver", refs));
        assertEquals(2.0 / 3, SquadMetrics.f1("Denver", refs), EPS);
    }

    @Test
    void datasetScoresInPercent() {
        // q0: exact (EM 1, F1 1); q1: F1 2/3 as above; q2: nothing shared. EM = 1/3, F1 = (1 + 2/3)/3.
        SquadResult r = SquadMetrics.evaluate(List.of("Denver Broncos", "Eiffel Tower in Paris", "Paris"),
                List.of(List.of("Denver Broncos"), List.of("the Eiffel Tower", "Tower of Pisa"), List.of("London")));
        assertEquals(3, r.count());
        assertEquals(100.0 / 3, r.exactMatch(), 1e-9);
        assertEquals(100.0 * (5.0 / 3) / 3, r.f1(), 1e-9);
        assertEquals(List.of("exact_match", "f1"), List.copyOf(r.asMap().keySet()));
        assertTrue(r.toJson().startsWith("{\"exact_match\":33.33"), r.toJson());
    }

    @Test
    void everyReferenceScoresFullMarksOnTheSharedDevArticles() throws Exception {
        Path data = TestModels.sharedData();
        assumeTrue(data != null, "shared data folder not present");
        Path file = data.resolve("squad_v1.1/squad-v1.1-dev-articles-00-35.json");
        assumeTrue(Files.isRegularFile(file), "SQuAD file not present");
        JsonNode root = new ObjectMapper().readTree(file.toFile());
        List<String> predictions = new ArrayList<>();
        List<String> lastAnswers = new ArrayList<>();
        List<List<String>> references = new ArrayList<>();
        for (JsonNode article : root.get("data")) {
            for (JsonNode paragraph : article.get("paragraphs")) {
                for (JsonNode qa : paragraph.get("qas")) {
                    List<String> refs = new ArrayList<>();
                    for (JsonNode a : qa.get("answers")) {
                        refs.add(a.get("text").asText());
                    }
                    references.add(refs);
                    predictions.add(refs.get(0));
                    lastAnswers.add(refs.get(refs.size() - 1));
                }
            }
        }
        assertEquals(8123, references.size());
        // Any one of the references is a perfect prediction, unless it normalises to nothing.
        SquadResult first = SquadMetrics.evaluate(predictions, references);
        assertEquals(100.0, first.exactMatch(), 1e-9);
        assertEquals(100.0, SquadMetrics.evaluate(lastAnswers, references).exactMatch(), 1e-9);
        long emptyAfterNormalising = predictions.stream().filter(p -> SquadMetrics.tokens(p).isEmpty()).count();
        assertEquals(100.0 * (predictions.size() - emptyAfterNormalising) / predictions.size(), first.f1(), 1e-9);
        // An answer that occurs nowhere scores nothing.
        List<String> constant = new ArrayList<>();
        for (int i = 0; i < predictions.size(); i++) {
            constant.add("zzz qqq");
        }
        SquadResult bad = SquadMetrics.evaluate(constant, references);
        assertEquals(0.0, bad.exactMatch());
        assertEquals(0.0, bad.f1());
    }

    @Test
    void badInput() {
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> SquadMetrics.evaluate(List.of("a", "b"), List.of(List.of("a"))));
        assertTrue(e.getMessage().contains("differ in length"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> SquadMetrics.evaluate(List.of(), List.of()));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        e = assertThrows(Bert4jException.class, () -> SquadMetrics.evaluate(List.of("x"), List.of(List.of())));
        assertTrue(e.getMessage().contains("question 0 has no reference answers"), e.getMessage());
        List<String> nullPrediction = new ArrayList<>();
        nullPrediction.add(null);
        assertThrows(Bert4jException.class, () -> SquadMetrics.evaluate(nullPrediction, List.of(List.of("x"))));
    }
}
