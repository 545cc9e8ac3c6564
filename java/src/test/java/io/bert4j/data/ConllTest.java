package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class ConllTest {

    @TempDir
    Path tmp;

    static Path conll(String name) {
        Path data = TestModels.sharedData();
        assumeTrue(data != null, "no shared data folder");
        Path p = data.resolve("conll2003").resolve(name);
        assumeTrue(Files.isRegularFile(p), "no " + p);
        return p;
    }

    private static final List<String> LABELS =
            List.of("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER");

    @Test
    void realTrainMatchesPublishedCounts() {
        Conll.Corpus c = Conll.read(conll("train.txt"));
        // Counts and tag distribution as stated in the data folder's README.
        assertEquals(946, c.documents());
        assertEquals(14_041, c.sentences().size());
        assertEquals(203_621, c.tokenCount());
        assertEquals(Conll.Scheme.IOB2, c.scheme());
        assertEquals(Map.of("O", 169_578, "B-LOC", 7_140, "B-PER", 6_600, "B-ORG", 6_321, "I-PER", 4_528,
                "I-ORG", 3_704, "B-MISC", 3_438, "I-LOC", 1_157, "I-MISC", 1_155), c.tagCounts());
        assertEquals(LABELS, c.labels());
        assertEquals(945, c.sentences().get(c.sentences().size() - 1).document());
        assertEquals(0, c.sentences().get(0).document());
        // First sentence of the file: "EU rejects German call to boycott British lamb ." on line 3.
        Conll.Sentence first = c.sentences().get(0);
        assertEquals(3, first.line());
        assertEquals(List.of("EU", "rejects", "German"), first.words().subList(0, 3));
        assertEquals(List.of("B-ORG", "O", "B-MISC"), first.tags().subList(0, 3));
    }

    @Test
    void realValidMatchesPublishedCounts() {
        Conll.Corpus c = Conll.read(conll("valid.txt"));
        assertEquals(216, c.documents());
        assertEquals(3_250, c.sentences().size());
        assertEquals(51_362, c.tokenCount());
        assertEquals(Map.of("O", 42_759, "B-LOC", 1_837, "B-PER", 1_842, "B-ORG", 1_341, "I-PER", 1_307,
                "I-ORG", 751, "B-MISC", 922, "I-LOC", 257, "I-MISC", 346), c.tagCounts());
        assertEquals(LABELS, c.labels());
    }

    @Test
    void realTrainRewrittenAsIob1ComesBackIdentical() throws Exception {
        Path src = conll("train.txt");
        Conll.Corpus iob2 = Conll.read(src);
        // IOB1: B- only where an entity directly follows one of the same type, else I-.
        List<String> out = new ArrayList<>();
        int changed = 0;
        String prevType = null;
        for (String line : Files.readAllLines(src)) {
            String[] cols = line.strip().split("\\s+");
            if (line.isBlank() || cols[0].equals("-DOCSTART-")) {
                prevType = null;
                out.add(line);
                continue;
            }
            String tag = cols[cols.length - 1];
            String type = tag.equals("O") ? null : tag.substring(2);
            if (tag.startsWith("B-") && !type.equals(prevType)) {
                cols[cols.length - 1] = "I-" + type;
                changed++;
            }
            prevType = type;
            out.add(String.join(" ", cols));
        }
        int entities = iob2.tagCounts().entrySet().stream().filter(t -> t.getKey().startsWith("B-"))
                .mapToInt(Map.Entry::getValue).sum();
        // Most entities become I-; the few that directly follow one of their type keep B-,
        // so both IOB1 rules are exercised.
        assertTrue(changed > entities * 9 / 10 && changed < entities, changed + " of " + entities);
        Path iob1File = tmp.resolve("train.iob1");
        Files.write(iob1File, out);

        Conll.Corpus auto = Conll.read(iob1File);
        assertEquals(Conll.Scheme.IOB1, auto.scheme());
        assertEquals(iob2.sentences(), auto.sentences());
        assertEquals(iob2.labels(), auto.labels());
        Conll.Corpus declared = Conll.read(iob1File, Conll.LAST_COLUMN, Conll.Scheme.IOB1);
        assertEquals(iob2.sentences(), declared.sentences());
        Bert4jException e = assertThrows(Bert4jException.class,
                () -> Conll.read(iob1File, Conll.LAST_COLUMN, Conll.Scheme.IOB2));
        assertTrue(e.getMessage().contains(iob1File + ":"), e.getMessage());
        assertTrue(e.getMessage().contains("IOB1"), e.getMessage());
    }

    @Test
    void iob1Conversion() {
        assertEquals(List.of("B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "B-ORG"),
                Conll.iob1ToIob2(List.of("I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "B-ORG")));
        List<String> iob2 = List.of("B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC");
        assertEquals(iob2, Conll.iob1ToIob2(iob2));
        assertThrows(Bert4jException.class, () -> Conll.iob1ToIob2(List.of("O", "E-PER")));
    }

    @Test
    void documentsSentencesAndColumns() throws Exception {
        Path f = tmp.resolve("small.txt");
        Files.writeString(f, """
                -DOCSTART- -X- -X- O

                Peter NNP B-NP B-PER
                Blackburn NNP I-NP I-PER

                BRUSSELS NNP B-NP B-LOC
                -DOCSTART- -X- -X- O
                Paris NNP B-NP B-LOC
                said VBD B-VP O



                """);
        Conll.Corpus c = Conll.read(f);
        assertEquals(2, c.documents());
        assertEquals(3, c.sentences().size());
        assertEquals(new Conll.Sentence(0, 3, List.of("Peter", "Blackburn"), List.of("B-PER", "I-PER")),
                c.sentences().get(0));
        assertEquals(new Conll.Sentence(0, 6, List.of("BRUSSELS"), List.of("B-LOC")), c.sentences().get(1));
        // -DOCSTART- ends a sentence even without a blank line.
        assertEquals(new Conll.Sentence(1, 8, List.of("Paris", "said"), List.of("B-LOC", "O")), c.sentences().get(2));
        assertEquals(List.of("O", "B-LOC", "I-LOC", "B-PER", "I-PER"), c.labels());

        // Column 2 is the chunk tag, which has the same shape.
        Conll.Corpus chunks = Conll.read(f, 2, Conll.Scheme.IOB2);
        assertEquals(List.of("B-NP", "I-NP"), chunks.sentences().get(0).tags());
        assertEquals(List.of("O", "B-NP", "I-NP", "B-VP", "I-VP"), chunks.labels());
        assertNotEquals(c.sentences(), chunks.sentences());

        Bert4jException e = assertThrows(Bert4jException.class, () -> Conll.read(f, 4, Conll.Scheme.AUTO));
        assertTrue(e.getMessage().startsWith(f + ":3:"), e.getMessage());
        assertThrows(Bert4jException.class, () -> Conll.read(f, 0, Conll.Scheme.AUTO));

        // Sentences before the first -DOCSTART- form a document; empty documents do not count.
        Path pre = tmp.resolve("pre.txt");
        Files.writeString(pre, "a O\n\n-DOCSTART- O\n-DOCSTART- O\n\nb O\n");
        Conll.Corpus pc = Conll.read(pre);
        assertEquals(2, pc.documents());
        assertEquals(1, pc.sentences().get(1).document());

        Path noDoc = tmp.resolve("nodoc.txt");
        Files.writeString(noDoc, "a O\nb B-X\n\nc O\n");
        Conll.Corpus nd = Conll.read(noDoc);
        assertEquals(1, nd.documents());
        assertEquals(2, nd.sentences().size());
        assertEquals(List.of("O", "B-X", "I-X"), nd.labels());
    }

    @Test
    void errorsNameFileAndLine() throws Exception {
        Path one = tmp.resolve("one.txt");
        Files.writeString(one, "EU B-ORG\nrejects O\nGerman\n");
        Bert4jException e = assertThrows(Bert4jException.class, () -> Conll.read(one));
        assertTrue(e.getMessage().startsWith(one + ":3:"), e.getMessage());
        assertTrue(e.getMessage().contains("1 column"), e.getMessage());

        Path shape = tmp.resolve("shape.txt");
        Files.writeString(shape, "EU B-ORG\n\nPeter X-PER\n");
        e = assertThrows(Bert4jException.class, () -> Conll.read(shape));
        assertTrue(e.getMessage().startsWith(shape + ":3:"), e.getMessage());
        assertTrue(e.getMessage().contains("X-PER"), e.getMessage());

        Path bare = tmp.resolve("bare.txt");
        Files.writeString(bare, "Peter B-\n");
        assertThrows(Bert4jException.class, () -> Conll.read(bare));
        assertThrows(Bert4jException.class, () -> Conll.read(tmp.resolve("missing.txt")));
    }
}
