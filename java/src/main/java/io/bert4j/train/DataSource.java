package io.bert4j.train;

/**
 * An endless (or long enough) stream of training batches. Batches should be built inside
 * {@link #next()} so that their tensors belong to the trainer's per-micro-step
 * {@code PointerScope} and are freed with it.
 *
 * <p>Resume works by position, not by saving iterator state: the trainer stores
 * {@link #position()} in each checkpoint, and the caller reopens its data source at that
 * position (see {@link Trainer#restoreLatest()}).
 *
 * @param <B> the batch type
 */
public interface DataSource<B> {
    B next();

    /** Where the next {@link #next()} would read from, as a string the caller can reopen at. */
    String position();
}
