package io.bert4j.cli;

import io.bert4j.Bert4jException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/**
 * The {@code bert4j} command line. Errors a user can cause end with one line on stderr,
 * {@code bert4j: error: ...}, and exit status 1; usage errors print the usage and exit 2.
 */
@Command(name = "bert4j", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "BERT models from Java: embeddings and more, on libtorch with bert4j's native kernels.",
        subcommands = {ClassifyCommand.class, EmbedCommand.class, EvalCommand.class, FinetuneCommand.class, FillMaskCommand.class, ImportOnnxCommand.class, NerCommand.class, PretrainCommand.class, QaCommand.class, ServeCommand.class, VocabCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(new java.io.OutputStreamWriter(System.out, java.nio.charset.StandardCharsets.UTF_8), true),
                new PrintWriter(new java.io.OutputStreamWriter(System.err, java.nio.charset.StandardCharsets.UTF_8), true)));
    }

    /** Runs the CLI and returns the exit status (for tests and embedding). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            Throwable t = ex;
            if (t instanceof Bert4jException || t instanceof java.io.UncheckedIOException) {
                err.println("bert4j: error: " + t.getMessage());
            } else {
                // Not a user error: keep the stack trace, it is a bug report.
                err.println("bert4j: internal error: " + t);
                t.printStackTrace(err);
            }
            err.flush();
            return 1;
        });
        return cl.execute(args);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[]{"bert4j " + (v == null ? "(development build)" : v)};
        }
    }
}
