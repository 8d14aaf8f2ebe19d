# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Shared fixtures: tiny random MGCMA models (hidden 32, 2 layers) built locally, nothing downloaded; the demo
corpus of the run tests, a saved tiny model, a folder of wavs, and one 2-process run for the DDP tests.

Tests marked `@pytest.mark.slow` (multi-process, end to end: minutes on a laptop) are skipped unless asked for:
`pytest --runslow`, or `pytest -m slow` for the slow ones alone; they run whenever the environment variable CI is
set (as in .ci/run), so CI runs everything."""

import hashlib
import os
import subprocess

import numpy as np
import pytest
import torch
from fixtures_data import write_wav
from fixtures_training import LAUNCH, WORKER, write_wavs

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.training.from_scratch import small_config, word_processor


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (they always run when the environment variable CI is set)")


def slow_tests_wanted(config):
    markers = config.getoption("-m") or ""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return config.getoption("--runslow") or ci or ("slow" in markers and "not slow" not in markers)


def pytest_collection_modifyitems(config, items):
    if slow_tests_wanted(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (or -m slow for these alone; CI=true runs them too)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Where the run tests' demo corpus lives: written by the first run_mgcma run (8 utterances per session), then
    shared by every run of the session."""
    return tmp_path_factory.mktemp("corpus") / "demo"


@pytest.fixture
def wavs(tmp_path):
    for name in ("a.wav", "b.wav"):
        write_wav(tmp_path / name, 0.2)
    return tmp_path


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import numpy as np
    import soundfile

    from modeling_mgcma import MGCMAForEmotionClassification, save_for_hub
    from modeling_mgcma.training.from_scratch import small_config, word_processor

    root = tmp_path_factory.mktemp("saved")
    processor = word_processor(["i", "am", "happy"])
    torch.manual_seed(0)
    save_for_hub(MGCMAForEmotionClassification(small_config(len(processor.tokenizer))), processor, root / "model")
    soundfile.write(root / "a.wav", (np.random.default_rng(0).standard_normal(9000) * 0.2).astype(np.float32), 16000)
    return root


@pytest.fixture(scope="session")
def two_process_run(tmp_path_factory):
    """One 2-process launch: the DataLoader's batches over two epochs, then a few training steps of each variant."""
    out = tmp_path_factory.mktemp("gpu_readiness")
    write_wavs(out / "wavs")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "MASTER_PORT": str(30500 + os.getpid() % 1000), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    command = [*LAUNCH, "--main_process_port", env["MASTER_PORT"], str(WORKER), "all", str(out)]
    try:
        completed = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as error:  # a DDP hang shows as a timeout
        pytest.fail(f"the 2-process run hung: {str(error.stdout)[-2000:]} {str(error.stderr)[-3000:]}")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    return out
