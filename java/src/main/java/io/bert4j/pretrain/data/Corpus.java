package io.bert4j.pretrain.data;

import io.bert4j.Bert4jException;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.stream.Stream;

/**
 * A pretraining text corpus: one file, or a folder of files read in sorted path order, all
 * UTF-8. Documents are read lazily, one at a time, so a corpus may be far larger than memory.
 *
 * <p>Each file's format is detected from its first non-blank line:
 * <ul>
 *   <li><b>WikiText raw</b> when that line is a title like {@code " = Title = "}: each
 *       top-level title starts a document; section headings ({@code " = = Section = = "} and
 *       deeper) are dropped; every other non-blank line is a paragraph, split into sentences
 *       after {@code " . "}, {@code " ? "} and {@code " ! "}.</li>
 *   <li><b>plain</b> otherwise: one sentence (or paragraph) per line, blank lines between
 *       documents, as Google's BERT {@code create_pretraining_data} reads its input.</li>
 * </ul>
 * A document never spans two files.
 *
 * <p>A corpus may be split by document ({@link #split(int)}) into a training and a held-out
 * part; the split is a view, still streamed.
 */
public final class Corpus {
    private final List<Path> files;
    private final String name;
    private final int every;      // 0: all documents; else keep by index % every
    private final boolean heldOut; // with every > 0: keep index % every == every - 1 (else the rest)

    private Corpus(List<Path> files, String name, int every, boolean heldOut) {
        this.files = files;
        this.name = name;
        this.every = every;
        this.heldOut = heldOut;
    }

    /**
     * Opens a file or a folder (its regular files, recursively, in sorted order; hidden files
     * skipped). Fails with a {@link Bert4jException} naming the path when it does not exist,
     * or when it holds no text at all (which needs reading up to the first sentence only).
     */
    public static Corpus open(Path path) {
        if (!Files.exists(path)) {
            throw new Bert4jException("corpus " + path + " does not exist");
        }
        List<Path> files = new ArrayList<>();
        if (Files.isDirectory(path)) {
            try (Stream<Path> s = Files.walk(path)) {
                s.filter(Files::isRegularFile)
                        .filter(p -> !path.relativize(p).toString().startsWith(".")
                                && !p.getFileName().toString().startsWith("."))
                        .sorted()
                        .forEach(files::add);
            } catch (IOException e) {
                throw new Bert4jException("corpus " + path + ": cannot list folder: " + e.getMessage(), e);
            }
        } else {
            files.add(path);
        }
        Corpus c = new Corpus(List.copyOf(files), path.toString(), 0, false);
        Iterator<List<String>> it = c.documents();
        if (!it.hasNext()) {
            throw new Bert4jException("corpus " + path + " holds no text"
                    + (files.isEmpty() ? " (the folder has no files)" : ""));
        }
        return c;
    }

    /** The path this corpus was opened from (with the split, if any), for messages. */
    public String name() {
        return name;
    }

    /** A training part and a held-out part of a corpus, split by document. */
    public record Split(Corpus train, Corpus heldOut) {
    }

    /**
     * Splits by document: document {@code i} (counting from 0 in reading order) goes to the
     * held-out part when {@code i % everyNth == everyNth - 1}, else to the training part. Both
     * parts are fixed for a given corpus, whatever the seed, so evaluation never sees training
     * documents.
     */
    public Split split(int everyNth) {
        if (everyNth < 2) {
            throw new Bert4jException("corpus split: everyNth must be >= 2, got " + everyNth);
        }
        if (every != 0) {
            throw new Bert4jException("corpus " + name + " is already a split");
        }
        return new Split(new Corpus(files, name + " (train split, all but every " + everyNth + "th document)",
                everyNth, false),
                new Corpus(files, name + " (held-out split, every " + everyNth + "th document)", everyNth, true));
    }

    /**
     * Checks what next-sentence prediction needs: at least two documents (reads until the
     * second one is found).
     */
    public void requireNspDocuments() {
        Iterator<List<String>> it = documents();
        int n = 0;
        while (it.hasNext() && n < 2) {
            it.next();
            n++;
        }
        if (n == 0) {
            throw new Bert4jException("corpus " + name + " holds no text");
        }
        if (n < 2) {
            throw new Bert4jException("corpus " + name + " has only 1 document: NSP needs at least 2 documents "
                    + "separated by blank lines (or WikiText \" = Title = \" lines)");
        }
    }

    /** Counts the documents (one full pass). */
    public long countDocuments() {
        long n = 0;
        for (Iterator<List<String>> it = documents(); it.hasNext(); it.next()) {
            n++;
        }
        return n;
    }

    /**
     * A fresh lazy pass over the documents; each document is its non-empty sentences, in
     * order, and has at least one. Reading errors surface from {@code hasNext()} as
     * {@link Bert4jException} naming the file. The files are read one at a time and each is
     * closed when exhausted; an abandoned iterator leaves at most one file open until it is
     * garbage collected, so long-lived callers should drain it.
     */
    public Iterator<List<String>> documents() {
        Iterator<List<String>> all = new AllDocuments(files);
        if (every == 0) {
            return all;
        }
        return new Iterator<>() {
            long index = 0;
            List<String> next;

            @Override
            public boolean hasNext() {
                while (next == null && all.hasNext()) {
                    List<String> d = all.next();
                    boolean isHeldOut = index % every == every - 1;
                    index++;
                    if (isHeldOut == heldOut) {
                        next = d;
                    }
                }
                return next != null;
            }

            @Override
            public List<String> next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                List<String> d = next;
                next = null;
                return d;
            }
        };
    }

    @Override
    public String toString() {
        return "Corpus[" + name + "]";
    }

    // ------------------------------------------------------------------ parsing

    static boolean isWikiTitle(String line) {
        String t = line.strip();
        return t.length() >= 5 && t.startsWith("= ") && t.endsWith(" =") && !t.startsWith("= =");
    }

    static boolean isWikiHeading(String line) {
        String t = line.strip();
        return t.length() >= 7 && t.startsWith("= = ") && t.endsWith(" = =");
    }

    /** Splits a WikiText paragraph after " . ", " ? ", " ! " (the mark stays with its sentence). */
    static void splitSentences(String paragraph, List<String> out) {
        String p = paragraph.strip();
        int start = 0;
        for (int i = 1; i < p.length(); i++) {
            char c = p.charAt(i);
            if ((c == '.' || c == '?' || c == '!') && p.charAt(i - 1) == ' '
                    && (i + 1 == p.length() || p.charAt(i + 1) == ' ')) {
                String s = p.substring(start, i + 1).strip();
                if (!s.isEmpty()) {
                    out.add(s);
                }
                start = i + 1;
            }
        }
        String rest = p.substring(Math.min(start, p.length())).strip();
        if (!rest.isEmpty()) {
            out.add(rest);
        }
    }

    /** Documents of all files, file by file. */
    private static final class AllDocuments implements Iterator<List<String>> {
        private final Iterator<Path> files;
        private Path file;
        private BufferedReader reader;
        private Boolean wiki;          // format of the current file, null until its first non-blank line
        private String pendingLine;    // a line read ahead (a WikiText title that starts the next document)
        private List<String> next;

        AllDocuments(List<Path> files) {
            this.files = files.iterator();
        }

        @Override
        public boolean hasNext() {
            try {
                while (next == null) {
                    if (reader == null) {
                        if (!files.hasNext()) {
                            return false;
                        }
                        file = files.next();
                        CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                                .onMalformedInput(CodingErrorAction.REPORT)
                                .onUnmappableCharacter(CodingErrorAction.REPORT);
                        reader = new BufferedReader(new InputStreamReader(Files.newInputStream(file), dec), 1 << 16);
                        wiki = null;
                        pendingLine = null;
                    }
                    List<String> doc = readDocument();
                    if (doc == null) {
                        reader.close();
                        reader = null;
                    } else if (!doc.isEmpty()) {
                        next = doc;
                    }
                }
                return true;
            } catch (CharacterCodingException e) {
                closeQuietly();
                throw new Bert4jException("corpus file " + file + " is not valid UTF-8 text", e);
            } catch (IOException e) {
                closeQuietly();
                throw new Bert4jException("corpus file " + file + " cannot be read: " + e.getMessage(), e);
            }
        }

        private void closeQuietly() {
            try {
                if (reader != null) {
                    reader.close();
                }
            } catch (IOException ignored) {
                // already failing with the more useful error
            }
            reader = null;
        }

        @Override
        public List<String> next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            List<String> d = next;
            next = null;
            return d;
        }

        private String readLine() throws IOException {
            if (pendingLine != null) {
                String l = pendingLine;
                pendingLine = null;
                return l;
            }
            String l = reader.readLine();
            if (l != null && !l.isEmpty() && l.charAt(0) == '\uFEFF') {
                l = l.substring(1);
            }
            return l;
        }

        /** The next document of the current file (possibly empty), or null at its end. */
        private List<String> readDocument() throws IOException {
            List<String> doc = new ArrayList<>();
            String line;
            boolean sawAny = false;
            while ((line = readLine()) != null) {
                boolean blank = line.isBlank();
                if (wiki == null) {
                    if (blank) {
                        continue;
                    }
                    wiki = isWikiTitle(line);
                }
                if (wiki) {
                    if (isWikiTitle(line)) {
                        if (sawAny) {
                            pendingLine = line;  // starts the next document
                            return doc;
                        }
                        sawAny = true;
                    } else if (!blank && !isWikiHeading(line)) {
                        sawAny = true;
                        splitSentences(line, doc);
                    }
                } else {
                    if (blank) {
                        if (!doc.isEmpty()) {
                            return doc;
                        }
                    } else {
                        sawAny = true;
                        doc.add(line.strip());
                    }
                }
            }
            return sawAny ? doc : null;
        }
    }
}
