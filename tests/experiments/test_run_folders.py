# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""What a run writes stays in the folder the user named: group values become safe, distinct folder names; one run at
a time holds a folder (a lock file); a grid and a single run never share a folder; records are written atomically.
Nothing is trained: the per-fold run is replaced by a stand-in that records where it would write."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run_mgcma.py is a script at the repository root
from fixtures_data import write_wav  # noqa: E402

import run_mgcma  # noqa: E402
from modeling_mgcma.experiments import run_records  # noqa: E402
from modeling_mgcma.experiments.evaluation import collect_grid_predictions  # noqa: E402
from modeling_mgcma.experiments.grid import run_settings_grid, save_unit_outputs  # noqa: E402


AWKWARD = ["../../../x", "a/b", "Jos\u00e9", ".hidden", "plain", "a%2Fb", "..", "with space"]


@pytest.mark.parametrize("value", AWKWARD)
def test_group_folder_names_stay_inside_and_read_back(tmp_path, value):
    name = run_records.fold_folder_name(value)
    assert "/" not in name and "\\" not in name and name not in (".", "..") and not name.startswith(".")
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert run_records.group_from_folder_name(name[len("fold_"):]) == value


def test_group_folder_names_are_distinct_and_plain_values_keep_their_old_names():
    names = [run_records.fold_folder_name(v) for v in [*AWKWARD, "a_2Fb", "a-b", 3, "Ses01"]]
    assert len(set(names)) == len(names)
    assert run_records.fold_folder_name(3) == "fold_3" and run_records.fold_folder_name("Ses01") == "fold_Ses01"


@pytest.fixture
def speaker_manifest(tmp_path):
    rows = []
    for index in range(12):
        write_wav(tmp_path / f"c{index}.wav", seconds=0.2, seed=index)
        rows.append({"audio": f"c{index}.wav", "text": "hi", "label": ("happy", "sad")[index % 2],
                     "speaker": ["../../../x", "a/b", "plain"][index // 4]})
    with open(tmp_path / "m.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path / "m.csv"


class Stop(Exception):
    pass


def test_cross_validation_fold_folders_of_path_like_speakers_stay_in_the_output_dir(speaker_manifest, tmp_path,
                                                                                   monkeypatch):
    out = tmp_path / "deep" / "out"
    calls = []
    monkeypatch.setattr(run_mgcma, "run_fold", lambda fold, *a, **k: calls.append((fold, Path(a[5]))) or {})
    monkeypatch.setattr(run_mgcma, "summarise", lambda results: (_ for _ in ()).throw(Stop()))
    with pytest.raises(Stop):
        run_mgcma.main(["--manifest", str(speaker_manifest), "--group_column", "speaker", "--cross_validate",
                        "--validation_fraction", "0.3", "--class_names", "happy,sad", "--output_dir", str(out), "--speech_model", "x",
                        "--text_model", "y"])  # fmt: skip
    assert sorted(fold for fold, _ in calls) == ["../../../x", "a/b", "plain"]
    for _, folder in calls:
        assert folder.resolve().parent == out.resolve()


def test_grid_units_of_path_like_groups_stay_in_their_setting_and_show_in_the_tables(tmp_path):
    out = tmp_path / "grid"
    folds = ["../../../x", "a/b", "plain"]

    def run_unit(setting, fold, directory, fingerprint):
        assert directory.resolve().parent == (out / setting).resolve()
        run_records.write_fingerprint(directory, fingerprint)
        save_unit_outputs(directory, ["u1", "u2"], np.array([[2.0, 0.0], [0.0, 2.0]]), [0, 1])

    report = run_settings_grid(out, ["S0", "S1"], folds, run_unit=run_unit, label_names=["a", "b"],
                               fingerprint_of=lambda s, f: {"setting": s, "fold": f},
                               prepare=lambda d, fp: "train", echo=False)  # fmt: skip
    assert set(collect_grid_predictions(out, ["S0"])["S0"]) == set(folds)
    assert set(report["tables"]["settings"]["S0"]["per_fold"]) == set(folds)
    assert not (tmp_path / "x").exists()


# --- locks -----------------------------------------------------------------------------------------------------------


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / run_records.LOCK_FILE).write_text(json.dumps(
            {"pid": holder.pid, "host": __import__("socket").gethostname(), "started": "2026-01-01T00:00:00"}))
        with pytest.raises(ValueError, match=f"pid {holder.pid}"):
            with run_records.run_folder_lock(tmp_path):
                pass
        with pytest.raises(ValueError, match="in use by another run"):
            run_mgcma.main(["--output_dir", str(tmp_path), "--demo_corpus_dir", str(tmp_path / "corpus")])
        assert not (tmp_path / "corpus").exists()  # refused before any data was read
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = tmp_path / run_records.LOCK_FILE
    lock.write_text(json.dumps({"pid": gone.pid, "host": __import__("socket").gethostname(), "started": "then"}))
    with run_records.run_folder_lock(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with run_records.run_folder_lock(tmp_path):  # re-entrant within one process
            pass
        assert lock.is_file()
    assert not lock.exists()


def test_only_the_main_process_takes_the_lock(tmp_path):
    with run_records.run_folder_lock(tmp_path, enabled=False):
        assert not (tmp_path / run_records.LOCK_FILE).exists()


def test_two_locks_in_one_folder_from_two_processes(tmp_path):
    code = ("import sys, time; from modeling_mgcma.experiments import run_records;"
            "ctx = run_records.run_folder_lock(sys.argv[1]); ctx.__enter__(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match="in use by another run"):
            with run_records.run_folder_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()


# --- grid and single run never share a folder --------------------------------------------------------------------------


def test_a_grid_into_a_single_run_folder_is_refused_and_the_other_way_round(tmp_path):
    single, grid = tmp_path / "single", tmp_path / "grid"
    single.mkdir()
    (single / "results.json").write_text("{}")
    (single / "fingerprint.json").write_text("{}")
    with pytest.raises(ValueError, match="single"):
        run_mgcma.main(["--output_dir", str(single), "--ablations", "S0,S1", "--demo_corpus_dir", str(tmp_path / "c")])
    assert json.loads((single / "results.json").read_text()) == {}
    (grid / "S0" / "fold_5").mkdir(parents=True)
    (grid / "S0" / "fold_5" / "test_predictions.json").write_text("{}")
    (grid / "tables.md").write_text("# tables")
    with pytest.raises(ValueError, match="grid"):
        run_mgcma.main(["--output_dir", str(grid), "--demo_corpus_dir", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()


def test_the_grid_has_its_own_default_output_folder():
    single = run_mgcma.read_run_arguments([])[2].output_dir
    grid = run_mgcma.read_run_arguments(["--ablations", "S0,S1"])[2].output_dir
    assert grid != single and Path(grid).parent == Path(single).parent
    assert run_mgcma.read_run_arguments(["--ablations", "S0", "--output_dir", "mine"])[2].output_dir == "mine"


# --- atomic writes -------------------------------------------------------------------------------------------------------


def test_records_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    run_records.write_fingerprint(tmp_path, {"old": True})

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        run_records.write_fingerprint(tmp_path, {"new": True})
    with pytest.raises(OSError):
        save_unit_outputs(tmp_path, ["u"], np.array([[1.0, 0.0]]), [0])
    monkeypatch.undo()
    assert json.loads((tmp_path / "fingerprint.json").read_text()) == {"old": True}
    assert not (tmp_path / "test_predictions.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fingerprint.json"]  # no temporary file left behind
