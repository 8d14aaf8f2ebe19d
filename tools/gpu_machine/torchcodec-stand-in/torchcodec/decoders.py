# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""`AudioDecoder` as `datasets` uses it, reading files with the project's own reader (see ../README.md)."""

import os
from types import SimpleNamespace

import numpy as np
import torch

from modeling_mgcma.processing_mgcma import load_audio, resample


class AudioDecoder:
    def __init__(self, source, stream_index=None, sample_rate=None, num_channels=None):
        if hasattr(source, "read"):  # a file object (datasets opens remote files this way)
            source = source.read()
        array, rate = load_audio(source)
        array = array[None, :] if array.ndim == 1 else array  # channels first, as torchcodec returns
        if sample_rate is not None and sample_rate != rate:
            array = np.stack([resample(channel, rate, sample_rate) for channel in array])
            rate = sample_rate
        if num_channels == 1 and array.shape[0] > 1:
            array = array.mean(0, keepdims=True)
        self._samples = SimpleNamespace(data=torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)),
                                        sample_rate=int(rate))  # fmt: skip
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        self.metadata = SimpleNamespace(path=path, sample_rate=int(rate), num_channels=int(array.shape[0]))

    def get_all_samples(self):
        return self._samples

    def get_samples_played_in_range(self, start_seconds=0.0, stop_seconds=None):
        rate = self._samples.sample_rate
        stop = None if stop_seconds is None else int(round(stop_seconds * rate))
        data = self._samples.data[:, int(round(start_seconds * rate)) : stop]
        return SimpleNamespace(data=data, sample_rate=rate)


class VideoDecoder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the WAV-only torchcodec stand-in cannot decode video.")
