package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class GlueTsvTest {
    @TempDir
    Path dir;

    private static Path shared(String name) {
        Path data = TestModels.sharedData();
        assumeTrue(data != null, "shared data folder not present");
        Path p = data.resolve(name);
        assumeTrue(Files.isRegularFile(p), name + " not present");
        return p;
    }

    /** Lines as {@code wc -l} counts them (newline characters), independent of the reader. */
    private static long newlines(Path p) throws IOException {
        byte[] b = Files.readAllBytes(p);
        return IntStream.range(0, b.length).filter(i -> b[i] == '\n').count();
    }

    private static Map<String, Integer> labelCounts(GlueTsv t) {
        Map<String, Integer> m = new HashMap<>();
        for (GlueTsv.Example e : t.examples()) {
            m.merge(e.label(), 1, Integer::sum);
        }
        return m;
    }

    @Test
    void sst2() throws IOException {
        Path file = shared("sst2/train.tsv");
        GlueTsv t = GlueTsv.read(file);
        assertEquals(List.of("text", "label"), t.header());
        assertEquals("text", t.columns().text()); // the default falls back from "sentence" to "text"
        assertEquals(newlines(file) - 1, t.examples().size());
        assertEquals(67_349, t.examples().size());
        assertEquals(Map.of("1", 37_569, "0", 29_780), labelCounts(t));
        assertEquals(List.of("0", "1"), t.labelSet());
        GlueTsv.Example first = t.examples().get(0);
        // Texts are kept as written, trailing space included; line numbers are 1-based file lines.
        assertEquals(new GlueTsv.Example(2, "hide new secretions from the parental units ", null, "0"), first);
        assertEquals(67_350, t.examples().get(t.examples().size() - 1).line());
    }

    @Test
    void mrpcStartsWithABomAndUsesNamedColumns() throws IOException {
        Path file = shared("mrpc/train.tsv");
        byte[] head = Files.readAllBytes(file);
        assertEquals(0xEF, head[0] & 0xff); // the BOM the reader must drop
        GlueTsv t = GlueTsv.read(file, GlueTsv.Columns.MRPC);
        assertEquals(List.of("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), t.header());
        assertEquals(newlines(file) - 1, t.examples().size());
        assertEquals(3_668, t.examples().size());
        assertEquals(Map.of("1", 2_474, "0", 1_194), labelCounts(t));
        for (GlueTsv.Example e : t.examples()) {
            assertTrue(!e.text().isEmpty() && !e.pair().isEmpty(), "line " + e.line());
        }
        // Quotes are plain characters: some sentences contain them and no rows were merged.
        assertTrue(t.examples().stream().anyMatch(e -> e.text().contains("\"")));
        // Without naming the columns, the reader says what it found.
        Bert4jException ex = assertThrows(Bert4jException.class, () -> GlueTsv.read(file));
        assertTrue(ex.getMessage().contains(file + ":1: no text column") && ex.getMessage().contains("#1 String"),
                ex.getMessage());
    }

    @Test
    void stsbFloatScores() throws IOException {
        Path file = shared("stsb/train.tsv");
        GlueTsv t = GlueTsv.read(file, GlueTsv.Columns.STSB);
        assertEquals(10, t.header().size());
        assertEquals(newlines(file) - 1, t.examples().size());
        assertEquals(5_749, t.examples().size());
        float[] scores = t.floatLabels();
        double sum = 0;
        for (float s : scores) {
            assertTrue(s >= 0 && s <= 5, "score " + s);
            sum += s;
        }
        assertEquals(2.701, sum / scores.length, 0.0005); // the mean the data README states
        assertEquals("A plane is taking off.", t.examples().get(0).text());
        assertEquals("An air plane is taking off.", t.examples().get(0).pair());
        assertEquals(5.0f, scores[0]);
        // Some rows hold an odd number of quotes; with CSV quoting they would swallow later rows.
        assertTrue(t.examples().stream().anyMatch(e -> (e.text() + e.pair()).chars().filter(c -> c == '"').count() % 2 == 1));
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    private Path write(String name, String content) throws IOException {
        return write(name, content.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void bomCrlfQuotesAndBlankLines() throws IOException {
        byte[] body = "sentence\tlabel\r\n\"so \"\"good\t1\r\n\r\nbad movie \t0\r\n   \r\nlast\t1"
                .getBytes(StandardCharsets.UTF_8);
        byte[] withBom = new byte[body.length + 3];
        withBom[0] = (byte) 0xEF;
        withBom[1] = (byte) 0xBB;
        withBom[2] = (byte) 0xBF;
        System.arraycopy(body, 0, withBom, 3, body.length);
        GlueTsv t = GlueTsv.read(write("a.tsv", withBom));
        assertEquals(List.of("sentence", "label"), t.header());
        assertEquals("sentence", t.columns().text());
        assertEquals(List.of(new GlueTsv.Example(2, "\"so \"\"good", null, "1"),
                new GlueTsv.Example(4, "bad movie ", null, "0"),
                new GlueTsv.Example(6, "last", null, "1")), t.examples());
    }

    @Test
    void columnsByNameAndWithoutLabels() throws IOException {
        Path p = write("pairs.tsv", "id\tq1\tq2\tgold\n7\tis it?\tit is.\t 2 \n8\tx\ty\t10\n9\tu\tv\t1\n");
        GlueTsv t = GlueTsv.read(p, new GlueTsv.Columns("q1", "q2", "gold"));
        assertEquals(new GlueTsv.Example(2, "is it?", "it is.", "2"), t.examples().get(0)); // label stripped
        assertEquals(List.of("1", "2", "10"), t.labelSet()); // numeric order, not "1","10","2"
        assertArrayEquals(new float[] {2, 10, 1}, t.floatLabels());
        GlueTsv unlabelled = GlueTsv.read(p, new GlueTsv.Columns("q1", null, null));
        assertNull(unlabelled.examples().get(0).label());
        assertNull(unlabelled.examples().get(0).pair());
        Bert4jException e = assertThrows(Bert4jException.class, unlabelled::labelSet);
        assertTrue(e.getMessage().contains("no labels"), e.getMessage());
        // A header alone is a valid, empty data set.
        assertEquals(0, GlueTsv.read(write("empty.tsv", "text\tlabel\n")).examples().size());
        Path mixed = write("mixed.tsv", "text\tlabel\na\tpos\nb\tneg\nc\t3\n");
        assertEquals(List.of("3", "neg", "pos"), GlueTsv.read(mixed).labelSet());
    }

    private static void assertError(Path file, String... parts) {
        Bert4jException e = assertThrows(Bert4jException.class, () -> GlueTsv.read(file));
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), "'" + e.getMessage() + "' lacks '" + part + "'");
        }
    }

    @Test
    void badFiles() throws IOException {
        assertError(write("fields.tsv", "text\tlabel\nok\t1\n\ntoo\tmany\t1\n"),
                "fields.tsv:4: expected 2 tab-separated fields as in the header, found 3");
        assertError(write("few.tsv", "text\tlabel\nno label\n"), "few.tsv:2: expected 2", "found 1");
        assertError(write("nolabel.tsv", "text\tscore\nx\t1\n"), "nolabel.tsv:1: no label column 'label'", "[text, score]");
        assertError(write("notext.tsv", "\n\nsent\tlabel\nx\t1\n"), "notext.tsv:3: no text column");
        assertError(write("dup.tsv", "text\ttext\tlabel\n"), "dup.tsv:1: header names column 'text' twice");
        assertError(write("emptylabel.tsv", "text\tlabel\nx\t \n"), "emptylabel.tsv:2: empty label");
        assertError(write("blank.tsv", "\n \r\n"), "blank.tsv: empty file");
        assertError(write("latin1.tsv", new byte[] {'t', 'e', 'x', 't', '\t', 'l', 'a', 'b', 'e', 'l', '\n',
                'c', 'a', 'f', (byte) 0xE9, '\t', '1', '\n'}), "latin1.tsv: not valid UTF-8");
        assertError(dir.resolve("missing.tsv"), "cannot read", "missing.tsv");
        Path pair = write("pair.tsv", "text\tlabel\nx\t1\n");
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> GlueTsv.read(pair, new GlueTsv.Columns(null, "text_b", "label")));
        assertTrue(e.getMessage().contains("pair.tsv:1: no pair column 'text_b'"), e.getMessage());

        GlueTsv scores = GlueTsv.read(write("scores.tsv", "text\tlabel\na\t1.5\nb\t-2e1\nc\t.5\nd\tNaN\n"));
        e = assertThrows(Bert4jException.class, scores::floatLabels);
        assertTrue(e.getMessage().contains("scores.tsv:5: label 'NaN' in column 'label' is not a finite number"),
                e.getMessage());
        GlueTsv words = GlueTsv.read(write("words.tsv", "text\tlabel\na\t1\nb\tpositive\n"));
        e = assertThrows(Bert4jException.class, words::floatLabels);
        assertTrue(e.getMessage().contains("words.tsv:3: label 'positive'"), e.getMessage());
        assertArrayEquals(new float[] {1.5f, -20f, 0.5f},
                GlueTsv.read(write("ok.tsv", "text\tlabel\na\t1.5\nb\t-2e1\nc\t.5\n")).floatLabels());
    }

    @Test
    void splitIsSeededDisjointAndKeepsOrder() {
        List<Integer> items = IntStream.range(0, 1000).boxed().toList();
        GlueTsv.Split<Integer> a = GlueTsv.split(items, 0.1, 42);
        assertEquals(100, a.validation().size());
        assertEquals(900, a.train().size());
        assertEquals(a, GlueTsv.split(items, 0.1, 42));
        assertEquals(a, GlueTsv.split(items, 100, 42));
        assertNotEquals(a.validation(), GlueTsv.split(items, 0.1, 43).validation());
        Set<Integer> all = new HashSet<>(a.train());
        all.addAll(a.validation());
        assertEquals(1000, all.size()); // disjoint and complete
        assertEquals(new ArrayList<>(a.train()).stream().sorted().toList(), a.train());
        assertEquals(new ArrayList<>(a.validation()).stream().sorted().toList(), a.validation());
        // The choice is spread over the file, not a block at one end.
        assertTrue(a.validation().get(0) < 100 && a.validation().get(99) > 900, a.validation().toString());
        // Tiny inputs: both parts stay non-empty.
        assertEquals(1, GlueTsv.split(List.of(1, 2), 0.01, 1).validation().size());
        assertEquals(1, GlueTsv.split(List.of(1, 2), 0.99, 1).train().size());
        for (double bad : new double[] {0, 1, -0.1, Double.NaN}) {
            Bert4jException e = assertThrows(Bert4jException.class, () -> GlueTsv.split(items, bad, 1));
            assertTrue(e.getMessage().contains("validation fraction"), e.getMessage());
        }
        assertThrows(Bert4jException.class, () -> GlueTsv.split(items, 1000, 1));
        assertThrows(Bert4jException.class, () -> GlueTsv.split(items, 0, 1));
        assertThrows(Bert4jException.class, () -> GlueTsv.split(List.of(1), 0.5, 1));
    }
}
