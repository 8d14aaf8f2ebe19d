# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMATrainer, its training arguments and the data collator on tiny in-memory data (no corpus, no subprocess)."""

import math

import datasets
import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.training.collators import MGCMADataCollator
from modeling_mgcma.processing_mgcma import decode_audio
from modeling_mgcma.training.trainer import MGCMATrainer


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_one_process_gathers_nothing(tmp_path, tiny_model, tiny_batch):
    """With the flag on (the default) but one process, the losses use the local batch and make no distributed call."""
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    MGCMATrainer(model=tiny_model, args=args)
    assert tiny_model.base_model.gather_distributed_negatives is True
    tiny_model.eval()
    with torch.no_grad():
        gathered = tiny_model(**tiny_batch)
        tiny_model.base_model.gather_distributed_negatives = False
        local = tiny_model(**tiny_batch)
    assert torch.equal(gathered.loss_da, local.loss_da) and torch.equal(gathered.loss_ia, local.loss_ia)
    assert not torch.distributed.is_initialized()


def test_trainer_applies_the_training_regime(tmp_path, tiny_config_factory):
    from transformers import HfArgumentParser

    from modeling_mgcma.training.trainer import MGCMATrainingArguments

    def trained(args):
        torch.manual_seed(0)
        model = MGCMAForEmotionClassification(tiny_config_factory())
        assert all(p.requires_grad for p in model.parameters())  # the model as built freezes nothing
        MGCMATrainer(model=model, args=args)
        return model

    # plain TrainingArguments: the defaults (conv feature encoder frozen, negatives gathered under several processes)
    model = trained(TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(".feature_extractor." in n for n in frozen)
    assert model.base_model.gather_distributed_negatives is True

    (args,) = HfArgumentParser(MGCMATrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--report_to", "none", "--use_cpu", "true", "--freeze_feature_encoder", "false",
         "--freeze_text_encoder", "true", "--gather_distributed_negatives", "false"]
    )  # fmt: skip
    model = trained(args)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith("mgcma.text_encoder.")}
    assert model.base_model.gather_distributed_negatives is False
    model = trained(MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, freeze_speech_encoder=True))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith("mgcma.speech_encoder.")}


def test_encoder_learning_rates_give_each_encoder_its_own_peak_rate_under_the_schedule(tmp_path, tiny_model):
    from transformers import HfArgumentParser

    from modeling_mgcma.training.trainer import MGCMATrainingArguments

    (args,) = HfArgumentParser(MGCMATrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--report_to", "none", "--use_cpu", "true", "--learning_rate", "1e-3",
         "--text_encoder_learning_rate", "1e-4", "--weight_decay", "0.01", "--warmup_steps", "2",
         "--lr_scheduler_type", "linear"]
    )  # fmt: skip
    trainer = MGCMATrainer(model=tiny_model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    backbone = tiny_model.base_model
    text = {id(p) for p in backbone.text_encoder.parameters()}
    trainable = {id(p) for p in tiny_model.parameters() if p.requires_grad}
    rate_of, decay_of = {}, {}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in rate_of  # every parameter in exactly one group
            rate_of[id(p)], decay_of[id(p)] = group["initial_lr"], group["weight_decay"]
    assert set(rate_of) == trainable
    assert {rate_of[i] for i in text} == {1e-4}
    assert {rate_of[i] for i in trainable - text} == {1e-3}  # the speech encoder keeps --learning_rate
    # weight decay still follows the Trainer's rule (none on biases and LayerNorms) inside the encoder's groups
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    assert {decay_of[i] for i in text if names[i].endswith("bias")} == {0.0}
    assert {decay_of[i] for i in text if names[i].endswith("dense.weight")} == {0.01}
    # the schedule scales every group alike: half-way through the warm-up both rates are halved
    trainer.optimizer.step()  # no gradients: changes nothing, keeps the scheduler's order of calls
    trainer.lr_scheduler.step()
    rates = {group["initial_lr"]: group["lr"] for group in trainer.optimizer.param_groups}
    assert rates == pytest.approx({1e-3: 5e-4, 1e-4: 5e-5})
    with pytest.raises(ValueError, match="speech_encoder_learning_rate"):
        MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", speech_encoder_learning_rate=-1.0)


def test_a_rate_for_a_frozen_encoder_is_reported_not_silently_ignored(tmp_path, tiny_model, caplog):
    import logging

    from modeling_mgcma.training.trainer import MGCMATrainingArguments

    args = MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, freeze_text_encoder=True,
                                  text_encoder_learning_rate=1e-5)  # fmt: skip
    trainer = MGCMATrainer(model=tiny_model, args=args)
    with caplog.at_level(logging.WARNING, logger="modeling_mgcma.training.trainer"):
        trainer.create_optimizer()
    assert "--text_encoder_learning_rate is set, but the text encoder is frozen" in caplog.text


def test_old_configs_with_training_settings_still_load(tmp_path, tiny_model, caplog):
    """config.json files written when the training settings were config fields load; the values are not kept."""
    import json
    import logging

    tiny_model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not {"freeze_feature_encoder", "freeze_speech_encoder", "freeze_text_encoder", "gather_distributed_negatives"} & set(saved)
    saved.update(freeze_feature_encoder=True, freeze_speech_encoder=True, freeze_text_encoder=False, gather_distributed_negatives=False)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING):
        model = MGCMAForEmotionClassification.from_pretrained(tmp_path)
    assert "`freeze_speech_encoder`" in caplog.text and "are training settings" in caplog.text
    assert not hasattr(model.config, "freeze_speech_encoder") and "gather_distributed_negatives" not in model.config.to_dict()
    assert all(p.requires_grad for p in model.parameters())
    for name, value in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


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
