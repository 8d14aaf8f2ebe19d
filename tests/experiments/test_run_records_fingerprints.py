# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A run is "finished with the same settings" only when what determines its result is the same: the audio's
content (not just its size), a local encoder's weights (not just its file names and sizes); a checkpoint of another
run is refused before it is loaded."""

import json
import os
import sys
from pathlib import Path

import datasets
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
from fixtures_data import write_wav  # noqa: E402

import run_mgcma  # noqa: E402
from modeling_mgcma.experiments import run_records  # noqa: E402


def audio_dataset(folder, seed):
    paths = []
    for index in range(3):
        write_wav(folder / f"clip{index}.wav", seconds=0.2, seed=seed + index)
        paths.append(str(folder / f"clip{index}.wav"))
    data = datasets.Dataset.from_dict({"audio": paths, "text": ["a", "b", "c"], "label": [0, 1, 0]})
    return data.cast_column("label", datasets.ClassLabel(names=["x", "y"]))


@pytest.mark.parametrize("as_audio_feature", [False, True])
def test_same_length_noise_in_place_of_the_audio_changes_the_data_fingerprint(tmp_path, as_audio_feature):
    data = audio_dataset(tmp_path, seed=0)
    if as_audio_feature:
        data = data.cast_column("audio", datasets.Audio(sampling_rate=16000))
    before = run_records.data_fingerprint(data)
    times = {p: (os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns) for p in tmp_path.glob("*.wav")}
    audio_dataset(tmp_path, seed=100)  # same names, same sizes, other samples
    for path, (atime, mtime) in times.items():
        os.utime(path, ns=(atime, mtime))  # even with the old modification times
    assert run_records.data_fingerprint(data) != before
    assert run_records.data_fingerprint(data) == run_records.data_fingerprint(data)


def test_a_moved_copy_of_the_same_audio_keeps_the_data_fingerprint(tmp_path):
    first = run_records.data_fingerprint(audio_dataset(tmp_path / "a", seed=0))
    assert run_records.data_fingerprint(audio_dataset(tmp_path / "b", seed=0)) == first


def test_a_reinitialised_local_encoder_of_the_same_architecture_is_not_the_same(tmp_path):
    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(b"\x01" * 256)
    model_args = run_mgcma.ModelArguments(speech_model=str(folder), text_model=str(folder))
    _, data_args, training_args, *_ = run_mgcma.read_run_arguments(["--output_dir", str(tmp_path / "o")])
    data_fp = {"rows": 1}
    before = run_records.run_fingerprint(1, data_fp, model_args, data_args, training_args, "demo")
    (folder / "model.safetensors").write_bytes(b"\x02" * 256)  # same names and sizes, other weights
    after = run_records.run_fingerprint(1, data_fp, model_args, data_args, training_args, "demo")
    assert before["model"]["speech_model"] != after["model"]["speech_model"]
    assert run_records.fingerprint_differences(before, after)
    assert str(folder) not in json.dumps(after)  # no local path in a record that may be uploaded


def fake_checkpoint(folder):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    header = b"{}"
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    return folder


def test_a_checkpoint_of_another_run_is_refused_before_loading(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    base = ["--demo_corpus_dir", str(corpus), "--demo_utterances_per_session", "8", "--max_steps", "1"]
    other = tmp_path / "other"
    _, data_args, training_args, preset, _ = run_mgcma.read_run_arguments([*base, "--output_dir", str(other),
                                                                            "--learning_rate", "0.5"])
    model_args = run_mgcma.parse_arguments([*base, "--output_dir", str(other), "--learning_rate", "0.5"])[0]
    dataset = run_mgcma.load_data(data_args, training_args)
    recorded = run_records.fold_fingerprints(dataset, [5], model_args, data_args, training_args, preset)[5]
    run_records.write_fingerprint(other, recorded)
    checkpoint = fake_checkpoint(other / "checkpoint-1")
    monkeypatch.setattr(run_mgcma, "build_model_and_processor", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(ValueError, match="learning_rate") as error:
        run_mgcma.main([*base, "--output_dir", str(tmp_path / "mine"), "--resume_from_checkpoint", str(checkpoint)])
    assert str(checkpoint) in str(error.value)
