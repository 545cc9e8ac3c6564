package io.bert4j.data;

import io.bert4j.Bert4jException;
import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class QaFeaturesTest {

    static BertTokenizer tok;
    static Squad.Dataset squad;

    @BeforeAll
    static void load() {
        squad = Squad.read(SquadTest.squadFile());
        tok = BertTokenizer.load(TestModels.defaultModelDir());
    }

    @AfterAll
    static void close() {
        if (tok != null) {
            tok.close();
        }
    }

    static String norm(String s) {
        return s.toLowerCase(Locale.ROOT).replaceAll("\\s+", " ").strip();
    }

    @Test
    void realSquadFeatures() {
        for (int[] cfg : new int[][] {{384, 128}, {128, 32}}) {
            int maxLength = cfg[0];
            int stride = cfg[1];
            List<QaFeatures.Feature> fs = QaFeatures.build(tok, squad.examples(), maxLength, stride);
            int labelled = 0;
            int contained = 0;
            int exact = 0;
            int multi = 0;
            int from = 0;
            while (from < fs.size()) {
                int ex = fs.get(from).exampleIndex();
                int to = from;
                while (to < fs.size() && fs.get(to).exampleIndex() == ex) {
                    to++;
                }
                Squad.Example example = squad.examples().get(ex);
                List<QaFeatures.Feature> mine = fs.subList(from, to);
                multi += mine.size() > 1 ? 1 : 0;
                // The window layout check re-tokenizes (about a millisecond a call), so it runs
                // on a quarter of the examples plus every multi-window one at 384.
                if (ex % 4 == 0 || (maxLength == 384 && mine.size() > 1)) {
                    checkWindows(example, mine, maxLength, stride);
                }
                boolean any = false;
                for (QaFeatures.Feature f : mine) {
                    assertEquals(example.id(), f.exampleId());
                    if (f.startPosition() == 0) {
                        assertEquals(0, f.endPosition());
                        continue;
                    }
                    any = true;
                    labelled++;
                    assertTrue(f.startPosition() >= f.contextStart() && f.endPosition() >= f.startPosition()
                            && f.endPosition() < f.length() - 1, example.id());
                    String span = example.context().substring(f.offsets().get(f.startPosition()).start(),
                            f.offsets().get(f.endPosition()).end());
                    String answer = example.answers().get(0).text();
                    if (norm(span).contains(norm(answer))) {
                        contained++;
                    }
                    if (norm(span).equals(norm(answer))) {
                        exact++;
                    }
                }
                // Windows overlap by far more than any SQuAD answer, so some window holds it.
                assertTrue(any || maxLength < 384, "no window holds the answer of " + example.id());
                from = to;
            }
            System.out.printf(Locale.ROOT, "QaFeaturesTest: max %d stride %d: %d features for %d examples, "
                            + "%d examples with several windows, %d labelled; span contains answer %.4f, "
                            + "equals it %.4f%n", maxLength, stride, fs.size(), squad.examples().size(), multi,
                    labelled, contained / (double) labelled, exact / (double) labelled);
            assertEquals(labelled, contained, "every labelled span holds its answer");
            assertTrue(exact > 0.97 * labelled, "most labelled spans are exactly the answer: " + exact);
            assertTrue(multi > (maxLength == 384 ? 10 : 1000), "long contexts give several windows: " + multi);
        }
    }

    /** Windows: sizes, shared stride tokens, full coverage of the context tokens, layout. */
    private static void checkWindows(Squad.Example example, List<QaFeatures.Feature> fs, int maxLength, int stride) {
        Encoding ctx = tok.encode(example.context());  // context alone: ids without specials
        int[] ctxIds = Arrays.copyOfRange(ctx.ids(), 1, ctx.length() - 1);
        Encoding q = tok.encode(example.question().stripLeading());
        int[] qIds = Arrays.copyOfRange(q.ids(), 1, q.length() - 1);
        int next = 0;  // first context token not yet covered
        for (int k = 0; k < fs.size(); k++) {
            QaFeatures.Feature f = fs.get(k);
            assertTrue(f.length() <= maxLength, example.id());
            assertEquals(tok.clsId(), f.inputIds()[0]);
            assertArrayEquals(qIds, Arrays.copyOfRange(f.inputIds(), 1, 1 + qIds.length));
            assertEquals(qIds.length + 2, f.contextStart());
            assertEquals(tok.sepId(), f.inputIds()[f.contextStart() - 1]);
            assertEquals(tok.sepId(), f.inputIds()[f.length() - 1]);
            int n = f.length() - 1 - f.contextStart();
            // Where this window starts in the context, found from its first offset.
            int first = -1;
            for (int t = 0; t < ctxIds.length; t++) {
                if (ctx.offsets().get(t + 1).equals(f.offsets().get(f.contextStart()))) {
                    first = t;
                    break;
                }
            }
            assertEquals(k == 0 ? 0 : next - stride, first, example.id() + " window " + k);
            assertArrayEquals(Arrays.copyOfRange(ctxIds, first, first + n),
                    Arrays.copyOfRange(f.inputIds(), f.contextStart(), f.contextStart() + n));
            for (int t = 0; t < f.length(); t++) {
                boolean inContext = t >= f.contextStart() && t < f.length() - 1;
                assertEquals(inContext ? 1 : 0, f.typeIds()[t] == 1 && t < f.length() - 1 ? 1 : 0);
                if (inContext) {
                    assertEquals(ctx.offsets().get(first + 1 + t - f.contextStart()), f.offsets().get(t));
                } else {
                    assertNull(f.offsets().get(t));
                }
            }
            if (k < fs.size() - 1) {
                assertEquals(maxLength, f.length(), "only the last window may be short");
            }
            next = first + n;
        }
        assertEquals(ctxIds.length, next, "windows cover the context: " + example.id());
    }

    @Test
    void windowsMatchTheTokenizersOwnOverflow() {
        // HF tokenizers cut pair overflow windows by the same rule; compare on long contexts.
        int checked = 0;
        EncodeOptions o = EncodeOptions.builder().maxLength(128).stride(32)
                .truncation(EncodeOptions.Truncation.ONLY_SECOND).build();
        for (Squad.Example ex : squad.examples().subList(0, 400)) {
            List<QaFeatures.Feature> fs = QaFeatures.build(tok, ex, 0, 128, 32);
            Encoding e = tok.encodePair(ex.question().stripLeading(), ex.context(), o);
            List<Encoding> windows = new ArrayList<>();
            windows.add(e);
            windows.addAll(e.overflowing());
            assertEquals(windows.size(), fs.size(), ex.id());
            for (int k = 0; k < fs.size(); k++) {
                assertArrayEquals(windows.get(k).ids(), fs.get(k).inputIds(), ex.id() + " window " + k);
                assertArrayEquals(windows.get(k).typeIds(), fs.get(k).typeIds(), ex.id() + " window " + k);
            }
            checked += fs.size() > 1 ? 1 : 0;
        }
        assertTrue(checked > 50, "several examples need windows: " + checked);
    }

    @Test
    void labelsAndErrorsOnAHandMadeExample() {
        String context = "The Eiffel Tower is in Paris, France. It was built in 1889 by Gustave Eiffel's company.";
        Squad.Example ex = new Squad.Example("h1", 0, "t", "  When was it built?", context,
                List.of(new Squad.Answer("1889", context.indexOf("1889"))));
        List<QaFeatures.Feature> fs = QaFeatures.build(tok, ex, 0, 384, 128);
        assertEquals(1, fs.size());
        QaFeatures.Feature f = fs.get(0);
        assertEquals(f.startPosition(), f.endPosition());
        assertEquals("1889", context.substring(f.offsets().get(f.startPosition()).start(),
                f.offsets().get(f.endPosition()).end()));
        // An answer that starts and ends inside tokens is widened to whole tokens.
        Squad.Example mid = new Squad.Example("h2", 0, "t", "Who?", context,
                List.of(new Squad.Answer("ustave Eiff", context.indexOf("ustave"))));
        QaFeatures.Feature g = QaFeatures.build(tok, mid, 0, 384, 128).get(0);
        String span = context.substring(g.offsets().get(g.startPosition()).start(),
                g.offsets().get(g.endPosition()).end());
        assertTrue(span.startsWith("Gustave Eiff") && span.contains("ustave Eiff"), span);
        // Small windows: only those holding the answer are labelled.
        List<QaFeatures.Feature> small = QaFeatures.build(tok, ex, 0, 16, 2);
        assertTrue(small.size() > 2);
        assertTrue(small.stream().anyMatch(x -> x.startPosition() == 0));
        assertTrue(small.stream().anyMatch(x -> x.startPosition() > 0));
        // No answers: -1 labels.
        Squad.Example none = new Squad.Example("h3", 0, "t", "Why?", context, List.of());
        assertEquals(-1, QaFeatures.build(tok, none, 0, 64, 16).get(0).startPosition());
        Bert4jException e = assertThrows(Bert4jException.class, () -> QaFeatures.build(tok, ex, 0, 10, 4));
        assertTrue(e.getMessage().contains("h1"), e.getMessage());
    }
}
