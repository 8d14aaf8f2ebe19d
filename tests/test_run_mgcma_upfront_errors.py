# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Bad arguments are refused before any model is built, in one sentence naming the argument and its value: an empty
validation split, a --max_duration below the speech encoder's receptive field, a local path that does not exist
(not "a malformed Hub id"); a save_to_disk dataset's relative audio paths are read from the dataset's folder."""

import csv
import os
import sys
from pathlib import Path

import datasets
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run_mgcma.py is a script at the repository root
from fixtures_data import write_wav  # noqa: E402

import run_mgcma  # noqa: E402


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr(run_mgcma, "build_model_and_processor", lambda *a, **k: pytest.fail("a model was built"))


def small_manifest(folder, rows=12):
    with open(folder / "m.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "text", "label", "speaker"])
        for index in range(rows):
            write_wav(folder / f"c{index}.wav", seconds=0.2, seed=index)
            writer.writerow([f"c{index}.wav", "hi", ("happy", "sad")[index % 2], f"s{index % 3}"])
    return folder / "m.csv"


@pytest.mark.parametrize("extra", [[], ["--group_column", "speaker", "--cross_validate"]])
def test_an_empty_validation_split_is_refused_naming_the_fraction(tmp_path, no_model, extra):
    manifest = small_manifest(tmp_path)
    with pytest.raises(ValueError, match="--validation_fraction 0.01"):
        run_mgcma.main(["--manifest", str(manifest), "--class_names", "happy,sad", "--validation_fraction", "0.01",
                        "--output_dir", str(tmp_path / "out"), "--speech_model", "x", "--text_model", "y", *extra])


@pytest.mark.parametrize("seconds", ["0.01", "0.001"])
def test_max_duration_below_the_receptive_field_is_refused(tmp_path, no_model, seconds):
    with pytest.raises(ValueError, match=f"--max_duration {seconds}") as error:
        run_mgcma.main(["--max_duration", seconds, "--output_dir", str(tmp_path / "out"),
                        "--demo_corpus_dir", str(tmp_path / "corpus"), "--demo_utterances_per_session", "8"])
    assert "receptive field" in str(error.value)


@pytest.mark.parametrize("argument", ["--dataset_name", "--speech_model"])
@pytest.mark.parametrize("value", ["./missing_folder", "../typo", "/nonexistent/deep/folder", "~/no_such_dir_mgcma"])
def test_a_local_path_that_does_not_exist_is_named_as_such(tmp_path, argument, value):
    argv = [argument, value, "--output_dir", str(tmp_path / "out")]
    if argument == "--speech_model":
        argv += ["--text_model", "bert-base-uncased"]
    with pytest.raises(ValueError, match="does not exist") as error:
        run_mgcma.read_run_arguments(argv)
    assert argument in str(error.value) and value in str(error.value)


def test_relative_audio_paths_of_a_saved_dataset_are_read_from_its_folder(tmp_path, monkeypatch):
    saved = tmp_path / "saved"
    (saved / "clips").mkdir(parents=True)
    rows = []
    for index in range(4):
        write_wav(saved / "clips" / f"c{index}.wav", seconds=0.2, seed=index)
        rows.append({"audio": f"clips/c{index}.wav", "text": "hi", "label": ("happy", "sad")[index % 2]})
    datasets.Dataset.from_list(rows).save_to_disk(str(saved))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from modeling_mgcma.data.hub_dataset import load_joined_splits

    dataset = load_joined_splits(str(saved))
    audio = dataset.cast_column("audio", datasets.Audio(decode=False))["audio"]
    assert all(os.path.isfile(value["path"]) for value in audio)
    assert Path(audio[0]["path"]).resolve() == (saved / "clips" / "c0.wav").resolve()
    assert len(dataset[0]["audio"]["array"]) == 3200
