# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""load_manifest (CSV / JSONL): every row read or an error naming file and line; labels normalised and
checked."""

import json

import datasets
import pytest
from fixtures_data import csv_manifest, write_wav

from modeling_mgcma.configuration_mgcma import DEFAULT_EMOTION_LABELS
from modeling_mgcma.data import load_manifest


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


TEN_ROWS = ["audio,text,label"] + [f"{'ab'[i % 2]}.wav,words {i},{['angry', 'happy', 'sad', 'neutral'][i % 4]}" for i in range(10)]


@pytest.mark.parametrize(
    "edit, message",
    [
        # line 4 opens a quote that is never closed: the later rows would become one transcript
        ({4: 'b.wav,"it was, you know,sad'}, r"m.csv, line 4: a quoted field opened on this line is never closed"),
        # ... closed by a stray quote five lines later: the rows in between would vanish into one field
        ({4: 'b.wav,"it was,sad', 9: 'b.wav,words",happy'}, r"m.csv, line 4: field 'text' runs over lines 4-9 and holds what look like rows"),
        ({3: "a.wav,hello, there,angry"}, r"m.csv, line 3: 4 field\(s\) where the header has 3 \(audio, text, label\): extra value\(s\) \['angry'\]"),
        ({5: "a.wav,hello"}, r"m.csv, line 5: 2 field\(s\) where the header has 3 \(audio, text, label\): missing \['label'\]"),
        ({1: "audio,text,audio"}, r"m.csv, line 1: header names \['audio'\] more than once"),
        ({1: "audio,text,label,"}, r"m.csv, line 1: header column\(s\) \[4\] have no name"),
        ({6: 'a.wav,"quoted" then more,sad'}, r"m.csv, line 6: not valid CSV"),
    ],
)
def test_malformed_csv_rows_are_errors_naming_the_line(wavs, edit, message):
    from modeling_mgcma import cli
    from modeling_mgcma.data import load_manifest

    lines = list(TEN_ROWS)
    for line_number, text in edit.items():
        lines[line_number - 1] = text
    path = csv_manifest(wavs, lines)
    with pytest.raises(ValueError, match=message):
        load_manifest(path)
    # the prediction command reads manifests the same way, and stops before loading any model
    with pytest.raises(cli.CommandError, match=message):
        cli._read_manifest(str(path), "audio", "text", "id")


def test_a_good_csv_gives_every_row(wavs):
    from modeling_mgcma.data import load_manifest

    lines = list(TEN_ROWS)
    lines[4] = 'b.wav,"a transcript, with a comma and a\nline break",sad'  # valid CSV quoting
    dataset = load_manifest(csv_manifest(wavs, lines))
    assert len(dataset) == 10 and dataset[3]["text"] == "a transcript, with a comma and a\nline break"


def test_mixed_types_in_a_jsonl_column_name_both_lines(wavs):
    from modeling_mgcma.data import load_manifest

    rows = [{"audio": "a.wav", "text": "x", "label": "sad", "speaker": "s1"},
            {"audio": "b.wav", "text": "y", "label": "angry", "speaker": 3}]  # fmt: skip
    path = wavs / "m.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match=r"m.jsonl, line 2: column 'speaker' is a number \(3\) but text \('s1'\) on line 1"):
        load_manifest(path)



def test_non_utf8_byte_names_its_line(wavs):
    from modeling_mgcma.data import load_manifest

    path = wavs / "m.csv"
    path.write_bytes(b"audio,text,label\na.wav,ok,sad\nb.wav,caf\xe9,happy\n")
    with pytest.raises(ValueError, match=r"m.csv, line 3: not UTF-8 text"):
        load_manifest(path)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_utf8_bom_is_not_part_of_the_first_column(wavs, suffix):
    from modeling_mgcma import cli
    from modeling_mgcma.data import load_manifest

    rows = [{"id": f"u{i}", "audio": "ab"[i % 2] + ".wav", "text": f"t{i}", "label": "sad"} for i in range(4)]
    path = wavs / f"m.{suffix}"
    if suffix == "csv":
        body = "id,audio,text,label\n" + "".join(f"{r['id']},{r['audio']},{r['text']},{r['label']}\n" for r in rows)
    else:
        body = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_bytes(body.encode("utf-8-sig"))  # Excel's "CSV UTF-8" starts with a byte-order mark
    assert load_manifest(path)["id"] == ["u0", "u1", "u2", "u3"]
    assert [item["id"] for item in cli._read_manifest(str(path), "audio", "text", "id")] == ["u0", "u1", "u2", "u3"]


def test_labels_ignore_case_and_whitespace(wavs):
    from modeling_mgcma.data import load_manifest

    lines = ["audio,text,label", "a.wav,x,Angry", "b.wav,y, sad ", "a.wav,z,NEUTRAL", "b.wav,w,happy", "a.wav,v,Happy"]
    dataset = load_manifest(csv_manifest(wavs, lines))
    assert dataset.features["label"].names == ["angry", "happy", "sad", "neutral"]
    assert dataset["label"] == [0, 2, 3, 1, 1]
    custom = load_manifest(csv_manifest(wavs, ["audio,text,label", "a.wav,x,Calm ", "b.wav,y,TENSE"]), labels=["calm", "Tense"])
    assert custom.features["label"].names == ["calm", "tense"] and custom["label"] == [0, 1]


def test_a_label_outside_a_known_set_is_an_error_and_an_inferred_set_is_shown(wavs, caplog):
    from modeling_mgcma.data import load_manifest

    lines = list(TEN_ROWS)
    lines[7] = "b.wav,words,furious"
    path = csv_manifest(wavs, lines)
    with pytest.raises(ValueError, match=r"m.csv, line 8: unknown label 'furious'; expected one of \['angry', 'happy', 'sad', 'neutral'\]"):
        load_manifest(path, labels=["angry", "happy", "sad", "neutral"])
    with caplog.at_level("WARNING"):
        dataset = load_manifest(path)
    assert dataset.features["label"].names == ["angry", "furious", "happy", "neutral", "sad"]
    assert "the classes are the 5 distinct values of column 'label': angry (3 rows), furious (1 rows)" in caplog.text
    assert "class 'furious' has only 1 row(s) (line(s) 8)" in caplog.text
