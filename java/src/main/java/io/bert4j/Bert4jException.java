package io.bert4j;

/**
 * The one exception type bert4j throws for problems a user can cause or meet: a corrupt
 * checkpoint, a missing file, an over-long text, a native kernel that rejected its
 * arguments. The message names the file, tensor or argument and what is wrong with it.
 */
public class Bert4jException extends RuntimeException {
    public Bert4jException(String message) {
        super(message);
    }

    public Bert4jException(String message, Throwable cause) {
        super(message, cause);
    }
}
