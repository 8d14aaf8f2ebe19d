# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""`mgcma predict`: audio files + --text, CSV/JSONL manifests, JSON lines out, and the exit codes a shell expects."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
from test_pipeline import save_tiny_asr

from modeling_mgcma import MGCMAForEmotionClassification, MultimodalEmotionRecognitionPipeline, save_for_hub
from modeling_mgcma.cli import main
from modeling_mgcma.training.from_scratch import small_config, word_processor


WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "fine"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A saved tiny model, three clips in a sub-folder, and the pipeline's own answers for them."""
    root = tmp_path_factory.mktemp("cli")
    processor = word_processor(WORDS)
    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(small_config(len(processor.tokenizer)))
    with torch.no_grad():
        for parameter in model.classifier.parameters():
            parameter.mul_(40.0)
    save_for_hub(model, processor, root / "model")
    (root / "clips").mkdir()
    rng = np.random.default_rng(0)
    clips = {"a.wav": (rng.standard_normal(9000) * 0.2, 16000), "b.wav": (rng.standard_normal((11000, 2)) * 0.2, 22050),
             "c.wav": (rng.standard_normal(4000) * 0.2, 8000)}
    for name, (array, rate) in clips.items():
        soundfile.write(root / "clips" / name, array.astype(np.float32), rate)
    texts = {"a.wav": "i am so happy today", "b.wav": "sad", "c.wav": "i am angry"}
    pipe = MultimodalEmotionRecognitionPipeline(model=model, processor=processor, device="cpu")
    reference = {name: pipe({"audio": str(root / "clips" / name), "text": texts[name]}) for name in clips}
    return {"root": root, "model": str(root / "model"), "texts": texts, "reference": reference, "pipe": pipe}


def run_main(argv, capsys):
    """main() in this process -> (exit status, stdout JSON records, stderr)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    return status, records, captured.err


def check(record, reference, record_id, text):
    assert record["id"] == record_id
    assert record["label"] == reference["labels"][0]["label"]
    assert record["score"] == pytest.approx(reference["labels"][0]["score"], abs=1e-5)
    assert list(record["scores"]) == [entry["label"] for entry in reference["labels"]]  # sorted by score
    assert list(record["scores"].values()) == pytest.approx([e["score"] for e in reference["labels"]], abs=1e-5)
    assert record["uncertainty"] == pytest.approx(reference["uncertainty"], rel=1e-4)
    assert record["transcript"] == text


def test_predict_audio_files_with_text(setup, capsys):
    clips = setup["root"] / "clips"
    status, records, err = run_main(
        ["predict", "--model", setup["model"], clips / "a.wav", clips / "b.wav",
         "--text", setup["texts"]["a.wav"], "--text", setup["texts"]["b.wav"], "--batch_size", "2"],
        capsys,
    )
    assert status == 0, err
    assert len(records) == 2
    for record, name in zip(records, ("a.wav", "b.wav")):
        check(record, setup["reference"][name], str(clips / name), setup["texts"][name])
    status, records, _ = run_main(
        ["predict", "--model", setup["model"], clips / "c.wav", "--text", setup["texts"]["c.wav"], "--top_k", "2"], capsys
    )
    assert status == 0 and len(records[0]["scores"]) == 2
    assert records[0]["label"] == setup["reference"]["c.wav"]["labels"][0]["label"]


def test_predict_csv_manifest_relative_paths_and_filename_ids(setup, capsys, monkeypatch):
    manifest = setup["root"] / "clips" / "utterances.csv"
    manifest.write_text("audio,text,speaker\n" + "".join(f"{n},{setup['texts'][n]},spk\n" for n in ("c.wav", "a.wav", "b.wav")))
    monkeypatch.chdir(setup["root"])  # relative paths are resolved against the manifest's folder, not the working directory
    status, records, err = run_main(["predict", "--model", setup["model"], "--manifest", manifest, "--batch_size", "2"], capsys)
    assert status == 0, err
    assert [r["id"] for r in records] == ["c.wav", "a.wav", "b.wav"]
    for record in records:
        check(record, setup["reference"][record["id"]], record["id"], setup["texts"][record["id"]])


def test_predict_jsonl_manifest_with_id_and_custom_columns(setup, capsys):
    manifest = setup["root"] / "list.jsonl"
    lines = [{"utt": f"utt-{i}", "wav": f"clips/{n}", "transcript": setup["texts"][n]} for i, n in enumerate(("b.wav", "a.wav"))]
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    status, records, err = run_main(
        ["predict", "--model", setup["model"], "--manifest", manifest, "--audio_column", "wav",
         "--text_column", "transcript", "--id_column", "utt"],
        capsys,
    )
    assert status == 0, err
    assert [r["id"] for r in records] == ["utt-0", "utt-1"]
    check(records[0], setup["reference"]["b.wav"], "utt-0", setup["texts"]["b.wav"])
    check(records[1], setup["reference"]["a.wav"], "utt-1", setup["texts"]["a.wav"])


def test_predict_transcribes_with_asr_when_text_is_missing(setup, capsys, tmp_path):
    asr = save_tiny_asr(tmp_path)
    clip = setup["root"] / "clips" / "a.wav"
    status, records, err = run_main(["predict", "--model", setup["model"], clip, "--asr", asr], capsys)
    assert status == 0, err
    check(records[0], setup["pipe"]({"audio": str(clip), "text": "s"}), str(clip), "s")  # "s": the recogniser's words

    # a manifest row without text (missing key, or an empty cell) is transcribed too; rows with text keep theirs
    manifest = tmp_path / "asr.jsonl"
    rows = [{"audio": str(clip)}, {"audio": str(clip), "text": ""}, {"audio": str(clip), "text": "given words"}]
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    status, records, err = run_main(["predict", "--model", setup["model"], "--manifest", manifest, "--asr", asr], capsys)
    assert status == 0, err
    assert [r["transcript"] for r in records] == ["s", "s", "given words"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["predict", "--model", "{model}", "{clips}/a.wav", "{clips}/b.wav", "--text", "x"], "2 AUDIO file(s) but 1 --text"),
        (["predict", "--model", "{model}", "{clips}/a.wav"], "one --text per AUDIO"),
        (["predict", "--model", "{model}"], "give AUDIO files or --manifest"),
        (["predict", "--model", "{model}", "{clips}/a.wav", "--text", "x", "--manifest", "m.csv"], "not both"),
        (["predict", "--model", "{model}", "--manifest", "m.csv", "--text", "x"], "--text goes with AUDIO files"),
        (["predict", "--model", "{model}", "{clips}/a.wav", "--text", "x", "--batch_size", "0"], "positive integer"),
        (["predict", "{clips}/a.wav", "--text", "x"], "required: --model"),
        (["frobnicate"], "invalid choice"),
        ([], "required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(setup, capsys, arguments, message):
    argv = [a.format(model=setup["model"], clips=setup["root"] / "clips") for a in arguments]
    status, records, err = run_main(argv, capsys)
    assert status == 2 and not records
    assert "usage: mgcma" in err and message in err, err


def test_runtime_errors_exit_1_with_one_line(setup, capsys, tmp_path):
    clips = setup["root"] / "clips"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF, but not audio")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("path,text\na.wav,hello\n")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"audio": "a.wav", "text": "x"}\nnot json\n')
    cases = [
        (["--model", setup["model"], tmp_path / "missing.wav", "--text", "x"], "audio file not found: .*missing.wav"),
        (["--model", setup["model"], broken, "--text", "x"], "could not read audio from .*broken.wav"),
        (["--model", tmp_path / "no-model", clips / "a.wav", "--text", "x"], "model folder not found"),
        (["--model", tmp_path, clips / "a.wav", "--text", "x"], "cannot load an MGCMA model"),
        (["--model", setup["model"], "--manifest", tmp_path / "none.csv"], "manifest not found"),
        (["--model", setup["model"], "--manifest", bad_csv], "line 2: column 'audio' is missing"),
        (["--model", setup["model"], "--manifest", bad_jsonl], "bad.jsonl:2: not valid JSON"),
        (["--model", setup["model"], "--manifest", tmp_path / "list.txt"], r"Unsupported manifest .*list.txt: use one of"),
    ]
    (tmp_path / "list.txt").write_text("x")
    for arguments, pattern in cases:
        status, records, err = run_main(["predict", *arguments], capsys)
        assert status == 1, (arguments, err)
        assert not records
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mgcma predict: error: "), err
        assert re.search(pattern, lines[0]), (pattern, lines[0])


@pytest.mark.slow
def test_installed_script_exit_codes_and_output(setup):
    """The console script as a shell runs it: JSON lines on stdout, nothing else; errors without a traceback."""
    script = os.path.join(os.path.dirname(sys.executable), "mgcma")
    command = [script] if os.path.isfile(script) else [sys.executable, "-m", "modeling_mgcma.cli"]
    clips = setup["root"] / "clips"
    ok = subprocess.run(
        [*command, "predict", "--model", setup["model"], str(clips / "a.wav"), str(clips / "missing.wav"),
         "--text", "i am so happy today", "--text", "sad"],
        capture_output=True, text=True, timeout=300,
    )
    assert ok.returncode == 1 and ok.stdout == ""
    assert ok.stderr.strip().splitlines() == [f"mgcma predict: error: audio file not found: {clips / 'missing.wav'} (id {clips / 'missing.wav'})"]
    done = subprocess.run(
        [*command, "predict", "--model", setup["model"], str(clips / "a.wav"), "--text", setup["texts"]["a.wav"]],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    check(json.loads(line), setup["reference"]["a.wav"], str(clips / "a.wav"), setup["texts"]["a.wav"])
    assert "Traceback" not in done.stderr


def test_lone_surrogate_in_a_jsonl_transcript_names_line_and_field(wavs):
    from modeling_mgcma import cli

    path = wavs / "m.jsonl"
    path.write_text('{"audio": "a.wav", "text": "fine"}\n{"audio": "b.wav", "text": "bad \\ud83d here"}\n')
    with pytest.raises(cli.CommandError, match=r"m.jsonl, line 2, field 'text': lone surrogate U\+D83D"):
        cli._read_manifest(str(path), "audio", "text", "id")


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


def test_cli_names_a_clip_too_short_for_the_encoder(saved_model, tmp_path, capsys):
    from fixtures_data import write_wav

    from modeling_mgcma.cli import main

    write_wav(tmp_path / "tiny.wav", 100 / 16_000)
    status = main(["predict", "--model", str(saved_model / "model"), str(saved_model / "a.wav"), str(tmp_path / "tiny.wav"),
                   "--text", "i am", "--text", "happy"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{tmp_path / 'tiny.wav'} (id {tmp_path / 'tiny.wav'}) is too short: 100 samples at 16000 Hz" in err
