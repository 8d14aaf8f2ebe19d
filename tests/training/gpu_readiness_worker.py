# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Run under a 2-process launcher (gloo on CPU) by the `two_process_run` fixture in tests/conftest.py, for
tests/training/test_trainer_devices.py, test_sampling.py and test_feature_cache.py; not a test module itself.

    gpu_readiness_worker.py train <out> <variant>   # a few MGCMATrainer steps with gradient checkpointing; variant:
                                                     # layerdrop_checkpointing (the fast step), layerdrop_plain_step,
                                                     # speech_classifier_tam_last
    gpu_readiness_worker.py batches <out>            # two epochs of the group_by_length training DataLoader
    gpu_readiness_worker.py cache <out>              # the feature cache of <out>/wavs/*.wav, built by both ranks
    gpu_readiness_worker.py all <out>                # batches, cache, each train variant in <out>/<variant>, then
                                                     # cached-feature training in <out>/cached

`train` writes `<out>/train_rank<k>.json` (steps done, find_unused_parameters, losses); `batches` writes
`<out>/batches_rank<k>.json` (the indices of every batch the Trainer's DataLoader yields on this rank, and the
lengths) — what training actually sees.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch


def iemocap_like_lengths(n, seed=0):
    """Utterance lengths in wav2vec2 frames (20 ms): log-normal, mean 4.5 s, floored at 0.6 s, capped at 15 s."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(4.5) - 0.18, 0.6, n), 0.6, 15.0)
    return np.round(seconds * 50).astype(int).tolist()


def train(out_dir: str, variant: str):
    import datasets
    from transformers import TrainingArguments

    from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification
    from modeling_mgcma.training.collators import MGCMADataCollator
    from modeling_mgcma.training.from_scratch import speech_encoder_config, text_encoder_config, word_processor
    from modeling_mgcma.training.trainer import MGCMATrainer

    torch.manual_seed(0)
    words = ["i", "am", "so", "happy", "sad", "today"]
    processor = word_processor(words)
    size = dict(hidden_size=16, num_layers=4, num_heads=2, intermediate_size=32)
    speech_kwargs = {"layerdrop": 0.5} if variant.startswith("layerdrop") else {}
    extra = {"classifier_features": "speech", "module_order": ["dam", "iam", "tam"]} if variant == "speech_classifier_tam_last" else {}
    config = MGCMAConfig(
        speech_config=speech_encoder_config(**size, conv_dim=16, **speech_kwargs),
        text_config=text_encoder_config(len(processor.tokenizer), **size),
        hidden_size=16, num_attention_heads=2, num_alignment_layers=1, intermediate_size=32, num_labels=4, **extra,
    )  # fmt: skip
    model = MGCMAForEmotionClassification(config)
    rng = np.random.default_rng(0)
    n = 16
    rows = datasets.Dataset.from_dict({
        "audio": [{"array": rng.standard_normal(int(rng.integers(3200, 6400))).astype(np.float32) * 0.1,
                   "sampling_rate": 16_000} for _ in range(n)],
        "text": [" ".join(rng.choice(words, size=3)) for _ in range(n)],
        "label": [int(i % 4) for i in range(n)],
    })  # fmt: skip
    from modeling_mgcma.training.trainer import MGCMATrainingArguments

    # a plain TrainingArguments means MGCMA's defaults (the fast step on); layerdrop_plain_step turns it off
    arguments, own = (MGCMATrainingArguments, {"fast_step": False}) if variant == "layerdrop_plain_step" else (TrainingArguments, {})
    args = arguments(
        output_dir=str(Path(out_dir) / "trainer"), per_device_train_batch_size=2, max_steps=6, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
        gradient_checkpointing=True,  # the Trainer then turns DDP's unused-parameter search off by default
        **own,
    )  # fmt: skip
    trainer = MGCMATrainer(model=model, args=args, train_dataset=rows, data_collator=MGCMADataCollator(processor))
    result = trainer.train()
    rank = trainer.accelerator.process_index
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    Path(out_dir, f"train_rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": trainer.accelerator.num_processes, "global_step": trainer.state.global_step,
        "find_unused_parameters": trainer.args.ddp_find_unused_parameters,
        "checkpointing_kwargs": trainer.args.gradient_checkpointing_kwargs, "train_loss": result.training_loss,
    }))  # fmt: skip


def random_feature_rows(n: int):
    """A cached-feature dataset of `n` rows: random 32-wide speech (3-8 frames) and text (2-5 tokens) features."""
    import datasets

    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict({
        "speech_features": [rng.standard_normal((int(k), 32)).astype(np.float32) for k in rng.integers(3, 9, n)],
        "text_features": [rng.standard_normal((int(k), 32)).astype(np.float32) for k in rng.integers(2, 6, n)],
        "label": [i % 4 for i in range(n)],
    }).with_format("numpy")  # fmt: skip


def train_cached(out_dir: str):
    """A few DDP steps of cached-feature training: the frozen encoders stay on the CPU and DDP ignores them."""
    from transformers import TrainingArguments

    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.collators import CachedFeatureCollator
    from modeling_mgcma.training.feature_cache import freeze_encoders_in_eval_mode
    from modeling_mgcma.training.from_scratch import small_config
    from modeling_mgcma.training.trainer import MGCMATrainer

    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(20))
    freeze_encoders_in_eval_mode(model)
    rows = random_feature_rows(16)
    args = TrainingArguments(
        output_dir=str(Path(out_dir) / "trainer"), per_device_train_batch_size=4, max_steps=3, save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = MGCMATrainer(model=model, args=args, train_dataset=rows, data_collator=CachedFeatureCollator())
    trainer.train()
    wrapped = trainer.model_wrapped
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    Path(out_dir, f"train_rank{trainer.accelerator.process_index}.json").write_text(json.dumps({
        "global_step": trainer.state.global_step, "ddp": type(wrapped).__name__,
        "ddp_ignored": len(getattr(wrapped, "parameters_to_ignore", ())),
        "encoder_params": sum(1 for _ in (*model.mgcma.speech_encoder.named_parameters(),
                                          *model.mgcma.text_encoder.named_parameters())),
        "ddp_params": len(getattr(wrapped, "_module_parameters", ())),
        "trainable_params": sum(1 for p in model.parameters() if p.requires_grad),
    }))  # fmt: skip


def cache_dataset(folder):
    """12 utterances (0.2-0.5 s WAV files under `folder`, written by the test) with transcripts and labels."""
    import datasets

    paths = sorted(str(p) for p in Path(folder).glob("*.wav"))
    words = ["i", "am", "so", "happy", "sad", "today"]
    return datasets.Dataset.from_dict(
        {"audio": paths, "text": [words[i % 6] + " " + words[(i * 5) % 6] for i in range(len(paths))],
         "label": [i % 4 for i in range(len(paths))]}
    ), words  # fmt: skip


def cache_model(words):
    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.feature_cache import freeze_encoders_in_eval_mode
    from modeling_mgcma.training.from_scratch import small_config, word_processor

    processor = word_processor(words)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer)))
    freeze_encoders_in_eval_mode(model)
    return model, processor


def cache(out_dir: str):
    """Build the feature cache of the test's WAV files under 2 processes (each encodes its share)."""
    from accelerate import PartialState

    from modeling_mgcma.training.feature_cache import cache_features

    state = PartialState()
    dataset, words = cache_dataset(Path(out_dir) / "wavs")
    model, processor = cache_model(words)
    cached = cache_features(model, processor, dataset, Path(out_dir) / "cache", batch_size=1)
    Path(out_dir, f"cache_rank{state.process_index}.json").write_text(json.dumps({"rows": len(cached)}))


def batches(out_dir: str):
    import datasets
    from transformers import TrainingArguments

    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config
    from modeling_mgcma.training.trainer import MGCMATrainer

    lengths = iemocap_like_lengths(1203)  # 3 mega-batches of 64 x 8 under 2 processes
    rows = datasets.Dataset.from_dict({"length": lengths, "index": list(range(len(lengths)))})
    args = TrainingArguments(
        output_dir=str(Path(out_dir) / "trainer"), per_device_train_batch_size=4, train_sampling_strategy="group_by_length",
        report_to="none", use_cpu=True, seed=3,
    )  # fmt: skip
    model = MGCMAForEmotionClassification(small_config(20))
    trainer = MGCMATrainer(model=model, args=args, train_dataset=rows, data_collator=lambda b: {"index": [r["index"] for r in b]})
    loader = trainer.get_train_dataloader()
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        epochs.append([batch["index"] for batch in loader])
    rank = trainer.accelerator.process_index
    Path(out_dir, f"batches_rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": trainer.accelerator.num_processes, "lengths": lengths, "epochs": epochs,
        "len_loader": len(loader),
    }))  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "batches":
        batches(sys.argv[2])
    elif sys.argv[1] == "cache":
        cache(sys.argv[2])
    else:  # all: one launch for the test suite
        batches(sys.argv[2])
        cache(sys.argv[2])
        for name in ("layerdrop_checkpointing", "layerdrop_plain_step", "speech_classifier_tam_last"):
            train(str(Path(sys.argv[2]) / name), name)
        train_cached(str(Path(sys.argv[2]) / "cached"))
