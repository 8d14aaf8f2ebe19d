# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The grid's units in separate processes: several at once on one machine (``--grid_workers N``), or one SLURM job
each through submitit (``--launcher slurm``). docs/grid.md has the commands.

Each unit runs as its own process, ``run_mgcma.py <the grid's arguments> --grid_unit S0/fold_3``, which trains that
unit into its own folder (``<output_dir>/S0/fold_3/``, its output in ``grid_unit.log``) and writes no tables. The
process that launched them builds ``tables.md`` / ``tables.json`` once, after every unit has ended, and names the
units that failed. A unit seeds itself (`set_seed` at the start of its run), so its results do not depend on which
units ran before it or beside it. A unit that was killed resumes from its newest complete checkpoint when the grid
runs again.

submitit is imported only by :func:`submit_units`: ``pip install "mgcma[cluster]"``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .grid import GridUnit


logger = logging.getLogger(__name__)

UNIT_LOG = "grid_unit.log"  # the unit process's stdout and stderr
UNIT_RECORD = "grid_unit.json"  # what the unit's last run measured: seconds, utterances/s, peak GPU memory
LAUNCHERS = ("local", "slurm", "submitit_local")  # submitit_local: the SLURM path's jobs as local processes
# share of the free GPU memory that `--grid_workers auto` fills with units' measured peaks (the rest: fragmentation,
# the CUDA context of each process)
MEMORY_HEADROOM = 0.9


class GridUnitsFailed(RuntimeError):
    """Some units of the grid did not finish; `failed` holds ``(selector, reason)`` pairs."""

    def __init__(self, failed: Sequence[tuple[str, str]], note: str = ""):
        self.failed = list(failed)
        lines = [f"{len(self.failed)} grid unit(s) failed:"] + [f"  {name}: {reason}" for name, reason in self.failed]
        lines.append("Run the same command again to rerun only these units (finished units are reused, killed ones "
                     "resume from their newest checkpoint)." + (f" {note}" if note else ""))  # fmt: skip
        super().__init__("\n".join(lines))


def unit_selector(unit: GridUnit) -> str:
    """``"S0/fold_3"``: the unit's folder under the grid's output folder, as ``--grid_unit`` takes it."""
    return f"{unit.setting}/fold_{unit.fold}"


def select_unit(units: Sequence[GridUnit], spec: str) -> GridUnit:
    """The unit named by ``--grid_unit`` (``S0/fold_3``, ``s0/3``); a ValueError lists the grid's units otherwise."""
    setting, separator, fold = str(spec).strip().partition("/")
    fold = fold.strip()
    fold = fold[len("fold_"):] if fold.lower().startswith("fold_") else fold
    for unit in units if separator else []:
        if unit.setting == setting.strip().upper() and str(unit.fold) == fold:
            return unit
    raise ValueError(f"--grid_unit must name one unit of this grid as <setting>/fold_<k>, got {spec!r}; the grid's "
                     f"units are {[unit_selector(u) for u in units]}.")  # fmt: skip


def parse_grid_workers(spec) -> int | str:
    """``--grid_workers``: a positive count, or ``"auto"``."""
    text = str(spec).strip().lower()
    if text == "auto":
        return "auto"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1 or str(count) != text:
        raise ValueError(f"--grid_workers must be a positive number of concurrent units or 'auto', got {spec!r}.")
    return count


def read_unit_record(directory: str | os.PathLike) -> dict | None:
    path = Path(directory) / UNIT_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_unit_record(directory: str | os.PathLike, record: Mapping) -> None:
    (Path(directory) / UNIT_RECORD).write_text(json.dumps(dict(record), indent=2) + "\n", encoding="utf-8")


def measured_peak_memory(units: Sequence[GridUnit]) -> int | None:
    """The largest peak of reserved GPU memory (bytes) that any of `units` recorded, or None when none did."""
    peaks = [(read_unit_record(unit.directory) or {}).get("peak_gpu_memory_bytes") for unit in units]
    peaks = [int(peak) for peak in peaks if isinstance(peak, (int, float)) and peak > 0]
    return max(peaks) if peaks else None


def auto_grid_workers(
    device_type: str,
    *,
    pending_units: int,
    free_memory_bytes: int | None = None,
    unit_peak_bytes: int | None = None,
    cpu_count: int | None = None,
    gpus: int = 1,
) -> tuple[int, str]:
    """``--grid_workers auto``: (concurrent units, why). On a CPU, 1 (the units would share the same cores). On GPUs,
    as many units per GPU as fit in ``MEMORY_HEADROOM`` of its free memory at the measured peak of one unit, at most
    one per CPU core and one per pending unit. Without a measured peak, 1: the first unit runs alone, records its
    peak, and the next call can use it."""
    cpu_count = cpu_count or os.cpu_count() or 1
    if device_type != "cuda":
        return 1, f"device {device_type}: one unit at a time (pass --grid_workers N to run N at once)"
    if not unit_peak_bytes or not free_memory_bytes:
        return 1, "no unit has measured its peak GPU memory yet: one unit first"
    per_gpu = max(1, int(MEMORY_HEADROOM * free_memory_bytes // unit_peak_bytes))
    count = max(1, min(per_gpu * gpus, cpu_count, pending_units))
    return count, (f"{per_gpu} per GPU x {gpus} GPU(s) fit in {MEMORY_HEADROOM:.0%} of {free_memory_bytes / 2**30:.1f} "
                   f"GiB free at {unit_peak_bytes / 2**30:.2f} GiB per unit; {cpu_count} CPU cores, {pending_units} "
                   f"units to run: {count} at once")  # fmt: skip


def dataloader_workers_per_unit(total: int, concurrent: int) -> int:
    """The DataLoader workers of one unit when `concurrent` units share the `total` of a single run (0 stays 0)."""
    return 0 if total <= 0 else max(1, total // max(1, concurrent))


def unit_arguments(argv: Sequence[str], overrides: Mapping[str, object], argument_file_dir: Path | None = None) -> list[str]:
    """The command-line arguments of one unit's process: the grid's `argv` with `overrides` (``--name value``)
    appended, the last occurrence of an argument being the one that counts. When `argv` is one .json/.yaml file, a
    JSON file with its values and the overrides is written into `argument_file_dir` and named instead."""
    argv = list(argv)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        from .run_arguments import read_argument_file

        if argument_file_dir is None:
            raise ValueError("a grid read from an argument file needs a folder for each unit's argument file.")
        values = {**read_argument_file(argv[0]), **overrides}
        argument_file_dir.mkdir(parents=True, exist_ok=True)
        path = argument_file_dir / "grid_unit_arguments.json"
        path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
        return [str(path)]
    for name, value in overrides.items():
        argv += [f"--{name}", str(value)]
    return argv


def without_arguments(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """`argv` without ``--name value`` / ``--name=value`` for each of `names` (arguments of the launching process
    only, such as ``--grid_workers``, that a unit's process must not see)."""
    result, skip = [], False
    flags = {f"--{name}" for name in names}
    for index, item in enumerate(argv):
        if skip:
            skip = False
            continue
        key = item.split("=", 1)[0]
        if key in flags:
            # a value follows unless this is --name=value or the next item is another option
            skip = "=" not in item and index + 1 < len(argv) and not argv[index + 1].startswith("--")
            continue
        result.append(item)
    return result


@dataclass
class UnitRun:
    """How one unit's process ended: `returncode` 0 when it finished, its log file and wall seconds."""

    unit: GridUnit
    returncode: int
    log: Path
    seconds: float

    @property
    def failed(self) -> bool:
        return self.returncode != 0


def _gpu_slots() -> list[str] | None:
    """The CUDA devices a unit's process may be pinned to (CUDA_VISIBLE_DEVICES entries), or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [entry.strip() for entry in visible.split(",") if entry.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def run_units_concurrently(
    units: Sequence[GridUnit],
    command_of: Callable[[GridUnit], list[str]],
    workers: int | Callable[[], int],
    *,
    environment: Mapping[str, str] | None = None,
    poll_seconds: float = 0.2,
) -> list[UnitRun]:
    """Run ``command_of(unit)`` for every unit, at most `workers` processes at once (an int, or a callable asked
    again each time a process ends: ``--grid_workers auto`` grows once a unit has measured its memory). Each
    process writes its output to ``<unit>/grid_unit.log``; on several GPUs the slots are spread over them
    (CUDA_VISIBLE_DEVICES). A failed unit does not stop the others. Returns one `UnitRun` per unit, in order."""
    limit = workers if callable(workers) else (lambda: workers)
    gpus = _gpu_slots()
    waiting, running, done = list(units), {}, {}
    base_env = {**os.environ, **(environment or {})}
    try:
        while waiting or running:
            free_slots = [slot for slot in range(max(1, limit())) if slot not in running]
            while waiting and free_slots:
                unit, slot = waiting.pop(0), free_slots.pop(0)
                unit.directory.mkdir(parents=True, exist_ok=True)
                log = unit.directory / UNIT_LOG
                env = dict(base_env)
                if gpus and len(gpus) > 1:
                    env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
                command = command_of(unit)
                logger.warning("Grid unit %s: started (slot %d), log %s", unit_selector(unit), slot, log)
                handle = open(log, "ab")
                process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
                running[slot] = (unit, process, handle, log, time.perf_counter())
            time.sleep(poll_seconds)
            for slot, (unit, process, handle, log, start) in list(running.items()):
                if process.poll() is None:
                    continue
                handle.close()
                done[unit.key] = UnitRun(unit, process.returncode, log, time.perf_counter() - start)
                del running[slot]
                state = "finished" if process.returncode == 0 else f"FAILED (exit status {process.returncode})"
                logger.warning("Grid unit %s: %s in %.1f s", unit_selector(unit), state, done[unit.key].seconds)
    finally:  # interrupted (Ctrl-C): no unit process outlives the launcher
        for unit, process, handle, _, _ in running.values():
            process.terminate()
            process.wait()
            handle.close()
    return [done[unit.key] for unit in units]


class UnitJob:
    """A submitit job: run one unit's command (``accelerate launch run_mgcma.py ... --grid_unit S0/fold_3``) with
    its output appended to the unit's log; raises when it fails. On a SLURM timeout or preemption submitit calls
    `checkpoint`, which requeues the same command: the unit resumes from its newest complete checkpoint."""

    def __init__(self, command: Sequence[str], log: str | os.PathLike):
        self.command, self.log = list(command), str(log)

    def __call__(self) -> int:
        with open(self.log, "ab") as handle:
            returncode = subprocess.run(self.command, stdout=handle, stderr=subprocess.STDOUT).returncode
        if returncode != 0:
            raise RuntimeError(f"exit status {returncode}, see {self.log}")
        return returncode

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(UnitJob(self.command, self.log))


def slurm_time_minutes(text: str) -> int:
    """Minutes in a SLURM time limit (`sbatch --time` formats: "M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"),
    rounded up; what submitit's local executor takes as ``timeout_min``. Raises ValueError naming --slurm_time."""
    value = str(text).strip()
    days, dash, clock = value.partition("-") if "-" in value else ("0", "", value)
    parts = clock.split(":")
    if not (days.isdigit() and 1 <= len(parts) <= 3 and all(part.isdigit() for part in parts)):
        raise ValueError(f"--slurm_time {text!r} is not a SLURM time limit (M, M:S, H:M:S, D-H, D-H:M or D-H:M:S).")
    # with days the clock is H[:M[:S]]; without, M, M:S or H:M:S
    units = (60, 1, 1 / 60) if dash or len(parts) == 3 else (1, 1 / 60)
    total = int(days) * 1440 + sum(int(part) * unit for part, unit in zip(parts, units))
    if total <= 0:
        raise ValueError(f"--slurm_time {text!r} is not a positive time limit.")
    return math.ceil(total)


def submit_units(
    units: Sequence[GridUnit],
    command_of: Callable[[GridUnit], list[str]],
    *,
    folder: str | os.PathLike,
    cluster: str | None = None,
    parameters: Mapping[str, object] | None = None,
) -> list[UnitRun]:
    """Submit one job per unit through ``submitit.AutoExecutor(folder, cluster)`` (one SLURM job array; cluster
    "local" runs the same jobs as local processes) with `parameters` (submitit's names: ``timeout_min``,
    ``slurm_partition``, ``slurm_gpus_per_node``, ...), wait for all, and return one `UnitRun` per unit."""
    try:
        import submitit
    except ImportError as error:
        raise ImportError('--launcher slurm needs submitit: pip install "mgcma[cluster]"') from error

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(name="mgcma-grid", **dict(parameters or {}))
    jobs, start = [], time.perf_counter()
    with executor.batch():
        for unit in units:
            unit.directory.mkdir(parents=True, exist_ok=True)
            jobs.append(executor.submit(UnitJob(command_of(unit), unit.directory / UNIT_LOG)))
    logger.warning("Submitted %d grid unit job(s) (submitit folder %s): %s", len(jobs), folder,
                   ", ".join(f"{unit_selector(u)} = job {job.job_id}" for u, job in zip(units, jobs)))  # fmt: skip
    runs = []
    for unit, job in zip(units, jobs):
        try:
            job.result()
            returncode = 0
        except Exception as error:  # the job's own exception, or submitit's (cancelled, node failure, timeout)
            logger.warning("Grid unit %s (job %s) failed: %s", unit_selector(unit), job.job_id,
                           str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__)  # fmt: skip
            returncode = 1
        runs.append(UnitRun(unit, returncode, unit.directory / UNIT_LOG, time.perf_counter() - start))
    return runs


__all__ = [
    "GridUnitsFailed",
    "LAUNCHERS",
    "UNIT_LOG",
    "UNIT_RECORD",
    "UnitJob",
    "UnitRun",
    "auto_grid_workers",
    "dataloader_workers_per_unit",
    "measured_peak_memory",
    "parse_grid_workers",
    "read_unit_record",
    "run_units_concurrently",
    "select_unit",
    "slurm_time_minutes",
    "submit_units",
    "unit_arguments",
    "unit_selector",
    "without_arguments",
    "write_unit_record",
]
