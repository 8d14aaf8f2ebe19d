# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Cached-feature mode: same logits, losses and training trajectory as frozen-encoder end-to-end training; the
cache encoded on the given device in batches, and built by two ranks as by one process."""

import sys

import numpy as np
import pytest
import torch
from fixtures_training import WORKER, read_ranks, write_wavs


datasets = pytest.importorskip("datasets")

from modeling_mgcma import MGCMAForEmotionClassification  # noqa: E402
from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus, load_iemocap  # noqa: E402
from modeling_mgcma.processing_mgcma import decode_audio  # noqa: E402
from modeling_mgcma.training.collators import CachedFeatureCollator  # noqa: E402
from modeling_mgcma.training.feature_cache import (  # noqa: E402
    cache_features,
    cached_feature_lengths,
    feature_cache_key,
    freeze_encoders_in_eval_mode,
)
from modeling_mgcma.training.from_scratch import small_config, word_processor  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    corpus = generate_demo_corpus(root / "corpus", utterances_per_session=8)
    dataset = load_iemocap(corpus, config="4class", cache_dir=str(root / "hf"), strict_counts=False)
    processor = word_processor(demo_vocabulary())
    return dataset, processor, root


def _model(processor, seed=0):
    torch.manual_seed(seed)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer.get_vocab())))
    freeze_encoders_in_eval_mode(model)
    return model


def _raw_batch(dataset, processor, indices):
    rows = [dataset[i] for i in indices]
    audio = [decode_audio(row["audio"])[0] for i, row in zip(indices, rows)]
    batch = dict(processor(audio=audio, text=[row["text"] for row in rows]))
    batch["labels"] = torch.tensor([row["label"] for row in rows])
    return batch


def test_cached_matches_frozen_end_to_end(demo):
    dataset, processor, root = demo
    model = _model(processor)
    cached = cache_features(model, processor, dataset, root / "cache")
    assert len(cached) == len(dataset) and "label" in cached.column_names and "audio" not in cached.column_names
    assert len(list((root / "cache").iterdir())) == 1
    collate = CachedFeatureCollator()
    batches = [[0, 5, 9, 13], [2, 21, 30, 39], [7, 8, 17, 33]]

    model.eval()
    with torch.no_grad():
        raw = model(**_raw_batch(dataset, processor, batches[0]))
        fast = model(**collate([cached[i] for i in batches[0]]))
    torch.testing.assert_close(fast.logits, raw.logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast.loss, raw.loss, atol=1e-5, rtol=1e-4)

    # a few training steps (dropout in the alignment modules on): same seed, same trajectory
    losses = {}
    for mode in ("end_to_end", "cached"):
        model = _model(processor)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        torch.manual_seed(1)
        losses[mode] = []
        for indices in batches:
            batch = _raw_batch(dataset, processor, indices) if mode == "end_to_end" else collate([cached[i] for i in indices])
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses[mode].append(loss.item())
    torch.testing.assert_close(torch.tensor(losses["cached"]), torch.tensor(losses["end_to_end"]), atol=1e-4, rtol=1e-4)


def test_cache_reused_and_invalidated(demo):
    dataset, processor, root = demo
    model = _model(processor)
    key = feature_cache_key(model, processor, dataset)
    assert key == feature_cache_key(_model(processor), processor, dataset)  # same weights, processor, data
    assert key != feature_cache_key(_model(processor, seed=1), processor, dataset)  # other encoder weights
    assert key != feature_cache_key(model, processor, dataset.select(range(10)))  # other data
    assert key != feature_cache_key(model, word_processor(demo_vocabulary(), max_duration=1.0), dataset)
    cached = cache_features(model, processor, dataset, root / "cache")
    lengths = cached_feature_lengths(cached)
    assert lengths == [len(row["speech_features"]) for row in cached]
    assert cached_feature_lengths(cached.select([3, 1])) == [lengths[3], lengths[1]]


@pytest.mark.slow
def test_two_process_feature_cache_equals_one_process(two_process_run, tmp_path):
    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    from modeling_mgcma.training.feature_cache import SPEECH_COLUMN, TEXT_COLUMN, cache_features

    assert [r["rows"] for r in read_ranks(two_process_run, "cache")] == [12, 12]
    dataset, words = cache_dataset(two_process_run / "wavs")
    model, processor = cache_model(words)
    sharded = cache_features(model, processor, dataset, two_process_run / "cache")  # built by the 2 ranks: reused
    assert len(list((two_process_run / "cache").iterdir())) == 1  # one cache folder, no shard left behind
    single = cache_features(model, processor, dataset, tmp_path / "cache", batch_size=1)
    for row in range(12):  # equal up to the rounding of different thread counts (the ranks ran with one thread)
        for column in (SPEECH_COLUMN, TEXT_COLUMN):
            assert sharded[row][column].shape == single[row][column].shape
            np.testing.assert_allclose(sharded[row][column], single[row][column], atol=1e-5, rtol=1e-5)


def test_feature_cache_encodes_on_the_given_device_in_batches_with_progress(tmp_path, capfd):
    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    from modeling_mgcma.training.feature_cache import SPEECH_COLUMN, cache_features, merge_shards, write_shard

    write_wavs(tmp_path / "wavs")
    dataset, words = cache_dataset(tmp_path / "wavs")
    model, processor = cache_model(words)
    backbone = model.mgcma
    moves, batch_sizes = [], []
    original_to, original_encode = backbone.speech_encoder.to, backbone.encode_speech
    backbone.speech_encoder.to = lambda *args, **kwargs: (moves.append(torch.device(args[0])), original_to(*args, **kwargs))[1]
    backbone.encode_speech = lambda values, mask: (batch_sizes.append(values.shape[0]), original_encode(values, mask))[1]
    capfd.readouterr()
    cached = cache_features(model, processor, dataset, tmp_path / "cache", device="cpu", batch_size=4)
    # the encoders were sent to the requested device (the training device in run_mgcma.py) and back afterwards
    assert moves == [torch.device("cpu"), torch.device("cpu")]
    assert batch_sizes == [4, 4, 4]  # batched: layer-normalised conv features ignore padding
    progress = capfd.readouterr().err
    assert "Encoding features for the cache: 100%" in progress and "12/12" in progress, progress[-500:]
    # two shards written as two ranks would and joined: the same rows as the one-process cache
    folder = tmp_path / "shards"
    folder.mkdir()
    for index in range(2):
        write_shard(folder, model, processor, dataset, 2, index, batch_size=4, show_progress=False)
    merge_shards(folder, tmp_path / "joined", model, len(dataset), 2)
    joined = __import__("datasets").Dataset.from_file(str(tmp_path / "joined" / "features.arrow")).with_format("numpy")
    for row in range(12):
        np.testing.assert_allclose(joined[row][SPEECH_COLUMN], cached[row][SPEECH_COLUMN], atol=1e-5)


def test_feature_cache_refuses_batches_when_padding_changes_features(tmp_path):
    from modeling_mgcma.training.feature_cache import encode_dataset

    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    write_wavs(tmp_path / "wavs", n=2)
    dataset, words = cache_dataset(tmp_path / "wavs")
    model, processor = cache_model(words)
    model.mgcma.config.speech_config.feat_extract_norm = "group"  # wav2vec2-base: group norm reads padding
    with pytest.raises(ValueError, match="only batch_size=1"):
        list(encode_dataset(model, processor, dataset, batch_size=4))
    assert len(list(encode_dataset(model, processor, dataset))) == 2  # default: one utterance at a time
