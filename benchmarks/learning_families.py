# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Families of corpora and encoders for the learning benchmark (`bench_learning.py --corpora MEMBER`).

A member is a corpus style (`modeling_mgcma.data.demo_corpus.CorpusStyle`: cue mix, cue strength, jitter, noise,
neutral cues, vocabulary, voices), a voice (tones or espeak-ng) and a pair of from-scratch encoder architectures.
Members are either `tuning` (any choice of the recipe may look at them) or `held-out` (fixed here, with their seeds,
before any run on them; a recipe is judged on them and never tuned on them). The held-out rule is in
docs/ablations.md, "Families".
"""

from __future__ import annotations


# wav2vec2-architecture variants (overrides of modeling_mgcma.training.from_scratch.speech_encoder_config): frame rate,
# conv stack, depth, feature and transformer norms
SPEECH_ENCODERS = {
    # 20 ms frames, 5 convs, layer-normalised conv features, pre-LN transformer (the project's demo encoder)
    "demo": {"conv_kernel": (10, 8, 8, 4, 4), "conv_stride": (5, 4, 4, 2, 2)},
    # wav2vec2-base's conv stack (7 convs, 20 ms) and norms: group norm on the first conv, post-LN transformer
    "base-like": {"conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
                  "feat_extract_norm": "group", "do_stable_layer_norm": False},  # fmt: skip
    # 10 ms frames, 4 convs
    "fine-frames": {"conv_kernel": (10, 8, 8, 4), "conv_stride": (5, 4, 4, 2)},
    # 5 ms frames (speech_encoder_config's own conv stack: 5 convs, strides 5-2-2-2-2)
    "fast-frames": {},
    # 40 ms frames, 4 transformer layers
    "coarse-deep": {"conv_kernel": (10, 8, 8, 8, 4), "conv_stride": (5, 4, 4, 4, 2), "num_hidden_layers": 4},
}
# BERT-architecture variants (overrides of text_encoder_config)
TEXT_ENCODERS = {
    "bert-2": {},
    "bert-1": {"num_hidden_layers": 1},
    "bert-3-relu": {"num_hidden_layers": 3, "hidden_act": "relu"},
}

MEMBERS = {
    # --- tuning members ---
    "tones-prosody-heavy": {
        "role": "tuning", "voice": "tones", "speech_encoder": "demo", "text_encoder": "bert-2",
        "style": {"cue_mix": {"text": 0.25, "prosody": 0.5, "both": 0.25}},
    },
    "tones-neutral-cued": {
        "role": "tuning", "voice": "tones", "speech_encoder": "base-like", "text_encoder": "bert-2",
        "style": {"neutral_cues": True, "vocabulary": "other", "voices": 11},
    },
    "spoken-other-voices": {
        "role": "tuning", "voice": "espeak", "speech_encoder": "demo", "text_encoder": "bert-1",
        "style": {"cue_mix": {"text": 0.4, "prosody": 0.4, "both": 0.2}, "prosody_strength": 0.85, "voices": 12},
    },
    "tones-weak-prosody": {
        "role": "tuning", "voice": "tones", "speech_encoder": "fine-frames", "text_encoder": "bert-2",
        "style": {"prosody_strength": 0.6, "jitter": 1.3, "voices": 13},
    },
    "tones-5ms": {
        "role": "tuning", "voice": "tones", "speech_encoder": "fast-frames", "text_encoder": "bert-2",
        "style": {"vocabulary": "other", "voices": 15},
    },
    "tones-post-ln-noisy": {
        "role": "tuning", "voice": "tones", "speech_encoder": "base-like", "text_encoder": "bert-1",
        "style": {"noise": 0.02, "jitter": 1.5, "voices": 16, "cue_mix": {"text": 0.4, "prosody": 0.6}},
    },
    "tones-long": {
        "role": "tuning", "voice": "tones", "speech_encoder": "demo", "text_encoder": "bert-2", "durations": "iemocap",
        "style": {"voices": 17},
    },
    # the outline of the two corpora in which the full model was first seen losing to S4: every emotional utterance
    # cued in one modality only, half in the words and half in the prosody; the spoken one with other voices and
    # vocabulary
    "tones-split": {
        "role": "tuning", "voice": "tones", "speech_encoder": "demo", "text_encoder": "bert-2",
        "style": {"cue_mix": {"text": 0.5, "prosody": 0.5}},
    },
    "spoken-split": {
        "role": "tuning", "voice": "espeak", "speech_encoder": "demo", "text_encoder": "bert-2",
        "style": {"cue_mix": {"text": 0.5, "prosody": 0.5}, "vocabulary": "other", "voices": 18},
    },
    # the same outline with more of the details those corpora differed in: neutral utterances with cues of their own
    # and other speakers in both; tones-split-neutral with another vocabulary and wav2vec2-base's conv stack (group
    # norm, post-LN), spoken-split-neutral with more jitter, 10 ms frames and a 1-layer text encoder
    "tones-split-neutral": {
        "role": "tuning", "voice": "tones", "speech_encoder": "base-like", "text_encoder": "bert-2",
        "style": {"cue_mix": {"text": 0.5, "prosody": 0.5}, "neutral_cues": True, "vocabulary": "other", "voices": 24},
    },
    "spoken-split-neutral": {
        "role": "tuning", "voice": "espeak", "speech_encoder": "fine-frames", "text_encoder": "bert-1",
        "style": {"cue_mix": {"text": 0.5, "prosody": 0.5}, "neutral_cues": True, "jitter": 1.3, "voices": 25},
    },
    # --- held-out members: fixed before any run on them; training seeds HELD_OUT_SEEDS, corpus seed + 500 ---
    "tones-h1": {
        "role": "held-out", "voice": "tones", "speech_encoder": "fine-frames", "text_encoder": "bert-3-relu",
        "style": {"cue_mix": {"text": 0.3, "prosody": 0.6, "both": 0.1}, "neutral_cues": True, "prosody_strength": 0.8,
                  "noise": 0.01, "vocabulary": "other", "voices": 21},
    },
    "tones-h2": {
        "role": "held-out", "voice": "tones", "speech_encoder": "coarse-deep", "text_encoder": "bert-1",
        "style": {"cue_mix": {"text": 0.5, "prosody": 0.5}, "jitter": 1.5, "noise": 0.006, "voices": 22},
    },
    "spoken-h3": {
        "role": "held-out", "voice": "espeak", "speech_encoder": "base-like", "text_encoder": "bert-3-relu",
        "style": {"cue_mix": {"text": 0.5, "prosody": 0.3, "both": 0.2}, "neutral_cues": True, "jitter": 1.2,
                  "vocabulary": "other", "voices": 23},
    },
}  # fmt: skip
HELD_OUT_SEEDS = (0, 1, 2, 3, 4)
HELD_OUT_CORPUS_OFFSET = 500


def member(name: str) -> dict:
    """The member `name` (KeyError naming the members otherwise)."""
    if name not in MEMBERS:
        raise KeyError(f"unknown family member {name!r}; expected one of {sorted(MEMBERS)}")
    return MEMBERS[name]


def corpus_style(name: str):
    from modeling_mgcma.data.demo_corpus import CorpusStyle

    return CorpusStyle(**member(name)["style"])
