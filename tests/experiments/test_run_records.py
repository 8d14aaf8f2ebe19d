# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Run records: fingerprints of settings and data (which decide whether a finished fold is reused) and the
newest complete checkpoint."""

import json
import sys
from pathlib import Path

import pytest
from fixtures_training import write_checkpoint


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402
from modeling_mgcma.experiments import run_records  # noqa: E402


def test_a_fold_without_a_fingerprint_is_not_reused(tmp_path):
    folder = tmp_path / "fold_1"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"folds": [{"test_group": 1, "wa": 1.0, "ua": 1.0}]}))
    data_args = run_mgcma.DataArguments()
    training_args = run_mgcma.MGCMATrainingArguments(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"fold_1 holds a finished run \(results.json\) without a fingerprint.json"):
        run_records.prepare_run_folder(folder, {"fold": 1}, data_args, training_args, reuse_finished=True)


def test_encoder_learning_rates_enter_the_fingerprint_only_when_set(tmp_path):
    """Unset, they leave a run's fingerprint as it was before they existed (recorded folds stay reusable); set,
    they are a difference that prevents reusing a fold trained without them."""
    model_args, data_args = run_mgcma.ModelArguments(), run_mgcma.DataArguments()

    def fingerprint(**extra):
        training_args = run_mgcma.MGCMATrainingArguments(output_dir=str(tmp_path), report_to="none", **extra)
        return run_records.run_fingerprint(1, {"rows": 3}, model_args, data_args, training_args, None)

    plain = fingerprint()
    assert not {"speech_encoder_learning_rate", "text_encoder_learning_rate"} & set(plain["training"])
    assert "learning_rate" in plain["training"]
    changed = fingerprint(text_encoder_learning_rate=1e-5)
    assert run_records.fingerprint_differences(plain, changed) == ["--text_encoder_learning_rate '<absent>' -> 1e-05"]


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
    fingerprint = run_records.data_fingerprint(datasets.Dataset.from_dict(base, features=features))
    assert fingerprint == run_records.data_fingerprint(datasets.Dataset.from_dict(dict(base), features=features))
    for column, value in (("label", [0, 1, 1]), ("text", ["x", "y", "Z"]), ("id", ["0", "1", "3"])):
        changed = run_records.data_fingerprint(datasets.Dataset.from_dict({**base, column: value}, features=features))
        assert changed != fingerprint, column
    Path(audio[2]).write_bytes(b"x" * 5)  # a file truncated in place
    assert run_records.data_fingerprint(datasets.Dataset.from_dict(base, features=features)) != fingerprint


def test_resume_last_skips_half_written_checkpoints(tmp_path, caplog):
    write_checkpoint(tmp_path, 2)
    write_checkpoint(tmp_path, 10)
    write_checkpoint(tmp_path, 12, truncate="model.safetensors")  # killed while writing the weights
    write_checkpoint(tmp_path, 14, truncate="optimizer.pt")
    write_checkpoint(tmp_path, 16, state=False)  # killed before the trainer state
    with caplog.at_level("WARNING"):
        assert run_records.last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert f"{tmp_path / 'checkpoint-12' / 'model.safetensors'}: truncated" in caplog.text
    assert f"{tmp_path / 'checkpoint-14' / 'optimizer.pt'}: truncated" in caplog.text
    assert "checkpoint-16: no trainer_state.json" in caplog.text
