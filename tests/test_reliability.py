# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Bad inputs and reruns: nothing stale is reused, nothing is silently lost or overwritten, nothing local is pushed.

Each test names the input a user gave and the behaviour expected of it; the end-to-end ones train a tiny demo model
for one or two steps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402


REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus") / "demo"


def tiny_args(out, corpus, *extra):
    """One or two optimizer steps of the demo model on 8 utterances per session."""
    return [
        "--output_dir", str(out), "--demo_corpus_dir", str(corpus), "--demo_utterances_per_session", "8",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--max_steps", "1",
        "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1",
        "--logging_steps", "1", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


@pytest.fixture
def trained_folds(monkeypatch):
    """Records which folds run_mgcma trains (run_fold calls) instead of reusing."""
    trained = []
    original = run_mgcma.run_fold
    monkeypatch.setattr(run_mgcma, "run_fold", lambda fold, *a, **k: trained.append(fold) or original(fold, *a, **k))
    return trained


# ---------------------------------------------------------------------------------------------------------------------
# Stale results and overwrites
# ---------------------------------------------------------------------------------------------------------------------


def test_cross_validation_reuses_a_fold_only_with_the_same_settings(tmp_path, corpus, trained_folds):
    out = tmp_path / "cv"
    first = run_mgcma.main(tiny_args(out, corpus, "--cross_validate"))
    assert trained_folds == [1, 2, 3, 4, 5]
    recorded = json.loads((out / "fold_3" / "fingerprint.json").read_text())
    assert recorded["fold"] == 3 and recorded["training"]["learning_rate"] == 2e-3

    # other settings: refused before anything is trained, every stale fold and every difference named
    trained_folds.clear()
    with pytest.raises(ValueError) as error:
        run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--ablation", "S4", "--learning_rate", "1e-4"))
    message = str(error.value)
    assert trained_folds == []
    for k in range(1, 6):
        assert str(out / f"fold_{k}") in message
    assert "--learning_rate 0.002 -> 0.0001" in message and "--ablation None -> 'S4'" in message
    assert "--overwrite_output_dir" in message
    assert json.loads((out / "results.json").read_text())["folds"] == first["folds"]  # the old summary is untouched

    # settings that do not change the result (logging, progress bars) reuse every fold
    again = run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--logging_steps", "7", "--disable_tqdm", "false"))
    assert trained_folds == [] and again["folds"] == first["folds"]

    # asked explicitly: every fold is trained again with the new settings
    redone = run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--learning_rate", "1e-4", "--overwrite_output_dir", "true"))
    assert trained_folds == [1, 2, 3, 4, 5]
    assert json.loads((out / "fold_3" / "fingerprint.json").read_text())["training"]["learning_rate"] == 1e-4
    assert json.loads((out / "fingerprint.json").read_text())["training"]["learning_rate"] == 1e-4
    assert json.loads((out / "results.json").read_text())["folds"] == redone["folds"]


def test_a_fold_without_a_fingerprint_is_not_reused(tmp_path):
    folder = tmp_path / "fold_1"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"folds": [{"test_session": 1, "wa": 1.0, "ua": 1.0}]}))
    data_args = run_mgcma.DataArguments()
    training_args = run_mgcma.TrainingArguments(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"fold_1 holds a finished run \(results.json\) without a fingerprint.json"):
        run_mgcma.prepare_run_folder(folder, {"fold": 1}, data_args, training_args, reuse_finished=True)


def test_data_fingerprint_changes_with_any_row_label_text_or_audio_file(tmp_path):
    import datasets

    audio = []
    for i in range(3):
        path = tmp_path / f"{i}.wav"
        path.write_bytes(b"x" * (10 + i))
        audio.append(str(path))
    features = datasets.Features({"id": datasets.Value("string"), "audio": datasets.Audio(sampling_rate=16_000),
                                  "text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})  # fmt: skip
    base = {"id": ["0", "1", "2"], "audio": audio, "text": ["x", "y", "z"], "label": [0, 1, 0]}
    fingerprint = run_mgcma.data_fingerprint(datasets.Dataset.from_dict(base, features=features))
    assert fingerprint == run_mgcma.data_fingerprint(datasets.Dataset.from_dict(dict(base), features=features))
    for column, value in (("label", [0, 1, 1]), ("text", ["x", "y", "Z"]), ("id", ["0", "1", "3"])):
        changed = run_mgcma.data_fingerprint(datasets.Dataset.from_dict({**base, column: value}, features=features))
        assert changed != fingerprint, column
    Path(audio[2]).write_bytes(b"x" * 5)  # a file truncated in place
    assert run_mgcma.data_fingerprint(datasets.Dataset.from_dict(base, features=features)) != fingerprint


def test_a_new_run_into_a_finished_run_is_refused_unless_overwriting_or_resuming(tmp_path, corpus):
    out = tmp_path / "run"
    run_mgcma.main(tiny_args(out, corpus, "--test_session", "2"))
    assert (out / "checkpoint-1").is_dir()
    before = (out / "results.json").read_text()
    with pytest.raises(ValueError, match=r"holds a finished run \(results.json\); a new run would overwrite it"):
        run_mgcma.main(tiny_args(out, corpus, "--test_session", "2"))
    with pytest.raises(ValueError, match=r"holds a finished run \(results.json\) trained with other settings: --seed 0 -> 3"):
        run_mgcma.main(tiny_args(out, corpus, "--test_session", "2", "--seed", "3"))
    assert (out / "results.json").read_text() == before and (out / "checkpoint-1").is_dir()

    # resuming what is there, with the same settings, is allowed
    run_mgcma.main(tiny_args(out, corpus, "--test_session", "2", "--resume_from_checkpoint", "last"))
    # ... with other settings it is not
    with pytest.raises(ValueError, match=r"trained with other settings: --seed 0 -> 3"):
        run_mgcma.main(tiny_args(out, corpus, "--test_session", "2", "--seed", "3", "--resume_from_checkpoint", "last"))

    # replacing it, when asked
    (out / "checkpoint-1" / "marker").write_text("old")
    run_mgcma.main(tiny_args(out, corpus, "--test_session", "2", "--seed", "3", "--overwrite_output_dir", "true"))
    assert json.loads((out / "fingerprint.json").read_text())["training"]["seed"] == 3
    assert not (out / "checkpoint-1" / "marker").exists()  # the old checkpoint is gone, not mixed with the new one


# ---------------------------------------------------------------------------------------------------------------------
# Arguments checked first
# ---------------------------------------------------------------------------------------------------------------------


def test_help_works():
    completed = subprocess.run([sys.executable, "run_mgcma.py", "--help"], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "--max_duration" in completed.stdout and "--overwrite_output_dir" in completed.stdout


def test_unwritable_output_dir_fails_before_loading_data(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("data were loaded before --output_dir was checked")

    monkeypatch.setattr(run_mgcma, "load_data", forbidden)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"--output_dir '.*a_file/out' is not a writable folder"):
        run_mgcma.main(["--output_dir", str(blocker / "out")])
