# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Data collators: dataset rows -> model inputs, for raw-audio training and for cached-feature training.

* `MGCMADataCollator` reads ``audio``, ``text`` and ``label`` and runs them through an `MGCMAProcessor`, so the
  Trainer must keep every column (``remove_unused_columns=False``, which `MGCMATrainer` enforces).
* `CachedFeatureCollator` pads the encoder outputs stored by `modeling_mgcma.training.feature_cache.cache_features`.
* `build_training_inputs` picks one of them for a run and prepares its dataset.
"""

from __future__ import annotations

import numpy as np
import torch

from ..processing_mgcma import decode_audio
from .feature_cache import SPEECH_COLUMN, TEXT_COLUMN


class MGCMADataCollator:
    """Dataset rows -> a padded MGCMA batch with ``labels``.

    Each row holds ``audio`` (any form `processing_mgcma.decode_audio` reads: a `{"array", "sampling_rate"}` dict, a
    torchcodec `AudioDecoder`, a `{"path"}`/`{"bytes"}` dict from ``Audio(decode=False)``, or a path), ``text`` (the
    transcript) and ``label`` (a class id); other columns (id, session, ...) are ignored. The processor mixes each
    clip down to mono, cuts it to its `max_duration` and resamples it from its own rate.

    Args:
        processor: an `MGCMAProcessor` (feature extractor + tokenizer, optional `max_duration`).
        audio_column, text_column, label_column: the row keys to read.
    """

    def __init__(self, processor, audio_column: str = "audio", text_column: str = "text", label_column: str = "label"):
        self.processor = processor
        self.audio_column = audio_column
        self.text_column = text_column
        self.label_column = label_column

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("got an empty batch.")
        missing = [c for c in (self.audio_column, self.text_column) if c not in rows[0]]
        if missing:
            raise ValueError(f"rows have no column(s) {missing}; their columns are {sorted(rows[0])}.")
        clips, rates = zip(*(decode_audio(row[self.audio_column]) for row in rows))
        batch = self.processor(audio=list(clips), text=[row[self.text_column] for row in rows], sampling_rate=list(rates))
        batch = dict(batch)
        if self.label_column in rows[0]:
            batch["labels"] = torch.tensor([int(row[self.label_column]) for row in rows], dtype=torch.long)
        return batch


class CachedFeatureCollator:
    """Pads cached features into a batch: speech_features, speech_features_mask, text_features, text_features_mask
    and `labels` (from `label_column`, else a `labels` column, when present).

    Args:
        label_column: the rows' label column ("label" for `load_iemocap` datasets).
        dtype: dtype of the batched feature tensors (float32 by default, also for float16 caches).
    """

    def __init__(self, label_column: str = "label", dtype: torch.dtype = torch.float32):
        self.label_column = label_column
        self.dtype = dtype

    def _pad(self, rows, column):
        arrays = [torch.as_tensor(np.asarray(row[column])) for row in rows]
        for index, array in enumerate(arrays):
            if array.dim() != 2 or array.shape[0] == 0:
                raise ValueError(f"row {index} of the batch: `{column}` must be a non-empty [length, hidden] array, got {tuple(array.shape)}.")
        lengths = torch.tensor([a.shape[0] for a in arrays])
        padded = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1], dtype=self.dtype)
        for index, array in enumerate(arrays):
            padded[index, : array.shape[0]] = array.to(self.dtype)
        mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        return padded, mask

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = {}
        batch[SPEECH_COLUMN], batch["speech_features_mask"] = self._pad(rows, SPEECH_COLUMN)
        batch[TEXT_COLUMN], batch["text_features_mask"] = self._pad(rows, TEXT_COLUMN)
        for column in (self.label_column, "labels"):
            if column in rows[0]:
                batch["labels"] = torch.tensor([int(row[column]) for row in rows], dtype=torch.long)
                break
        return batch


def build_training_inputs(dataset, model, processor, cache_dir=None, device=None):
    """(the dataset as the Trainer reads it, data_collator), before it is split into folds.

    Without `cache_dir` (None or empty): rows keep their audio and text, and `MGCMADataCollator` runs the processor per batch. With
    it: the model's encoders are frozen in eval mode and run once per utterance of the WHOLE dataset, on `device`,
    each process its share of the rows (`feature_cache.cache_features`, cached under a key of encoder weights,
    processor and data), so every fold and every later run with the same encoders and data reads the same cache;
    `CachedFeatureCollator` pads the stored features.
    """
    if not cache_dir:
        return dataset, MGCMADataCollator(processor)

    from .feature_cache import cache_features, freeze_encoders_in_eval_mode

    freeze_encoders_in_eval_mode(model)  # as the cache computes them: no dropout / SpecAugment in the features
    return cache_features(model, processor, dataset, cache_dir, device=device), CachedFeatureCollator()


__all__ = ["MGCMADataCollator", "CachedFeatureCollator", "build_training_inputs"]
