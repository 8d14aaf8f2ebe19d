# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""modeling_mgcma/training/trainer.py: MGCMATrainer and its training arguments on tiny in-memory data (loss
components, the training regime, the training objective: warm-up, balancing, projection), and a killed and resumed
run of run_mgcma.py (slow)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import HfArgumentParser, TrainingArguments

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.training.alignment_gradient import shared_parameters
from modeling_mgcma.training.collators import MGCMADataCollator
from modeling_mgcma.training.trainer import MGCMATrainer, MGCMATrainingArguments


REPO_ROOT = Path(__file__).resolve().parents[2]
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
# Trainer: loss components, logging intervals, evaluation separate from training
# ---------------------------------------------------------------------------------------------------------------------


class RecordingTrainer(MGCMATrainer):
    """Records the components of every training micro-batch (and the loss back-propagated, `objective`, with its
    optimisation step), to check what `log()` reports and what the step trains on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.micro_batches = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            recorded = {n: getattr(outputs, n).item() for n in ("loss", "loss_ce", "loss_da", "loss_ia")}
            self.micro_batches.append({**recorded, "objective": loss.item(), "step": self.state.global_step})
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
    model = trained(
        MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, freeze_speech_encoder=True)
    )
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


# ---------------------------------------------------------------------------------------------------------------------
# The training objective: alignment-loss warm-up, gradient balancing and projection (training arguments)
# ---------------------------------------------------------------------------------------------------------------------


def test_objective_settings_are_training_arguments_checked_by_name(tmp_path):
    (args,) = HfArgumentParser(MGCMATrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--report_to", "none", "--alignment_gradient_balance", "0.5",
         "--alignment_gradient_projection", "true", "--alignment_loss_warmup", "0.3"]
    )  # fmt: skip
    assert (args.alignment_gradient_balance, args.alignment_gradient_projection, args.alignment_loss_warmup) == (
        0.5, True, 0.3)  # fmt: skip
    plain = MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert (plain.alignment_gradient_balance, plain.alignment_gradient_projection, plain.alignment_loss_warmup) == (
        0.0, False, 0.0)  # fmt: skip
    for name, value in (("alignment_gradient_balance", -1.0), ("alignment_gradient_balance", True),
                        ("alignment_gradient_projection", "yes"), ("alignment_gradient_projection", 1),
                        ("alignment_loss_warmup", 1.5), ("alignment_gradient_encoders", "audio"),
                        ("alignment_gradient_balance_on", "modules")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"--{name} must .*got {value!r}"):
            MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", **{name: value})
    assert (plain.alignment_gradient_encoders, plain.alignment_gradient_balance_on) == ("both", "backbone")
    (args,) = HfArgumentParser(MGCMATrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--report_to", "none", "--alignment_gradient_encoders", "speech",
         "--alignment_gradient_balance_on", "encoders"]
    )  # fmt: skip
    assert (args.alignment_gradient_encoders, args.alignment_gradient_balance_on) == ("speech", "encoders")


def test_trainer_ramps_the_alignment_losses(tiny_config_factory, tiny_processor, tmp_path):
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory())
    dataset = datasets.Dataset.from_dict(tiny_rows(8))
    args = MGCMATrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=8, report_to="none", use_cpu=True,
        save_strategy="no", logging_steps=1, eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=4,
        alignment_loss_warmup=0.5,
    )  # fmt: skip
    trainer = RecordingTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(4)),
                               data_collator=MGCMADataCollator(tiny_processor))  # fmt: skip
    trainer.train()
    scales = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]  # step / (0.5 * 8 steps), capped at 1
    assert [m["step"] for m in trainer.micro_batches] == list(range(8))
    for scale, m in zip(scales, trainer.micro_batches):
        assert m["objective"] == pytest.approx(m["loss_ce"] + scale * (m["loss_da"] + m["loss_ia"]), rel=1e-5)
        assert m["loss"] == pytest.approx(m["loss_ce"] + m["loss_da"] + m["loss_ia"], rel=1e-5)  # the model's own
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["loss"] for entry in train_logs] == pytest.approx([m["objective"] for m in trainer.micro_batches],
                                                                    abs=1e-4)  # fmt: skip
    # evaluation, inside the warm-up too (steps 2 and 4), uses the full weights
    for entry in (entry for entry in trainer.state.log_history if "eval_loss" in entry):
        assert entry["eval_loss"] == pytest.approx(
            entry["eval_loss_ce"] + entry["eval_loss_da"] + entry["eval_loss_ia"], abs=1e-4)  # fmt: skip


def _flat_gradient(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def test_trainer_balances_and_projects_the_alignment_gradient_in_training_only(tmp_path, tiny_model, tiny_batch):
    args = MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                  alignment_gradient_balance=1.0, alignment_gradient_projection=True)  # fmt: skip
    trainer = MGCMATrainer(model=tiny_model, args=args)
    params = shared_parameters(tiny_model)
    tiny_model.train()
    loss, out = trainer.compute_loss(tiny_model, dict(tiny_batch), return_outputs=True)
    assert torch.allclose(loss, out.loss_ce + out.loss_da + out.loss_ia, rtol=1e-5)  # the value: the plain objective
    g_ce, g_plain = _flat_gradient(out.loss_ce, params), _flat_gradient(out.loss_da + out.loss_ia, params)
    g_used = _flat_gradient(loss - out.loss_ce, params)
    dot = float(g_plain @ g_ce)
    assert dot < 0 and float(g_plain.norm()) > 3 * float(g_ce.norm())  # a conflict, and alignment dominating
    projected = g_plain - dot / float(g_ce @ g_ce) * g_ce
    expected = min(1.0, float(g_ce.norm() / projected.norm())) * projected  # projected, then capped at |g_CE|
    assert torch.allclose(g_used, expected, atol=1e-6 * float(g_plain.norm()))
    tiny_model.eval()  # evaluation: the model's weighted sum, nothing reshaped
    with torch.enable_grad():
        loss, out = trainer.compute_loss(tiny_model, dict(tiny_batch), return_outputs=True)
    assert loss is out.loss
    assert torch.allclose(_flat_gradient(loss - out.loss_ce, params),
                          _flat_gradient(out.loss_da + out.loss_ia, params), atol=1e-6)  # fmt: skip


def test_trainer_keeps_the_alignment_losses_off_the_encoder_it_is_told_to(tmp_path, tiny_model, tiny_batch):
    args = MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                  alignment_gradient_encoders="speech")  # fmt: skip
    trainer = MGCMATrainer(model=tiny_model, args=args)
    text = [p for p in tiny_model.mgcma.text_encoder.parameters() if p.requires_grad]
    text_ids = {id(p) for p in text}
    rest = [p for p in shared_parameters(tiny_model) if id(p) not in text_ids]
    tiny_model.train()
    loss, out = trainer.compute_loss(tiny_model, dict(tiny_batch), return_outputs=True)
    alignment = out.loss_da + out.loss_ia
    assert torch.allclose(loss, out.loss_ce + alignment, rtol=1e-5)
    assert float(_flat_gradient(alignment, text).norm()) > 0  # the model's own loss does reach the text encoder
    assert torch.allclose(_flat_gradient(loss, text), _flat_gradient(out.loss_ce, text), atol=1e-7)
    assert torch.allclose(_flat_gradient(loss, rest), _flat_gradient(out.loss_ce + alignment, rest), atol=1e-6)


def test_trainer_caps_the_encoders_alone_when_told_to(tmp_path, tiny_model, tiny_batch):
    args = MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                  alignment_gradient_balance=1.0, alignment_gradient_balance_on="encoders")  # fmt: skip
    trainer = MGCMATrainer(model=tiny_model, args=args)
    modules = [p for name in ("distribution_alignment", "token_alignment")
               for p in getattr(tiny_model.mgcma, name).parameters() if p.requires_grad]  # fmt: skip
    encoder = [p for p in tiny_model.mgcma.speech_encoder.parameters() if p.requires_grad]
    tiny_model.train()
    loss, out = trainer.compute_loss(tiny_model, dict(tiny_batch), return_outputs=True)
    alignment = out.loss_da + out.loss_ia
    assert torch.allclose(_flat_gradient(loss, modules), _flat_gradient(out.loss_ce + alignment, modules), atol=1e-6)
    g_ce, g_align = _flat_gradient(out.loss_ce, encoder), _flat_gradient(alignment, encoder)
    g_used = _flat_gradient(loss, encoder) - g_ce
    assert float(g_used.norm()) < 0.5 * float(g_align.norm())  # capped there
    assert float((g_used @ g_align) / (g_used.norm() * g_align.norm())) == pytest.approx(1.0, abs=1e-4)


def test_the_trainer_keeps_its_state_out_of_the_model(tmp_path, tiny_processor, tiny_config_factory):
    """Training with every objective option, and cached-feature training (the frozen encoders kept out of DDP), add
    no attribute of MGCMA's own to any module of the model."""
    # set by accelerate's prepare, by DDP's own API for what it ignores, and the model's own cache
    foreign = {"_is_accelerate_prepared", "_ddp_params_and_buffers_to_ignore", "_min_speech_samples"}

    def added(model, build):
        before = {name: set(vars(module)) for name, module in model.named_modules()}
        trainer = build()
        after = {name: set(vars(module)) - before[name] - foreign for name, module in model.named_modules()}
        return trainer, {name: keys for name, keys in after.items() if keys}

    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory())
    args = MGCMATrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, report_to="none", use_cpu=True,
        save_strategy="no", alignment_gradient_balance=1.0, alignment_gradient_projection=True,
        alignment_loss_warmup=0.5,
    )  # fmt: skip

    def train():
        trainer = MGCMATrainer(model=model, args=args, train_dataset=datasets.Dataset.from_dict(tiny_rows(8)),
                               data_collator=MGCMADataCollator(tiny_processor))  # fmt: skip
        trainer.train()
        return trainer

    assert added(model, train)[1] == {}
    cached = MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                    freeze_speech_encoder=True, freeze_text_encoder=True)  # fmt: skip
    features = datasets.Dataset.from_dict({"speech_features": [[[0.0]]], "label": [0]})
    trainer, keys = added(model, lambda: MGCMATrainer(model=model, args=cached, train_dataset=features))
    assert keys == {}
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    assert {f"mgcma.speech_encoder.{name}" for name, _ in model.mgcma.speech_encoder.named_parameters()} <= ignored
    assert not any(name.startswith("mgcma.distribution_alignment.") for name in ignored)


# ---------------------------------------------------------------------------------------------------------------------
# A killed run resumed: the same weights and metrics as an uninterrupted run
# ---------------------------------------------------------------------------------------------------------------------

KILL_AT_STEP = 3

# Run in a child process: train, and die like a killed job (os._exit, no cleanup) right after checkpoint-3 is saved.
KILLED_RUN = """
import os, sys
from transformers import TrainerCallback
sys.path.insert(0, {repo!r})
import run_mgcma

class DieAfterCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os._exit(137)

run_mgcma.main({argv!r}, callbacks=[DieAfterCheckpoint()])
"""


def run_args(out, corpus):
    return [
        "--output_dir", str(out), "--demo_corpus_dir", str(corpus), "--demo_utterances_per_session", "8",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--learning_rate", "3e-3",
        "--max_steps", "6", "--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "steps",
        "--save_steps", "3", "--save_total_limit", "3", "--logging_steps", "1", "--test_group", "2",
        "--seed", "7", "--full_determinism", "true", "--disable_tqdm", "true",
    ]  # fmt: skip


@pytest.fixture
def restore_determinism():
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_killed_and_resumed_run_matches_an_uninterrupted_run(tmp_path, restore_determinism):
    """A run killed right after a checkpoint and resumed with `--resume_from_checkpoint last` ends with the same
    weights and metrics as an uninterrupted run with the same seed (full determinism; 1e-6 on every weight)."""
    sys.path.insert(0, str(REPO_ROOT))  # run_mgcma.py is a script at the repository root
    import run_mgcma

    corpus = tmp_path / "corpus"
    reference = run_mgcma.main(run_args(tmp_path / "uninterrupted", corpus))

    killed = tmp_path / "killed"
    script = KILLED_RUN.format(repo=str(REPO_ROOT), step=KILL_AT_STEP, argv=run_args(killed, corpus))
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert completed.returncode == 137, completed.stderr[-3000:]
    assert (killed / f"checkpoint-{KILL_AT_STEP}").is_dir() and not (killed / "results.json").exists()

    resumed = run_mgcma.main([*run_args(killed, corpus), "--resume_from_checkpoint", "last"])
    state = json.loads((killed / "trainer_state.json").read_text())
    train_steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert train_steps == list(range(1, 7)), train_steps  # steps 1-3 restored from the checkpoint, 4-6 trained now

    expected = load_file(tmp_path / "uninterrupted" / "model.safetensors")
    actual = load_file(killed / "model.safetensors")
    assert sorted(actual) == sorted(expected)
    worst = max((actual[name].float() - expected[name].float()).abs().max().item() for name in expected)
    assert worst <= 1e-6, f"largest weight difference {worst}"
    for key in ("wa", "ua"):
        assert resumed["folds"][0][key] == pytest.approx(reference["folds"][0][key], abs=1e-9)
    reference_state = json.loads((tmp_path / "uninterrupted" / "trainer_state.json").read_text())
    losses = lambda s: [(e["step"], e["loss"], e["loss_ce"], e["loss_da"], e["loss_ia"]) for e in s["log_history"] if "loss" in e]  # noqa: E731
    assert losses(state) == losses(reference_state)
