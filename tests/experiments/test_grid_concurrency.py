# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""run_mgcma.py --ablations with its units in separate processes (modeling_mgcma.experiments.grid_launch): two at
once give the same bytes as one after another, a single unit writes no tables, the tables step names what is
missing, a killed unit resumes from its checkpoint, and the launch arguments refuse bad values by name."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_grid import grid_args, two_sessions  # noqa: F401 - the tiny two-session corpus (module fixture)
from test_run_mgcma import local_encoders  # noqa: F401 - tiny wav2vec2 and BERT folders (module fixture)

import run_mgcma
from modeling_mgcma.experiments import grid_launch
from modeling_mgcma.experiments.cost_estimate import estimate_grid_cost, format_concurrency_plan


pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORKER = Path(__file__).resolve().parent / "grid_unit_worker.py"
UNITS = [("S0", 1), ("S0", 2), ("S1", 1), ("S1", 2)]


def unit_env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


@pytest.fixture(scope="module")
def serial_and_concurrent(two_sessions, local_encoders, tmp_path_factory):  # noqa: F811
    """The same tiny grid (2 settings x 2 folds) one unit after another in this process, and 2 units at once."""
    root = tmp_path_factory.mktemp("concurrency")
    args = lambda out, *extra: grid_args(out, two_sessions["saved"], local_encoders, "--ablations", "S0,S1",  # noqa: E731
                                         "--torch_num_threads", "1", *extra)  # fmt: skip
    serial = run_mgcma.main(args(root / "serial"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        concurrent = run_mgcma.main(args(root / "concurrent", "--grid_workers", "2"))
    return {"root": root, "serial": serial, "concurrent": concurrent, "args": args}


def test_two_units_at_once_give_the_bytes_of_one_after_another(serial_and_concurrent):
    root = serial_and_concurrent["root"]
    for setting, fold in UNITS:
        one, two = root / "serial" / setting / f"fold_{fold}", root / "concurrent" / setting / f"fold_{fold}"
        assert (one / "test_predictions.json").read_bytes() == (two / "test_predictions.json").read_bytes()
        assert (one / "model.safetensors").read_bytes() == (two / "model.safetensors").read_bytes()
        assert (two / grid_launch.UNIT_LOG).is_file() and not (one / grid_launch.UNIT_LOG).exists()  # its own process
    assert (root / "serial" / "tables.json").read_bytes() == (root / "concurrent" / "tables.json").read_bytes()
    assert (root / "serial" / "tables.md").read_bytes() == (root / "concurrent" / "tables.md").read_bytes()
    assert serial_and_concurrent["concurrent"] == serial_and_concurrent["serial"]


def test_rerun_with_workers_trains_nothing_and_builds_the_tables_once(serial_and_concurrent):
    out = serial_and_concurrent["root"] / "concurrent"
    logs = {u: (out / u[0] / f"fold_{u[1]}" / grid_launch.UNIT_LOG).stat().st_mtime_ns for u in UNITS}
    tables = run_mgcma.main(serial_and_concurrent["args"](out, "--grid_workers", "2"))
    assert tables == serial_and_concurrent["serial"]
    # no unit process started (each would append to its log)
    assert {u: (out / u[0] / f"fold_{u[1]}" / grid_launch.UNIT_LOG).stat().st_mtime_ns for u in UNITS} == logs


def test_one_unit_alone_writes_no_tables_and_the_tables_step_names_the_missing(serial_and_concurrent, tmp_path):
    args, out = serial_and_concurrent["args"], tmp_path / "grid"
    result = run_mgcma.main(args(out, "--grid_unit", "s1/2"))
    assert result == {"outcome": {"S1/fold_2": "trained"}}
    assert (out / "S1" / "fold_2" / "test_predictions.json").is_file() and not (out / "S0").exists()
    assert not (out / "tables.md").exists() and not (out / "tables.json").exists()
    record = json.loads((out / "S1" / "fold_2" / grid_launch.UNIT_LOG.replace(".log", ".json")).read_text())
    assert record["outcome"] == "trained" and record["seconds"] > 0
    with pytest.raises(grid_launch.GridUnitsFailed) as failure:
        run_mgcma.main(args(out, "--grid_tables_only"))
    assert [name for name, _ in failure.value.failed] == ["S0/fold_1", "S0/fold_2", "S1/fold_1"]
    tables = json.loads((out / "tables.json").read_text())  # written, with the missing cells missing
    assert sorted(tables["settings"]["S1"]["per_fold"]) == ["2"]
    assert not tables["settings"].get("S0", {}).get("per_fold")
    serial = serial_and_concurrent["root"] / "serial" / "S1" / "fold_2"
    assert (out / "S1" / "fold_2" / "test_predictions.json").read_bytes() == (serial / "test_predictions.json").read_bytes()


def test_a_killed_unit_resumes_from_its_checkpoint(two_sessions, local_encoders, tmp_path):  # noqa: F811
    out = tmp_path / "grid"
    command = [sys.executable, str(WORKER), *grid_args(out, two_sessions["saved"], local_encoders, "--ablations", "S0",
                                                       "--torch_num_threads", "1", "--max_steps", "4",
                                                       "--grid_unit", "S0/fold_1")]  # fmt: skip
    unit = out / "S0" / "fold_1"
    killed = subprocess.run(command, env=unit_env(MGCMA_TEST_KILL_AT_STEP="2"), capture_output=True, text=True)
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert (unit / "checkpoint-2" / "trainer_state.json").is_file() and not (unit / "test_predictions.json").exists()
    resumed = subprocess.run(command, env=unit_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert "S0 fold 1: resume in" in output  # the grid's plan for the unit: resume, not train
    state = json.loads((unit / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # the resumed run trained steps 3-4 only: steps 1-2 come from the checkpoint, not from training again
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]
    assert json.loads((unit / grid_launch.UNIT_RECORD).read_text())["outcome"] == "resumed"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--grid_workers", "0"], "--grid_workers must be a positive number of concurrent units or 'auto', got '0'"),
        (["--grid_workers", "two"], "--grid_workers must be .* got 'two'"),
        (["--launcher", "pbs"], "--launcher must be one of .* got 'pbs'"),
        (["--grid_unit", "S7/fold_1"], r"--grid_unit must name one unit of this grid .* got 'S7/fold_1'"),
        (["--grid_unit", "S0/fold_1", "--grid_tables_only"], "not both"),
        (["--slurm_gpus_per_node", "0"], "--slurm_gpus_per_node must be >= 1, got 0"),
    ],
)
def test_bad_launch_arguments_name_the_argument_and_value(extra, message, two_sessions, local_encoders, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match=message):
        run_mgcma.main(grid_args(tmp_path, two_sessions["saved"], local_encoders, "--ablations", "S0", *extra))


def test_grid_arguments_without_a_grid_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--grid_workers applies to the grid: pass --ablations"):
        run_mgcma.main(["--output_dir", str(tmp_path), "--grid_workers", "2"])


def test_auto_workers_from_free_memory_and_the_measured_peak():
    assert grid_launch.auto_grid_workers("cpu", pending_units=50)[0] == 1
    assert grid_launch.auto_grid_workers("cuda", pending_units=50, free_memory_bytes=80 * 2**30)[0] == 1  # none measured
    gib = 2**30
    count, why = grid_launch.auto_grid_workers("cuda", pending_units=50, free_memory_bytes=80 * gib,
                                               unit_peak_bytes=int(5.5 * gib), cpu_count=16)  # fmt: skip
    assert count == 13 and "13 per GPU" in why  # 0.9 * 80 / 5.5 = 13.09
    assert grid_launch.auto_grid_workers("cuda", pending_units=50, free_memory_bytes=80 * gib,
                                         unit_peak_bytes=int(5.5 * gib), cpu_count=8)[0] == 8  # fmt: skip
    assert grid_launch.auto_grid_workers("cuda", pending_units=3, free_memory_bytes=80 * gib,
                                         unit_peak_bytes=int(5.5 * gib), cpu_count=16)[0] == 3  # fmt: skip
    assert grid_launch.dataloader_workers_per_unit(8, 4) == 2 and grid_launch.dataloader_workers_per_unit(0, 4) == 0


def test_concurrency_plan_says_what_was_measured():
    cost = estimate_grid_cost(1.0, 3600, 1, 5, 10)  # 1 h per unit, 50 units
    alone = format_concurrency_plan(cost, concurrent=4, seconds_per_step={1: 1.0})
    assert "13 wave(s) of 1.00 h = 13.00 h" in alone and "measured for N=1 only" in alone and "lower bound" in alone
    measured = format_concurrency_plan(cost, concurrent=4, seconds_per_step={1: 1.0, 4: 2.0})
    assert "13 wave(s) of 2.00 h = 26.00 h" in measured and "aggregate throughput x2.00" in measured
    slurm = format_concurrency_plan(cost, concurrent=1, launcher="slurm", array_parallelism=20)
    assert "50 jobs" in slurm and "20 at once: 3 wave(s)" in slurm and "3.00 h wall time" in slurm


def test_unit_arguments_keep_the_grid_and_drop_the_launchers_own():
    argv = ["--output_dir", "o", "--grid_workers", "4", "--dry_run", "--launcher=slurm", "--seed", "1"]
    assert grid_launch.without_arguments(argv, ["grid_workers", "launcher", "dry_run"]) == ["--output_dir", "o",
                                                                                              "--seed", "1"]
    assert grid_launch.unit_arguments(["--seed", "1"], {"grid_unit": "S0/fold_1"}) == ["--seed", "1", "--grid_unit",
                                                                                         "S0/fold_1"]
