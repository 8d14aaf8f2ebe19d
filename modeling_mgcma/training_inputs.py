# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Where the data meet the model, before training: every clip long enough for the speech encoder, and the dataset
with its collator (raw audio and text, or the frozen encoders' cached features)."""

from __future__ import annotations

import numpy as np


def check_audio_lengths(dataset, model, sampling_rate: int) -> None:
    """Before training: every clip holds at least the speech encoder's receptive field (read from file headers, no
    decoding). Raises ValueError naming the short utterances by id and file."""
    import datasets

    from .sampling import audio_durations

    if "audio" not in dataset.column_names:
        return
    minimum = model.base_model.min_speech_samples
    samples = np.round(np.asarray(audio_durations(dataset, "audio", source="header"), dtype=np.float64) * sampling_rate)
    short = np.flatnonzero(samples < minimum)
    if len(short):
        rows = dataset.select_columns(["id", "audio"]).cast_column("audio", datasets.Audio(decode=False))
        listed = "; ".join(
            f"{rows[int(i)]['id']} ({rows[int(i)]['audio']['path']}: {int(samples[i])} samples)" for i in short[:5]
        )
        raise ValueError(
            f"{len(short)} utterance(s) are shorter than the speech encoder's receptive field ({minimum} samples at "
            f"{sampling_rate} Hz, {1000 * minimum / sampling_rate:.1f} ms): {listed}{' ...' if len(short) > 5 else ''}. "
            "Remove them from the data (or restore truncated files)."
        )


def build_training_inputs(dataset, model, processor, cache_dir=None, device=None):
    """(the dataset as the Trainer reads it, data_collator), before it is split into folds.

    Without `cache_dir` (None or empty): rows keep their audio and text, and `MGCMADataCollator` runs the processor per batch. With
    it: the model's encoders are frozen in eval mode and run once per utterance of the WHOLE dataset, on `device`,
    each process its share of the rows (`feature_cache.cache_features`, cached under a key of encoder weights,
    processor and data), so every fold and every later run with the same encoders and data reads the same cache;
    `CachedFeatureCollator` pads the stored features.
    """
    from .trainer import MGCMADataCollator

    if not cache_dir:
        return dataset, MGCMADataCollator(processor)

    from .feature_cache import CachedFeatureCollator, cache_features, freeze_encoders_in_eval_mode

    freeze_encoders_in_eval_mode(model)  # as the cache computes them: no dropout / SpecAugment in the features
    return cache_features(model, processor, dataset, cache_dir, device=device), CachedFeatureCollator()


__all__ = ["check_audio_lengths", "build_training_inputs"]
