# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Length-grouped, shuffled batching for speech: fewer padded frames, same randomness as plain shuffling.

Speech utterances vary from under a second to half a minute (IEMOCAP: mean ~4.5 s, tail to ~30 s). With random
batches most of a batch's frames are padding of the shorter clips, which the encoder still computes. Grouping
utterances of similar length into a batch removes most of that waste.

`ReshuffledLengthGroupedSampler` (per epoch, from `seed + epoch`):
1. shuffle all indices;
2. cut the permutation into "mega-batches" of `mega_batch_size` batches (fewer for a corpus of less than
   `MIN_MEGA_BATCHES` mega-batches, so that an epoch has at least that many) and sort each by length (longest first),
   so batches are formed from utterances of similar length, but which utterances meet changes every epoch;
3. cut into batches of `batch_size` and shuffle the order of the batches (the batch holding the longest utterance of
   the epoch is put first when `longest_first=True`, so an out-of-memory error shows at step one).

Every index appears exactly once per epoch (on one process). `ReshuffledLengthGroupedSampler` yields flat indices in batch
order, for a `DataLoader(batch_size=...)` that re-chunks them with the same batch size. `LengthGroupedBatchSampler`
yields the batches themselves (`DataLoader(batch_sampler=...)`; `MGCMATrainer` uses it), and under DDP builds each
global step from ONE sorted group of `num_replicas x batch_size` utterances, cut into consecutive per-rank batches
(`length_grouped_steps`): the ranks of a step get utterances of similar length, so no rank computes 12 s clips while
another waits with 2 s clips. The last group of an epoch is split as evenly as possible over the ranks (batch sizes
differ by at most one); if it has fewer utterances than ranks, utterances of the epoch's first step fill it
(`drop_last=False`, the default, like `DistributedSampler`) or it is dropped (`drop_last=True`).

Lengths are computed without decoding audio (`audio_lengths`): from the `start`/`end` columns of an IEMOCAP-style
dataset, or from the file headers (soundfile / wave). They are capped at the `max_duration` of the
`MGCMAProcessor` that cuts the audio (`MGCMATrainer` passes its collator's; None, the processor's default, caps nothing).
"""

from __future__ import annotations

import io
import math
import os
import wave
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from ..processing_mgcma import TARGET_SAMPLING_RATE


DEFAULT_MEGA_BATCH_SIZE = 64
MIN_MEGA_BATCHES = 2
"""Fewest mega-batches an epoch is cut into (smaller mega-batches for a small corpus)."""
"""Batches per sorted mega-batch (see benchmarks/README.md for the padding it leaves)."""


# ---------------------------------------------------------------------------------------------------------------------
# Lengths without decoding audio
# ---------------------------------------------------------------------------------------------------------------------


def _header_duration(path: str | None, data: bytes | None) -> float:
    """Duration in seconds from an audio file header: soundfile if installed (any format), else stdlib wave."""
    source = io.BytesIO(data) if data else path
    try:
        import soundfile

        info = soundfile.info(source)
        return info.frames / info.samplerate
    except ImportError:
        pass
    except Exception as error:  # soundfile raises its own error types for unreadable files
        raise ValueError(f"cannot read the audio header of {path!r}: {error}") from error
    try:
        with wave.open(source, "rb") as handle:
            return handle.getnframes() / handle.getframerate()
    except (wave.Error, EOFError, OSError) as error:
        raise ValueError(f"cannot read the WAV header of {path!r} (install soundfile for other formats): {error}") from error


def audio_durations(
    dataset,
    audio_column: str = "audio",
    source: str = "auto",
) -> list[float]:
    """Seconds of audio per row of a `datasets.Dataset`, without decoding any audio.

    Args:
        dataset: a `datasets.Dataset` with an `Audio` column (or a column of file paths, or of decoded
            `{"array", "sampling_rate"}` values, whose lengths are read from the arrays).
        audio_column: the audio column's name.
        source: `"columns"` = `end - start` (IEMOCAP's segment times, no file access), `"header"` = read each file's
            header (soundfile / wave), `"auto"` = columns when `start` and `end` exist, else headers.
    """
    if source not in ("auto", "columns", "header"):
        raise ValueError(f"`source` must be 'auto', 'columns' or 'header', got {source!r}.")
    columns = set(dataset.column_names)
    if source == "auto":
        source = "columns" if {"start", "end"} <= columns else "header"
    if source == "columns":
        if not {"start", "end"} <= columns:
            raise ValueError(f"source='columns' needs `start` and `end` columns; the dataset has {sorted(columns)}.")
        starts = np.asarray(dataset["start"], dtype=np.float64)
        ends = np.asarray(dataset["end"], dtype=np.float64)
        durations = ends - starts
        bad = np.flatnonzero(~(durations > 0))
        if len(bad):
            raise ValueError(
                f"`end - start` must be positive seconds; row {int(bad[0])} has start={starts[bad[0]]}, "
                f"end={ends[bad[0]]}."
            )
        return durations.tolist()

    if audio_column not in columns:
        raise ValueError(f"no audio column {audio_column!r} in the dataset (columns: {sorted(columns)}).")
    column = dataset
    feature = dataset.features[audio_column]
    if hasattr(feature, "decode") and getattr(feature, "decode", False):
        import datasets

        column = dataset.cast_column(audio_column, datasets.Audio(sampling_rate=feature.sampling_rate, decode=False))
    durations = []
    for row, value in enumerate(column[audio_column]):
        if isinstance(value, dict) and value.get("array") is not None and value.get("sampling_rate"):
            samples = np.shape(value["array"])  # decoded already (a Dataset.from_dict of arrays): its own length
            durations.append((max(samples) if len(samples) > 1 else samples[0]) / float(value["sampling_rate"]))
            continue
        if isinstance(value, (str, os.PathLike)):
            path, data = os.fspath(value), None
        elif isinstance(value, dict) and ("path" in value or "bytes" in value):
            path, data = value.get("path"), value.get("bytes")
        else:
            raise ValueError(
                f"row {row} of column {audio_column!r}: expected a file path or an undecoded Audio value "
                f"{{'path', 'bytes'}}, got {type(value).__name__}."
            )
        if not data and not path:
            raise ValueError(f"row {row} of column {audio_column!r} has neither a path nor bytes.")
        durations.append(_header_duration(path, data))
    return durations


def audio_lengths(
    dataset,
    audio_column: str = "audio",
    sampling_rate: int = TARGET_SAMPLING_RATE,
    max_duration: float | None = None,
    source: str = "auto",
) -> list[int]:
    """Samples per utterance at `sampling_rate`, capped at `max_duration` seconds (None = no cap), without decoding.

    These are the lengths the model sees once `MGCMAProcessor(max_duration=max_duration)` has cut long clips.
    """
    if max_duration is not None and max_duration <= 0:
        raise ValueError(f"`max_duration` must be positive seconds or None, got {max_duration!r}.")
    durations = np.asarray(audio_durations(dataset, audio_column, source), dtype=np.float64)
    if max_duration is not None:
        durations = np.minimum(durations, max_duration)
    return np.maximum(np.round(durations * sampling_rate), 1).astype(np.int64).tolist()


# ---------------------------------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------------------------------


def length_grouped_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    mega_batch_size: int = DEFAULT_MEGA_BATCH_SIZE,
    longest_first: bool = True,
) -> list[list[int]]:
    """One epoch of length-grouped batches (lists of indices); every index exactly once. See the module docstring.

    `shuffle=False` (evaluation): batches of the globally sorted order, longest first; deterministic.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if mega_batch_size < 1:
        raise ValueError(f"`mega_batch_size` must be >= 1, got {mega_batch_size}.")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1:
        raise ValueError(f"`lengths` must be a flat sequence of ints, got shape {lengths.shape}.")
    n = len(lengths)
    if n == 0:
        return []
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    permutation = rng.permutation(n)
    # at least MIN_MEGA_BATCHES sorted chunks per epoch: a corpus smaller than one mega-batch would otherwise be sorted
    # whole, and its batches would hold the same utterances every epoch (only their order would change)
    mega = batch_size * min(mega_batch_size, max(1, math.ceil(n / (batch_size * MIN_MEGA_BATCHES))))
    batches = []
    for start in range(0, n, mega):
        chunk = permutation[start : start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    order = rng.permutation(len(batches))
    batches = [batches[i] for i in order]
    if longest_first:
        longest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]])
        batches[0], batches[longest] = batches[longest], batches[0]
    return batches


def length_grouped_steps(
    lengths: Sequence[int],
    batch_size: int,
    num_replicas: int = 1,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    mega_batch_size: int = DEFAULT_MEGA_BATCH_SIZE,
    longest_first: bool = True,
    drop_last: bool = False,
) -> list[list[list[int]]]:
    """One epoch of global steps: `steps[s][r]` is rank r's batch at step s (a list of indices).

    Each step is one length-sorted group of `num_replicas * batch_size` utterances (`length_grouped_batches` with
    that batch size), cut into `num_replicas` consecutive batches, so the ranks of a step pad to similar lengths.
    With `num_replicas=1` the steps are `length_grouped_batches(...)`. The epoch's last group, when smaller, is split
    as evenly as possible; with fewer utterances than ranks it is filled from the first step's utterances
    (`drop_last=False`) or dropped (`drop_last=True`), so every rank gets a non-empty batch at every step.
    """
    if num_replicas < 1:
        raise ValueError(f"`num_replicas` must be >= 1, got {num_replicas}.")
    # mega-batches of `mega_batch_size` global steps: sorting fewer utterances would spread the batches of a
    # many-rank step over a fraction of a mega-batch's lengths, so its ranks would pad to different lengths
    groups = length_grouped_batches(
        lengths, batch_size * num_replicas, seed=seed, epoch=epoch, shuffle=shuffle,
        mega_batch_size=mega_batch_size, longest_first=longest_first,
    )  # fmt: skip
    steps = []
    for group in groups:
        if len(group) < num_replicas:
            if drop_last:
                continue
            filler = [i for batch in (steps[0] if steps else [group]) for i in batch]
            group = group + (filler * num_replicas)[: num_replicas - len(group)]
        if drop_last and len(group) < batch_size * num_replicas:
            continue
        # consecutive slices of the sorted group; sizes differ by at most one
        bounds = np.linspace(0, len(group), num_replicas + 1).round().astype(int)
        steps.append([group[bounds[r] : bounds[r + 1]] for r in range(num_replicas)])
    return steps


class ReshuffledLengthGroupedSampler(Sampler[int]):
    """Indices of one epoch in length-grouped batch order (flat), reshuffled per epoch from `seed + epoch`.

    Not transformers' `LengthGroupedSampler`: that one keeps the batches of each mega-batch in sorted order and has no
    deterministic sorted mode for evaluation; this one shuffles the batch order and sorts with `shuffle=False`.

    Batch the indices with the same `batch_size` (DataLoader / Trainer do) to get the groups. `set_epoch(epoch)`
    selects the epoch (Trainer and accelerate call it); iterating again without `set_epoch` advances to the next
    epoch, so plain `for epoch in ...: for batch in loader:` loops also reshuffle.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        mega_batch_size: int = DEFAULT_MEGA_BATCH_SIZE,
        longest_first: bool = True,
    ):
        self.lengths = [int(x) for x in lengths]
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.mega_batch_size = mega_batch_size
        self.longest_first = longest_first
        self.epoch = 0
        self._epoch_set = False
        length_grouped_batches(self.lengths[:1], batch_size, mega_batch_size=mega_batch_size)  # validate arguments

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._epoch_set = True

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        return length_grouped_batches(
            self.lengths,
            self.batch_size,
            seed=self.seed,
            epoch=self.epoch if epoch is None else epoch,
            shuffle=self.shuffle,
            mega_batch_size=self.mega_batch_size,
            longest_first=self.longest_first,
        )

    def __iter__(self) -> Iterator[int]:
        batches = self.batches()
        if not self._epoch_set:
            self.epoch += 1  # the next plain iteration is the next epoch
        self._epoch_set = False
        for batch in batches:
            yield from batch

    def __len__(self) -> int:
        return len(self.lengths)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Length-grouped batches for `DataLoader(batch_sampler=...)`, one rank's share of each global step under DDP.

    All ranks draw the same epoch from `seed + epoch` (`length_grouped_steps`) and rank r takes batch r of every
    step, so each step's batches come from one sorted group and the union over ranks is the epoch. Every rank runs
    `len(self)` steps. `num_replicas`/`rank` default to the initialised process group, else 1/0.

    `drop_last=True` drops the epoch's last group when it is smaller than `num_replicas * batch_size` (a smaller last
    group is otherwise split evenly over the ranks). There is no `batch_size` attribute on purpose: accelerate's
    `BatchSamplerShard` would then hold back the smaller last batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        mega_batch_size: int = DEFAULT_MEGA_BATCH_SIZE,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        longest_first: bool = True,
    ):
        if num_replicas is None or rank is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            num_replicas = num_replicas if num_replicas is not None else (torch.distributed.get_world_size() if distributed else 1)
            rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas=} and {rank=}.")
        self.sampler = ReshuffledLengthGroupedSampler(lengths, batch_size, seed, shuffle, mega_batch_size, longest_first)
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def steps(self, epoch: int | None = None) -> list[list[list[int]]]:
        """Every rank's batches of one epoch (`steps[s][r]`), the current epoch by default."""
        sampler = self.sampler
        return length_grouped_steps(
            sampler.lengths, sampler.batch_size, self.num_replicas, seed=sampler.seed,
            epoch=sampler.epoch if epoch is None else epoch, shuffle=sampler.shuffle,
            mega_batch_size=sampler.mega_batch_size, longest_first=sampler.longest_first, drop_last=self.drop_last,
        )  # fmt: skip

    def __iter__(self) -> Iterator[list[int]]:
        steps = self.steps()
        if not self.sampler._epoch_set:
            self.sampler.epoch += 1
        self.sampler._epoch_set = False
        for step in steps:
            yield step[self.rank]

    def __len__(self) -> int:
        n, group = len(self.sampler.lengths), self.sampler.batch_size * self.num_replicas
        if self.drop_last:
            return n // group
        return math.ceil(n / group)


def build_length_grouped_sampler(
    lengths: Sequence[int],
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    mega_batch_size: int = DEFAULT_MEGA_BATCH_SIZE,
) -> ReshuffledLengthGroupedSampler:
    """A flat sampler for a `DataLoader(batch_size=...)`: `MGCMATrainer._get_eval_sampler` (shuffle=False: sorted,
    deterministic). `batch_size` must be the DataLoader's. For training use `LengthGroupedBatchSampler`: a DataLoader
    re-chunks a flat order, which breaks the groups whenever its start shifts, and accelerate deals whole batches to
    the ranks in turn.
    """
    return ReshuffledLengthGroupedSampler(lengths, batch_size, seed=seed, shuffle=shuffle, mega_batch_size=mega_batch_size)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Padded positions / all positions when each batch is padded to its longest item."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = real = 0
    for batch in batches:
        batch_lengths = lengths[np.asarray(batch)]
        padded += int(batch_lengths.max()) * len(batch_lengths)
        real += int(batch_lengths.sum())
    return (padded - real) / padded if padded else 0.0


def useful_frame_share(steps: Sequence[Sequence[Sequence[int]]], lengths: Sequence[int]) -> float:
    """Real positions / positions the ranks are busy for, over DDP steps (`steps[s][r]`: rank r's batch at step s).

    A step lasts as long as its slowest rank, taken as the one with the most padded positions (batch size x longest
    item): every rank is charged that many, so both padding and waiting for another rank count as waste. With one
    rank this is 1 - `padding_fraction`.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    real = busy = 0
    for step in steps:
        padded = [int(lengths[np.asarray(b)].max()) * len(b) for b in step if len(b)]
        real += sum(int(lengths[np.asarray(b)].sum()) for b in step if len(b))
        busy += max(padded) * len(step) if padded else 0
    return real / busy if busy else 1.0


def receptive_field_samples(speech_config) -> int | None:
    """Fewest raw samples a wav2vec2-style convolutional feature encoder turns into one frame, from its config's
    `conv_kernel` and `conv_stride` (None for a config without them)."""
    kernels, strides = getattr(speech_config, "conv_kernel", None), getattr(speech_config, "conv_stride", None)
    if not kernels or not strides or len(kernels) != len(strides):
        return None
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (int(kernel) - 1) * jump
        jump *= int(stride)
    return field


def check_audio_lengths(dataset, model, sampling_rate: int) -> None:
    """Before training: every clip holds at least the speech encoder's receptive field (read from file headers, no
    decoding). Raises ValueError naming the short utterances by id and file."""
    import datasets

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


__all__ = [
    "check_audio_lengths",
    "receptive_field_samples",
    "DEFAULT_MEGA_BATCH_SIZE",
    "audio_durations",
    "audio_lengths",
    "length_grouped_batches",
    "ReshuffledLengthGroupedSampler",
    "LengthGroupedBatchSampler",
    "length_grouped_steps",
    "build_length_grouped_sampler",
    "padding_fraction",
    "useful_frame_share",
]
