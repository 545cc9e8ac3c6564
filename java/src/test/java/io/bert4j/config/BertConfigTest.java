package io.bert4j.config;

import io.bert4j.Bert4jException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BertConfigTest {

    /** A config.json as HF transformers writes it for bert-base-uncased fine-tuned on a 3-label task. */
    static final String HF_CONFIG = """
            {
              "_name_or_path": "bert-base-uncased",
              "architectures": ["BertForSequenceClassification"],
              "attention_probs_dropout_prob": 0.1,
              "classifier_dropout": null,
              "gradient_checkpointing": false,
              "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1,
              "hidden_size": 768,
              "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
              "initializer_range": 0.02,
              "intermediate_size": 3072,
              "label2id": {"negative": 0, "neutral": 1, "positive": 2},
              "layer_norm_eps": 1e-12,
              "max_position_embeddings": 512,
              "model_type": "bert",
              "num_attention_heads": 12,
              "num_hidden_layers": 12,
              "pad_token_id": 0,
              "position_embedding_type": "absolute",
              "problem_type": "single_label_classification",
              "torch_dtype": "float32",
              "transformers_version": "4.46.0",
              "type_vocab_size": 2,
              "use_cache": true,
              "vocab_size": 30522
            }
            """;

    @Test
    void readsEveryFieldAndWritesThemBack(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("config.json");
        Files.writeString(f, HF_CONFIG);
        BertConfig c = BertConfig.read(f);
        assertEquals(768, c.hiddenSize());
        assertEquals(12, c.numHiddenLayers());
        assertEquals(64, c.headDim());
        assertEquals(1e-12, c.layerNormEps());
        assertEquals("positive", c.id2label().get(2));
        assertEquals("single_label_classification", c.problemType());
        assertNull(c.classifierDropout());
        assertEquals("4.46.0", c.extra().get("transformers_version").asText());

        Path g = tmp.resolve("out.json");
        c.write(g);
        BertConfig back = BertConfig.read(g);
        assertEquals(c, back);
        String written = Files.readString(g);
        assertTrue(written.contains("\"label2id\"") && written.contains("\"use_cache\" : true"), written);
    }

    @Test
    void presets() {
        assertEquals(128, BertConfig.preset("tiny", 1000).hiddenSize());
        assertEquals(768, BertConfig.preset("base", 30522).hiddenSize());
        Bert4jException e = assertThrows(Bert4jException.class, () -> BertConfig.preset("huge", 10));
        assertTrue(e.getMessage().contains("huge"));
    }

    @Test
    void badFieldsAreNamed(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("config.json");
        Files.writeString(f, HF_CONFIG.replace("\"vocab_size\": 30522", "\"vocab_size\": null")
                .replace("\"hidden_size\": 768,", ""));
        Bert4jException e = assertThrows(Bert4jException.class, () -> BertConfig.read(f));
        assertTrue(e.getMessage().contains("[vocab_size, hidden_size]") || e.getMessage().contains("hidden_size"), e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());

        Files.writeString(f, HF_CONFIG.replace("\"model_type\": \"bert\"", "\"model_type\": \"gpt2\""));
        e = assertThrows(Bert4jException.class, () -> BertConfig.read(f));
        assertTrue(e.getMessage().contains("gpt2"), e.getMessage());

        Files.writeString(f, "[1, 2]");
        e = assertThrows(Bert4jException.class, () -> BertConfig.read(f));
        assertTrue(e.getMessage().contains("not a JSON object"), e.getMessage());

        Files.writeString(f, HF_CONFIG.replace("\"pad_token_id\": 0", "\"pad_token_id\": 40000"));
        e = assertThrows(Bert4jException.class, () -> BertConfig.read(f));
        assertTrue(e.getMessage().contains("pad_token_id 40000"), e.getMessage());

        e = assertThrows(Bert4jException.class, () -> BertConfig.read(tmp.resolve("absent.json")));
        assertTrue(e.getMessage().contains("absent.json"), e.getMessage());
    }
}
