# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A run killed right after a checkpoint and resumed with `--resume_from_checkpoint last` ends with the same weights
and metrics as an uninterrupted run with the same seed (full determinism; tolerance 1e-6 on every weight)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402


REPO_ROOT = Path(__file__).resolve().parents[1]
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
        "--save_steps", "3", "--save_total_limit", "3", "--logging_steps", "1", "--test_session", "2",
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
