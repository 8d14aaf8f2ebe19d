# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMATrainer, the data collator and the WA/UA metric on tiny in-memory data (no corpus, no subprocess)."""

import math

import datasets
import evaluate
import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from modeling_mgcma.metrics import WA_UA_METRIC_PATH
from modeling_mgcma.trainer import MGCMADataCollator, MGCMATrainer, decode_audio


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: intra-op threads only add synchronisation (2 threads on the 2 shared cores ran ~20x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "the", "weather", "is", "fine"]


def tiny_rows(n=12, seed=0, rate=16_000):
    rng = np.random.default_rng(seed)
    rows = {"id": [], "audio": [], "text": [], "label": []}
    for i in range(n):
        rows["id"].append(f"utt{i}")
        rows["audio"].append({"array": (0.1 * rng.standard_normal(int(rate * rng.uniform(0.2, 0.4)))).astype(np.float32),
                              "sampling_rate": rate})  # fmt: skip
        rows["text"].append(" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))))
        rows["label"].append(i % 4)
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# WA / UA
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wa_ua():
    return evaluate.load(WA_UA_METRIC_PATH, keep_in_memory=True)


def test_wa_is_accuracy_and_ua_is_mean_class_recall(wa_ua):
    # 6 of class 0 (all right), 2 of class 1 (one right): WA = 7/8, UA = (1 + 0.5) / 2
    references = [0, 0, 0, 0, 0, 0, 1, 1]
    predictions = [0, 0, 0, 0, 0, 0, 1, 0]
    result = wa_ua.compute(predictions=predictions, references=references, return_per_class=True)
    assert result["wa"] == pytest.approx(7 / 8)
    assert result["ua"] == pytest.approx(0.75)
    assert result["recall_per_class"] == [1.0, 0.5]
    assert result["support_per_class"] == [6, 2]


def test_ua_refuses_a_missing_class_when_num_labels_given(wa_ua):
    with pytest.raises(ValueError, match=r"classes \[2, 3\] have no reference"):
        wa_ua.compute(predictions=[0, 1], references=[0, 1], num_labels=4)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 2\)"):
        wa_ua.compute(predictions=[0, 5], references=[0, 1], num_labels=2)


# ---------------------------------------------------------------------------------------------------------------------
# Collator
# ---------------------------------------------------------------------------------------------------------------------


def test_collator_turns_rows_into_model_inputs_and_resamples(tiny_processor):
    rows = tiny_rows(3)
    rows["audio"][1] = {"array": np.zeros((2, 4000), dtype=np.float32) + 0.1, "sampling_rate": 8000}  # stereo, 8 kHz
    items = [{key: rows[key][i] for key in rows} for i in range(3)]
    batch = MGCMADataCollator(tiny_processor)(items)
    assert set(batch) == {"input_values", "speech_attention_mask", "input_ids", "text_attention_mask",
                          "token_type_ids", "labels"}  # fmt: skip
    assert batch["labels"].tolist() == [0, 1, 2]
    # 0.5 s at 8 kHz -> 8000 samples at 16 kHz
    assert int(batch["speech_attention_mask"][1].sum()) == 8000
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]"):
        MGCMADataCollator(tiny_processor)([{"audio": rows["audio"][0], "label": 0}])


def test_decode_audio_reads_paths_and_rejects_unknown_types(tmp_path):
    import soundfile

    path = tmp_path / "a.wav"
    soundfile.write(path, np.full(1600, 0.25, dtype=np.float32), 16_000)
    array, rate = decode_audio({"path": str(path), "bytes": None})
    assert rate == 16_000 and array.shape == (1600,) and abs(array.mean() - 0.25) < 1e-3
    with pytest.raises(TypeError, match="unsupported audio type int"):
        decode_audio(3)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer: loss components, logging intervals, evaluation separate from training
# ---------------------------------------------------------------------------------------------------------------------


class RecordingTrainer(MGCMATrainer):
    """Records the components of every training micro-batch, to check what `log()` reports."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.micro_batches = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            self.micro_batches.append({n: getattr(outputs, n).item() for n in ("loss", "loss_ce", "loss_da", "loss_ia")})
        return (loss, outputs) if return_outputs else loss


def test_components_are_logged_as_interval_means_with_gradient_accumulation(tmp_path, tiny_processor, tiny_model):
    dataset = datasets.Dataset.from_dict(tiny_rows(16))
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=4,
        logging_steps=2, eval_strategy="steps", eval_steps=1, per_device_eval_batch_size=4, learning_rate=1e-3,
        report_to="none", save_strategy="no", remove_unused_columns=True, use_cpu=True, seed=0,
    )  # fmt: skip
    trainer = RecordingTrainer(
        model=tiny_model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(8)),
        data_collator=MGCMADataCollator(tiny_processor),
    )  # fmt: skip
    assert trainer.args.remove_unused_columns is False  # audio/text reach the collator
    trainer.train()
    assert len(trainer.micro_batches) == 8  # 4 optimiser steps x 2 micro-batches
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    eval_logs = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert [entry["step"] for entry in train_logs] == [2, 4]
    assert len(eval_logs) == 4 and all(f"eval_{n}" in eval_logs[0] for n in ("loss_ce", "loss_da", "loss_ia"))
    for index, entry in enumerate(train_logs):  # each log = mean over its 4 micro-batches, eval excluded
        interval = trainer.micro_batches[4 * index : 4 * index + 4]
        for name in ("loss_ce", "loss_da", "loss_ia"):
            assert entry[name] == pytest.approx(np.mean([m[name] for m in interval]), abs=1e-5)
        # the Trainer's own `loss` is the same mean of the weighted sums: the components add up to it
        assert entry["loss"] == pytest.approx(np.mean([m["loss"] for m in interval]), abs=1e-4)
        assert entry["loss"] == pytest.approx(entry["loss_ce"] + entry["loss_da"] + entry["loss_ia"], abs=1e-4)


def test_one_process_installs_no_gatherer(tmp_path, tiny_model):
    tiny_model.mgcma.contrastive_feature_gatherer = lambda t: t  # a stale one must be removed
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    MGCMATrainer(model=tiny_model, args=args)
    assert tiny_model.mgcma.contrastive_feature_gatherer is None
    assert not torch.distributed.is_initialized()


def test_prediction_returns_logits_and_optionally_pooled_features(tmp_path, tiny_processor, tiny_model):
    dataset = datasets.Dataset.from_dict(tiny_rows(6))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_eval_batch_size=4)
    trainer = MGCMATrainer(model=tiny_model, args=args, data_collator=MGCMADataCollator(tiny_processor))
    plain = trainer.predict(dataset)
    assert plain.predictions.shape == (6, 4) and plain.label_ids.tolist() == [0, 1, 2, 3, 0, 1]
    assert math.isfinite(plain.metrics["test_loss_ce"])
    trainer.collect_embeddings = True
    logits, speech, text = trainer.predict(dataset).predictions
    assert logits.shape == (6, 4) and speech.shape == text.shape == (6, tiny_model.config.hidden_size)
