package io.bert4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.bert4j.Bert4jException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * SQuAD v1.1 JSON: {@code data[] -> paragraphs[] -> qas[]}, flattened to one
 * {@link Example} per question. The file's answer_start counts code points (Python string
 * indices); {@link Answer#start()} is converted to a UTF-16 char index into the Java context
 * string (the two differ only after characters outside the BMP). Every answer is checked
 * against its context.
 */
public final class Squad {
    private Squad() {
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** A reference answer: its text and where it starts in the context. */
    public record Answer(String text, int start) {
        public int end() {
            return start + text.length();
        }
    }

    /**
     * One question.
     *
     * @param article index of its article in the file (for splits held out by article)
     * @param answers reference answers, in file order (the first is the training target);
     *                empty when the file has none (prediction input)
     */
    public record Example(String id, int article, String title, String question, String context,
                          List<Answer> answers) {
        public Example {
            answers = List.copyOf(answers);
        }
    }

    /**
     * A read file.
     *
     * @param mismatches one line per answer whose text is not found at its answer_start
     *                   ({@code id: "text" at start}); SQuAD v1.1 has none
     */
    public record Dataset(Path source, String version, int articles, List<Example> examples,
                          List<String> mismatches) {
        public Dataset {
            examples = List.copyOf(examples);
            mismatches = List.copyOf(mismatches);
        }

        public int answerCount() {
            return examples.stream().mapToInt(e -> e.answers().size()).sum();
        }
    }

    public static Dataset read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new Bert4jException("SQuAD file " + file + " does not exist or is not a file");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new Bert4jException("SQuAD file " + file + " is not valid JSON: " + e.getMessage(), e);
        }
        JsonNode data = root == null ? null : root.get("data");
        if (data == null || !data.isArray()) {
            throw new Bert4jException("SQuAD file " + file + " has no \"data\" array");
        }
        String version = root.path("version").asText("");
        List<Example> examples = new ArrayList<>();
        List<String> mismatches = new ArrayList<>();
        Set<String> ids = new HashSet<>();
        for (int a = 0; a < data.size(); a++) {
            JsonNode article = data.get(a);
            String where = file + ": data[" + a + "]";
            String title = article.path("title").asText("");
            JsonNode paragraphs = array(article, "paragraphs", where);
            for (int p = 0; p < paragraphs.size(); p++) {
                JsonNode para = paragraphs.get(p);
                String pWhere = where + ".paragraphs[" + p + "]";
                String context = text(para, "context", pWhere);
                JsonNode qas = array(para, "qas", pWhere);
                for (int q = 0; q < qas.size(); q++) {
                    JsonNode qa = qas.get(q);
                    String qWhere = pWhere + ".qas[" + q + "]";
                    String id = text(qa, "id", qWhere);
                    if (!ids.add(id)) {
                        throw new Bert4jException(qWhere + ": question id \"" + id + "\" appears twice");
                    }
                    String question = text(qa, "question", qWhere);
                    List<Answer> answers = new ArrayList<>();
                    JsonNode ans = qa.get("answers");
                    if (ans != null && !ans.isNull()) {
                        if (!ans.isArray()) {
                            throw new Bert4jException(qWhere + ": \"answers\" is not an array");
                        }
                        for (int i = 0; i < ans.size(); i++) {
                            String aWhere = qWhere + ".answers[" + i + "]";
                            String text = text(ans.get(i), "text", aWhere);
                            JsonNode start = ans.get(i).get("answer_start");
                            if (start == null || !start.canConvertToInt()) {
                                throw new Bert4jException(aWhere + ": missing or non-integer \"answer_start\"");
                            }
                            Answer answer = new Answer(text, toCharIndex(context, start.asInt()));
                            if (answer.start() < 0 || answer.end() > context.length()
                                    || !context.regionMatches(answer.start(), text, 0, text.length())) {
                                mismatches.add(id + ": \"" + text + "\" at " + answer.start());
                            }
                            answers.add(answer);
                        }
                    }
                    examples.add(new Example(id, a, title, question, context, answers));
                }
            }
        }
        return new Dataset(file, version, data.size(), examples, mismatches);
    }

    private static int toCharIndex(String context, int codePoint) {
        int n = context.codePointCount(0, context.length());
        if (n == context.length() || codePoint < 0 || codePoint > n) {
            return codePoint;  // no surrogates, or out of range (reported as a mismatch)
        }
        return context.offsetByCodePoints(0, codePoint);
    }

    private static JsonNode array(JsonNode node, String field, String where) {
        JsonNode v = node.get(field);
        if (v == null || !v.isArray()) {
            throw new Bert4jException(where + ": missing \"" + field + "\" array");
        }
        return v;
    }

    private static String text(JsonNode node, String field, String where) {
        JsonNode v = node == null ? null : node.get(field);
        if (v == null || !v.isTextual()) {
            throw new Bert4jException(where + ": missing or non-string \"" + field + "\"");
        }
        return v.asText();
    }
}
