# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMATrainer across processes and on accelerators, reproduced on CPUs.

Two gloo processes started with `accelerate launch --multi_gpu` (`--cpu --num_processes 2` would silently start
one): the gathered contrastive losses equal a one-process computation on the concatenated batch, a tiny demo run
finishes, and DDP trains with parameters that miss their gradient (layerdrop, modules whose output does not reach
the loss) under gradient checkpointing and with the frozen encoders left out of DDP (the `two_process_run` fixture
in tests/conftest.py). In one process: the refusal of `nn.DataParallel`, DataLoader workers and defaults, and mixed
precision chosen from the device."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_training import LAUNCH, WORKER, cpu_trainer, read_ranks, write_wavs


REPO_ROOT = Path(__file__).resolve().parents[2]


def launch(script_and_args, tmp_path, timeout):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "MASTER_PORT": str(29500 + os.getpid() % 1000), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    port = ["--main_process_port", env["MASTER_PORT"]]
    completed = subprocess.run(
        [*LAUNCH, *port, *script_and_args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    return completed


@pytest.mark.slow
def test_gathered_contrastive_losses_equal_one_process_on_the_whole_batch(tmp_path):
    launch([str(REPO_ROOT / "tests" / "training" / "distributed_gather_worker.py"), str(tmp_path)], tmp_path, timeout=240)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for result in results:
        assert result["world"] == 2 and result["gather_flag_set"]
        assert result["size_exchanges"] == 1 and result["collectives"] == 2 and result["multi_tensor_match"]
        # every rank computes the global-batch loss (5 utterances, 3 + 2 across ranks)
        assert abs(result["loss_da"] - result["reference_loss_da"]) < 1e-5, result
        assert abs(result["loss_ia"] - result["reference_loss_ia"]) < 1e-5, result
        # after DDP's gradient averaging, the gradients are those of the one-process global loss
        assert result["grad_names_match"] and result["num_grads"] > 10
        assert result["max_grad_diff"] < 1e-5, result
    assert results[0]["loss_da"] == pytest.approx(results[1]["loss_da"], abs=1e-6)


@pytest.mark.slow
def test_two_process_demo_run_finishes(tmp_path):
    out = tmp_path / "out"
    completed = launch([
        str(REPO_ROOT / "run_mgcma.py"), "--output_dir", str(out), "--demo_corpus_dir", str(tmp_path / "corpus"),
        "--demo_utterances_per_session", "8", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
        "--max_steps", "4", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps",
        "--save_steps", "2", "--logging_steps", "1", "--test_group", "3", "--disable_tqdm", "true",
    ], tmp_path, timeout=420)  # fmt: skip
    log = completed.stdout + completed.stderr
    assert "Process rank 1, world size 2" in log
    results = json.loads((out / "results.json").read_text())
    assert results["folds"][0]["test_group"] == 3 and results["folds"][0]["num_test"] == 8
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    card = (out / "README.md").read_text()
    assert "| processes | 2 |" in card and "| contrastive negatives | global batch (gathered) |" in card
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and all("loss_da" in e for e in state["log_history"] if "loss" in e)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["layerdrop_plain_step", "speech_classifier_tam_last"])
def test_ddp_with_gradient_checkpointing_and_unused_parameters_trains(two_process_run, variant):
    # wav2vec2 layerdrop 0.5 without the fast step (a skipped layer gets no gradient) / text branch of a last TAM
    # unused by a speech-only classifier: with the Trainer's default under checkpointing (find_unused_parameters=False)
    # DDP stops with "Expected to have finished reduction in the prior iteration"
    results = read_ranks(two_process_run / variant, "train")
    for result in results:
        assert result["world"] == 2 and result["global_step"] == 6
        assert result["find_unused_parameters"] is True
        assert result["checkpointing_kwargs"] == {"use_reentrant": False}
        assert np.isfinite(result["train_loss"])


@pytest.mark.slow
def test_ddp_with_the_fast_steps_layerdrop_needs_no_unused_parameter_search(two_process_run):
    # the fast step's LayerDrop (torch.where) gives every layer a gradient, dropped or not: DDP trains six steps at
    # layerdrop 0.5 under checkpointing without searching for unused parameters
    for result in read_ranks(two_process_run / "layerdrop_checkpointing", "train"):
        assert result["world"] == 2 and result["global_step"] == 6
        assert not result["find_unused_parameters"]
        assert np.isfinite(result["train_loss"])


@pytest.mark.slow
def test_two_process_cached_training_leaves_the_frozen_encoders_out_of_ddp(two_process_run):
    for result in read_ranks(two_process_run / "cached", "train"):
        assert result["global_step"] == 3 and result["ddp"] == "DistributedDataParallel"
        assert result["ddp_ignored"] >= result["encoder_params"] > 0  # parameters and buffers of both encoders
        assert result["ddp_params"] == result["trainable_params"]  # DDP holds only what trains



def test_data_parallel_is_refused(tmp_path, monkeypatch):
    from transformers import TrainingArguments

    from modeling_mgcma.training.trainer import refuse_data_parallel

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    refuse_data_parallel(args)  # one device: fine
    # a single process that sees 2 GPUs: the Trainer would wrap the model in nn.DataParallel
    monkeypatch.setattr(TrainingArguments, "n_gpu", property(lambda self: 2))
    with pytest.raises(RuntimeError, match="accelerate launch --multi_gpu --num_processes 2"):
        refuse_data_parallel(args)
    with pytest.raises(RuntimeError, match="torchrun --nproc_per_node 2"):
        cpu_trainer(tmp_path, None, None)


def test_unused_parameters_are_found_from_the_model_built():
    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config
    from modeling_mgcma.training.trainer import unused_parameter_reasons

    torch.manual_seed(0)
    assert unused_parameter_reasons(MGCMAForEmotionClassification(small_config(20))) == []
    config = small_config(20, classifier_features="speech", module_order=["dam", "iam", "tam"])
    model = MGCMAForEmotionClassification(config).eval()
    before = [p.detach().clone() for p in model.parameters()]
    reasons = unused_parameter_reasons(model)
    assert len(reasons) == 1 and "never reach the loss" in reasons[0] and "token_alignment" in reasons[0], reasons
    # the probe leaves the model as it was: no gradients, same weights, same mode
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    model.mgcma.speech_encoder.config.layerdrop = 0.3
    assert any("layerdrop=0.3" in reason for reason in unused_parameter_reasons(model))
    from modeling_mgcma.training.fast_step import install_fast_encoders

    fast = copy.deepcopy(model)
    install_fast_encoders(fast)  # the fast step's LayerDrop skips no layer's gradient
    assert not any("layerdrop" in reason for reason in unused_parameter_reasons(fast))
    model.mgcma.speech_encoder.requires_grad_(False)  # frozen encoders: their layerdrop does not matter
    assert not any("layerdrop" in reason for reason in unused_parameter_reasons(model))


@pytest.mark.parametrize("strategy", ["group_by_length", "random"])
def test_worker_pipeline_yields_the_same_batches_as_single_process(tmp_path, strategy):
    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    from modeling_mgcma.training.collators import MGCMADataCollator

    write_wavs(tmp_path / "wavs", n=10)
    dataset, words = cache_dataset(tmp_path / "wavs")
    _, processor = cache_model(words)
    epochs = {}
    for workers in (0, 2):
        trainer = cpu_trainer(
            tmp_path, dataset, MGCMADataCollator(processor), per_device_train_batch_size=4, seed=1,
            train_sampling_strategy=strategy, dataloader_num_workers=workers, dataloader_persistent_workers=workers > 0,
        )  # fmt: skip
        loader = trainer.get_train_dataloader()
        epochs[workers] = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            epochs[workers].append(list(loader))
    assert [len(e) for e in epochs[2]] == [len(e) for e in epochs[0]] == [3, 3]
    for single_epoch, worker_epoch in zip(epochs[0], epochs[2]):
        for single, worker in zip(single_epoch, worker_epoch):
            assert single.keys() == worker.keys()
            assert all(torch.equal(single[k], worker[k]) for k in single), "workers changed a batch"


def test_dataloader_defaults_for_accelerators(tmp_path):
    from transformers import TrainingArguments

    from modeling_mgcma.training.trainer import apply_dataloader_defaults

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    assert apply_dataloader_defaults(args) == {} and args.dataloader_num_workers == 0  # CPU (the demo): in-process
    changed = apply_dataloader_defaults(args, device_type="cuda", cpu_count=16)
    assert changed == {"dataloader_num_workers": 4, "dataloader_persistent_workers": True, "dataloader_prefetch_factor": 2}
    assert args.dataloader_num_workers == 4 and args.dataloader_persistent_workers
    assert apply_dataloader_defaults(args, device_type="cuda", cpu_count=16) == {}  # an explicit value is kept
    small = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    assert apply_dataloader_defaults(small, device_type="cuda", cpu_count=3)["dataloader_num_workers"] == 2


def test_cached_training_keeps_the_frozen_encoders_off_the_accelerator_and_out_of_ddp(tmp_path, monkeypatch):
    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import random_feature_rows

    import modeling_mgcma.training.trainer as trainer_module
    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.collators import CachedFeatureCollator
    from modeling_mgcma.training.feature_cache import freeze_encoders_in_eval_mode
    from modeling_mgcma.training.from_scratch import small_config

    rows = random_feature_rows(8)
    model = MGCMAForEmotionClassification(small_config(20))
    freeze_encoders_in_eval_mode(model)
    trainer = cpu_trainer(tmp_path, rows, CachedFeatureCollator(), model, per_device_train_batch_size=4, max_steps=2, save_strategy="no")
    ignored = set(model._ddp_params_and_buffers_to_ignore)  # DDP neither syncs nor device-checks these
    assert "mgcma.speech_encoder.encoder.layers.0.attention.q_proj.weight" in ignored
    assert "mgcma.text_encoder.embeddings.word_embeddings.weight" in ignored
    assert not any(not n.startswith(("mgcma.speech_encoder.", "mgcma.text_encoder.")) for n in ignored)
    # emulated accelerator: the Trainer (and accelerate's prepare) move the whole model to the device, after which
    # the encoders are found off the CPU; they go back to it
    moves = []
    for encoder in (model.mgcma.speech_encoder, model.mgcma.text_encoder):
        encoder.to = lambda *a, _to=encoder.to, **k: (moves.append(str(a[0] if a else k.get("device"))), _to(*a, **k))[1]
    monkeypatch.setattr(trainer_module, "_on_cpu", lambda module: False)
    trainer._move_model_to_device(model, torch.device("cpu"))
    assert moves == ["cpu", "cpu"]
    moves.clear()
    trainer.compute_loss(model, CachedFeatureCollator()([rows[i] for i in range(4)]))  # prepare moved them: again
    assert moves == ["cpu", "cpu"]
    monkeypatch.undo()
    trainer.train()  # training steps run with the encoders on the CPU
    assert trainer.state.global_step == 2


def test_mixed_precision_is_chosen_from_the_device(tmp_path):
    from transformers import TrainingArguments

    from modeling_mgcma.training.trainer import apply_mixed_precision, choose_mixed_precision

    assert choose_mixed_precision("cuda", (9, 0)) == "bf16"  # H100
    assert choose_mixed_precision("cuda", (8, 0)) == "bf16"  # A100
    assert choose_mixed_precision("cuda", (7, 0)) == "fp16"  # V100
    assert choose_mixed_precision("cuda", (7, 5)) == "fp16"  # T4
    assert choose_mixed_precision("cpu") == "no"
    assert choose_mixed_precision("cuda", (7, 0), requested="bf16") == "fp16"  # the paper config's bf16 on a V100
    assert choose_mixed_precision("cuda", (9, 0), requested="no") == "no" and choose_mixed_precision("cpu", requested="bf16") == "bf16"
    # by measurement: fp32 below batch 16 on bf16 GPUs (bf16 autocast is slower there), bf16 from it
    assert choose_mixed_precision("cuda", (9, 0), batch_size=4) == "no"
    assert choose_mixed_precision("cuda", (9, 0), batch_size=16) == "bf16"
    assert choose_mixed_precision("cuda", (9, 0), requested="bf16", batch_size=4) == "bf16"  # asked for: kept
    assert choose_mixed_precision("cuda", (7, 0), batch_size=4) == "fp16"
    env = os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
    try:
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
        assert apply_mixed_precision(args, explicit=False) is None and args.mixed_precision == "no"
        assert "fp16 chosen" in apply_mixed_precision(args, explicit=False, device_type="cuda", capability=(7, 5))
        assert args.fp16 and not args.bf16 and args.mixed_precision == "fp16"
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=True)
        assert "no tensor cores" in apply_mixed_precision(args, explicit=True, device_type="cuda", capability=(7, 0))
        assert args.fp16 and not args.bf16
        os.environ["ACCELERATE_MIXED_PRECISION"] = "no"  # what `accelerate launch` sets when nothing was chosen
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_train_batch_size=32)
        assert "bf16 chosen" in apply_mixed_precision(args, explicit=False, device_type="cuda", capability=(9, 0))
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_train_batch_size=4)
        note = apply_mixed_precision(args, explicit=False, device_type="cuda", capability=(9, 0))
        assert "fp32 chosen" in note and "batch of 4" in note and not args.bf16 and args.mixed_precision == "no"
        os.environ["ACCELERATE_MIXED_PRECISION"] = "fp16"
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
        assert apply_mixed_precision(args, explicit=False, device_type="cuda", capability=(9, 0)) is None
        assert args.mixed_precision == "fp16"  # as TrainingArguments read it from the environment
    finally:
        os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        if env is not None:
            os.environ["ACCELERATE_MIXED_PRECISION"] = env


def test_fp16_autocast_with_loss_scaling_gives_finite_losses_and_gradients():
    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config

    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(20, temperature=0.07, learnable_similarity=True))
    features = {
        "speech_features": torch.randn(4, 9, 32) * 30, "text_features": torch.randn(4, 5, 32) * 30,
        "labels": torch.tensor([0, 1, 2, 3]),
    }  # fmt: skip
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    with torch.autocast("cpu", dtype=torch.float16):
        outputs = model(**features)
    for name in ("loss", "loss_ce", "loss_da", "loss_ia"):
        assert torch.isfinite(getattr(outputs, name)).all(), name
    scaler.scale(outputs.loss).backward()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
