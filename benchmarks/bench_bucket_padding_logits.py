# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""What padding to a bucket does to the logits, for a speech encoder whose conv features are group-normalised.

    python benchmarks/bench_bucket_padding_logits.py            # 48 utterances, IEMOCAP-like durations (1-8 s)

wav2vec2-base normalises its first conv layer's output over time with GroupNorm (`feat_extract_norm="group"`), over
the padded samples too, so an utterance's features depend on how much padding its batch adds; layer-normalised conv
features (`"layer"`, wav2vec2-large-lv60 and the encoders built here from scratch) do not. For each utterance, in
eval mode, the logits of the utterance alone (no padding) are compared with the logits when it is padded to (a) the
longest clip of a length-grouped batch of 4 and (b) that batch's bucket (16 buckets from the whole set's durations,
`fast_step.choose_buckets`), for both conv norms. The encoders are random (no pretrained speech checkpoint exists
offline) with wav2vec2-base's conv stack at a reduced width; prints the mean |logit change| relative to the mean
|logit| and the share of utterances whose predicted class changes.
"""

import argparse

import numpy as np
import torch

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification
from modeling_mgcma.training.fast_step import AUDIO_MULTIPLE, bucket_length, choose_buckets
from modeling_mgcma.training.from_scratch import speech_encoder_config, text_encoder_config
from modeling_mgcma.training.sampling import length_grouped_batches


BASE_CONV = {"conv_dim": [64] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2]}


def model_with(norm: str) -> MGCMAForEmotionClassification:
    torch.manual_seed(0)
    speech = speech_encoder_config(64, 2, 4, 128, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    for name, value in BASE_CONV.items():  # wav2vec2-base's conv stack: 7 layers, 20 ms frames
        setattr(speech, name, value)
    speech.num_feat_extract_layers = len(BASE_CONV["conv_dim"])
    config = MGCMAConfig(speech_config=speech, text_config=text_encoder_config(100, 64, 2, 4, 128), hidden_size=64,
                         num_attention_heads=4, num_alignment_layers=2, intermediate_size=128)  # fmt: skip
    return MGCMAForEmotionClassification(config).eval()


@torch.no_grad()
def logits(model, clip: np.ndarray, width: int) -> torch.Tensor:
    values = torch.zeros(1, width)
    values[0, : len(clip)] = torch.from_numpy(clip)
    mask = torch.zeros(1, width, dtype=torch.long)
    mask[0, : len(clip)] = 1
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    return model(input_values=values, speech_attention_mask=mask, input_ids=ids).logits[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    seconds = np.clip(rng.lognormal(np.log(3.4), 0.5, args.utterances), 1.0, 8.0)
    lengths = np.round(seconds * 16_000).astype(int)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    buckets = choose_buckets(lengths, 16, AUDIO_MULTIPLE)
    longest = np.zeros(len(lengths), dtype=int)
    for batch in length_grouped_batches(lengths, 4, seed=args.seed):
        longest[batch] = lengths[batch].max()
    bucketed = sum(bucket_length(int(w), buckets, AUDIO_MULTIPLE) for w in longest)
    print(f"{len(lengths)} utterances, {seconds.mean():.1f} s mean; padding, share of the audio samples computed: "
          f"{100 * (1 - lengths.sum() / bucketed):.1f} % padded to buckets, {100 * (1 - lengths.sum() / longest.sum()):.1f} "
          "% padded to each batch's longest clip")  # fmt: skip
    for norm in ("group", "layer"):
        model = model_with(norm)
        rows = {"batch's longest": [], "bucket": []}
        for index, clip in enumerate(clips):
            alone = logits(model, clip, len(clip))
            scale = alone.abs().mean()
            for name, width in (("batch's longest", longest[index]),
                                ("bucket", bucket_length(int(longest[index]), buckets, AUDIO_MULTIPLE))):  # fmt: skip
                padded = logits(model, clip, int(width))
                rows[name].append((float((padded - alone).abs().mean() / scale), int(padded.argmax() != alone.argmax())))
        for name, values in rows.items():
            change, flips = np.mean([v[0] for v in values]), np.mean([v[1] for v in values])
            print(f"conv norm {norm:5}  padded to the {name:15}  mean |logit change| {100 * change:6.2f} % of "
                  f"mean |logit|   predicted class changed for {100 * flips:5.1f} % of utterances")  # fmt: skip


if __name__ == "__main__":
    main()
