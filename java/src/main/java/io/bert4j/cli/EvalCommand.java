package io.bert4j.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code bert4j eval TASK}: a fine-tuned folder's metrics on a labelled file, printed as one JSON
 * object. Each task is a subcommand; adding one is adding its class to {@code subcommands}.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Evaluate a fine-tuned model on a labelled file; prints the metrics as one JSON object.",
        subcommands = {ClassifyEvalCommand.class, NerEvalCommand.class, QaEvalCommand.class})
public final class EvalCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a task is required");
    }
}
