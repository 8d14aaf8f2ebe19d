# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Cached-feature training vs frozen encoders run every step: epoch time, same model, data and batches.

    python benchmarks/bench_cache.py                          # paper size, 24 utterances, batch 4
    python benchmarks/bench_cache.py --size tiny --utterances 200

The corpus: `--utterances` WAV files of noise with IEMOCAP-like durations (log-normal, mean 4.5 s, cut at 15 s), a
transcript of 8-30 words each. Both epochs use the same length-grouped batches; the end-to-end epoch decodes audio,
runs the processor and the frozen encoders (eval mode) each step; the cached epoch reads the memory-mapped features
(`cache_features`, built once beforehand: its time is reported separately, it is paid once for all epochs, folds
and runs). Each step is forward + backward + AdamW step on the alignment modules and classifier.
"""

import argparse
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch
from _common import build_model, table

from modeling_mgcma.data import demo_vocabulary
from modeling_mgcma.training.collators import CachedFeatureCollator
from modeling_mgcma.training.feature_cache import cache_features, freeze_encoders_in_eval_mode
from modeling_mgcma.training.from_scratch import word_processor
from modeling_mgcma.training.sampling import audio_lengths, length_grouped_batches


def write_corpus(folder: Path, count: int, seed: int):
    import datasets

    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(4.5) - 0.18, 0.6, count), 0.6, 15.0)
    words = demo_vocabulary()
    paths, texts = [], []
    for i, seconds in enumerate(durations):
        path = folder / f"{i:05d}.wav"
        samples = (rng.standard_normal(int(seconds * 16_000)) * 3000).astype(np.int16)
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(16_000)
            handle.writeframes(samples.tobytes())
        paths.append(str(path))
        texts.append(" ".join(rng.choice(words, size=int(rng.integers(8, 31)))))
    dataset = datasets.Dataset.from_dict(
        {"audio": paths, "text": texts, "label": rng.integers(0, 4, count).tolist()}
    ).cast_column("audio", datasets.Audio(sampling_rate=16_000))
    return dataset, durations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["paper", "tiny"], default="paper")
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    processor = word_processor(demo_vocabulary())
    with tempfile.TemporaryDirectory() as tmp:
        dataset, durations = write_corpus(Path(tmp), args.utterances, args.seed)
        model = build_model(args.size)
        freeze_encoders_in_eval_mode(model)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, fused=True)
        batches = length_grouped_batches(audio_lengths(dataset), args.batch, seed=args.seed)

        start = time.perf_counter()
        cached = cache_features(model, processor, dataset, Path(tmp) / "cache")
        build_seconds = time.perf_counter() - start
        start = time.perf_counter()
        cached = cache_features(model, processor, dataset, Path(tmp) / "cache")
        reuse_seconds = time.perf_counter() - start
        collate = CachedFeatureCollator()

        def end_to_end_batch(indices):
            rows = dataset.select(indices)
            audio = []
            for decoder in rows["audio"]:
                samples = decoder.get_all_samples()
                audio.append(samples.data.numpy()[0])
            batch = dict(processor(audio=audio, text=rows["text"]))
            batch["labels"] = torch.tensor(rows["label"])
            return batch

        def cached_batch(indices):
            return collate([cached[int(i)] for i in indices])

        def train_step(batch):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def epoch(make_batch):
            start = time.perf_counter()
            for indices in batches:
                train_step(make_batch(indices))
            return time.perf_counter() - start

        train_step(end_to_end_batch(batches[1]))  # warm-up
        train_step(cached_batch(batches[1]))
        times = {"end_to_end": [], "cached": []}
        for order in (("end_to_end", "cached"), ("cached", "end_to_end")):  # a b b a: drift hits both sides
            for name in order:
                times[name].append(epoch(end_to_end_batch if name == "end_to_end" else cached_batch))
        e2e, fast = np.mean(times["end_to_end"]), np.mean(times["cached"])
        print(f"size={args.size}: {args.utterances} utterances (mean {durations.mean():.2f} s), batch {args.batch}, "
              f"{len(batches)} steps per epoch; mean of 2 epochs each, order a b b a")
        print(table(
            [
                ["frozen encoders every step", f"{e2e:.2f}", f"{e2e / len(batches):.3f}", "1.00x"],
                ["cached features", f"{fast:.2f}", f"{fast / len(batches):.3f}", f"{e2e / fast:.2f}x"],
            ],
            ["mode", "epoch s", "s/step", "speed-up"],
        ))
        print(f"cache build (once): {build_seconds:.2f} s = {build_seconds / (e2e - fast):.2f} epochs' saving; "
              f"reopening it: {reuse_seconds:.2f} s (hashing encoder weights and data)")


if __name__ == "__main__":
    main()
