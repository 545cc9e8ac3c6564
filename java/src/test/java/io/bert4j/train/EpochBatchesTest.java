package io.bert4j.train;

import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Per-epoch shuffles, length grouping, resumable positions. */
class EpochBatchesTest {
    /** Examples are their own index; lengths are seeded random in [1, 128]. */
    private static final int N = 1037;
    private static final List<Integer> DATA = IntStream.range(0, N).boxed().toList();
    private static final int[] LEN = new Random(5).ints(N, 1, 129).toArray();

    private static EpochBatches<Integer, List<Integer>> open(boolean grouped, String position) {
        return new EpochBatches<>(DATA, 32, 11, grouped ? i -> LEN[i] : null, List::copyOf, position);
    }

    private static List<List<Integer>> take(EpochBatches<Integer, List<Integer>> b, int count) {
        List<List<Integer>> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(b.next());
        }
        return out;
    }

    @Test
    void eachEpochVisitsEveryExampleOnceInANewOrder() {
        for (boolean grouped : new boolean[] {false, true}) {
            EpochBatches<Integer, List<Integer>> b = open(grouped, null);
            assertEquals(33, b.batchesPerEpoch());
            List<List<Integer>> e0 = take(b, 33), e1 = take(b, 33);
            assertEquals("2:0", b.position());
            for (List<List<Integer>> epoch : List.of(e0, e1)) {
                int[] seen = epoch.stream().flatMap(List::stream).mapToInt(Integer::intValue).sorted().toArray();
                assertEquals(Arrays.toString(IntStream.range(0, N).toArray()), Arrays.toString(seen), "grouped=" + grouped);
                assertEquals(1, epoch.stream().filter(x -> x.size() != 32).count(), "one short batch (1037 = 32*32 + 13)");
            }
            assertNotEquals(e0, e1, "a new shuffle each epoch");
            assertNotEquals(DATA.subList(0, 32), e0.get(0), "shuffled");
            assertEquals(e0, take(open(grouped, null), 33), "same seed, same order");
        }
        assertNotEquals(take(open(false, null), 3),
                take(new EpochBatches<>(DATA, 32, 12, null, List::copyOf, null), 3), "another seed, another order");
    }

    @Test
    void reopeningAtThePositionContinuesExactly() {
        for (boolean grouped : new boolean[] {false, true}) {
            EpochBatches<Integer, List<Integer>> straight = open(grouped, null);
            List<List<Integer>> all = take(straight, 80);
            for (int cut : new int[] {0, 1, 32, 33, 34, 66, 70}) {
                EpochBatches<Integer, List<Integer>> first = open(grouped, null);
                take(first, cut);
                String pos = first.position();
                EpochBatches<Integer, List<Integer>> reopened = open(grouped, pos);
                assertEquals(all.subList(cut, 80), take(reopened, 80 - cut), "cut at " + cut + " (" + pos + ")");
            }
        }
        EpochBatches<Integer, List<Integer>> atEnd = open(false, "0:33");
        assertEquals(take(open(false, null), 34).get(33), atEnd.next(), "the end of an epoch continues with the next");
        assertEquals("1:1", atEnd.position());
    }

    @Test
    void lengthGroupingPadsLess() {
        long plain = padded(take(open(false, null), 33)), grouped = padded(take(open(true, null), 33));
        long real = Arrays.stream(LEN).sum();
        assertTrue(grouped < plain, grouped + " vs " + plain);
        assertTrue(grouped < real * 1.10, "grouped batches pad little: " + grouped + " tokens for " + real);
        // Within a batch lengths are close; the batch order is still mixed (not longest-first overall).
        List<List<Integer>> e = take(open(true, null), 33);
        int[] maxima = e.stream().mapToInt(b -> b.stream().mapToInt(i -> LEN[i]).max().orElseThrow()).toArray();
        int[] sorted = maxima.clone();
        Arrays.sort(sorted);
        assertNotEquals(Arrays.toString(sorted), Arrays.toString(maxima));
    }

    /** Tokens after padding each batch to its own longest example. */
    private static long padded(List<List<Integer>> batches) {
        return batches.stream().mapToLong(b -> (long) b.size() * b.stream().mapToInt(i -> LEN[i]).max().orElseThrow()).sum();
    }

    @Test
    void stepsPerEpochAndBadInput() {
        assertEquals(33, EpochBatches.stepsPerEpoch(N, 32, 1));
        assertEquals(17, EpochBatches.stepsPerEpoch(N, 32, 2));
        assertEquals(1, EpochBatches.stepsPerEpoch(3, 32, 4));
        assertThrows(Bert4jException.class, () -> open(false, "banana"));
        assertThrows(Bert4jException.class, () -> open(false, "3"));
        assertThrows(Bert4jException.class, () -> open(false, "0:-1"));
        assertThrows(Bert4jException.class, () -> open(false, "0:34"), "beyond an epoch");
        assertThrows(Bert4jException.class, () -> new EpochBatches<>(List.of(), 8, 1, null, List::copyOf, null));
        assertThrows(Bert4jException.class, () -> new EpochBatches<>(DATA, 0, 1, null, List::copyOf, null));
    }
}
