# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMATrainer's evaluation: the reported loss is the weighted sum of its reported components."""

import sys
from pathlib import Path

import pytest
import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402


@pytest.mark.parametrize("ablation", [None, "S4"])
def test_test_loss_is_the_weighted_sum_of_its_components_whatever_the_batch_sizes(corpus, tmp_path, ablation):
    from transformers import TrainingArguments

    from modeling_mgcma.data import generate_demo_corpus, load_iemocap
    from modeling_mgcma.training.collators import MGCMADataCollator
    from modeling_mgcma.training.trainer import MGCMATrainer

    dataset = load_iemocap(generate_demo_corpus(corpus, utterances_per_session=8), strict_counts=False).select(range(10))
    argv = ["--output_dir", str(tmp_path)] + (["--ablation", ablation] if ablation else [])
    model_args, data_args, _, preset = run_mgcma.parse_arguments(argv)
    torch.manual_seed(0)
    model, processor, _ = run_mgcma.build_model_and_processor(model_args, data_args, preset, dataset.features["label"].names)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none")  # batches 4, 4, 2
    trainer = MGCMATrainer(model=model, args=args, data_collator=MGCMADataCollator(processor))
    metrics = trainer.predict(dataset, metric_key_prefix="test").metrics
    config = model.config
    weights = {"ce": config.classification_loss_weight, "da": config.distribution_loss_weight, "ia": config.instance_loss_weight}
    parts = {key: metrics[f"test_loss_{key}"] for key in weights if f"test_loss_{key}" in metrics}
    assert set(parts) == ({"ce"} if ablation == "S4" else {"ce", "da", "ia"})
    assert metrics["test_loss"] == pytest.approx(sum(weights[k] * v for k, v in parts.items()), rel=1e-5, abs=1e-5)
