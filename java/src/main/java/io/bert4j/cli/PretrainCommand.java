package io.bert4j.cli;

import io.bert4j.Bert4jException;
import io.bert4j.DefaultModel;
import io.bert4j.config.BertConfig;
import io.bert4j.kernels.KernelMode;
import io.bert4j.model.BertForPreTraining;
import io.bert4j.pretrain.PretrainTask;
import io.bert4j.pretrain.data.Corpus;
import io.bert4j.pretrain.data.PretrainingBatch;
import io.bert4j.pretrain.data.PretrainingDataStream;
import io.bert4j.tokenize.BertTokenizer;
import io.bert4j.train.Trainer;
import io.bert4j.train.TrainerConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * {@code bert4j pretrain}: a BERT from nothing on a text corpus with masked-LM + next-sentence
 * prediction, written as a Hugging Face folder ({@code architectures: ["BertForPreTraining"]}).
 */
@Command(name = "pretrain", mixinStandardHelpOptions = true,
        description = {"Pretrain a BERT from scratch (masked LM + next sentence prediction) on a text corpus.",
                "The corpus is a file or folder of plain text (one sentence or paragraph per line, blank lines "
                        + "between documents) or WikiText raw files. The output folder is a Hugging Face "
                        + "BertForPreTraining folder; checkpoints go to OUT/checkpoint-N, metrics to "
                        + "OUT/metrics.jsonl, the loss curve to OUT/loss.png. Ctrl-C writes a checkpoint "
                        + "and exits; --resume continues from the latest one."})
public final class PretrainCommand implements Callable<Integer> {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--corpus", required = true, paramLabel = "PATH", description = "Training text: a file or a folder of files.")
    Path corpus;

    @Option(names = "--eval-corpus", paramLabel = "PATH",
            description = "Held-out text for evaluation (default: every 10th document of --corpus, kept out of training).")
    Path evalCorpus;

    @Option(names = "--config", paramLabel = "NAME|FILE", defaultValue = "tiny",
            description = "tiny, mini, small, medium, base, large, or a config.json (default: ${DEFAULT-VALUE}).")
    String config;

    @Option(names = "--tokenizer", paramLabel = "DIR",
            description = "Folder with the tokenizer (vocab.txt or tokenizer.json), e.g. from `bert4j vocab` "
                    + "(default: the default model's uncased WordPiece vocabulary).")
    Path tokenizerDir;

    @Option(names = "--steps", required = true, paramLabel = "N", description = "Optimizer steps.")
    long steps;

    @Option(names = "--batch-size", paramLabel = "N", defaultValue = "32", description = "Sequences per step (default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--accumulate", paramLabel = "N", defaultValue = "1",
            description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
    int accumulate;

    @Option(names = "--seq-len", paramLabel = "N", defaultValue = "128", description = "Maximum tokens per sequence (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Option(names = "--lr", paramLabel = "X", defaultValue = "1e-4", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    double lr;

    @Option(names = "--warmup", paramLabel = "RATIO", defaultValue = "0.06",
            description = "Share of steps with linear warmup (default: ${DEFAULT-VALUE}).")
    double warmup;

    @Option(names = "--weight-decay", paramLabel = "X", defaultValue = "0.01", description = "AdamW weight decay (default: ${DEFAULT-VALUE}).")
    double weightDecay;

    @Option(names = "--max-grad-norm", paramLabel = "X", defaultValue = "1.0", description = "Gradient clipping (default: ${DEFAULT-VALUE}; 0 = off).")
    double maxGradNorm;

    @Option(names = "--dropout", paramLabel = "P",
            description = "Hidden and attention dropout while training (default: the config's, 0.1 for the presets; "
                    + "short runs of small models learn faster with 0).")
    Double dropout;

    @Option(names = "--whole-word-mask", description = "Mask whole words instead of single WordPiece tokens.")
    boolean wholeWordMask;

    @Option(names = "--eval-every", paramLabel = "N", defaultValue = "200", description = "Evaluate every N steps (default: ${DEFAULT-VALUE}; 0 = only at the end).")
    long evalEvery;

    @Option(names = "--eval-batches", paramLabel = "N", defaultValue = "20", description = "Held-out batches per evaluation (default: ${DEFAULT-VALUE}).")
    int evalBatches;

    @Option(names = "--save-every", paramLabel = "N", defaultValue = "500", description = "Checkpoint every N steps (default: ${DEFAULT-VALUE}).")
    long saveEvery;

    @Option(names = "--keep", paramLabel = "K", defaultValue = "3", description = "Checkpoints kept (default: ${DEFAULT-VALUE}).")
    int keep;

    @Option(names = "--log-every", paramLabel = "N", defaultValue = "10", description = "Progress line every N steps when not on a terminal (default: ${DEFAULT-VALUE}).")
    long logEvery;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "42", description = "Seed for data, masking, initialisation and dropout (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output folder.")
    Path out;

    @Option(names = "--resume", description = "Continue from the latest checkpoint in --out.")
    boolean resume;

    @Option(names = "--kernels", paramLabel = "fused|torch", defaultValue = "fused",
            description = "bert4j's fused native kernels or plain libtorch ops (default: ${DEFAULT-VALUE}).")
    String kernels;

    @Override
    public Integer call() {
        KernelMode mode = KernelMode.parse(kernels);
        if (steps <= 0) {
            throw new Bert4jException("--steps must be positive, got " + steps);
        }
        if (batchSize <= 0 || accumulate <= 0) {
            throw new Bert4jException("--batch-size and --accumulate must be positive");
        }
        if (!resume && Trainer.latestCheckpoint(out).isPresent()) {
            throw new Bert4jException(out + " already holds checkpoints; use --resume to continue, or another --out");
        }
        if (resume && Trainer.latestCheckpoint(out).isEmpty()) {
            throw new Bert4jException(out + " holds no checkpoint to resume from");
        }
        Path tokDir = tokenizerDir != null ? tokenizerDir : DefaultModel.ensure();
        try (BertTokenizer tokenizer = BertTokenizer.load(tokDir)) {
            BertConfig cfg = modelConfig(tokenizer);
            if (seqLen < 8 || seqLen > cfg.maxPositionEmbeddings()) {
                throw new Bert4jException("--seq-len " + seqLen + " must be between 8 and the model's max_position_embeddings ("
                        + cfg.maxPositionEmbeddings() + ")");
            }
            Corpus all = Corpus.open(corpus);
            Corpus train;
            Corpus heldOut;
            if (evalCorpus != null) {
                train = all;
                heldOut = Corpus.open(evalCorpus);
            } else {
                Corpus.Split split = all.split(10);
                train = split.train();
                heldOut = split.heldOut();
            }
            train.requireNspDocuments();
            heldOut.requireNspDocuments();
            PretrainingDataStream.Options options = PretrainingDataStream.Options.defaults(seqLen, batchSize, seed)
                    .withWholeWordMasking(wholeWordMask);
            List<PretrainingBatch> eval = PretrainingDataStream.evaluationBatches(heldOut, tokenizer,
                    options.withSeed(seed + 7919), evalBatches);
            if (eval.isEmpty()) {
                throw new Bert4jException("the held-out text gives no evaluation batch; give a larger --eval-corpus");
            }
            BertForPreTraining model = BertForPreTraining.random(cfg, seed);
            model.setKernels(mode);
            if (dropout != null) {
                model.setDropout(dropout, dropout);
            }
            TrainerConfig tc = TrainerConfig.of(out, steps).withLr(lr).withWeightDecay(weightDecay)
                    .withWarmupRatio(warmup).withMaxGradNorm(maxGradNorm).withAccumulation(accumulate)
                    .withEvalEvery(evalEvery <= 0 ? steps : evalEvery).withSaveEvery(saveEvery).withKeepLast(keep)
                    .withLogEvery(logEvery).withSeed(seed);
            try (PretrainTask task = new PretrainTask(model, tokenizer, eval);
                 Trainer<PretrainingBatch> trainer = new Trainer<>(tc, task)) {
                Optional<Trainer.ResumePoint> from = resume ? trainer.restoreLatest() : Optional.empty();
                PretrainingDataStream.Position pos = from.map(r -> PretrainingDataStream.Position.parse(r.dataPosition()))
                        .orElse(PretrainingDataStream.Position.START);
                from.ifPresent(r -> spec.commandLine().getErr().println("bert4j: resuming from " + r.checkpoint()
                        + " (step " + r.step() + ")"));
                PretrainingDataStream stream = new PretrainingDataStream(train, tokenizer, options, pos);
                Trainer.Result result = trainer.train(PretrainTask.source(stream));
                spec.commandLine().getOut().printf("{\"step\": %d, \"stopped\": %b, \"loss\": %s, \"out\": \"%s\"}%n",
                        result.step(), result.stopped(), Double.toString(result.lastLoss()),
                        out.toString().replace("\\", "\\\\").replace("\"", "\\\""));
                spec.commandLine().getOut().flush();
            }
        }
        return 0;
    }

    private BertConfig modelConfig(BertTokenizer tokenizer) {
        int vocab = tokenizer.vocabSize();
        Path file = Path.of(config);
        if (config.endsWith(".json") || Files.isRegularFile(file)) {
            BertConfig c = BertConfig.read(file);
            if (c.vocabSize() < vocab) {
                throw new Bert4jException(config + ": vocab_size " + c.vocabSize() + " is smaller than the tokenizer's "
                        + vocab + " tokens");
            }
            return c;
        }
        return BertConfig.preset(config, vocab);
    }
}
