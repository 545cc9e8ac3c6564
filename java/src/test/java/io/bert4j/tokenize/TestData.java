package io.bert4j.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/** Real text from the shared data folder, sampled with fixed seeds. */
final class TestData {
    // surefire sets bert4j.shared.data; the fallback is relative to java/, the tests' working directory
    static final Path DIR = Path.of(System.getProperty("bert4j.shared.data", "../../shared/data"));

    private TestData() {
    }

    record Pair(String first, String second) {
    }

    static String realTokenizerJson() {
        try (InputStream in = TestData.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            if (in == null) {
                throw new IllegalStateException("resource /all-minilm-l6-v2-tokenizer.json not on the test classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<String> lines(String rel) {
        try {
            List<String> lines = Files.readAllLines(DIR.resolve(rel), StandardCharsets.UTF_8);
            if (!lines.isEmpty() && lines.get(0).startsWith("\uFEFF")) {
                lines.set(0, lines.get(0).substring(1));
            }
            return lines;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static <T> List<T> sample(List<T> all, int n, long seed) {
        List<T> copy = new ArrayList<>(all);
        Collections.shuffle(copy, new Random(seed));
        return copy.subList(0, Math.min(n, copy.size()));
    }

    static List<String> sst2(int n) {
        List<String> out = new ArrayList<>();
        for (String l : lines("sst2/train.tsv").subList(1, lines("sst2/train.tsv").size())) {
            out.add(l.split("\t", -1)[0]);
        }
        return sample(out, n, 11);
    }

    static List<String> wikitext(int n) {
        List<String> out = new ArrayList<>();
        for (String l : lines("wikitext-2-raw/wiki.valid.raw")) {
            if (!l.isBlank()) {
                out.add(l);
            }
        }
        return sample(out, n, 12);
    }

    /** CoNLL sentences, tokens joined by spaces. */
    static List<String> conll(int n) {
        List<String> out = new ArrayList<>();
        StringBuilder sb = new StringBuilder();
        for (String l : lines("conll2003/valid.txt")) {
            if (l.isBlank()) {
                if (sb.length() > 0) {
                    out.add(sb.toString());
                    sb.setLength(0);
                }
            } else if (!l.startsWith("-DOCSTART-")) {
                if (sb.length() > 0) {
                    sb.append(' ');
                }
                sb.append(l.split(" ")[0]);
            }
        }
        return sample(out, n, 13);
    }

    private static JsonNode squad() {
        try {
            return new ObjectMapper().readTree(DIR.resolve("squad_v1.1/squad-v1.1-dev-articles-00-35.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** (question, context) pairs. */
    static List<Pair> squadPairs(int n) {
        List<Pair> out = new ArrayList<>();
        for (JsonNode article : squad().get("data")) {
            for (JsonNode para : article.get("paragraphs")) {
                String ctx = para.get("context").asText();
                for (JsonNode qa : para.get("qas")) {
                    out.add(new Pair(qa.get("question").asText(), ctx));
                }
            }
        }
        return sample(out, n, 14);
    }

    static List<Pair> mrpc(int n) {
        List<String> lines = lines("mrpc/train.tsv");
        List<Pair> out = new ArrayList<>();
        for (String l : lines.subList(1, lines.size())) {
            String[] f = l.split("\t", -1);
            out.add(new Pair(f[3], f[4]));
        }
        return sample(out, n, 15);
    }

    static List<Pair> stsb(int n) {
        List<String> lines = lines("stsb/train.tsv");
        List<Pair> out = new ArrayList<>();
        for (String l : lines.subList(1, lines.size())) {
            String[] f = l.split("\t", -1);
            out.add(new Pair(f[7], f[8]));
        }
        return sample(out, n, 16);
    }

    /** ≥ 2,000 single texts across SST-2, WikiText, CoNLL and SQuAD questions/contexts. */
    static List<String> singles() {
        List<String> out = new ArrayList<>();
        out.addAll(sst2(600));
        out.addAll(wikitext(500));
        out.addAll(conll(400));
        for (Pair p : squadPairs(450)) {
            out.add(p.first());
        }
        squadPairs(400).stream().map(Pair::second).distinct().limit(150).forEach(out::add);
        return out;
    }

    static List<Pair> pairs() {
        List<Pair> out = new ArrayList<>();
        out.addAll(mrpc(400));
        out.addAll(stsb(400));
        out.addAll(squadPairs(200));
        return out;
    }
}
