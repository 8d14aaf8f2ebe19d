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
from modeling_mgcma.experiments import run_records  # noqa: E402
from modeling_mgcma.experiments.hub_upload import push_model_folder  # noqa: E402


REPO_ROOT = Path(__file__).resolve().parents[1]


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
    assert recorded["fold"] == 3 and recorded["training"]["learning_rate"] == 1e-3

    # other settings: refused before anything is trained, every stale fold and every difference named
    trained_folds.clear()
    with pytest.raises(ValueError) as error:
        run_mgcma.main(tiny_args(out, corpus, "--cross_validate", "--ablation", "S4", "--learning_rate", "1e-4"))
    message = str(error.value)
    assert trained_folds == []
    for k in range(1, 6):
        assert str(out / f"fold_{k}") in message
    assert "--learning_rate 0.001 -> 0.0001" in message and "--ablation None -> 'S4'" in message
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


# ---------------------------------------------------------------------------------------------------------------------
# Manifests: every row read or an error naming file and line; labels normalised and checked
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def wavs(tmp_path):
    from fixtures_data import write_wav

    for name in ("a.wav", "b.wav"):
        write_wav(tmp_path / name, 0.2)
    return tmp_path


def csv_manifest(folder, lines, name="m.csv", encoding="utf-8"):
    path = folder / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


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


def test_lone_surrogate_in_a_jsonl_transcript_names_line_and_field(wavs):
    from modeling_mgcma import cli

    path = wavs / "m.jsonl"
    path.write_text('{"audio": "a.wav", "text": "fine"}\n{"audio": "b.wav", "text": "bad \\ud83d here"}\n')
    with pytest.raises(cli.CommandError, match=r"m.jsonl, line 2, field 'text': lone surrogate U\+D83D"):
        cli._read_manifest(str(path), "audio", "text", "id")


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


# ---------------------------------------------------------------------------------------------------------------------
# Training data that cannot give an honest result: refused before any model is built
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def nothing_may_be_built(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a model was built before the data and arguments were checked")

    monkeypatch.setattr(run_mgcma, "build_model_and_processor", forbidden)


def manifest_run(tmp_path, wavs, rows, *extra, header="audio,text,label,session"):
    path = csv_manifest(wavs, [header] + rows, name="train.csv")
    return ["--manifest", str(path), "--output_dir", str(tmp_path / "out"), "--speech_model", "never/loaded",
            "--text_model", "never/loaded", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_train_epochs", "0"], r"--num_train_epochs must be > 0 \(or give --max_steps > 0\), got 0.0"),
        (["--num_train_epochs", "-1"], r"--num_train_epochs must be > 0 \(or give --max_steps > 0\), got -1.0"),
        (["--learning_rate", "0"], r"--learning_rate must be > 0, got 0.0"),
        (["--per_device_train_batch_size", "0"], r"--per_device_train_batch_size must be >= 1, got 0"),
        (["--gradient_accumulation_steps", "0"], r"--gradient_accumulation_steps must be >= 1, got 0"),
        (["--max_eval_samples", "0"], r"--max_eval_samples must be >= 1, got 0"),
        (["--class_names", "a,b"], r"--class_names names your data's classes: use it with --manifest or --dataset_name"),
        (["--label_names", "a,b"], r"--class_names names your data's classes: use it with --manifest or --dataset_name"),
    ],
)
def test_arguments_that_would_train_nothing_fail_first(argv, message, tmp_path, monkeypatch):
    monkeypatch.setattr(run_mgcma, "load_data", lambda *a, **k: pytest.fail("data loaded before the arguments were checked"))
    with pytest.raises(ValueError, match=message):
        run_mgcma.main(["--output_dir", str(tmp_path / "out"), *argv])


def test_one_class_data_is_refused_naming_the_missing_classes(tmp_path, wavs, nothing_may_be_built):
    rows = [f"a.wav,words {i},sad,{1 + i % 3}" for i in range(12)]
    with pytest.raises(ValueError, match=r"the data have no utterance of class\(es\) \['angry', 'happy', 'neutral'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows))
    calm = [f"a.wav,words {i},calm,{1 + i % 3}" for i in range(12)]
    with pytest.raises(ValueError, match=r"the data have a single class \['calm'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, calm))


def test_a_test_group_without_a_class_is_refused(tmp_path, wavs, nothing_may_be_built):
    labels = ["angry", "happy", "sad", "neutral"]
    rows = [f"a.wav,w,{labels[i % 4]},{1 + i % 3}" for i in range(24)]
    rows += [f"b.wav,w,{label},4" for label in ("angry", "happy", "sad")]  # group 4 has no neutral
    with pytest.raises(ValueError, match=r"fold that tests group '4'.*the test set \(3 rows\) has no utterance of class\(es\) \['neutral'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--test_session", "4"))


def test_too_few_rows_for_a_split_without_groups_is_a_clear_error(tmp_path, wavs, nothing_may_be_built):
    labels = ["angry", "happy", "sad", "neutral"]
    rows = [f"a.wav,w,{labels[i % 4]}" for i in range(12)]
    with pytest.raises(ValueError, match=r"12 rows are too few for the stratified train / validation / test split .*'session' is not in the data"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, header="audio,text,label"))


def test_label_names_fix_the_class_set_of_a_run(tmp_path, wavs, nothing_may_be_built):
    rows = [f"a.wav,w,{['calm', 'tense'][i % 2]},{1 + i % 2}" for i in range(8)] + ["b.wav,w, Tenze,2"]
    with pytest.raises(ValueError, match=r"train.csv, line 10: unknown label 'tenze'; expected one of \['calm', 'tense'\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--label_names", "calm,tense"))
    with pytest.raises(ValueError, match=r"train.csv, line 10: unknown label 'tenze'"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--class_names", "Calm, Tense"))


# ---------------------------------------------------------------------------------------------------------------------
# The push: an allow-list, the owner's visibility default, no local paths (HfApi patched: nothing leaves the machine)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    calls = {"create_repo": [], "uploads": []}

    def fake_create_repo(self, repo_id, **kwargs):
        calls["create_repo"].append({"repo_id": repo_id, **kwargs})

    def fake_upload_folder(self, *, repo_id, folder_path, allow_patterns=None, ignore_patterns=None, **kwargs):
        folder = Path(folder_path)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        kept = list(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        calls["uploads"].append({name: (folder / name).read_bytes() for name in kept})

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    return calls


def finished_folder(tmp_path):
    """A model folder as a run leaves it, plus what must never be uploaded."""
    out = tmp_path / "out"
    encoder = tmp_path / "encoders" / "speech"
    encoder.mkdir(parents=True)
    for name in ("model.safetensors", "configuration_mgcma.py", "modeling_mgcma.py", "processing_mgcma.py",
                 "pipeline_mgcma.py", "inference_mgcma.py", "tokenizer.json", "confusion_matrix.png", "training_args.bin",
                 "checkpoint-6/model.safetensors", "checkpoint-6/training_args.bin", "fold_1/training_args.bin",
                 "fold_1/model.safetensors", "notes.txt", "my_script.py", "runs/events.out"):  # fmt: skip
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"x")
    (out / "config.json").write_text(json.dumps({
        "model_type": "mgcma", "_name_or_path": str(out),
        "speech_config": {"_name_or_path": str(encoder), "hidden_size": 24},
        "text_config": {"_name_or_path": "bert-base-uncased", "hidden_size": 40},
    }))  # fmt: skip
    (out / "results.json").write_text(json.dumps({"folds": [{"test_session": 5, "ua": 0.5, "best_checkpoint": str(out / "checkpoint-6")}]}))
    (out / "trainer_state.json").write_text(json.dumps({"best_model_checkpoint": str(out / "checkpoint-6")}))
    (out / "fingerprint.json").write_text("{}")
    (out / "README.md").write_text("# card\n")
    return out, encoder


@pytest.mark.parametrize("private, expected", [([], None), (["--hub_private_repo", "true"], True), (["--hub_private_repo", "false"], False)])
def test_push_keeps_the_owner_visibility_default_unless_told(tmp_path, hub, private, expected):
    out, _ = finished_folder(tmp_path)
    *_, training_args, _ = run_mgcma.parse_arguments(["--output_dir", str(out), "--hub_model_id", "org/name", *private])
    push_model_folder(out, training_args)
    assert hub["create_repo"][0]["private"] is expected


def test_push_uploads_an_allow_list_without_pickles_or_local_paths(tmp_path, hub):
    out, encoder = finished_folder(tmp_path)
    *_, training_args, _ = run_mgcma.parse_arguments(["--output_dir", str(out), "--hub_model_id", "org/name"])
    push_model_folder(out, training_args)
    (uploaded,) = hub["uploads"]
    assert sorted(uploaded) == ["README.md", "config.json", "configuration_mgcma.py", "confusion_matrix.png",
                                "inference_mgcma.py", "model.safetensors", "modeling_mgcma.py", "pipeline_mgcma.py",
                                "processing_mgcma.py", "results.json", "tokenizer.json"]  # fmt: skip
    config = json.loads(uploaded["config.json"])
    assert "_name_or_path" not in config and "_name_or_path" not in config["speech_config"]
    assert config["text_config"]["_name_or_path"] == "bert-base-uncased" and config["speech_config"]["hidden_size"] == 24
    assert "best_checkpoint" not in json.loads(uploaded["results.json"])["folds"][0]
    for name, content in uploaded.items():
        assert str(tmp_path).encode() not in content, name
    assert json.loads((out / "config.json").read_text())["_name_or_path"] == str(out)  # the local folder is untouched


def test_card_base_model_lists_hub_ids_only(tmp_path):
    from modeling_mgcma.configuration_mgcma import MGCMAConfig
    from modeling_mgcma.experiments.model_card import render_model_card

    local = tmp_path / "my_wav2vec2"
    local.mkdir()
    results = {"folds": [{"test_session": 5, "wa": 0.5, "ua": 0.5}], "mean": {"wa": 0.5, "ua": 0.5}, "std": {"wa": 0, "ua": 0}}
    card = render_model_card(results, MGCMAConfig(), model_name="m", data_source="demo", hyperparameters={},
                             base_models=[str(local), "bert-base-uncased"])  # fmt: skip
    assert card.data.base_model == ["bert-base-uncased"] and str(tmp_path) not in str(card)


# ---------------------------------------------------------------------------------------------------------------------
# IEMOCAP copies: byte-order marks, truncated wavs, the exclusion summary
# ---------------------------------------------------------------------------------------------------------------------


def session1_release(tmp_path):
    from fixtures_data import quirky_session1, write_tree

    return write_tree(tmp_path / "IEMOCAP_full_release", quirky_session1())


@pytest.mark.parametrize("folder", ["transcriptions", "EmoEvaluation"])
def test_iemocap_text_files_with_a_byte_order_mark(tmp_path, folder):
    from modeling_mgcma.data import load_iemocap

    release = session1_release(tmp_path)
    target = release / "Session1" / "dialog" / folder / "Ses01F_script01_1.txt"
    target.write_bytes(target.read_text().encode("utf-8-sig"))
    dataset = load_iemocap(release, cache_dir=tmp_path / "cache", strict_counts=False)
    assert "Ses01F_script01_1_M012" in dataset["id"] and len(dataset) == 5


def five_session_release(tmp_path):
    from fixtures_data import Dialog, Utt, write_tree

    dialogs = [Dialog(f"Ses0{s}F_impro01", s, [Utt(f"Ses0{s}F_impro01_F00{i}", c, "words") for i, c in enumerate(("ang", "hap", "sad", "neu"))])
               for s in range(1, 6)]  # fmt: skip
    return write_tree(tmp_path / "IEMOCAP_full_release", dialogs, quirks=False)


def test_truncated_iemocap_wav_is_named_at_load_time(tmp_path):
    from fixtures_data import write_wav

    from modeling_mgcma.data import load_iemocap

    release = five_session_release(tmp_path)
    wav = release / "Session2" / "sentences" / "wav" / "Ses02F_impro01" / "Ses02F_impro01_F001.wav"
    write_wav(wav, 0.03)  # its label spans 1 s
    with pytest.raises(ValueError, match=r"Truncated wav for utterance Ses02F_impro01_F001: .*Ses02F_impro01_F001.wav holds 0.030 s \(480 samples\) but its label spans 1.000 s"):
        load_iemocap(release, cache_dir=tmp_path / "cache", strict_counts=False)


def test_iemocap_exclusion_summary_is_shown_at_warning_level(tmp_path, caplog):
    from modeling_mgcma.data import load_iemocap

    with caplog.at_level("WARNING"):
        load_iemocap(session1_release(tmp_path), cache_dir=tmp_path / "cache", strict_counts=False)
    summary = [r for r in caplog.records if "kept 5 utterances" in r.getMessage()]
    assert summary and summary[0].levelname == "WARNING"
    assert "label_outside_config=2 (fru=1, xxx=1)" in summary[0].getMessage()
    assert "has no Session2, Session3, Session4, Session5" in caplog.text


def test_run_mgcma_refuses_an_iemocap_copy_without_a_session(tmp_path, nothing_may_be_built):
    import shutil

    release = five_session_release(tmp_path)
    shutil.rmtree(release / "Session3")
    with pytest.raises(ValueError, match=r"has no Session3 \(found sessions \[1, 2, 4, 5\]\): leave-one-session-out would run 4 folds"):
        run_mgcma.main(["--data_dir", str(release), "--output_dir", str(tmp_path / "out"), "--cross_validate"])


def test_a_clip_shorter_than_the_encoder_needs_is_named_before_training(wavs):
    from fixtures_data import write_wav

    from modeling_mgcma.data import load_manifest

    write_wav(wavs / "tiny.wav", 100 / 16_000)  # 100 samples
    lines = ["id,audio,text,label", "u1,a.wav,x,sad", "u2,tiny.wav,y,angry", "u3,b.wav,z,happy"]
    dataset = load_manifest(csv_manifest(wavs, lines))
    model_args, data_args, *_ = run_mgcma.parse_arguments(["--output_dir", str(wavs / "out")])
    model, processor, _ = run_mgcma.build_model_and_processor(model_args, data_args, "demo", ["angry", "happy", "sad", "neutral"])
    with pytest.raises(ValueError, match=r"1 utterance\(s\) are shorter than the speech encoder's receptive field \(\d+ samples at 16000 Hz.*u2 \(.*tiny.wav: 100 samples\)"):
        run_mgcma.check_audio_lengths(dataset, model, processor.sampling_rate)
    run_mgcma.check_audio_lengths(dataset.filter(lambda row: row["id"] != "u2"), model, processor.sampling_rate)


# ---------------------------------------------------------------------------------------------------------------------
# Resuming: the newest complete checkpoint, and half-written files named
# ---------------------------------------------------------------------------------------------------------------------


def write_checkpoint(folder, step, *, state=True, truncate=None):
    from safetensors.torch import save_file

    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    save_file({"w": torch.zeros(64, 64)}, str(checkpoint / "model.safetensors"))
    torch.save({"step": step}, checkpoint / "optimizer.pt")
    if state:
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if truncate is not None:
        data = (checkpoint / truncate).read_bytes()
        (checkpoint / truncate).write_bytes(data[: len(data) // 2])
    return checkpoint


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


def test_resuming_from_a_half_written_checkpoint_names_the_file(tmp_path):
    checkpoint = write_checkpoint(tmp_path, 6, truncate="model.safetensors")
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint '.*checkpoint-6' cannot be resumed from: .*checkpoint-6/model.safetensors: truncated \(\d+ bytes, its tensors need \d+\)"):
        run_mgcma.parse_arguments(["--output_dir", str(tmp_path / "out"), "--resume_from_checkpoint", str(checkpoint)])


@pytest.mark.parametrize("several", [["--cross_validate"], ["--ablations", "S0,S4"]])
def test_one_checkpoint_folder_is_refused_for_several_folds_or_units(tmp_path, several):
    checkpoint = write_checkpoint(tmp_path, 6)
    with pytest.raises(ValueError, match="with --cross_validate or --ablations, --resume_from_checkpoint must be 'last'"):
        run_mgcma.parse_arguments(["--output_dir", str(tmp_path / "out"), *several, "--resume_from_checkpoint", str(checkpoint)])
    run_mgcma.parse_arguments(["--output_dir", str(tmp_path / "out"), *several, "--resume_from_checkpoint", "last"])


# ---------------------------------------------------------------------------------------------------------------------
# mgcma predict: one line on stderr, exit status 1, for every bad model folder, device or transcript
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import numpy as np
    import soundfile

    from modeling_mgcma import MGCMAForEmotionClassification, save_for_hub
    from modeling_mgcma.training.from_scratch import small_config, word_processor

    root = tmp_path_factory.mktemp("saved")
    processor = word_processor(["i", "am", "happy"])
    torch.manual_seed(0)
    save_for_hub(MGCMAForEmotionClassification(small_config(len(processor.tokenizer))), processor, root / "model")
    soundfile.write(root / "a.wav", (np.random.default_rng(0).standard_normal(9000) * 0.2).astype(np.float32), 16000)
    return root


def model_variant(saved_model, tmp_path, edit):
    import shutil

    folder = tmp_path / "variant"
    shutil.copytree(saved_model / "model", folder)
    edit(folder)
    return folder


def five_labels(folder):
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): f"c{i}" for i in range(5)}
    config["label2id"] = {f"c{i}": i for i in range(5)}
    (folder / "config.json").write_text(json.dumps(config))


def truncated_weights(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def pickled_weights(folder):
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


@pytest.mark.parametrize(
    "edit, message",
    [
        (five_labels, r"its weights do not fit its config.json \(classifier.out_proj.bias: \(4,\) in the weights, \(5,\) for the config"),
        (truncated_weights, r"variant/model.safetensors: truncated \(\d+ bytes, its tensors need \d+\)"),
        (pickled_weights, r"holds only pickled weights \(pytorch_model.bin\), which mgcma never loads"),
    ],
)
def test_cli_bad_model_folders_give_one_line(saved_model, tmp_path, capsys, edit, message):
    import re

    from modeling_mgcma.cli import main

    folder = model_variant(saved_model, tmp_path, edit)
    status = main(["predict", "--model", str(folder), str(saved_model / "a.wav"), "--text", "i am happy"])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--device", "cuda", "--text", "i am"], r"--device cuda: this torch build or machine has no CUDA device; use --device cpu"),
        (["--device", "gpu", "--text", "i am"], r"--device 'gpu' is not a torch device"),
        (["--text", "i am \udcff happy"], r"--text #1 is not valid UTF-8 text \(undecodable byte 0xFF at position 5\)"),
        (["--text", "i \ud83d"], r"--text #1 holds a lone surrogate U\+D83D at position 2"),
    ],
)
def test_cli_bad_device_or_transcript_give_one_line(saved_model, capsys, monkeypatch, extra, message):
    import re

    from modeling_mgcma.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine with a GPU
    status = main(["predict", "--model", str(saved_model / "model"), str(saved_model / "a.wav"), *extra])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_processor_names_a_lone_surrogate_in_a_transcript(saved_model):
    from modeling_mgcma.processing_mgcma import MGCMAProcessor

    processor = MGCMAProcessor.from_pretrained(saved_model / "model")
    with pytest.raises(ValueError, match=r"text #1 holds a lone surrogate U\+D800 at position 3: not valid Unicode"):
        processor(text=["fine", "bad\ud800"])


# ---------------------------------------------------------------------------------------------------------------------
# Reported losses add up
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ablation", [None, "S4"])
def test_test_loss_is_the_weighted_sum_of_its_components_whatever_the_batch_sizes(corpus, tmp_path, ablation):
    from transformers import TrainingArguments

    from modeling_mgcma.data import generate_demo_corpus, load_iemocap
    from modeling_mgcma.training.collators import MGCMADataCollator
    from modeling_mgcma.training.trainer import MGCMATrainer

    dataset = load_iemocap(generate_demo_corpus(corpus, utterances_per_session=8), strict_counts=False).select(range(10))
    argv = ["--output_dir", str(tmp_path)] + (["--ablation", ablation] if ablation else [])
    model_args, data_args, _, preset = run_mgcma.parse_arguments(argv)
    torch.manual_seed(0)
    model, processor, _ = run_mgcma.build_model_and_processor(model_args, data_args, preset, dataset.features["label"].names)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none")  # batches 4, 4, 2
    trainer = MGCMATrainer(model=model, args=args, data_collator=MGCMADataCollator(processor))
    metrics = trainer.predict(dataset, metric_key_prefix="test").metrics
    config = model.config
    weights = {"ce": config.classification_loss_weight, "da": config.distribution_loss_weight, "ia": config.instance_loss_weight}
    parts = {key: metrics[f"test_loss_{key}"] for key in weights if f"test_loss_{key}" in metrics}
    assert set(parts) == ({"ce"} if ablation == "S4" else {"ce", "da", "ia"})
    assert metrics["test_loss"] == pytest.approx(sum(weights[k] * v for k, v in parts.items()), rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Further cases of the same classes
# ---------------------------------------------------------------------------------------------------------------------


def test_a_config_file_with_a_byte_order_mark_or_bad_json(tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_bytes(json.dumps({"output_dir": str(tmp_path / "o"), "num_train_epochs": 2}).encode("utf-8-sig"))
    assert run_mgcma.parse_arguments([str(config_file)])[2].num_train_epochs == 2
    config_file.write_text('{"output_dir": "o",\n "num_train_epochs": }')
    with pytest.raises(ValueError, match=r"run.json, line 2: not valid JSON"):
        run_mgcma.parse_arguments([str(config_file)])


def test_rows_without_a_group_are_refused_not_made_a_fold(tmp_path, wavs, nothing_may_be_built):
    labels = ["angry", "happy", "sad", "neutral"]
    rows = [f"a.wav,w,{labels[i % 4]},{1 + i % 3}" for i in range(24)] + ["b.wav,w,sad,"]
    with pytest.raises(ValueError, match=r"1 row\(s\) have no value in the group column 'session' \(row\(s\) \[24\]"):
        run_mgcma.main(manifest_run(tmp_path, wavs, rows, "--cross_validate"))


def test_a_damaged_fold_result_is_named_not_a_traceback(tmp_path, corpus):
    out = tmp_path / "cv"
    run_mgcma.main(tiny_args(out, corpus, "--cross_validate"))
    (out / "fold_2" / "results.json").write_text('{"folds": [')
    with pytest.raises(ValueError, match=r"fold_2/results.json is not a readable fold result"):
        run_mgcma.main(tiny_args(out, corpus, "--cross_validate"))


def test_cli_names_a_clip_too_short_for_the_encoder(saved_model, tmp_path, capsys):
    from fixtures_data import write_wav

    from modeling_mgcma.cli import main

    write_wav(tmp_path / "tiny.wav", 100 / 16_000)
    status = main(["predict", "--model", str(saved_model / "model"), str(saved_model / "a.wav"), str(tmp_path / "tiny.wav"),
                   "--text", "i am", "--text", "happy"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{tmp_path / 'tiny.wav'} (id {tmp_path / 'tiny.wav'}) is too short: 100 samples at 16000 Hz" in err


def test_saved_test_ids_belong_to_their_predictions_under_length_grouping(tmp_path, corpus):
    """With `group_by_length`, predictions come back sorted by length: the saved ids must follow that order."""
    from modeling_mgcma.data import load_iemocap

    out = tmp_path / "out"
    run_mgcma.main(tiny_args(out, corpus, "--train_sampling_strategy", "group_by_length", "--per_device_eval_batch_size", "3"))
    saved = json.loads((out / "test_predictions.json").read_text())
    dataset = load_iemocap(corpus, strict_counts=False)
    label_of = dict(zip(dataset["id"], dataset["label"]))
    test_ids = [i for i in dataset["id"] if i.startswith("Ses05")]
    assert sorted(saved["ids"]) == sorted(test_ids)
    assert saved["ids"] != test_ids  # the length order differs from the dataset's, so the pairing is tested
    assert [label_of[i] for i in saved["ids"]] == saved["references"]
