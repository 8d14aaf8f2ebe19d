# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Length-grouped sampler: every index once per epoch, reshuffled across epochs, grouped lengths, DDP shards."""

import wave

import numpy as np
import pytest

from modeling_mgcma.training.sampling import (
    LengthGroupedBatchSampler,
    ReshuffledLengthGroupedSampler,
    audio_lengths,
    length_grouped_batches,
    padding_fraction,
)


def _lengths(n=997, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(rng.lognormal(np.log(4.5) - 0.18, 0.6, n) * 50).astype(int).tolist()


def test_every_index_once_per_epoch_and_reshuffled():
    lengths = _lengths()
    sampler = ReshuffledLengthGroupedSampler(lengths, batch_size=8, seed=3)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(len(lengths)))
        epochs.append(order)
    assert epochs[0] != epochs[1] != epochs[2]
    # batch composition changes too, not only batch order
    first = {tuple(sorted(b)) for b in length_grouped_batches(lengths, 8, seed=3, epoch=0)}
    second = {tuple(sorted(b)) for b in length_grouped_batches(lengths, 8, seed=3, epoch=1)}
    assert len(first & second) < len(first) // 2
    # same seed and epoch: same order (resumable); plain re-iteration advances the epoch
    sampler.set_epoch(1)
    assert list(sampler) == epochs[1]
    plain = ReshuffledLengthGroupedSampler(lengths, batch_size=8, seed=3)
    assert list(plain) == epochs[0] and list(plain) == epochs[1]


def test_groups_lengths():
    lengths = _lengths()
    batches = length_grouped_batches(lengths, 8, seed=0)
    rng = np.random.default_rng(0)
    permutation = rng.permutation(len(lengths))
    random_batches = [permutation[i : i + 8] for i in range(0, len(lengths), 8)]
    grouped, random = padding_fraction(batches, lengths), padding_fraction(random_batches, lengths)
    assert grouped < 0.06 and random > 0.3, (grouped, random)
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # longest batch first: OOM shows at step one
    # evaluation order: deterministic, sorted
    eval_batches = length_grouped_batches(lengths, 8, shuffle=False)
    flat = [i for b in eval_batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_shards_cover_epoch(drop_last):
    lengths = _lengths(n=101)
    world = 3
    shards = [
        list(LengthGroupedBatchSampler(lengths, 4, seed=1, num_replicas=world, rank=r, drop_last=drop_last))
        for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1  # every rank runs the same number of steps
    assert all(len(s) == len(LengthGroupedBatchSampler(lengths, 4, num_replicas=world, rank=0, drop_last=drop_last)) for s in shards)
    seen = [i for shard in shards for batch in shard for i in batch]
    if drop_last:  # 101 = 8 x 12 + 5: the last, smaller group is dropped
        assert len(seen) == len(set(seen)) == 96 and len(shards[0]) == 8
    else:  # the last group of 5 is split 2/2/1 over the ranks: nothing repeated, nothing dropped
        assert sorted(seen) == list(range(101)) and len(shards[0]) == 9
    for step in zip(*shards):  # each step's batches come from one sorted group: no overlap in lengths
        spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in step)
        assert all(low_next >= high for (_, high), (low_next, _) in zip(spans, spans[1:]))


def test_audio_lengths_without_decoding(tmp_path):
    datasets = pytest.importorskip("datasets")
    paths = []
    for i, seconds in enumerate([0.5, 2.0, 20.0]):
        path = tmp_path / f"{i}.wav"
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(16_000)
            handle.writeframes(np.zeros(int(seconds * 16_000), dtype=np.int16).tobytes())
        paths.append(str(path))
    dataset = datasets.Dataset.from_dict({"audio": paths}).cast_column("audio", datasets.Audio(sampling_rate=16_000))
    assert audio_lengths(dataset, max_duration=15.0) == [8_000, 32_000, 240_000]
    assert audio_lengths(dataset, max_duration=None)[2] == 320_000
    with_times = datasets.Dataset.from_dict({"start": [1.0, 3.0], "end": [2.5, 3.5]})
    assert audio_lengths(with_times) == [24_000, 8_000]
    bad = datasets.Dataset.from_dict({"start": [1.0], "end": [1.0]})
    with pytest.raises(ValueError, match="row 0"):
        audio_lengths(bad)


def test_trainer_uses_length_grouped_sampler(tmp_path):
    datasets = pytest.importorskip("datasets")
    from transformers import TrainingArguments

    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config, word_processor
    from modeling_mgcma.training.collators import MGCMADataCollator
    from modeling_mgcma.training.trainer import MGCMATrainer

    processor = word_processor(["a", "b"], max_duration=2.0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer.get_vocab())))
    rows = datasets.Dataset.from_dict(
        {"start": [0.0] * 9, "end": [0.5, 3.0, 1.0, 0.2, 2.5, 0.7, 1.5, 0.3, 0.9], "text": ["a"] * 9, "audio": [""] * 9, "label": [0] * 9}
    )
    arguments = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, per_device_eval_batch_size=3,
        train_sampling_strategy="group_by_length", report_to=[], use_cpu=True,
    )
    trainer = MGCMATrainer(model=model, args=arguments, train_dataset=rows, eval_dataset=rows, data_collator=MGCMADataCollator(processor))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedBatchSampler) and sampler.sampler.batch_size == 2
    lengths = sampler.sampler.lengths
    assert lengths == [8_000, 32_000, 16_000, 3_200, 32_000, 11_200, 24_000, 4_800, 14_400]  # capped at 2 s
    assert sorted(i for batch in sampler for i in batch) == list(range(9))
    eval_order = list(trainer._get_eval_sampler(rows))
    assert [lengths[i] for i in eval_order] == sorted(lengths, reverse=True)
