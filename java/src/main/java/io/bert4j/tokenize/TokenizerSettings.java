package io.bert4j.tokenize;

/**
 * What tokenizer_config.json / special_tokens_map.json say (or their HF defaults), as
 * the tokenizer in use applies them.
 *
 * @param doLowerCase               lowercase in the BertNormalizer (HF default true)
 * @param stripAccents              null = follow doLowerCase (HF BertNormalizer rule)
 * @param tokenizeChineseChars      put spaces around CJK ideographs (HF default true)
 * @param modelMaxLength            model_max_length, 0 when the folder gives none
 * @param cleanUpTokenizationSpaces undo " ." / " 's" spacing after decoding (HF BERT default true)
 */
public record TokenizerSettings(boolean doLowerCase, Boolean stripAccents, boolean tokenizeChineseChars,
                                int modelMaxLength, boolean cleanUpTokenizationSpaces,
                                String unkToken, String sepToken, String padToken, String clsToken,
                                String maskToken) {

    /** HF BertNormalizer: strip_accents unset means "strip when lowercasing". */
    public boolean effectiveStripAccents() {
        return stripAccents != null ? stripAccents : doLowerCase;
    }
}
