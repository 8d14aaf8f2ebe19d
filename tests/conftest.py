# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Shared fixtures: tiny random MGCMA models (hidden 32, 2 layers) built locally; nothing is downloaded."""

import hashlib

import numpy as np
import pytest
import torch

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.training.from_scratch import small_config, word_processor


TINY_WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "the", "weather", "is", "fine", "[", "]", "laughter"]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is as fast, and faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_processor():
    return word_processor(TINY_WORDS)


@pytest.fixture
def tiny_config_factory(tiny_processor):
    def make(**overrides):
        overrides.setdefault("hidden_dropout_prob", 0.0)
        overrides.setdefault("attention_dropout_prob", 0.0)
        overrides.setdefault("classifier_dropout", 0.0)
        return small_config(len(tiny_processor.tokenizer), **overrides)

    return make


@pytest.fixture
def tiny_batch(tiny_processor):
    """Four utterances of different lengths (0.3-0.6 s) with transcripts of different lengths, and labels."""
    rng = np.random.default_rng(0)
    audio = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 4800, 9600, 6400)]
    text = ["i am so happy today", "sad", "the weather is fine [laughter]", "i am angry"]
    batch = dict(tiny_processor(audio=audio, text=text))
    batch["labels"] = torch.tensor([1, 2, 3, 0])
    return batch


@pytest.fixture
def tiny_model(tiny_config_factory):
    torch.manual_seed(0)
    return MGCMAForEmotionClassification(tiny_config_factory())


@pytest.fixture
def file_hashes():
    """A function: folder -> {relative path: sha256} of every file under it (to compare generated trees)."""

    def hashes(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

    return hashes


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    """Give every test module the thread count it started with (some tests pin torch to one thread)."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)
