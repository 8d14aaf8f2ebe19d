# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Small MGCMA models and processors built locally, with no download: for the demo corpus, tests and benchmarks.

Real use starts from pretrained encoders (`MGCMAForEmotionClassification.from_encoders("facebook/wav2vec2-base",
"bert-base-uncased")` and `MGCMAProcessor.from_encoders`); these helpers build the same architecture at any
size from random weights, with a word-level vocabulary instead of a downloaded one.
"""

from transformers import BertConfig, BertTokenizer, Wav2Vec2Config, Wav2Vec2FeatureExtractor

from ..configuration_mgcma import MGCMAConfig
from ..processing_mgcma import TARGET_SAMPLING_RATE, MGCMAProcessor


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def speech_encoder_config(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, conv_dim=32, **overrides):
    """A wav2vec2-architecture config. Layer-normalised conv features (`feat_extract_norm="layer"`) so that padding
    never leaks into an utterance's features (group norm, as in wav2vec2-base, normalises over padding too).
    `conv_dim` is every conv layer's width; `overrides` may give another conv stack (`conv_kernel`, `conv_stride`)."""
    kwargs = dict(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        conv_kernel=(10, 3, 3, 3, 2),
        conv_stride=(5, 2, 2, 2, 2),  # 80 samples (5 ms) per frame
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=min(4, hidden_size),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        mask_time_prob=0.0,
        layerdrop=0.0,
    )
    kwargs.update(overrides)
    kwargs["conv_dim"] = (conv_dim,) * len(kwargs["conv_kernel"])
    return Wav2Vec2Config(**kwargs)


def text_encoder_config(vocab_size, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, **overrides):
    """A BERT-architecture config for a word-level vocabulary of `vocab_size` entries."""
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=128,
    )
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def small_config(vocab_size, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, **config_kwargs):
    """An `MGCMAConfig` with small random encoders and alignment stack (hidden 32, 2 layers by default)."""
    defaults = dict(
        hidden_size=hidden_size,
        num_attention_heads=num_heads,
        num_alignment_layers=num_layers,
        intermediate_size=intermediate_size,
    )
    defaults.update(config_kwargs)
    return MGCMAConfig(
        speech_config=speech_encoder_config(hidden_size, num_layers, num_heads, intermediate_size),
        text_config=text_encoder_config(vocab_size, hidden_size, num_layers, num_heads, intermediate_size),
        **defaults,
    )


# The demo model of run_mgcma.py (its --scratch_* arguments default to DEMO_MODEL_SIZE).
DEMO_MODEL_SIZE = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64}
# 20 ms frames (320 samples, as wav2vec2) instead of 5 ms: 4x fewer frames, so the encoder's self-attention is ~16x
# cheaper, which is what makes the demo fit in minutes on a CPU.
DEMO_SPEECH_ENCODER = {"conv_kernel": (10, 8, 8, 4, 4), "conv_stride": (5, 4, 4, 2, 2)}
# No dropout in the demo model: it is small and the corpus is clean and synthetic; dropout costs a third of a CPU step.
DEMO_NO_DROPOUT = {
    "speech": {"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
               "final_dropout": 0.0},
    "text": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    "mgcma": {"hidden_dropout_prob": 0.0, "attention_dropout_prob": 0.0, "classifier_dropout": 0.0},
}  # fmt: skip


def demo_config(
    vocab_size, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, no_dropout=True, **config_kwargs
) -> MGCMAConfig:
    """The demo model's `MGCMAConfig`: encoders from scratch with 20 ms speech frames (`DEMO_SPEECH_ENCODER`), without
    dropout unless `no_dropout=False`; `config_kwargs` (labels, loss settings, ...) override the rest."""
    size = dict(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, intermediate_size=intermediate_size)
    dropout = DEMO_NO_DROPOUT if no_dropout else {"speech": {}, "text": {}, "mgcma": {}}
    return MGCMAConfig(
        speech_config=speech_encoder_config(**size, **DEMO_SPEECH_ENCODER, **dropout["speech"]),
        text_config=text_encoder_config(vocab_size, **size, **dropout["text"]),
        **{
            "hidden_size": hidden_size,
            "num_attention_heads": num_heads,
            "num_alignment_layers": num_layers,
            "intermediate_size": intermediate_size,
            **dropout["mgcma"],
            **config_kwargs,
        },
    )


def word_tokenizer(words, do_lower_case=True) -> BertTokenizer:
    """A BERT word-piece tokenizer over `words` (special tokens added first). `BertTokenizer(vocab_file=...)` would
    silently ignore the file in this transformers version, so the vocabulary is passed as a dict."""
    vocab = list(SPECIAL_TOKENS) + [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]
    return BertTokenizer(vocab={word: index for index, word in enumerate(vocab)}, do_lower_case=do_lower_case)


def word_processor(words, max_duration=None, max_text_length=64) -> MGCMAProcessor:
    """An `MGCMAProcessor` with a wav2vec2 feature extractor (16 kHz, per-utterance normalisation, attention masks)
    and a word-level tokenizer over `words`."""
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=TARGET_SAMPLING_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    return MGCMAProcessor(
        feature_extractor, word_tokenizer(words), max_duration=max_duration, max_text_length=max_text_length
    )

