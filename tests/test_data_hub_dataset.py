# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""`load_dataset_for_mgcma` on a local AudioFolder and on save_to_disk folders: the manifest loader's columns and
features, label normalisation, and errors that name what is wrong."""

import csv

import datasets
import pytest
from fixtures_data import write_wav

from modeling_mgcma.data import load_manifest
from modeling_mgcma.data.hub_dataset import detect_dataset_source, load_dataset_for_mgcma


ROWS = [  # file, transcript, emotion (case and whitespace as a user's file has them), speaker
    ("a.wav", "i am so happy", "Happy", "spk1"),
    ("b.wav", "this is awful", " sad", "spk1"),
    ("c.wav", "leave me alone", "ANGRY ", "spk2"),
    ("d.wav", "the weather is fine", "neutral", "spk2"),
    ("e.wav", "so glad", "happy", "spk3"),
]


def _audiofolder(root, rows=ROWS, sampling_rate=8000):
    root.mkdir(parents=True, exist_ok=True)
    for index, (file_name, *_rest) in enumerate(rows):
        write_wav(root / file_name, seconds=0.2, sampling_rate=sampling_rate, seed=index)
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "transcription", "emotion", "speaker"])
        writer.writerows(rows)
    return root


def test_audiofolder_matches_the_manifest_loader(tmp_path):
    folder = _audiofolder(tmp_path / "corpus")
    assert detect_dataset_source(folder) == "audiofolder"
    dataset = load_dataset_for_mgcma(folder, split="train", text_column="transcription", label_column="emotion",
                                     group_column="speaker", cache_dir=str(tmp_path / "cache"))  # fmt: skip
    # the same rows through a manifest: identical column names, order and features
    manifest = tmp_path / "corpus" / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "text", "label", "speaker"])
        writer.writerows((f, t, e.strip().lower(), s) for f, t, e, s in ROWS)
    reference = load_manifest(manifest)
    assert dataset.column_names == reference.column_names == ["id", "audio", "text", "label", "speaker"]
    assert dataset.features == reference.features
    assert dataset["label"] == reference["label"] == [1, 2, 0, 3, 1]  # DEFAULT_EMOTION_LABELS order
    assert dataset["text"] == [t for _, t, _, _ in ROWS] and dataset["speaker"] == [s for *_, s in ROWS]
    assert dataset["id"] == [f"train-{i}" for i in range(5)]
    audio = dataset[0]["audio"].get_all_samples()
    assert audio.sample_rate == 16000 and audio.data.shape == (1, 3200)  # 0.2 s at 8 kHz resampled to 16 kHz


def test_missing_column_lists_the_columns_that_exist(tmp_path):
    folder = _audiofolder(tmp_path / "corpus")
    with pytest.raises(ValueError, match=r"no column 'text' \(text_column\); its columns are .*'transcription'"):
        load_dataset_for_mgcma(folder, label_column="emotion", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"no column 'session' \(group_column\)"):
        load_dataset_for_mgcma(folder, text_column="transcription", label_column="emotion", group_column="session",
                               cache_dir=str(tmp_path / "cache"))  # fmt: skip


def test_unknown_label_names_value_and_row(tmp_path):
    rows = ROWS[:3] + [("f.wav", "what", "Frustrated", "spk3")]
    folder = _audiofolder(tmp_path / "corpus", rows)
    with pytest.raises(ValueError, match=r"split 'train', row 3: unknown label 'Frustrated'"):
        load_dataset_for_mgcma(folder, text_column="transcription", label_column="emotion",
                               labels=["angry", "happy", "sad", "neutral"], cache_dir=str(tmp_path / "cache"))  # fmt: skip
    # without a label set, the sorted distinct (normalised) labels
    dataset = load_dataset_for_mgcma(folder, split="train", text_column="transcription", label_column="emotion",
                                     cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert dataset.features["label"].names == ["angry", "frustrated", "happy", "sad"]


def _paths_dataset(folder, rows):
    return datasets.Dataset.from_dict(
        {
            "path": [str(folder / f) for f, *_ in rows],
            "sentence": [t for _, t, _, _ in rows],
            "emotion": [e for *_, e, _ in rows],
            "session": [int(s[-1]) for *_, s in rows],
            "label": [0] * len(rows),  # an unrelated column named like a core column: dropped with a warning
        }
    )


def test_save_to_disk_dataset_and_dataset_dict(tmp_path, caplog):
    folder = _audiofolder(tmp_path / "corpus")
    single = tmp_path / "single"
    _paths_dataset(folder, ROWS).save_to_disk(str(single))
    assert detect_dataset_source(single) == "save_to_disk"
    with caplog.at_level("WARNING"):
        dataset = load_dataset_for_mgcma(single, audio_column="path", text_column="sentence", label_column="emotion",
                                         group_column="session")  # fmt: skip
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.column_names == ["id", "audio", "text", "label", "session"]
    assert dataset["label"] == [1, 2, 0, 3, 1] and dataset["session"] == [1, 1, 2, 2, 3]
    assert "dropping column(s) ['label']" in caplog.text
    assert dataset[2]["audio"].get_all_samples().sample_rate == 16000

    # a DatasetDict whose label column is already a ClassLabel: its names and order are kept, in every split
    parts = _paths_dataset(folder, ROWS).remove_columns("label")
    parts = parts.map(lambda row: {"emotion": row["emotion"].strip().capitalize()})
    parts = parts.cast_column("emotion", datasets.ClassLabel(names=["Sad", "Happy", "Angry", "Neutral"]))
    several = tmp_path / "dict"
    datasets.DatasetDict({"train": parts.select(range(3)), "test": parts.select(range(3, 5))}).save_to_disk(str(several))
    assert detect_dataset_source(several) == "save_to_disk"
    loaded = load_dataset_for_mgcma(several, audio_column="path", text_column="sentence", label_column="emotion")
    assert isinstance(loaded, datasets.DatasetDict) and list(loaded) == ["train", "test"]
    assert loaded["test"].features["label"].names == ["sad", "happy", "angry", "neutral"]
    assert loaded["train"]["label"] == [1, 0, 2] and loaded["test"]["label"] == [3, 1]
    # joined for folds drawn by a group column: ids must be distinct across the splits too
    from modeling_mgcma.data.hub_dataset import load_joined_splits

    columns = {"audio_column": "path", "text_column": "sentence", "label_column": "emotion", "id_column": "name"}
    named = parts.add_column("name", ["u0", "u1", "u2", "u3", "u4"])
    clash = tmp_path / "clash"
    datasets.DatasetDict({"train": named.select(range(3)), "test": named.select(range(2, 5))}).save_to_disk(str(clash))
    with pytest.raises(ValueError, match=r"id 'u2' is in split 'train' and in split 'test'"):
        load_joined_splits(clash, **columns)
    distinct = tmp_path / "distinct"
    datasets.DatasetDict({"train": named.select(range(3)), "test": named.select(range(3, 5))}).save_to_disk(str(distinct))
    assert load_joined_splits(distinct, **columns)["id"] == ["u0", "u1", "u2", "u3", "u4"]
    with pytest.raises(ValueError, match=r"no split\(s\) \['validation'\]; its splits are \['train', 'test'\]"):
        load_dataset_for_mgcma(several, split="validation", audio_column="path", text_column="sentence",
                               label_column="emotion")  # fmt: skip
