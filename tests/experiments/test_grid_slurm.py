# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The grid's cluster path (`--launcher slurm`) with submitit's local executor (`--launcher submitit_local`): the same
job array and the same unit commands (accelerate launch run_mgcma.py --grid_unit ...), run as local processes. A
unit that fails is named after the tables are written; running the grid again reruns only that unit."""

import json
from pathlib import Path

import pytest
from test_run_grid import grid_args, two_sessions  # noqa: F401 - the tiny two-session corpus (module fixture)
from test_run_mgcma import local_encoders  # noqa: F401 - tiny wav2vec2 and BERT folders (module fixture)

import run_mgcma
from modeling_mgcma.experiments import grid_launch


pytest.importorskip("submitit", reason="the cluster path needs submitit (the test and cluster extras install it)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORKER = Path(__file__).resolve().parent / "grid_unit_worker.py"


def test_submitit_jobs_run_the_grid_and_a_failed_unit_is_rerun(two_sessions, local_encoders, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(run_mgcma, "GRID_UNIT_SCRIPT", WORKER)  # run_mgcma.py, with a failure the test asks for
    marker = tmp_path / "failed-once"
    monkeypatch.setenv("MGCMA_TEST_FAIL_ONCE", f"S0/fold_2={marker}")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "grid"
    argv = grid_args(out, two_sessions["saved"], local_encoders, "--ablations", "S0", "--torch_num_threads", "1",
                     "--launcher", "submitit_local")  # fmt: skip

    with pytest.raises(grid_launch.GridUnitsFailed) as failure:
        run_mgcma.main(argv)
    assert [name for name, _ in failure.value.failed] == ["S0/fold_2"] and marker.is_file()
    assert "exit status" in dict(failure.value.failed)["S0/fold_2"]
    first = out / "S0" / "fold_1"
    assert (first / "test_predictions.json").is_file() and not (out / "S0" / "fold_2" / "test_predictions.json").exists()
    assert list((out / "slurm").iterdir()), "submitit's job folder (logs, pickled jobs) under the grid's folder"
    tables = json.loads((out / "tables.json").read_text())  # written once, the failed unit's cell missing
    assert sorted(tables["settings"]["S0"]["per_fold"]) == ["1"]
    finished = (first / "test_predictions.json").stat().st_mtime_ns

    tables = run_mgcma.main(argv)  # again: only the failed unit runs
    assert (first / "test_predictions.json").stat().st_mtime_ns == finished
    assert (out / "S0" / "fold_2" / "test_predictions.json").is_file()
    assert sorted(tables["settings"]["S0"]["per_fold"]) == ["1", "2"]
    assert json.loads((out / "S0" / "fold_2" / grid_launch.UNIT_RECORD).read_text())["outcome"] == "trained"
