package io.bert4j.pretrain.data;

import io.bert4j.testing.TestModels;
import io.bert4j.tokenize.BertTokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Shared inputs: the WikiText-2 validation file and the MiniLM (uncased, 30522) tokenizer. */
final class DataTestSupport {
    private DataTestSupport() {
    }

    private static BertTokenizer tokenizer;

    static Path wikiValid() {
        Path data = TestModels.sharedData();
        assumeTrue(data != null, "shared data folder not present");
        Path p = data.resolve("wikitext-2-raw").resolve("wiki.valid.raw");
        assumeTrue(Files.isRegularFile(p), "wiki.valid.raw not present");
        return p;
    }

    static synchronized BertTokenizer tokenizer() {
        if (tokenizer == null) {
            try {
                tokenizer = BertTokenizer.fromTokenizerJson(Files.readString(TestModels.tokenizerJson()), "minilm");
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return tokenizer;
    }

    /** A plain-format corpus of {@code docs} documents of a few distinct sentences each. */
    static Path plainCorpus(Path dir, int docs) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int d = 0; d < docs; d++) {
            for (int s = 0; s < 3 + d % 4; s++) {
                sb.append("document ").append(d).append(" sentence ").append(s)
                        .append(" tells of rivers, hills and the weather in town number ").append(d * 7 + s).append(".\n");
            }
            sb.append('\n');
        }
        Path f = dir.resolve("corpus.txt");
        Files.writeString(f, sb.toString());
        return f;
    }
}
