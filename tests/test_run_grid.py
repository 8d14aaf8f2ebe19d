# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""run_mgcma.py --ablations end to end: a tiny grid on the demo corpus (two sessions = two folds, two settings),
tables with every cell, rerun = no-op, a changed setting reruns only its units, every fold pushed to its own
branch, --calibrate, --dry_run, and --dataset_name with a save_to_disk folder and an AudioFolder."""

import csv
import inspect
import json
import shutil
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run_mgcma.py is a script at the repository root
from test_run_mgcma import local_encoders  # noqa: E402, F401 - tiny wav2vec2 and BERT folders (module fixture)

import run_mgcma  # noqa: E402
from modeling_mgcma.data import generate_demo_corpus, load_iemocap  # noqa: E402
from modeling_mgcma.experiments.evaluation import PAPER_RESULTS  # noqa: E402


TINY_MODEL = "hidden_size=32,num_attention_heads=4,num_alignment_layers=1,intermediate_size=64"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory):
    """Sessions 1 and 2 of a small demo corpus as a save_to_disk folder and as an AudioFolder with metadata.csv."""
    root = tmp_path_factory.mktemp("grid_data")
    corpus = generate_demo_corpus(root / "corpus", utterances_per_session=40)
    dataset = load_iemocap(corpus, strict_counts=False, cache_dir=str(root / "hf"))
    dataset = dataset.filter(lambda row: row["session"] in (1, 2))
    dataset.save_to_disk(str(root / "saved"))
    folder = root / "audiofolder"
    folder.mkdir()
    label_names = dataset.features["label"].names
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "transcript", "emotion", "speaker_session", "id"])
        for row in dataset.cast_column("audio", __import__("datasets").Audio(decode=False)):
            name = Path(row["audio"]["path"]).name
            shutil.copyfile(row["audio"]["path"], folder / name)
            writer.writerow([name, row["text"], label_names[row["label"]], row["session"], row["id"]])
    return {"saved": root / "saved", "audiofolder": folder, "n": len(dataset)}


def grid_args(out, data, encoders, *extra):
    return [
        "--output_dir", str(out), "--dataset_name", str(data), "--group_column", "session", "--cross_validate",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--learning_rate", "3e-3",
        "--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps",
        "--save_steps", "2", "--logging_steps", "1", "--seed", "0", "--disable_tqdm", "true",
        "--speech_model", str(encoders[0]), "--text_model", str(encoders[1]), "--config_overrides", TINY_MODEL, *extra,
    ]  # fmt: skip


class RecordingApi:
    """HfApi's create_repo / create_branch / upload_folder, each bound to the real signature, recorded."""

    def __init__(self):
        self.calls = []

    def patch(self, monkeypatch):
        for name in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name):
        def method(api, *args, **kwargs):
            inspect.signature(getattr(HfApi, name)).bind(api, *args, **kwargs)
            entry = {"name": name, **kwargs}
            if name == "upload_folder":
                entry["files"] = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
                readme = Path(kwargs["folder_path"]) / "README.md"
                entry["readme"] = readme.read_text() if readme.is_file() else None
            self.calls.append(entry)

        return method


@pytest.fixture(scope="module")
def grid_run(two_sessions, local_encoders, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "out"
    trained, api = [], RecordingApi()
    original = run_mgcma.run_fold

    def spy(fold, dataset, model_args, *args, **kwargs):
        trained.append((model_args.ablation, fold))
        return original(fold, dataset, model_args, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_mgcma, "run_fold", spy)
        api.patch(patch)
        tables = run_mgcma.main(grid_args(out, two_sessions["saved"], local_encoders, "--ablations", "S0,S1", "--calibrate",
                                          "--push_to_hub", "--hub_model_id", "org/mgcma-grid"))  # fmt: skip
    return {"out": out, "tables": tables, "trained": trained, "api": api, "data": two_sessions, "encoders": local_encoders}


def test_grid_writes_every_cell_paper_columns_and_p_values(grid_run):
    out, tables = grid_run["out"], grid_run["tables"]
    assert sorted(grid_run["trained"]) == [("S0", 1), ("S0", 2), ("S1", 1), ("S1", 2)]
    for setting in ("S0", "S1"):
        for fold in (1, 2):
            unit = out / setting / f"fold_{fold}"
            assert (unit / "model.safetensors").is_file() and (unit / "test_predictions.json").is_file()
            # --calibrate: the temperature fitted on validation is in the saved config
            assert json.loads((unit / "config.json").read_text())["calibration_temperature"] > 0
    data = json.loads((out / "tables.json").read_text())
    assert data == json.loads(json.dumps(tables))
    for setting in ("S0", "S1"):
        entry = data["settings"][setting]
        assert sorted(entry["per_fold"]) == ["1", "2"] and entry["missing_folds"] == []
        assert entry["pooled"]["n"] == grid_run["data"]["n"] and "ece" in entry["pooled"]
        assert entry["paper"] == {"wa": PAPER_RESULTS[setting][0], "ua": PAPER_RESULTS[setting][1]}
        assert set(entry["subsets_pooled"]) == {"improvised", "scripted"}  # IEMOCAP-style ids
    test = data["settings"]["S1"]["vs_S0"]
    assert 0 < test["p_value"] <= 1 and test["folds"] == ["1", "2"]
    markdown = (out / "tables.md").read_text()
    assert f"{test['p_value']:.4f}" in markdown and "80.24" in markdown and "ECE pooled" in markdown
    assert (out / "figure3_tsne.png").is_file() and (out / "reliability_diagram.png").is_file()


def test_grid_pushes_every_unit_to_its_own_branch(grid_run):
    calls = grid_run["api"].calls
    branches = [c["branch"] for c in calls if c["name"] == "create_branch"]
    assert branches == ["S0-fold-1", "S0-fold-2", "S1-fold-1", "S1-fold-2"]
    uploads = {c.get("revision") or "main": c for c in calls if c["name"] == "upload_folder"}
    unit = uploads["S1-fold-2"]
    assert "model.safetensors" in unit["files"] and "config.json" in unit["files"]
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in unit["files"])  # no pickle is uploaded
    assert "test_predictions.json" not in unit["files"] and unit["delete_patterns"] == ["*"]
    main = uploads["main"]
    assert {"README.md", "tables.md", "tables.json", "figure3_tsne.png"} <= set(main["files"])
    assert "`S1-fold-2`" in main["readme"] and 'revision="S0-fold-1"' in main["readme"]


def test_rerun_is_a_no_op_and_a_changed_setting_reruns_only_its_units(grid_run, monkeypatch):
    out, data, encoders = grid_run["out"], grid_run["data"]["saved"], grid_run["encoders"]
    trained = []
    original = run_mgcma.run_fold

    def spy(fold, dataset, model_args, *args, **kwargs):
        trained.append((model_args.ablation, fold))
        return original(fold, dataset, model_args, *args, **kwargs)

    monkeypatch.setattr(run_mgcma, "run_fold", spy)
    weights = (out / "S0" / "fold_1" / "model.safetensors").stat().st_mtime_ns
    run_mgcma.main(grid_args(out, data, encoders, "--ablations", "S0,S1", "--calibrate"))
    assert trained == [] and (out / "S0" / "fold_1" / "model.safetensors").stat().st_mtime_ns == weights
    tables = run_mgcma.main(grid_args(out, data, encoders, "--ablations", "S0,S2", "--calibrate"))  # S1 replaced by S2
    assert sorted(trained) == [("S2", 1), ("S2", 2)]
    assert sorted(tables["settings"]["S2"]["per_fold"]) == ["1", "2"] and "vs_S0" in tables["settings"]["S2"]
    # the same settings with another training argument: every unit is refused, naming what differs
    with pytest.raises(ValueError, match=r"S0, fold 1: .*--learning_rate 0.003 -> 0.001"):
        run_mgcma.main(grid_args(out, data, encoders, "--ablations", "S0,S2", "--calibrate", "--learning_rate", "1e-3"))


def test_dry_run_on_an_audiofolder_times_real_steps_and_trains_nothing(two_sessions, local_encoders, tmp_path, capsys):
    out = tmp_path / "dry"
    result = run_mgcma.main([
        "--output_dir", str(out), "--dataset_name", str(two_sessions["audiofolder"]), "--text_column", "transcript",
        "--label_column", "emotion", "--group_column", "speaker_session", "--cross_validate", "--ablations", "all",
        "--dry_run", "--per_device_train_batch_size", "4", "--num_train_epochs", "3", "--speech_model",
        str(local_encoders[0]), "--text_model", str(local_encoders[1]), "--config_overrides", TINY_MODEL,
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "total (10 settings x 2 folds = 20 trainings)" in printed and "3 epochs" in printed
    assert result["dry_run"] in printed
    assert not any(out.rglob("*.safetensors")) and not any(out.rglob("fingerprint.json"))  # nothing trained


def test_dataset_name_errors_name_the_missing_column(two_sessions, tmp_path):
    with pytest.raises(ValueError, match=r"no column 'text' \(text_column\).*Pass --text_column"):
        run_mgcma.main(["--output_dir", str(tmp_path / "x"), "--dataset_name", str(two_sessions["audiofolder"]),
                        "--speech_model", "never/loaded", "--text_model", "never/loaded"])  # fmt: skip
