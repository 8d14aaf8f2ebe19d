# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Helpers for the training and run tests: wav folders, a CPU MGCMATrainer, checkpoint folders, and the 2-process
launcher of tests/training/gpu_readiness_worker.py (see the `two_process_run` fixture in tests/conftest.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import torch


REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER = REPO_ROOT / "tests" / "training" / "gpu_readiness_worker.py"
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip


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


def read_ranks(folder, name):
    """What both ranks of a 2-process run wrote: `<folder>/<name>_rank<k>.json`, rank 0 first."""
    return [json.loads((folder / f"{name}_rank{rank}.json").read_text()) for rank in (0, 1)]


def cpu_trainer(tmp_path, dataset, collator, model=None, **arguments):
    from transformers import TrainingArguments

    from modeling_mgcma import MGCMAForEmotionClassification
    from modeling_mgcma.training.from_scratch import small_config
    from modeling_mgcma.training.trainer import MGCMATrainer

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, **arguments)
    model = model if model is not None else MGCMAForEmotionClassification(small_config(20))
    return MGCMATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)


def write_checkpoint(folder, step, *, state=True, truncate=None):
    from safetensors.torch import save_file

    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    save_file({"w": torch.zeros(64, 64)}, str(checkpoint / "model.safetensors"))
    torch.save({"step": step}, checkpoint / "optimizer.pt")
    if state:
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if truncate is not None:
        data = (checkpoint / truncate).read_bytes()
        (checkpoint / truncate).write_bytes(data[: len(data) // 2])
    return checkpoint
