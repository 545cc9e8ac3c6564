package io.bert4j.pretrain.data;

import io.bert4j.Bert4jException;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.tokenize.EncodeOptions;
import io.bert4j.tokenize.Encoding;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;

/**
 * Turns a corpus into MLM + NSP {@link TrainingInstance}s the way Google's BERT
 * {@code create_pretraining_data} does, but streamed:
 * <ul>
 *   <li>sentences are tokenized without special tokens and packed, within one document, up
 *       to a target of {@code maxSeqLen - 3} tokens; with probability {@code shortSeqProb}
 *       a chunk gets a shorter random target in [2, maxSeqLen - 3] (drawn per chunk, so
 *       that fraction of instances is short even when documents are long);</li>
 *   <li>the chunk is split at a random sentence boundary into A and B; with probability 0.5
 *       B is replaced by a span of a different document, and the chunk's unused sentences
 *       are put back for the next chunk; a chunk of one sentence is split inside that
 *       sentence when B stays the real continuation (Google's code would force "random"
 *       there, which skews the NSP labels);</li>
 *   <li>a pair too long is trimmed one token at a time from the longer segment, at its front
 *       or back at random.</li>
 * </ul>
 * Instead of all documents in memory, documents pass through a bounded shuffle buffer
 * ({@code documentBuffer} documents not yet used, plus as many recently used ones): the
 * next document is drawn at random from it, and random-next spans come from the other
 * documents there. Instances pass through a second shuffle buffer ({@code instanceBuffer})
 * so one batch does not hold one document's consecutive chunks. Memory is therefore bounded
 * by the two buffers, whatever the corpus size.
 *
 * <p>For the same corpus, tokenizer, settings and seed, the sequence is identical.
 */
public final class InstanceBuilder {
    private static final EncodeOptions NO_SPECIALS = EncodeOptions.DEFAULT.withAddSpecialTokens(false);

    private final BertTokenizer tokenizer;
    private final int maxSeqLen;
    private final double shortSeqProb;
    private final int documentBuffer;
    private final int instanceBuffer;
    private final int clsId;
    private final int sepId;

    /**
     * @param maxSeqLen      longest instance, specials included (at least 5: [CLS] a [SEP] b [SEP])
     * @param shortSeqProb   chance that a chunk aims for a shorter random length (Google: 0.1)
     * @param documentBuffer documents held for shuffling and random-next spans (e.g. 1000)
     * @param instanceBuffer instances held for shuffling (e.g. 1000; 1 = no shuffling)
     */
    public InstanceBuilder(BertTokenizer tokenizer, int maxSeqLen, double shortSeqProb, int documentBuffer,
                           int instanceBuffer) {
        if (maxSeqLen < 5) {
            throw new Bert4jException("maxSeqLen must be >= 5 ([CLS] A [SEP] B [SEP]), got " + maxSeqLen);
        }
        if (!(shortSeqProb >= 0 && shortSeqProb <= 1)) {
            throw new Bert4jException("shortSeqProb must be in [0, 1], got " + shortSeqProb);
        }
        if (documentBuffer < 1 || instanceBuffer < 1) {
            throw new Bert4jException("documentBuffer and instanceBuffer must be >= 1, got " + documentBuffer
                    + " and " + instanceBuffer);
        }
        this.tokenizer = tokenizer;
        this.maxSeqLen = maxSeqLen;
        this.shortSeqProb = shortSeqProb;
        this.documentBuffer = documentBuffer;
        this.instanceBuffer = instanceBuffer;
        this.clsId = tokenizer.clsId();
        this.sepId = tokenizer.sepId();
    }

    public int maxSeqLen() {
        return maxSeqLen;
    }

    /**
     * One pass over the corpus: a lazy, deterministic sequence of instances for this seed
     * (use a different seed per epoch to get different pairs and order). Fails with a
     * {@link Bert4jException} if fewer than 2 documents hold any token.
     */
    public Iterator<TrainingInstance> instances(Corpus corpus, long seed) {
        return new Pass(corpus, seed);
    }

    /** A document as token ids per sentence, empty sentences dropped; null if nothing is left. */
    int[][] tokenize(List<String> sentences) {
        List<Encoding> enc = tokenizer.encodeBatch(sentences, NO_SPECIALS);
        List<int[]> out = new ArrayList<>(enc.size());
        for (Encoding e : enc) {
            if (e.ids().length > 0) {
                out.add(e.ids());
            }
        }
        return out.isEmpty() ? null : out.toArray(new int[0][]);
    }

    private final class Pass implements Iterator<TrainingInstance> {
        private final Corpus corpus;
        private final Iterator<List<String>> docs;
        private final SplittableRandom rng;
        private final List<int[][]> pending = new ArrayList<>();
        private final List<int[][]> recent = new ArrayList<>();
        private int recentNext;
        private final List<TrainingInstance> shuffle = new ArrayList<>();
        private boolean docsDone;

        Pass(Corpus corpus, long seed) {
            this.corpus = corpus;
            this.docs = corpus.documents();
            this.rng = Seeds.random(seed, Seeds.INSTANCES, 0, 0);
        }

        @Override
        public boolean hasNext() {
            while (shuffle.size() < instanceBuffer && !(docsDone && pending.isEmpty())) {
                fillPending();
                if (pending.isEmpty()) {
                    break;
                }
                int[][] current = swapRemove(pending, rng.nextInt(pending.size()));
                createInstances(current);
                if (recent.size() < documentBuffer) {
                    recent.add(current);
                } else {
                    recent.set(recentNext, current);
                    recentNext = (recentNext + 1) % documentBuffer;
                }
            }
            return !shuffle.isEmpty();
        }

        @Override
        public TrainingInstance next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            return swapRemove(shuffle, rng.nextInt(shuffle.size()));
        }

        private void fillPending() {
            while (!docsDone && pending.size() < documentBuffer) {
                if (!docs.hasNext()) {
                    docsDone = true;
                    break;
                }
                int[][] d = tokenize(docs.next());
                if (d != null) {
                    pending.add(d);
                }
            }
        }

        private int[][] randomOtherDocument() {
            int n = pending.size() + recent.size();
            if (n == 0) {
                throw new Bert4jException("corpus " + corpus.name() + " has only 1 document with text: NSP needs at "
                        + "least 2 documents separated by blank lines");
            }
            int r = rng.nextInt(n);
            return r < pending.size() ? pending.get(r) : recent.get(r - pending.size());
        }

        private void createInstances(int[][] doc) {
            int maxTokens = maxSeqLen - 3;
            List<int[]> chunk = new ArrayList<>();
            int chunkLen = 0;
            int target = targetLength(maxTokens);
            int i = 0;
            while (i < doc.length) {
                chunk.add(doc[i]);
                chunkLen += doc[i].length;
                if (i == doc.length - 1 || chunkLen >= target) {
                    IntList a = new IntList();
                    IntList b = new IntList();
                    boolean randomNext = rng.nextDouble() < 0.5;
                    int aEnd = chunk.size() >= 2 ? 1 + rng.nextInt(chunk.size() - 1) : 1;
                    for (int j = 0; j < aEnd; j++) {
                        a.addAll(chunk.get(j));
                    }
                    if (!randomNext && chunk.size() == 1) {
                        if (a.size() >= 2) {
                            // One sentence: the real continuation is the rest of that sentence.
                            int cut = 1 + rng.nextInt(a.size() - 1);
                            b.addRange(a, cut, a.size());
                            a.truncate(cut);
                        } else {
                            randomNext = true;
                        }
                    }
                    if (randomNext) {
                        int targetB = target - a.size();
                        int[][] other = randomOtherDocument();
                        for (int j = rng.nextInt(other.length); j < other.length; j++) {
                            b.addAll(other[j]);
                            if (b.size() >= targetB) {
                                break;
                            }
                        }
                        // The sentences after A were not used: the next chunk starts with them.
                        i -= chunk.size() - aEnd;
                    } else if (chunk.size() >= 2) {
                        for (int j = aEnd; j < chunk.size(); j++) {
                            b.addAll(chunk.get(j));
                        }
                    }
                    truncatePair(a, b, maxTokens);
                    shuffle.add(build(a, b, randomNext));
                    chunk.clear();
                    chunkLen = 0;
                    target = targetLength(maxTokens);
                }
                i++;
            }
        }

        private int targetLength(int maxTokens) {
            if (rng.nextDouble() < shortSeqProb) {
                return 2 + rng.nextInt(Math.max(1, maxTokens - 1));
            }
            return maxTokens;
        }

        private void truncatePair(IntList a, IntList b, int maxTokens) {
            while (a.size() + b.size() > maxTokens) {
                IntList longer = a.size() > b.size() ? a : b;
                if (rng.nextDouble() < 0.5) {
                    longer.removeFirst();
                } else {
                    longer.truncate(longer.size() - 1);
                }
            }
        }

        private TrainingInstance build(IntList a, IntList b, boolean randomNext) {
            int n = a.size() + b.size() + 3;
            int[] ids = new int[n];
            int[] types = new int[n];
            int p = 0;
            ids[p++] = clsId;
            for (int k = 0; k < a.size(); k++) {
                ids[p++] = a.get(k);
            }
            ids[p++] = sepId;
            int bStart = p;
            for (int k = 0; k < b.size(); k++) {
                ids[p++] = b.get(k);
            }
            ids[p++] = sepId;
            for (int k = bStart; k < n; k++) {
                types[k] = 1;
            }
            return new TrainingInstance(ids, types, randomNext);
        }
    }

    private static <T> T swapRemove(List<T> list, int index) {
        T v = list.get(index);
        T last = list.remove(list.size() - 1);
        if (index < list.size()) {
            list.set(index, last);
        }
        return v;
    }

    /** A growable int array with cheap removal at both ends (for trimming pairs). */
    private static final class IntList {
        private int[] data = new int[64];
        private int start;
        private int end;

        int size() {
            return end - start;
        }

        int get(int i) {
            return data[start + i];
        }

        void addAll(int[] values) {
            ensure(values.length);
            System.arraycopy(values, 0, data, end, values.length);
            end += values.length;
        }

        void addRange(IntList other, int from, int to) {
            ensure(to - from);
            System.arraycopy(other.data, other.start + from, data, end, to - from);
            end += to - from;
        }

        void removeFirst() {
            start++;
        }

        void truncate(int newSize) {
            end = start + newSize;
        }

        private void ensure(int extra) {
            if (end + extra > data.length) {
                int[] d = new int[Math.max(data.length * 2, size() + extra + 16)];
                System.arraycopy(data, start, d, 0, size());
                end -= start;
                start = 0;
                data = d;
            }
        }
    }
}
