# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Two gloo processes on CPU, started with `accelerate launch --multi_gpu` (`--cpu --num_processes 2` would silently
start one): the gathered contrastive losses equal a one-process computation on the concatenated batch, and a tiny
demo run finishes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip


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
    launch([str(REPO_ROOT / "tests" / "distributed_gather_worker.py"), str(tmp_path)], tmp_path, timeout=240)
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
        "--save_steps", "2", "--logging_steps", "1", "--test_session", "3", "--disable_tqdm", "true",
    ], tmp_path, timeout=420)  # fmt: skip
    log = completed.stdout + completed.stderr
    assert "Process rank 1, world size 2" in log
    results = json.loads((out / "results.json").read_text())
    assert results["folds"][0]["test_session"] == 3 and results["folds"][0]["num_test"] == 8
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    card = (out / "README.md").read_text()
    assert "| processes | 2 |" in card and "| contrastive negatives | global batch (gathered) |" in card
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and all("loss_da" in e for e in state["log_history"] if "loss" in e)
