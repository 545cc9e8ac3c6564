package io.bert4j.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code bert4j finetune TASK}: fine-tune a pretrained BERT folder for one task. Each task is a
 * subcommand; adding one is adding its class to {@code subcommands}.
 */
@Command(name = "finetune", mixinStandardHelpOptions = true,
        description = "Fine-tune a pretrained BERT (a Hugging Face folder) for a task and write the result as a "
                + "Hugging Face folder.",
        subcommands = {ClassifyFinetuneCommand.class, NerFinetuneCommand.class, QaFinetuneCommand.class})
public final class FinetuneCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a task is required");
    }
}
