# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Padded audio frames over one epoch: random batches vs `ReshuffledLengthGroupedSampler`, IEMOCAP-like durations.

    python benchmarks/bench_padding.py

Corpus: 5,531 durations, log-normal with mean 4.5 s (sigma 0.6 of log duration: median 3.7 s, 99th percentile
~15 s, longest ~26 s with this seed; IEMOCAP's 4-class set has mean ~4.5 s and a tail to ~30 s), floored at 0.6 s.
Frames are wav2vec2's (20 ms). Padding fraction = padded frames / all frames computed, each batch padded to its
longest utterance. Also shown: how many batches (as sets of utterances) of epoch 0 recur in epoch 1, i.e. that the
grouped batches are re-drawn every epoch rather than fixed.
"""

import argparse

import numpy as np
from _common import table, wav2vec2_frames

from modeling_mgcma.processing_mgcma import DEFAULT_MAX_DURATION
from modeling_mgcma.training.sampling import length_grouped_batches, padding_fraction


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=5531)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sigma = 0.6
    durations = np.maximum(rng.lognormal(np.log(4.5) - sigma**2 / 2, sigma, args.utterances), 0.6)
    print(f"{args.utterances} utterances: mean {durations.mean():.2f} s, median {np.median(durations):.2f} s, "
          f"99th percentile {np.percentile(durations, 99):.1f} s, max {durations.max():.1f} s; "
          f"{(durations > DEFAULT_MAX_DURATION).mean():.2%} longer than {DEFAULT_MAX_DURATION:.0f} s")
    rows = []
    for cap in (None, DEFAULT_MAX_DURATION):
        capped = durations if cap is None else np.minimum(durations, cap)
        frames = wav2vec2_frames(np.round(capped * 16_000).astype(np.int64))
        for batch_size in (4, 8, 16, 32):
            permutation = rng.permutation(len(frames))
            random_batches = [permutation[i : i + batch_size] for i in range(0, len(frames), batch_size)]
            epoch0 = length_grouped_batches(frames, batch_size, seed=0, epoch=0)
            epoch1 = length_grouped_batches(frames, batch_size, seed=0, epoch=1)
            recurring = len({tuple(sorted(b)) for b in epoch0} & {tuple(sorted(b)) for b in epoch1}) / len(epoch0)
            grouped = padding_fraction(epoch0, frames)
            random = padding_fraction(random_batches, frames)
            rows.append([
                "none" if cap is None else f"{cap:.0f} s", batch_size, f"{random:.1%}", f"{grouped:.1%}",
                f"{(1 - grouped) / (1 - random):.2f}x", f"{recurring:.1%}",
            ])
    print(table(rows, ["max duration", "batch", "padding random", "padding grouped",
                       "useful frames per computed frame, grouped / random", "epoch-0 batches recurring in epoch 1"]))


if __name__ == "__main__":
    main()
