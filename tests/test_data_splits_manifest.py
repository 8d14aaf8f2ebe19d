# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""loso_fold and load_manifest."""

import json

import datasets
import numpy as np
import pytest
from fixtures_data import write_wav

from modeling_mgcma.configuration_mgcma import DEFAULT_EMOTION_LABELS
from modeling_mgcma.data import load_manifest, loso_fold


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 500
    sessions = rng.integers(1, 6, n)
    genders = rng.choice(["F", "M"], n)
    return datasets.Dataset.from_dict(
        {
            "id": [f"u{i}" for i in range(n)],
            "session": sessions.tolist(),
            "speaker": [f"Ses{s:02d}_{g}" for s, g in zip(sessions, genders)],
            "label": rng.integers(0, 4, n).tolist(),
        }
    )


@pytest.mark.parametrize("test_session", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("validation", ["stratified", "speaker"])
def test_test_session_never_in_train_or_validation(table, test_session, validation):
    fold = loso_fold(table, test_session, validation=validation, seed=1)
    assert set(fold) == {"train", "validation", "test"}
    assert set(fold["test"]["session"]) == {test_session}
    assert test_session not in set(fold["train"]["session"]) | set(fold["validation"]["session"])
    ids = [set(fold[split]["id"]) for split in ("train", "validation", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == len(table)
    assert len(fold["validation"]) > 0
    if validation == "speaker":
        assert len(set(fold["validation"]["speaker"])) == 1
        assert not set(fold["validation"]["speaker"]) & set(fold["train"]["speaker"])


def test_stratified_validation_is_about_ten_percent_per_class_and_seeded(table):
    fold = loso_fold(table, 3, seed=0)
    pool = table.filter(lambda row: row["session"] != 3)
    for label in range(4):
        in_pool = sum(1 for x in pool["label"] if x == label)
        in_validation = sum(1 for x in fold["validation"]["label"] if x == label)
        assert in_validation == round(0.1 * in_pool)
    assert loso_fold(table, 3, seed=0)["validation"]["id"] == fold["validation"]["id"]
    assert loso_fold(table, 3, seed=1)["validation"]["id"] != fold["validation"]["id"]


def test_no_validation_and_bad_arguments(table):
    assert set(loso_fold(table, 2, validation="none")) == {"train", "test"}
    with pytest.raises(ValueError, match=r"test_session must be one of the sessions in the dataset \[1, 2, 3, 4, 5\], got 6"):
        loso_fold(table, 6)
    with pytest.raises(ValueError, match="got '1'"):
        loso_fold(table, "1")
    with pytest.raises(ValueError, match="validation must be one of"):
        loso_fold(table, 1, validation="random")
    with pytest.raises(ValueError, match="validation_speaker must be a training-session speaker"):
        loso_fold(table, 1, validation="speaker", validation_speaker="Ses01_F")


@pytest.fixture
def clips(tmp_path):
    for name in ("a.wav", "b.wav", "sub/c.wav"):
        write_wav(tmp_path / "audio" / name, 0.2)
    return tmp_path


def write_manifest(folder, name, rows):
    path = folder / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        keys = list(rows[0])
        lines = [",".join(keys)] + [",".join(f'"{row[k]}"' for k in keys) for row in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [
    {"path": "audio/a.wav", "transcript": "hello: there [LAUGHTER]", "emotion": "happy", "speaker": "s1"},
    {"path": "audio/b.wav", "transcript": "go away", "emotion": "angry", "speaker": "s2"},
    {"path": "audio/sub/c.wav", "transcript": "ok", "emotion": "neutral", "speaker": "s1"},
]


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_manifest_round_trip(clips, name):
    path = write_manifest(clips, name, ROWS)
    dataset = load_manifest(path, audio_column="path", text_column="transcript", label_column="emotion")
    assert dataset.features["label"].names == list(DEFAULT_EMOTION_LABELS)
    assert isinstance(dataset.features["audio"], datasets.Audio) and dataset.features["audio"].sampling_rate == 16000
    assert dataset["text"] == ["hello: there [LAUGHTER]", "go away", "ok"]
    assert [DEFAULT_EMOTION_LABELS[i] for i in dataset["label"]] == ["happy", "angry", "neutral"]
    assert dataset["speaker"] == ["s1", "s2", "s1"]
    assert dataset["id"] == ["m-0", "m-1", "m-2"]
    assert dataset[2]["audio"].get_all_samples().data.shape == (1, 3200)


def test_manifest_custom_label_list_and_absolute_paths(clips):
    rows = [dict(ROWS[0], path=str(clips / "audio/a.wav"), emotion="calm", id="x1")]
    dataset = load_manifest(write_manifest(clips, "m.jsonl", rows), "path", "transcript", "emotion", labels=["calm", "tense"])
    assert dataset.features["label"].names == ["calm", "tense"] and dataset["label"] == [0] and dataset["id"] == ["x1"]


def test_manifest_errors(clips):
    path = write_manifest(clips, "m.csv", ROWS)
    with pytest.raises(ValueError, match=r"no column 'audio' \(audio_column\); its columns are \['path', 'transcript', 'emotion', 'speaker'\]"):
        load_manifest(path)
    with pytest.raises(ValueError, match=r"line 3: unknown label 'angry'; expected one of \['happy', 'neutral'\]"):
        load_manifest(path, "path", "transcript", "emotion", labels=["happy", "neutral"])
    missing = write_manifest(clips, "gone.jsonl", [ROWS[0], dict(ROWS[1], path="audio/nope.wav")])
    with pytest.raises(FileNotFoundError, match=r"gone.jsonl, line 2: audio file not found: .*audio/nope.wav"):
        load_manifest(missing, "path", "transcript", "emotion")
    (clips / "m.tsv").write_text("a\tb\n")
    with pytest.raises(ValueError, match=r"Unsupported manifest .*m.tsv"):
        load_manifest(clips / "m.tsv")
    with pytest.raises(FileNotFoundError, match="Manifest not found"):
        load_manifest(clips / "absent.csv")
    (clips / "bad.jsonl").write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_manifest(clips / "bad.jsonl")
    partly_named = write_manifest(clips, "ids.jsonl", [dict(ROWS[0], id="u1"), ROWS[1]])
    with pytest.raises(ValueError, match=r"ids.jsonl, line 2: no value in column 'id'"):
        load_manifest(partly_named, "path", "transcript", "emotion")
