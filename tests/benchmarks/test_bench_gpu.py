# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""benchmarks/bench_gpu.py: what its comparisons switch off before timing."""

import sys
from pathlib import Path

import pytest
import torch


def test_gpu_benchmark_switches_off_every_random_part_of_a_training_forward():
    """bench_gpu.py compares eager with compiled steps (and fp32 with bf16) only after `deterministic`: with dropout,
    LayerDrop or SpecAugment left on, two kernels draw different masks and the comparison measures the draws."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from _common import build_model, make_inputs
        from bench_gpu import deterministic
    finally:
        sys.path.pop(0)
    model = build_model("tiny")
    model.mgcma.speech_encoder.config.layerdrop = 0.5  # read at run time by wav2vec2's encoder
    model.train()
    inputs = make_inputs(model, 4, 2.0, 20)
    losses = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        with torch.no_grad():
            losses.append(float(model(**inputs).loss))
    assert losses[0] != losses[1]  # random parts on: the two draws differ
    deterministic(model)
    train_losses = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        with torch.no_grad():
            train_losses.append(float(model(**inputs).loss))
    model.eval()
    with torch.no_grad():
        eval_loss = float(model(**inputs).loss)
    assert train_losses[0] == train_losses[1] == pytest.approx(eval_loss, rel=1e-6)
    assert model.mgcma.speech_encoder.config.layerdrop == 0.0
