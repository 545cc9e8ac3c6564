package io.bert4j.pretrain.data;

import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CorpusTest {
    @TempDir
    Path tmp;

    static List<List<String>> all(Corpus c) {
        List<List<String>> out = new ArrayList<>();
        for (Iterator<List<String>> it = c.documents(); it.hasNext(); ) {
            out.add(it.next());
        }
        return out;
    }

    @Test
    void wikiTextValidHas60DocumentsWithoutHeadings() {
        Corpus c = Corpus.open(DataTestSupport.wikiValid());
        List<List<String>> docs = all(c);
        assertEquals(60, docs.size());
        assertEquals(60, c.countDocuments());
        // The first article's first sentence, split at " . "; no title or heading lines kept.
        assertTrue(docs.get(0).get(0).startsWith("Homarus gammarus , known as the European lobster"), docs.get(0).get(0));
        assertTrue(docs.get(0).get(0).endsWith("Black Sea ."), docs.get(0).get(0));
        for (List<String> d : docs) {
            for (String s : d) {
                assertFalse(s.isBlank());
                assertFalse(s.startsWith("= "), s);
            }
        }
    }

    @Test
    void plainFormatSplitsDocumentsOnBlankLines() throws IOException {
        Path f = tmp.resolve("c.txt");
        Files.writeString(f, "\n\nfirst a.\nfirst b.\n\n\n  \nsecond a.\n\nthird a.\nthird b.\nthird c.");
        List<List<String>> docs = all(Corpus.open(f));
        assertEquals(List.of(List.of("first a.", "first b."), List.of("second a."),
                List.of("third a.", "third b.", "third c.")), docs);
    }

    @Test
    void folderIsReadInSortedOrderAndDocumentsDoNotSpanFiles() throws IOException {
        Files.writeString(tmp.resolve("b.txt"), "bee one.\nbee two.\n");
        Files.writeString(tmp.resolve("a.txt"), "ay one.\n");
        Files.writeString(tmp.resolve(".hidden"), "never.\n");
        assertEquals(List.of(List.of("ay one."), List.of("bee one.", "bee two.")), all(Corpus.open(tmp)));
    }

    @Test
    void wikiSentenceSplitting() {
        List<String> out = new ArrayList<>();
        Corpus.splitSentences(" It rained . Did it ? Yes ! 3 @.@ 5 m long . ", out);
        assertEquals(List.of("It rained .", "Did it ?", "Yes !", "3 @.@ 5 m long ."), out);
    }

    @Test
    void splitIsByDocumentAndDisjoint() {
        Corpus c = Corpus.open(DataTestSupport.wikiValid());
        Corpus.Split s = c.split(10);
        List<List<String>> train = all(s.train());
        List<List<String>> held = all(s.heldOut());
        List<List<String>> docs = all(c);
        assertEquals(54, train.size());
        assertEquals(6, held.size());
        assertEquals(docs.get(9), held.get(0));
        assertEquals(docs.get(0), train.get(0));
        assertFalse(train.contains(held.get(0)));
    }

    @Test
    void missingPathIsAClearError() {
        Path p = tmp.resolve("nope.txt");
        Bert4jException e = assertThrows(Bert4jException.class, () -> Corpus.open(p));
        assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void emptyCorpusIsAClearError() throws IOException {
        Path f = tmp.resolve("empty.txt");
        Files.writeString(f, "\n \n\n");
        Bert4jException e = assertThrows(Bert4jException.class, () -> Corpus.open(f));
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("no text"), e.getMessage());
        Path dir = Files.createDirectory(tmp.resolve("emptydir"));
        e = assertThrows(Bert4jException.class, () -> Corpus.open(dir));
        assertTrue(e.getMessage().contains("no text"), e.getMessage());
    }

    @Test
    void singleDocumentIsAClearErrorForNsp() throws IOException {
        Path f = tmp.resolve("one.txt");
        Files.writeString(f, "only one document.\nwith two sentences.\n");
        Corpus c = Corpus.open(f);
        Bert4jException e = assertThrows(Bert4jException.class, c::requireNspDocuments);
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("NSP needs at least 2 documents"),
                e.getMessage());
        e = assertThrows(Bert4jException.class, () -> new PretrainingDataStream(c, DataTestSupport.tokenizer(),
                PretrainingDataStream.Options.defaults(32, 4, 1)));
        assertTrue(e.getMessage().contains("NSP needs at least 2 documents"), e.getMessage());
    }

    @Test
    void nonUtf8IsAClearError() throws IOException {
        Path f = tmp.resolve("latin1.txt");
        Files.write(f, new byte[] {'c', 'a', 'f', (byte) 0xE9, '\n'});
        Bert4jException e = assertThrows(Bert4jException.class, () -> Corpus.open(f));
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("UTF-8"), e.getMessage());
    }
}
