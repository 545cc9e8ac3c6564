/**
 * BERT WordPiece tokenization: {@link io.bert4j.tokenize.BertTokenizer} over Hugging Face
 * tokenizers (Rust, via DJL), reading HF model folders (tokenizer.json, or vocab.txt turned
 * into the tokenizer.json HF's BertTokenizerFast conversion writes).
 *
 * <p>Things about DJL 0.36 this package works around, so callers need not:
 * <ul>
 *   <li>DJL token spans count Unicode code points (special and padding tokens: no span);
 *       {@link io.bert4j.tokenize.Encoding#offsets()} are UTF-16 char indices into the
 *       original Java string of the token's own sequence.</li>
 *   <li>DJL truncates by default (to the file's truncation.max_length, else 512) and pads to
 *       the longest; the file's own truncation/padding are also ignored here. bert4j's
 *       default is neither; {@link io.bert4j.tokenize.EncodeOptions} decides.</li>
 *   <li>DJL can lowercase / strip accents in Java before the Rust tokenizer when given a
 *       tokenizer_config, which would shift offsets; bert4j never hands it one and puts
 *       those settings into the tokenizer.json normalizer instead.</li>
 *   <li>DJL pads with id 0 unless tokenizer.json names a pad token and id; bert4j writes
 *       the configured pad token into the JSON it hands to DJL.</li>
 *   <li>DJL calls a telemetry endpoint on each tokenizer creation unless OPT_OUT_TRACKING
 *       is set; loading this package sets it (unless the user set it).</li>
 * </ul>
 */
package io.bert4j.tokenize;
