# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A fitted temperature travels in the saved config and every way of running the model serves calibrated
probabilities: the pipeline (also from a saved folder), the ONNX runtime, and the model card."""

import json

import numpy as np
import pytest
import torch

from modeling_mgcma import (
    MGCMAConfig,
    MGCMAForEmotionClassification,
    MultimodalEmotionRecognitionPipeline,
    save_for_hub,
)
from modeling_mgcma.training.calibration import calibrate_config
from modeling_mgcma.training.from_scratch import small_config, word_processor


pytestmark = pytest.mark.usefixtures("one_torch_thread")
WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "fine"]
TEMPERATURE = 3.0


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model with spread-out logits, saved twice: uncalibrated and with calibration_temperature = 3."""
    root = tmp_path_factory.mktemp("calibrated")
    processor = word_processor(WORDS)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer))).eval()
    with torch.no_grad():
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    save_for_hub(model, processor, root / "plain")
    model.config.calibration_temperature = TEMPERATURE
    save_for_hub(model, processor, root / "calibrated")
    model.config.calibration_temperature = None
    audio = {"array": np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.2, "sampling_rate": 16000}
    return {"root": root, "model": model, "processor": processor, "input": {"audio": audio, "text": "i am so happy"}}


def _scores(result):
    return {entry["label"]: entry["score"] for entry in result["labels"]}


def _expected(plain_scores, temperature):
    """softmax(logits / T) from softmax(logits): log p differs from the logits by a constant."""
    names = list(plain_scores)
    logits = np.log(np.asarray([plain_scores[n] for n in names], dtype=np.float64)) / temperature
    probabilities = np.exp(logits - logits.max())
    return dict(zip(names, probabilities / probabilities.sum()))


def test_the_temperature_is_stored_in_the_config_and_never_fitted_on_test(saved):
    config = MGCMAConfig.from_pretrained(saved["root"] / "calibrated")
    assert config.calibration_temperature == TEMPERATURE
    assert MGCMAConfig.from_pretrained(saved["root"] / "plain").calibration_temperature is None
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    logits = rng.normal(0, 1, (300, 4))
    logits[np.arange(300), labels] += 1.0
    logits *= 5.0  # over-confident by construction: the fitted temperature is well above 1
    fit = calibrate_config(config, logits, labels, split="validation")
    assert config.calibration_temperature == fit.temperature > 2.0
    with pytest.raises(ValueError, match="refusing to fit a temperature on split 'test'"):
        calibrate_config(config, logits, labels, split="test")
    assert config.calibration_temperature == fit.temperature  # unchanged by the refused fit


def test_pipeline_serves_calibrated_probabilities(saved):
    from transformers import pipeline

    plain = _scores(pipeline(model=str(saved["root"] / "plain"), trust_remote_code=True)(saved["input"]))
    calibrated = _scores(pipeline(model=str(saved["root"] / "calibrated"), trust_remote_code=True)(saved["input"]))
    expected = _expected(plain, TEMPERATURE)
    assert max(calibrated.values()) < max(plain.values()) - 0.05  # T > 1 flattens the scores visibly
    assert list(calibrated) == list(plain)  # the ranking (and the predicted label) does not change
    assert calibrated == pytest.approx(expected, abs=1e-5)
    in_memory = MultimodalEmotionRecognitionPipeline(model=saved["model"], processor=saved["processor"], device="cpu")
    saved["model"].config.calibration_temperature = TEMPERATURE
    try:
        assert _scores(in_memory(saved["input"])) == pytest.approx(expected, abs=1e-5)
        saved["model"].config.calibration_temperature = -1.0
        with pytest.raises(ValueError, match="calibration_temperature must be a finite number > 0"):
            in_memory(saved["input"])
    finally:
        saved["model"].config.calibration_temperature = None


def test_onnx_runtime_serves_calibrated_probabilities(saved, tmp_path):
    pytest.importorskip("onnxruntime")
    from modeling_mgcma.deploy.export import export_onnx
    from modeling_mgcma.deploy.onnx_runtime import ExportedFolderError, ONNXEmotionClassifier

    export_onnx(saved["model"], saved["processor"], tmp_path / "onnx")
    plain = _scores(ONNXEmotionClassifier(tmp_path / "onnx")(saved["input"]))
    config_file = tmp_path / "onnx" / "config.json"
    config = json.loads(config_file.read_text())
    assert config["calibration_temperature"] is None  # the model's config travels with the export
    config_file.write_text(json.dumps({**config, "calibration_temperature": TEMPERATURE}))
    calibrated = _scores(ONNXEmotionClassifier(tmp_path / "onnx")(saved["input"]))
    assert calibrated == pytest.approx(_expected(plain, TEMPERATURE), abs=1e-5)
    config_file.write_text(json.dumps({**config, "calibration_temperature": "hot"}))
    with pytest.raises(ExportedFolderError, match="calibration_temperature must be a finite number > 0"):
        ONNXEmotionClassifier(tmp_path / "onnx")


def test_model_card_says_whether_scores_are_calibrated(saved):
    from modeling_mgcma.experiments.model_card import render_model_card

    results = {"folds": [{"test_group": 5, "wa": 0.5, "ua": 0.5}], "mean": {"wa": 0.5, "ua": 0.5},
               "std": {"wa": 0.0, "ua": 0.0}}  # fmt: skip
    config = saved["model"].config
    plain = str(render_model_card(results, config, model_name="m", data_source="demo", hyperparameters={}))
    config.calibration_temperature = TEMPERATURE
    try:
        calibrated = str(render_model_card(results, config, model_name="m", data_source="demo", hyperparameters={}))
    finally:
        config.calibration_temperature = None
    assert "no temperature was fitted" in plain and "T = 3.000" not in plain
    assert "T = 3.000, fitted on the validation split" in calibrated


def test_calibrate_with_trainer_fits_on_validation_and_lowers_held_out_ece(tmp_path):
    from transformers import Trainer, TrainingArguments

    from modeling_mgcma.training.calibration import calibrate_with_trainer, calibration_report

    class OverConfident(torch.nn.Module):
        """Logits = 8 x (a noisy one-hot of the label): right ~60 % of the time, always ~100 % sure."""

        def __init__(self):
            super().__init__()
            self.config = MGCMAConfig(num_labels=2, id2label={0: "a", 1: "b"})
            self.scale = torch.nn.Parameter(torch.tensor(8.0))

        def forward(self, x, labels=None):
            logits = self.scale * x
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    def rows(seed, n=400):
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 2, (n,), generator=generator)
        x = torch.nn.functional.one_hot(labels, 2).float() + torch.randn(n, 2, generator=generator) * 0.8
        return [{"x": x[i], "labels": labels[i]} for i in range(n)]

    model = OverConfident()
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True))
    fit = calibrate_with_trainer(trainer, rows(0))
    assert fit.split == "validation" and model.config.calibration_temperature == fit.temperature > 2.0
    held_out = trainer.predict(rows(1))
    report = calibration_report(held_out.predictions, held_out.label_ids, fit.temperature)
    assert report["ece"] < report["ece_uncalibrated"] / 2  # held-out (test-like) data, fitted on validation only
    with pytest.raises(ValueError, match="refusing to fit a temperature on split 'test'"):
        calibrate_with_trainer(trainer, rows(1), split="test")
