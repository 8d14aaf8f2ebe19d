# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""A fold option (--cross_validate, --test_group, an explicit --group_column) whose group column is not in the data
is an error listing the columns that exist, from a manifest and from --dataset_name alike; it never turns into one
stratified split reported as cross-validation. Nothing is trained: every case fails before a model is built."""

import csv
import sys
from pathlib import Path

import datasets
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run_mgcma.py is a script at the repository root
from fixtures_data import write_wav  # noqa: E402

import run_mgcma  # noqa: E402
from modeling_mgcma.data.splits import held_out_groups  # noqa: E402


@pytest.fixture(scope="module")
def speaker_data(tmp_path_factory):
    """12 rows, 3 speakers, 2 classes: a CSV manifest and the same rows as a save_to_disk folder."""
    root = tmp_path_factory.mktemp("groups")
    rows = []
    for index in range(12):
        write_wav(root / f"clip{index}.wav", seconds=0.2, seed=index)
        rows.append({"audio": f"clip{index}.wav", "text": "hello there", "label": ("happy", "sad")[index % 2],
                     "speaker": f"spk{index % 3}"})
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    saved = datasets.Dataset.from_list([{**row, "audio": str(root / row["audio"])} for row in rows])
    saved.save_to_disk(str(root / "saved"))
    return root


def test_held_out_groups_refuses_a_required_column_that_is_missing():
    data = datasets.Dataset.from_dict({"label": [0, 1], "speaker": ["a", "b"], "text": ["x", "y"]})
    with pytest.raises(ValueError, match="speakr") as error:
        held_out_groups(data, "speakr", all_groups=True, required=True)
    assert "speaker" in str(error.value) and "text" in str(error.value)
    assert held_out_groups(data, "speakr") == [None]  # not asked for: the stratified split, as documented


@pytest.mark.parametrize("options", [["--cross_validate"], ["--test_group", "2"], []])
@pytest.mark.parametrize("source", ["manifest", "dataset_name"])
def test_a_fold_option_on_a_missing_group_column_is_an_error_listing_the_columns(speaker_data, tmp_path, options,
                                                                                 source, monkeypatch):
    built = []
    monkeypatch.setattr(run_mgcma, "build_model_and_processor", lambda *a, **k: built.append(a) or 1 / 0)
    data = ["--manifest", str(speaker_data / "manifest.csv")] if source == "manifest" else [
        "--dataset_name", str(speaker_data / "saved")]  # fmt: skip
    with pytest.raises(ValueError, match="speakr") as error:
        run_mgcma.main([*data, "--group_column", "speakr", *options, "--output_dir", str(tmp_path / "out"),
                        "--speech_model", "unused", "--text_model", "unused"])  # fmt: skip
    assert "speaker" in str(error.value)  # the columns that exist are listed
    assert not built


def test_the_dataset_name_group_column_reaches_the_folds(speaker_data, monkeypatch):
    model_args, data_args, training_args, *_ = run_mgcma.read_run_arguments(
        ["--dataset_name", str(speaker_data / "saved"), "--group_column", "speaker", "--cross_validate"])
    dataset = run_mgcma.load_data(data_args, training_args)
    assert "speaker" in dataset.column_names
    assert held_out_groups(dataset, "speaker", all_groups=True, required=True) == ["spk0", "spk1", "spk2"]
