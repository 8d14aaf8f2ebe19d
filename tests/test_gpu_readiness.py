# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Multi-GPU readiness, reproduced on CPUs: DDP with parameters that miss their gradient (layerdrop, modules whose
output does not reach the loss) under gradient checkpointing, the batches the training DataLoader really yields
(padding, rank balance), and the refusal of `nn.DataParallel`. The 2-process tests run 2 gloo processes under
`accelerate launch --multi_gpu` (see tests/gpu_readiness_worker.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_mgcma.training.sampling import LengthGroupedBatchSampler, length_grouped_steps, padding_fraction, useful_frame_share


REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER = REPO_ROOT / "tests" / "gpu_readiness_worker.py"
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip


@pytest.fixture(scope="module")
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


def write_wavs(folder, n=12):
    import wave

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        samples = (rng.standard_normal(int(rng.integers(3200, 8000))) * 3000).astype(np.int16)
        with wave.open(str(folder / f"utt{i:02d}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(16_000)
            handle.writeframes(samples.tobytes())


def _read(folder, name):
    return [json.loads((folder / f"{name}_rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["layerdrop_checkpointing", "speech_classifier_tam_last"])
def test_ddp_with_gradient_checkpointing_and_unused_parameters_trains(two_process_run, variant):
    # wav2vec2 layerdrop 0.5 (a skipped layer gets no gradient) / text branch of a last TAM unused by a speech-only
    # classifier: with the Trainer's default under checkpointing (find_unused_parameters=False) DDP stops with
    # "Expected to have finished reduction in the prior iteration"
    results = _read(two_process_run / variant, "train")
    for result in results:
        assert result["world"] == 2 and result["global_step"] == 6
        assert result["find_unused_parameters"] is True
        assert result["checkpointing_kwargs"] == {"use_reentrant": False}
        assert np.isfinite(result["train_loss"])


@pytest.mark.slow
def test_two_process_cached_training_leaves_the_frozen_encoders_out_of_ddp(two_process_run):
    for result in _read(two_process_run / "cached", "train"):
        assert result["global_step"] == 3 and result["ddp"] == "DistributedDataParallel"
        assert result["ddp_ignored"] >= result["encoder_params"] > 0  # parameters and buffers of both encoders
        assert result["ddp_params"] == result["trainable_params"]  # DDP holds only what trains


@pytest.mark.slow
def test_two_process_dataloader_batches_are_grouped_and_balanced(two_process_run):
    results = _read(two_process_run, "batches")
    lengths = results[0]["lengths"]
    batch_sets = []
    for epoch in range(2):
        rank_batches = [result["epochs"][epoch] for result in results]
        assert len(rank_batches[0]) == len(rank_batches[1]) == results[0]["len_loader"]  # same number of steps
        steps = list(zip(*rank_batches))
        flat = [batch for step in steps for batch in step]
        assert sorted(i for batch in flat for i in batch) == list(range(len(lengths)))  # every utterance once
        # measured on what the DataLoader yields: a flat sampler re-chunked by the DataLoader and dealt to the ranks
        # in turn gives ~17 % padding and ~0.75 useful share here
        assert padding_fraction(flat, lengths) < 0.05
        assert useful_frame_share(steps, lengths) > 0.9
        batch_sets.append({tuple(sorted(batch)) for batch in flat})
    assert len(batch_sets[0] & batch_sets[1]) < len(batch_sets[0]) // 2  # groups re-drawn each epoch


def _lengths(n=403, seed=0):
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(4.5) - 0.18, 0.6, n), 0.6, 15.0)
    return np.round(seconds * 50).astype(int).tolist()


def _trainer(tmp_path, dataset, collator, model=None, **arguments):
    from transformers import TrainingArguments

    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config
    from modeling_mgcma.training.trainer import MGCMATrainer

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, **arguments)
    model = model if model is not None else MGCMAForEmotionClassification(small_config(20))
    return MGCMATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)


def test_one_process_dataloader_yields_the_grouped_batches(tmp_path):
    datasets = pytest.importorskip("datasets")
    lengths = _lengths()
    rows = datasets.Dataset.from_dict({"length": lengths, "index": list(range(len(lengths)))})
    trainer = _trainer(
        tmp_path, rows, lambda b: {"index": [r["index"] for r in b]}, per_device_train_batch_size=4,
        train_sampling_strategy="group_by_length", seed=3,
    )  # fmt: skip
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    yielded = [batch["index"] for batch in loader]
    expected = [step[0] for step in length_grouped_steps(lengths, 4, 1, seed=3, epoch=0)]
    assert yielded == expected and len(loader) == len(expected)
    assert padding_fraction(yielded, lengths) < 0.03


def test_steps_group_sorted_lengths_over_ranks():
    lengths = _lengths(n=997)
    for world in (1, 2, 8):
        steps = length_grouped_steps(lengths, 4, world, seed=1, epoch=0)
        assert all(len(step) == world and all(len(b) >= 1 for b in step) for step in steps)
        items = [i for step in steps for b in step for i in b]
        assert set(items) == set(range(997)) and len(items) - 997 == (world - 997 % (4 * world)) % world * (997 % (4 * world) < world)
        assert useful_frame_share(steps, lengths) > 0.9, world
        # the same items dealt whole to ranks in turn (groups of one rank's batch size): ranks wait for each other
        batches = length_grouped_steps(lengths, 4, 1, seed=1, epoch=0)
        dealt = [[b[0] for b in batches[s : s + world]] for s in range(0, len(batches) - world + 1, world)]
        if world > 1:
            assert useful_frame_share(dealt, lengths) < useful_frame_share(steps, lengths) - 0.1
    # fewer utterances than ranks in the last group (9 = 8 + 1): filled from the first step, or dropped
    steps = length_grouped_steps(list(range(1, 10)), 4, 2)
    assert sorted(len(b) for step in steps for b in step) == [1, 1, 4, 4]
    assert set(i for step in steps for b in step for i in b) == set(range(9))
    assert [[len(b) for b in step] for step in length_grouped_steps(list(range(1, 10)), 4, 2, drop_last=True)] == [[4, 4]]
    sampler = LengthGroupedBatchSampler(list(range(1, 10)), 4, num_replicas=2, rank=1, drop_last=True)
    assert len(sampler) == len(list(sampler)) == 1


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
        _trainer(tmp_path, None, None)


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
    model.mgcma.speech_encoder.requires_grad_(False)  # frozen encoders: their layerdrop does not matter
    assert not any("layerdrop" in reason for reason in unused_parameter_reasons(model))


@pytest.mark.slow
def test_two_process_feature_cache_equals_one_process(two_process_run, tmp_path):
    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    from modeling_mgcma.training.feature_cache import SPEECH_COLUMN, TEXT_COLUMN, cache_features

    assert [r["rows"] for r in _read(two_process_run, "cache")] == [12, 12]
    dataset, words = cache_dataset(two_process_run / "wavs")
    model, processor = cache_model(words)
    sharded = cache_features(model, processor, dataset, two_process_run / "cache")  # built by the 2 ranks: reused
    assert len(list((two_process_run / "cache").iterdir())) == 1  # one cache folder, no shard left behind
    single = cache_features(model, processor, dataset, tmp_path / "cache", batch_size=1)
    for row in range(12):  # equal up to the rounding of different thread counts (the ranks ran with one thread)
        for column in (SPEECH_COLUMN, TEXT_COLUMN):
            assert sharded[row][column].shape == single[row][column].shape
            np.testing.assert_allclose(sharded[row][column], single[row][column], atol=1e-5, rtol=1e-5)


def test_feature_cache_encodes_on_the_given_device_in_batches_with_progress(tmp_path, capfd):
    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    from modeling_mgcma.training.feature_cache import SPEECH_COLUMN, cache_features, merge_shards, write_shard

    write_wavs(tmp_path / "wavs")
    dataset, words = cache_dataset(tmp_path / "wavs")
    model, processor = cache_model(words)
    backbone = model.mgcma
    moves, batch_sizes = [], []
    original_to, original_encode = backbone.speech_encoder.to, backbone.encode_speech
    backbone.speech_encoder.to = lambda *args, **kwargs: (moves.append(torch.device(args[0])), original_to(*args, **kwargs))[1]
    backbone.encode_speech = lambda values, mask: (batch_sizes.append(values.shape[0]), original_encode(values, mask))[1]
    capfd.readouterr()
    cached = cache_features(model, processor, dataset, tmp_path / "cache", device="cpu", batch_size=4)
    # the encoders were sent to the requested device (the training device in run_mgcma.py) and back afterwards
    assert moves == [torch.device("cpu"), torch.device("cpu")]
    assert batch_sizes == [4, 4, 4]  # batched: layer-normalised conv features ignore padding
    progress = capfd.readouterr().err
    assert "Encoding features for the cache: 100%" in progress and "12/12" in progress, progress[-500:]
    # two shards written as two ranks would and joined: the same rows as the one-process cache
    folder = tmp_path / "shards"
    folder.mkdir()
    for index in range(2):
        write_shard(folder, model, processor, dataset, 2, index, batch_size=4, show_progress=False)
    merge_shards(folder, tmp_path / "joined", model, len(dataset), 2)
    joined = __import__("datasets").Dataset.from_file(str(tmp_path / "joined" / "features.arrow")).with_format("numpy")
    for row in range(12):
        np.testing.assert_allclose(joined[row][SPEECH_COLUMN], cached[row][SPEECH_COLUMN], atol=1e-5)


def test_feature_cache_refuses_batches_when_padding_changes_features(tmp_path):
    from modeling_mgcma.training.feature_cache import encode_dataset

    sys.path.insert(0, str(WORKER.parent))
    from gpu_readiness_worker import cache_dataset, cache_model

    write_wavs(tmp_path / "wavs", n=2)
    dataset, words = cache_dataset(tmp_path / "wavs")
    model, processor = cache_model(words)
    model.mgcma.config.speech_config.feat_extract_norm = "group"  # wav2vec2-base: group norm reads padding
    with pytest.raises(ValueError, match="only batch_size=1"):
        list(encode_dataset(model, processor, dataset, batch_size=4))
    assert len(list(encode_dataset(model, processor, dataset))) == 2  # default: one utterance at a time


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
        trainer = _trainer(
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
    trainer = _trainer(tmp_path, rows, CachedFeatureCollator(), model, per_device_train_batch_size=4, max_steps=2, save_strategy="no")
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
        args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
        assert "bf16 chosen" in apply_mixed_precision(args, explicit=False, device_type="cuda", capability=(9, 0))
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
