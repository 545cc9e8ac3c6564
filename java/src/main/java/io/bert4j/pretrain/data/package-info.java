/**
 * The data side of BERT pretraining (masked language modelling + next sentence prediction).
 *
 * <p>Flow: {@link io.bert4j.pretrain.data.Corpus} (files, streamed, documents of sentences)
 * → {@link io.bert4j.pretrain.data.InstanceBuilder} ({@code [CLS] A [SEP] B [SEP]} pairs
 * as Google's {@code create_pretraining_data} builds them, through bounded shuffle buffers)
 * → {@link io.bert4j.pretrain.data.Masker} (dynamic 15% / 80-10-10 masking, fresh per
 * epoch) → {@link io.bert4j.pretrain.data.PretrainingBatch}.
 * {@link io.bert4j.pretrain.data.PretrainingDataStream} ties them into an endless,
 * deterministic, resumable batch stream, and gives fixed evaluation batches for a held-out
 * {@link io.bert4j.pretrain.data.Corpus#split split}.
 *
 * <p>{@link io.bert4j.pretrain.data.WordPieceTrainer} learns a vocabulary for training from
 * scratch ({@code bert4j vocab}).
 */
package io.bert4j.pretrain.data;
