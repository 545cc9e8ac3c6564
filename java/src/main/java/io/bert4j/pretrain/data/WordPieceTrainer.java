package io.bert4j.pretrain.data;

import io.bert4j.Bert4jException;
import io.bert4j.io.AtomicFiles;
import io.bert4j.io.ModelFolder;
import io.bert4j.tokenize.BertTokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * Learns a BERT WordPiece vocabulary from text, the way Hugging Face's WordPiece trainer does:
 * text is pre-tokenized as BERT's basic tokenizer does (clean-up, CJK characters apart,
 * lowercase and accent stripping unless cased, split on whitespace and punctuation), words
 * are counted, and BPE-style merges are learned over characters, non-initial pieces carrying
 * the {@code ##} prefix ({@code "t" + "##h" -> "th"}, {@code "##h" + "##e" -> "##he"}),
 * most frequent pair first, until the vocabulary has {@code vocabSize} entries or no pair
 * occurs {@code minFrequency} times. Every character seen is kept (as a word start and, where
 * it occurs inside words, as a {@code ##} piece), even if that exceeds the requested size.
 *
 * <p>Pair counts are kept incrementally (only the words that contain a merged pair are
 * revisited), with a lazily updated priority queue, so training cost grows with the number
 * of distinct words touched, not with merges times corpus size.
 *
 * <p>Ties between equally frequent pairs go to the lexicographically smaller pair, so the
 * result is deterministic.
 */
public final class WordPieceTrainer {
    /** The special tokens, at ids 0..4 of every trained vocabulary. */
    public static final List<String> SPECIAL_TOKENS = List.of("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]");

    /** Words longer than this become [UNK] in the WordPiece model (HF's max_input_chars_per_word). */
    static final int MAX_WORD_CHARS = 100;

    private final int vocabSize;
    private final boolean lowercase;
    private final int minFrequency;
    private final Map<String, long[]> wordCounts = new HashMap<>();

    /**
     * @param vocabSize    target size, specials included
     * @param lowercase    lowercase and strip accents (an uncased vocabulary)
     * @param minFrequency a pair must occur at least this often (weighted by word counts) to be merged
     */
    public WordPieceTrainer(int vocabSize, boolean lowercase, int minFrequency) {
        if (vocabSize < SPECIAL_TOKENS.size() + 1) {
            throw new Bert4jException("vocabulary size must be > " + SPECIAL_TOKENS.size() + " (the special tokens), got "
                    + vocabSize);
        }
        if (minFrequency < 1) {
            throw new Bert4jException("min frequency must be >= 1, got " + minFrequency);
        }
        this.vocabSize = vocabSize;
        this.lowercase = lowercase;
        this.minFrequency = minFrequency;
    }

    /** Counts the words of a text. */
    public void addText(String text) {
        for (String w : preTokenize(text, lowercase)) {
            wordCounts.computeIfAbsent(w, k -> new long[1])[0]++;
        }
    }

    /** Counts the words of every sentence of a corpus (one streamed pass). */
    public void addCorpus(Corpus corpus) {
        for (Iterator<List<String>> it = corpus.documents(); it.hasNext(); ) {
            for (String s : it.next()) {
                addText(s);
            }
        }
    }

    /** Number of distinct words counted so far. */
    public int distinctWords() {
        return wordCounts.size();
    }

    // ------------------------------------------------------------------ pre-tokenization

    /** BERT's basic tokenization (what HF's BertNormalizer + BertPreTokenizer do). */
    static List<String> preTokenize(String text, boolean lowercase) {
        StringBuilder clean = new StringBuilder(text.length() + 16);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == 0 || cp == 0xFFFD) {
                continue;
            }
            if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || Character.getType(cp) == Character.SPACE_SEPARATOR) {
                clean.append(' ');
                continue;
            }
            int type = Character.getType(cp);
            if (type == Character.CONTROL || type == Character.FORMAT) {
                continue;
            }
            if (isCjk(cp)) {
                clean.append(' ').appendCodePoint(cp).append(' ');
            } else {
                clean.appendCodePoint(cp);
            }
        }
        String s = clean.toString();
        if (lowercase) {
            s = s.toLowerCase(java.util.Locale.ROOT);
            s = Normalizer.normalize(s, Normalizer.Form.NFD);
            StringBuilder noAccents = new StringBuilder(s.length());
            for (int i = 0; i < s.length(); ) {
                int cp = s.codePointAt(i);
                i += Character.charCount(cp);
                if (Character.getType(cp) != Character.NON_SPACING_MARK) {
                    noAccents.appendCodePoint(cp);
                }
            }
            s = noAccents.toString();
        }
        List<String> out = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == ' ') {
                flush(word, out);
            } else if (isPunctuation(cp)) {
                flush(word, out);
                out.add(new String(Character.toChars(cp)));
            } else {
                word.appendCodePoint(cp);
            }
        }
        flush(word, out);
        return out;
    }

    private static void flush(StringBuilder word, List<String> out) {
        if (word.length() > 0) {
            out.add(word.toString());
            word.setLength(0);
        }
    }

    private static boolean isPunctuation(int cp) {
        if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
            return true;
        }
        int t = Character.getType(cp);
        return t == Character.CONNECTOR_PUNCTUATION || t == Character.DASH_PUNCTUATION
                || t == Character.START_PUNCTUATION || t == Character.END_PUNCTUATION
                || t == Character.INITIAL_QUOTE_PUNCTUATION || t == Character.FINAL_QUOTE_PUNCTUATION
                || t == Character.OTHER_PUNCTUATION;
    }

    private static boolean isCjk(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F)
                || (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF)
                || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }

    // ------------------------------------------------------------------ training

    /** Learns the vocabulary from the words counted so far: tokens in id order, specials first. */
    public List<String> train() {
        if (wordCounts.isEmpty()) {
            throw new Bert4jException("no words to learn a vocabulary from");
        }
        List<String> symbols = new ArrayList<>();
        Map<String, Integer> symbolIds = new HashMap<>();
        // Alphabet: word-initial characters, then "##" pieces, each sorted, for a stable order.
        TreeSet<String> initial = new TreeSet<>();
        TreeSet<String> inner = new TreeSet<>();
        List<String> words = new ArrayList<>(wordCounts.keySet());
        words.sort(null);
        words.removeIf(w -> w.codePointCount(0, w.length()) > MAX_WORD_CHARS);
        for (String w : words) {
            int i = 0;
            boolean first = true;
            while (i < w.length()) {
                int cp = w.codePointAt(i);
                String c = new String(Character.toChars(cp));
                (first ? initial : inner).add(first ? c : "##" + c);
                first = false;
                i += Character.charCount(cp);
            }
        }
        for (String s : initial) {
            symbolIds.put(s, symbols.size());
            symbols.add(s);
        }
        for (String s : inner) {
            symbolIds.put(s, symbols.size());
            symbols.add(s);
        }

        int n = words.size();
        int[][] syms = new int[n][];
        long[] freq = new long[n];
        for (int w = 0; w < n; w++) {
            String word = words.get(w);
            int[] ids = new int[word.codePointCount(0, word.length())];
            int k = 0;
            for (int i = 0; i < word.length(); ) {
                int cp = word.codePointAt(i);
                String c = new String(Character.toChars(cp));
                ids[k] = symbolIds.get(k == 0 ? c : "##" + c);
                k++;
                i += Character.charCount(cp);
            }
            syms[w] = ids;
            freq[w] = wordCounts.get(word)[0];
        }

        Map<Long, long[]> pairCount = new HashMap<>();
        Map<Long, List<Integer>> where = new HashMap<>();
        for (int w = 0; w < n; w++) {
            int[] s = syms[w];
            for (int i = 0; i + 1 < s.length; i++) {
                long p = pair(s[i], s[i + 1]);
                pairCount.computeIfAbsent(p, x -> new long[1])[0] += freq[w];
                List<Integer> l = where.computeIfAbsent(p, x -> new ArrayList<>());
                if (l.isEmpty() || l.get(l.size() - 1) != w) {
                    l.add(w);
                }
            }
        }
        PriorityQueue<long[]> queue = new PriorityQueue<>((x, y) -> {
            if (x[0] != y[0]) {
                return Long.compare(y[0], x[0]);
            }
            int c = symbols.get(first(x[1])).compareTo(symbols.get(first(y[1])));
            return c != 0 ? c : symbols.get(second(x[1])).compareTo(symbols.get(second(y[1])));
        });
        for (Map.Entry<Long, long[]> e : pairCount.entrySet()) {
            queue.add(new long[] {e.getValue()[0], e.getKey()});
        }

        // Tokens of the vocabulary: specials + alphabet, then one per merge whose result is new.
        List<String> vocab = new ArrayList<>(SPECIAL_TOKENS);
        Set<String> inVocab = new HashSet<>(SPECIAL_TOKENS);
        for (String s : symbols) {
            if (inVocab.add(s)) {
                vocab.add(s);
            }
        }
        int[] stamp = new int[n];
        int mergeNo = 0;
        while (vocab.size() < vocabSize && !queue.isEmpty()) {
            long[] top = queue.poll();
            long[] current = pairCount.get(top[1]);
            long count = current == null ? 0 : current[0];
            if (count != top[0]) {
                if (count > 0) {
                    queue.add(new long[] {count, top[1]});  // stale entry: requeue at its true count
                }
                continue;
            }
            if (count < minFrequency) {
                break;
            }
            int a = first(top[1]);
            int b = second(top[1]);
            String bs = symbols.get(b);
            String merged = symbols.get(a) + (bs.startsWith("##") ? bs.substring(2) : bs);
            Integer existing = symbolIds.get(merged);
            int x;
            if (existing != null) {
                x = existing;
            } else {
                x = symbols.size();
                symbols.add(merged);
                symbolIds.put(merged, x);
            }
            if (inVocab.add(merged)) {
                vocab.add(merged);
            }
            mergeNo++;
            Set<Long> touched = new HashSet<>();
            for (int w : where.remove(top[1])) {
                if (stamp[w] == mergeNo) {
                    continue;
                }
                stamp[w] = mergeNo;
                int[] s = syms[w];
                if (!contains(s, a, b)) {
                    continue;
                }
                long f = freq[w];
                for (int i = 0; i + 1 < s.length; i++) {
                    pairCount.get(pair(s[i], s[i + 1]))[0] -= f;
                }
                int[] t = new int[s.length];
                int len = 0;
                for (int i = 0; i < s.length; i++) {
                    if (i + 1 < s.length && s[i] == a && s[i + 1] == b) {
                        t[len++] = x;
                        i++;
                    } else {
                        t[len++] = s[i];
                    }
                }
                t = java.util.Arrays.copyOf(t, len);
                syms[w] = t;
                for (int i = 0; i + 1 < len; i++) {
                    long p = pair(t[i], t[i + 1]);
                    pairCount.computeIfAbsent(p, k -> new long[1])[0] += f;
                    if (t[i] == x || t[i + 1] == x) {
                        touched.add(p);
                        List<Integer> l = where.computeIfAbsent(p, k -> new ArrayList<>());
                        if (l.isEmpty() || l.get(l.size() - 1) != w) {
                            l.add(w);
                        }
                    }
                }
            }
            pairCount.remove(top[1]);
            for (long p : touched) {
                long[] c = pairCount.get(p);
                if (c != null && c[0] > 0) {
                    queue.add(new long[] {c[0], p});
                }
            }
        }
        return vocab;
    }

    private static boolean contains(int[] s, int a, int b) {
        for (int i = 0; i + 1 < s.length; i++) {
            if (s[i] == a && s[i + 1] == b) {
                return true;
            }
        }
        return false;
    }

    private static long pair(int a, int b) {
        return ((long) a << 32) | (b & 0xffffffffL);
    }

    private static int first(long p) {
        return (int) (p >>> 32);
    }

    private static int second(long p) {
        return (int) p;
    }

    // ------------------------------------------------------------------ writing

    /**
     * Writes a tokenizer folder for {@code vocab} at {@code dir}: vocab.txt, then the
     * tokenizer.json, tokenizer_config.json (do_lower_case = {@code lowercase}) and
     * special_tokens_map.json that {@link BertTokenizer#save} writes for it. The folder is
     * built elsewhere and renamed into place, so {@code dir} is either absent or complete;
     * an existing non-empty {@code dir} is refused.
     */
    public static void writeTokenizerFolder(Path dir, List<String> vocab, boolean lowercase) {
        if (Files.isDirectory(dir)) {
            try (Stream<Path> s = Files.list(dir)) {
                if (s.findAny().isPresent()) {
                    throw new Bert4jException(dir + " exists and is not empty; remove it or choose another output folder");
                }
            } catch (IOException e) {
                throw new Bert4jException(dir + ": cannot read folder: " + e.getMessage(), e);
            }
            try {
                Files.delete(dir);
            } catch (IOException e) {
                throw new Bert4jException(dir + ": cannot replace the empty folder: " + e.getMessage(), e);
            }
        } else if (Files.exists(dir)) {
            throw new Bert4jException(dir + " exists and is not a folder");
        }
        for (String t : vocab) {
            if (t.indexOf('\n') >= 0 || t.indexOf('\r') >= 0) {
                throw new Bert4jException("vocabulary token contains a line break: " + t);
            }
        }
        ModelFolder.createAtomically(dir, tmp -> {
            AtomicFiles.writeString(tmp.resolve("vocab.txt"), String.join("\n", vocab) + "\n");
            // BertTokenizer.load reads do_lower_case from here when it builds tokenizer.json.
            AtomicFiles.writeString(tmp.resolve("tokenizer_config.json"),
                    "{\"do_lower_case\": " + lowercase + ", \"tokenizer_class\": \"BertTokenizer\"}\n");
            try (BertTokenizer tok = BertTokenizer.load(tmp)) {
                tok.save(tmp);
            }
        });
    }
}
