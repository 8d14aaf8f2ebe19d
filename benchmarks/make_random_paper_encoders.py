# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Write randomly initialised encoders of the paper's sizes as local model folders, for timing runs without network:

    python benchmarks/make_random_paper_encoders.py OUT
    python run_mgcma.py --preset paper --speech_model OUT/wav2vec2-base-random --text_model OUT/bert-base-random \\
        --data_dir DEMO_CORPUS --strict_counts false --cross_validate --ablations all --dry_run

OUT/wav2vec2-base-random: `Wav2Vec2Model(Wav2Vec2Config())` (the wav2vec 2.0 Base architecture) with a 16 kHz
feature extractor; OUT/bert-base-random: `BertModel(BertConfig())` (bert-base-uncased's architecture, 30,522-token
vocabulary) with a WordPiece tokenizer over a generated vocabulary of the same size. Same FLOPs and memory as the
real checkpoints; the weights are random, so only timings and memory mean anything.
"""

import argparse
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the same architectures and folders at hidden size 32 with 2 layers (CPU smoke runs)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64) if args.tiny else {}
    speech = args.output / "wav2vec2-base-random"
    Wav2Vec2Model(
        Wav2Vec2Config(**small, **({"conv_dim": [32] * 7, "num_conv_pos_embedding_groups": 4} if args.tiny else {}))
    ).save_pretrained(speech)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(speech)  # as wav2vec2-base's  # fmt: skip
    text = args.output / "bert-base-random"
    config = BertConfig(**small)
    BertModel(config).save_pretrained(text)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = special + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'", ".", ",", "!", "?"]
    vocab = words + [f"[unused{i}]" for i in range(config.vocab_size - len(words))]
    BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)}, do_lower_case=True).save_pretrained(
        text
    )
    print(f"wrote {speech} and {text}")


if __name__ == "__main__":
    main()
