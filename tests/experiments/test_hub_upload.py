# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""push_model_folder: an allow-list, the owner's visibility default, no local paths (HfApi patched: nothing
leaves the machine)."""

import json
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
import run_mgcma  # noqa: E402
from modeling_mgcma.experiments.hub_upload import push_model_folder  # noqa: E402


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
    (out / "results.json").write_text(json.dumps({"folds": [{"test_group": 5, "ua": 0.5, "best_checkpoint": str(out / "checkpoint-6")}]}))
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
