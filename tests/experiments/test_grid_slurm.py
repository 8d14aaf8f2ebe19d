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


class _Submitted(Exception):
    pass


def test_the_local_executor_gets_the_time_limit_of_slurm_jobs(two_sessions, local_encoders, tmp_path, monkeypatch):  # noqa: F811
    """submitit's local executor ignores slurm_time (its own limit: 2 minutes, after which it signals and requeues
    the job, and fails it after three times): the grid passes --slurm_time to it as timeout_min too."""
    seen = {}

    def capture(units, command_of, *, folder, cluster=None, parameters=None):
        seen.update(cluster=cluster, **dict(parameters))
        raise _Submitted

    monkeypatch.setattr(grid_launch, "submit_units", capture)
    argv = grid_args(tmp_path / "grid", two_sessions["saved"], local_encoders, "--ablations", "S0",
                     "--launcher", "submitit_local", "--slurm_time", "1-02:30:00")  # fmt: skip
    with pytest.raises(_Submitted):
        run_mgcma.main(argv)
    assert seen["cluster"] == "local" and seen["slurm_time"] == "1-02:30:00" and seen["timeout_min"] == 1590


@pytest.mark.parametrize(
    "text, minutes",
    [("24:00:00", 1440), ("90", 90), ("1:30", 2), ("2-12", 3600), ("1-00:30", 1470), ("0-0:0:30", 1), ("00:00:01", 1)],
)
def test_slurm_time_limits_in_minutes(text, minutes):
    assert grid_launch.slurm_time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["abc", "1:2:3:4", "-5", "0", "1-x", "", "1.5"])
def test_a_bad_slurm_time_is_refused_by_name(text):
    with pytest.raises(ValueError, match=r"--slurm_time"):
        grid_launch.slurm_time_minutes(text)


def test_a_bad_slurm_time_is_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"--slurm_time '2 hours' is not a SLURM time limit"):
        run_mgcma.parse_arguments(["--output_dir", str(tmp_path), "--data_dir", str(tmp_path), "--ablations", "S0",
                                   "--launcher", "submitit_local", "--slurm_time", "2 hours"])  # fmt: skip
