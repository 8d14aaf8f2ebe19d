# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Cached-feature mode: same logits, losses and training trajectory as frozen-encoder end-to-end training."""

import pytest
import torch

datasets = pytest.importorskip("datasets")

from modeling_mgcma import MGCMAForEmotionClassification  # noqa: E402
from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus, load_iemocap  # noqa: E402
from modeling_mgcma.training.collators import CachedFeatureCollator  # noqa: E402
from modeling_mgcma.training.feature_cache import (  # noqa: E402
    cache_features,
    cached_feature_lengths,
    feature_cache_key,
    freeze_encoders_in_eval_mode,
)
from modeling_mgcma.training.from_scratch import small_config, word_processor  # noqa: E402
from modeling_mgcma.processing_mgcma import decode_audio  # noqa: E402


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
