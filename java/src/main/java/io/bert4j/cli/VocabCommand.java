package io.bert4j.cli;

import io.bert4j.pretrain.data.Corpus;
import io.bert4j.pretrain.data.WordPieceTrainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code bert4j vocab}: learn a WordPiece vocabulary from a corpus and write a tokenizer folder. */
@Command(name = "vocab", mixinStandardHelpOptions = true,
        description = "Learn a BERT WordPiece vocabulary from a corpus (a file or folder of UTF-8 text: one sentence "
                + "per line with blank lines between documents, or WikiText raw) and write a tokenizer folder "
                + "(vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json).")
final class VocabCommand implements Callable<Integer> {

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--corpus", required = true, paramLabel = "PATH", description = "Corpus file or folder.")
    Path corpus;

    @Option(names = "--size", required = true, paramLabel = "N",
            description = "Vocabulary size, the 5 special tokens included.")
    int size;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "New output folder (must not exist, or be empty).")
    Path out;

    @Option(names = "--cased", description = "Keep case and accents (default: lowercase and strip accents).")
    boolean cased;

    @Option(names = "--min-frequency", paramLabel = "F", defaultValue = "2",
            description = "Merge only pairs seen at least F times (default: ${DEFAULT-VALUE}).")
    int minFrequency;

    @Override
    public Integer call() {
        long t0 = System.nanoTime();
        WordPieceTrainer trainer = new WordPieceTrainer(size, !cased, minFrequency);
        trainer.addCorpus(Corpus.open(corpus));
        List<String> vocab = trainer.train();
        WordPieceTrainer.writeTokenizerFolder(out, vocab, !cased);
        java.io.PrintWriter err = spec.commandLine().getErr();
        err.printf("bert4j: wrote %s (%d tokens from %d distinct words, %s) in %.1f s%n", out, vocab.size(),
                trainer.distinctWords(), cased ? "cased" : "uncased", (System.nanoTime() - t0) / 1e9);
        if (vocab.size() > size) {
            err.println("bert4j: note: the corpus has more distinct characters than --size allows; all are kept");
        }
        err.flush();
        return 0;
    }
}
