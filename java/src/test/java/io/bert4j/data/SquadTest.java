package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class SquadTest {

    @TempDir
    Path tmp;

    static Path squadFile() {
        Path data = TestModels.sharedData();
        assumeTrue(data != null, "no shared data folder");
        Path p = data.resolve("squad_v1.1").resolve("squad-v1.1-dev-articles-00-35.json");
        assumeTrue(Files.isRegularFile(p), "no " + p);
        return p;
    }

    @Test
    void realFile() {
        Squad.Dataset d = Squad.read(squadFile());
        // Counts as stated in the data folder's README.
        assertEquals("1.1", d.version());
        assertEquals(36, d.articles());
        assertEquals(8_123, d.examples().size());
        // Counted with Python's json module on this file (the README's 34,726 answers are
        // those of the whole dev file, 48 articles).
        assertEquals(26_104, d.answerCount());
        assertEquals(List.of(), d.mismatches());
        assertEquals(0, d.examples().get(0).article());
        assertEquals(35, d.examples().get(d.examples().size() - 1).article());
        for (Squad.Example e : d.examples()) {
            assertTrue(!e.answers().isEmpty(), e.id());
            for (Squad.Answer a : e.answers()) {
                assertEquals(a.text(), e.context().substring(a.start(), a.end()));
            }
        }
    }

    @Test
    void mismatchesAreCountedAndBadFilesNamed() throws Exception {
        Path f = tmp.resolve("small.json");
        Files.writeString(f, """
                {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.",
                  "qas": [{"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]},
                          {"id": "q2", "question": "What?", "answers": [{"text": "Paris", "answer_start": 1}]}]}]}]}
                """);
        Squad.Dataset d = Squad.read(f);
        assertEquals(2, d.examples().size());
        assertEquals(List.of("q2: \"Paris\" at 1"), d.mismatches());
        assertEquals(new Squad.Answer("France", 12), d.examples().get(0).answers().get(0));

        // answer_start counts code points, as Python does: after an astral char the Java
        // index is one more.
        Path astral = tmp.resolve("astral.json");
        Files.writeString(astral, "{\"data\": [{\"paragraphs\": [{\"context\": \"\uD83D\uDE00 smile here\", "
                + "\"qas\": [{\"id\": \"a\", \"question\": \"?\", "
                + "\"answers\": [{\"text\": \"smile\", \"answer_start\": 2}]}]}]}]}");
        Squad.Dataset ad = Squad.read(astral);
        assertEquals(List.of(), ad.mismatches());
        assertEquals(3, ad.examples().get(0).answers().get(0).start());

        Path bad = tmp.resolve("bad.json");
        Files.writeString(bad, "{\"data\": [{\"paragraphs\": [{\"qas\": []}]}]}");
        Bert4jException e = assertThrows(Bert4jException.class, () -> Squad.read(bad));
        assertTrue(e.getMessage().contains("data[0].paragraphs[0]") && e.getMessage().contains("context"),
                e.getMessage());
        Files.writeString(bad, "{\"version\": 1}");
        assertThrows(Bert4jException.class, () -> Squad.read(bad));
        Files.writeString(bad, "{not json");
        assertThrows(Bert4jException.class, () -> Squad.read(bad));
    }
}
