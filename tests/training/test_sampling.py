# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Length-grouped sampler: every index once per epoch, reshuffled across epochs, grouped lengths, DDP shards; the
batches the Trainer's DataLoader yields in one and in two processes; clips too short for the speech encoder."""

import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import csv_manifest
from fixtures_training import cpu_trainer, read_ranks

from modeling_mgcma.training.sampling import (
    LengthGroupedBatchSampler,
    ReshuffledLengthGroupedSampler,
    audio_lengths,
    length_grouped_batches,
    length_grouped_steps,
    padding_fraction,
    useful_frame_share,
)


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402


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


def test_a_small_corpus_meets_new_batch_partners_every_epoch():
    """A corpus smaller than one mega-batch (256 utterances, batch 8: 64 x 8 = 512) is cut into two sorted chunks per
    epoch, not sorted whole: sorted whole, its batches would hold the same utterances every epoch."""
    lengths = _lengths()[:256]
    epochs = [{tuple(sorted(b)) for b in length_grouped_batches(lengths, 8, seed=0, epoch=e)} for e in range(3)]
    assert all(len(epochs[e] & epochs[e + 1]) < len(epochs[e]) // 4 for e in range(2)), [len(e) for e in epochs]
    permutation = np.random.default_rng(0).permutation(len(lengths))
    random = padding_fraction([permutation[i : i + 8] for i in range(0, len(lengths), 8)], lengths)
    grouped = padding_fraction(length_grouped_batches(lengths, 8, seed=0), lengths)
    assert grouped < random / 2, (grouped, random)  # still grouped by length: 0.15 vs 0.47 here


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
    from modeling_mgcma.training.collators import MGCMADataCollator
    from modeling_mgcma.training.from_scratch import small_config, word_processor
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


def test_a_clip_shorter_than_the_encoder_needs_is_named_before_training(wavs):
    from fixtures_data import write_wav

    from modeling_mgcma.data import load_manifest

    write_wav(wavs / "tiny.wav", 100 / 16_000)  # 100 samples
    lines = ["id,audio,text,label", "u1,a.wav,x,sad", "u2,tiny.wav,y,angry", "u3,b.wav,z,happy"]
    dataset = load_manifest(csv_manifest(wavs, lines))
    model_args, data_args, *_ = run_mgcma.parse_arguments(["--output_dir", str(wavs / "out")])
    model, processor, _ = run_mgcma.build_model_and_processor(model_args, data_args, "demo", ["angry", "happy", "sad", "neutral"])
    with pytest.raises(ValueError, match=r"1 utterance\(s\) are shorter than the speech encoder's receptive field \(\d+ samples at 16000 Hz.*u2 \(.*tiny.wav: 100 samples\)"):
        run_mgcma.check_audio_lengths(dataset, model, processor.sampling_rate)
    run_mgcma.check_audio_lengths(dataset.filter(lambda row: row["id"] != "u2"), model, processor.sampling_rate)


@pytest.mark.slow
def test_two_process_dataloader_batches_are_grouped_and_balanced(two_process_run):
    results = read_ranks(two_process_run, "batches")
    lengths = results[0]["lengths"]
    batch_sets = []
    for epoch in range(2):
        rank_batches = [result["epochs"][epoch] for result in results]
        assert len(rank_batches[0]) == len(rank_batches[1]) == results[0]["len_loader"]  # same number of steps
        steps = list(zip(*rank_batches))
        flat = [batch for step in steps for batch in step]
        assert sorted(i for batch in flat for i in batch) == list(range(len(lengths)))  # every utterance once
        # measured on what the DataLoader yields: a flat sampler re-chunked by the DataLoader and dealt to the ranks
        # in turn gives ~17 % padding and ~0.75 useful share here
        assert padding_fraction(flat, lengths) < 0.05
        assert useful_frame_share(steps, lengths) > 0.9
        batch_sets.append({tuple(sorted(batch)) for batch in flat})
    assert len(batch_sets[0] & batch_sets[1]) < len(batch_sets[0]) // 2  # groups re-drawn each epoch


def _clipped_lengths(n=403, seed=0):
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(4.5) - 0.18, 0.6, n), 0.6, 15.0)
    return np.round(seconds * 50).astype(int).tolist()


def test_one_process_dataloader_yields_the_grouped_batches(tmp_path):
    datasets = pytest.importorskip("datasets")
    lengths = _clipped_lengths()
    rows = datasets.Dataset.from_dict({"length": lengths, "index": list(range(len(lengths)))})
    trainer = cpu_trainer(
        tmp_path, rows, lambda b: {"index": [r["index"] for r in b]}, per_device_train_batch_size=4,
        train_sampling_strategy="group_by_length", seed=3,
    )  # fmt: skip
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    yielded = [batch["index"] for batch in loader]
    expected = [step[0] for step in length_grouped_steps(lengths, 4, 1, seed=3, epoch=0)]
    assert yielded == expected and len(loader) == len(expected)
    assert padding_fraction(yielded, lengths) < 0.03


def test_steps_group_sorted_lengths_over_ranks():
    n = 2501  # two mega-batches of 8-rank steps at least (a smaller corpus is cut into smaller ones: more padding)
    lengths = _clipped_lengths(n=n)
    for world in (1, 2, 8):
        steps = length_grouped_steps(lengths, 4, world, seed=1, epoch=0)
        assert all(len(step) == world and all(len(b) >= 1 for b in step) for step in steps)
        items = [i for step in steps for b in step for i in b]
        assert set(items) == set(range(n)) and len(items) - n == (world - n % (4 * world)) % world * (n % (4 * world) < world)
        assert useful_frame_share(steps, lengths) > 0.9, world
        # the same items dealt whole to ranks in turn (groups of one rank's batch size): ranks wait for each other
        batches = length_grouped_steps(lengths, 4, 1, seed=1, epoch=0)
        dealt = [[b[0] for b in batches[s : s + world]] for s in range(0, len(batches) - world + 1, world)]
        if world > 1:
            assert useful_frame_share(dealt, lengths) < useful_frame_share(steps, lengths) - 0.1
    # fewer utterances than ranks in the last group (9 = 8 + 1): filled from the first step, or dropped
    steps = length_grouped_steps(list(range(1, 10)), 4, 2)
    assert sorted(len(b) for step in steps for b in step) == [1, 1, 4, 4]
    assert set(i for step in steps for b in step for i in b) == set(range(9))
    assert [[len(b) for b in step] for step in length_grouped_steps(list(range(1, 10)), 4, 2, drop_last=True)] == [[4, 4]]
    sampler = LengthGroupedBatchSampler(list(range(1, 10)), 4, num_replicas=2, rank=1, drop_last=True)
    assert len(sampler) == len(list(sampler)) == 1
