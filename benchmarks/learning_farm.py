# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Many `bench_learning.py table` runs at once, one thread each, on a machine with many cores.

A learning run uses one core for minutes, and telling apart two recipes whose held-out UA differs by a few points
takes many seeds. On a 16-core machine this runs 16 of them at a time. The spec is a JSON file:

    {"recipe": "plain", "test_per_class": 80,
     "groups": [{"results": "defaults", "settings": ["S0", "S4"], "corpus": "spoken", "seeds": [20, 21],
                 "corpus_offset": 0},
                {"results": "constant-lr", "settings": ["S0", "S4"], "corpus": "spoken", "seeds": [20, 21],
                 "corpus_offset": 0, "train": {"lr_scheduler_type": "constant"}, "config": {}}]}

Each group's runs are recorded, as `table` records them, in OUT/learning.csv (and their curves in
OUT/learning_curves.csv) under the run set named by the group's `results`; the runs append their rows under a lock,
so many at once leave whole rows. Each run's output goes to OUT/logs/; the start, end, exit status and seconds of
everything to OUT/times.txt; `summary` of every run set to OUT/summary.txt. `python benchmarks/learning_results.py
merge OUT/learning.csv` then adds the runs to benchmarks/results/learning.csv. The corpora
are made first, each once (two runs must not make the same corpus at the same time), then the runs, ordered seed by
seed so that a run stopped by the deadline leaves whole seeds behind. With `--deadline S`, no run starts after S
seconds and the ones still running are stopped then (a stopped run records nothing).

    python benchmarks/learning_farm.py SPEC.json --out build/learning-farm [--workers 16] [--deadline 480] [--dry_run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
RESULTS_FILE = "learning.csv"  # in OUT: every group's runs, one row each (learning_results.py)
REQUIRED_KEYS = {"results", "settings", "corpus", "seeds"}
GROUP_KEYS = REQUIRED_KEYS | {"corpus_offset", "config", "train", "text_model", "speech_model"}


def expand(spec: dict, out: Path, workdir: str) -> tuple[list[tuple[str, int]], list[tuple[str, list[str]]]]:
    """(corpora, runs): the (kind, corpus seed) pairs to make, and (name, command) per run, seed by seed."""
    if not isinstance(spec, dict):
        raise ValueError(f"the spec must be a JSON object, got {type(spec).__name__}")
    recipe, test_per_class = spec.get("recipe", "plain"), spec.get("test_per_class")
    corpora, runs = [], []
    unknown = set(spec) - {"recipe", "test_per_class", "groups"}
    if unknown or not isinstance(spec.get("groups"), list) or not spec["groups"]:
        raise ValueError(f"the spec needs a non-empty list `groups` (and may set recipe, test_per_class); got keys "
                         f"{sorted(spec)}, unknown keys {sorted(unknown)}")
    groups = spec["groups"]
    for number, group in enumerate(groups):
        if not isinstance(group, dict):
            raise ValueError(f"group {number} must be a JSON object, got {group!r}")
        unknown, missing = set(group) - GROUP_KEYS, REQUIRED_KEYS - set(group)
        if unknown or missing:
            raise ValueError(f"group {number} ({group.get('results', '?')}): unknown keys {sorted(unknown)}, "
                             f"missing keys {sorted(missing)}; a group takes {sorted(GROUP_KEYS)}")
        seeds, settings, corpus = group["seeds"], group["settings"], group["corpus"]
        if not isinstance(seeds, list) or not all(type(seed) is int for seed in seeds):
            raise ValueError(f"group {number} ({group['results']}): `seeds` must be a list of integers, got {seeds!r}")
        if not isinstance(settings, list) or not settings or not all(isinstance(name, str) for name in settings):
            raise ValueError(f"group {number} ({group['results']}): `settings` must be a non-empty list of names "
                             f"(S0-S4, concat), got {settings!r}")
        if not isinstance(corpus, str):
            raise ValueError(f"group {number} ({group['results']}): `corpus` must be a name (demo, spoken), got {corpus!r}")
    for seed in sorted({seed for group in groups for seed in group["seeds"]}):
        for group in groups:
            if seed not in group["seeds"]:
                continue
            offset = int(group.get("corpus_offset", 0))
            if (group["corpus"], seed + offset) not in corpora:
                corpora.append((group["corpus"], seed + offset))
            for setting in group["settings"]:
                command = [sys.executable, str(HERE / "bench_learning.py"), "table", "--settings", setting,
                           "--recipes", recipe, "--corpora", group["corpus"], "--seeds", str(seed),
                           "--corpus_offset", f"{group['corpus']}={offset}", "--workdir", workdir,
                           "--results", str(out / RESULTS_FILE), "--run_set", group["results"],
                           "--config", json.dumps(group.get("config", {})),
                           "--train", json.dumps(group.get("train", {}))]  # fmt: skip
                if test_per_class is not None:
                    command += ["--test_per_class", str(test_per_class)]
                for key in ("speech_model", "text_model"):
                    if group.get(key):
                        command += [f"--{key}", group[key]]
                label = group["results"].replace("/", "+")  # a run set may hold "/"; the name is a log file's
                runs.append((f"{label}-{group['corpus']}{seed + offset}-{setting}-seed{seed}", command))
    return corpora, runs


def corpus_command(kind: str, corpus_seed: int, workdir: str, test_per_class: int | None) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path; "
            f"from bench_learning import make_corpus; "
            f"make_corpus({kind!r}, {corpus_seed}, Path({workdir!r}), test_per_class={test_per_class!r})")  # fmt: skip
    return [sys.executable, "-c", code]


def run_all(commands: list[tuple[str, list[str]]], workers: int, log_dir: Path, times, deadline: float | None,
            start: float, env: dict | None = None) -> dict[str, int | None]:
    """Runs (name, command) pairs, `workers` at a time; returns each name's exit status (None: stopped or never
    started because of the deadline). Every start and end is written to `times`."""
    pending, running, status = list(commands), {}, {}

    def note(text):
        times.write(f"{time.time() - start:8.1f} {text}\n")
        times.flush()

    while pending or running:
        late = deadline is not None and time.time() - start >= deadline
        while pending and len(running) < workers and not late:
            name, command = pending.pop(0)
            handle = open(log_dir / f"{name}.log", "w")
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
            running[name] = (process, handle, time.time())
            note(f"start {name}")
        for name, (process, handle, began) in list(running.items()):
            if late and process.poll() is None:
                process.kill()
                process.wait()
                status[name] = None
                note(f"stopped {name} at the deadline after {time.time() - began:.0f} s")
            elif process.poll() is not None:
                status[name] = process.returncode
                note(f"end {name} exit {process.returncode} {time.time() - began:.0f} s")
            else:
                continue
            handle.close()
            del running[name]
        if late:
            for name, _ in pending:
                status[name] = None
                note(f"skipped {name}: deadline")
            pending = []
        time.sleep(0.2)
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="JSON file (see above)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--deadline", type=float, default=None, help="seconds: start nothing after, stop all at")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mgcma-bench-learning"),
                        help="corpus cache, as bench_learning's")
    parser.add_argument("--dry_run", action="store_true", help="print the corpora and commands, run nothing")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    try:
        spec = json.loads(Path(args.spec).read_text())
        corpora, runs = expand(spec, out, args.workdir)
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise SystemExit(f"{args.spec}: {error}") from error
    if args.dry_run:
        for kind, seed in corpora:
            print("corpus", kind, seed)
        for name, command in runs:
            print(name, " ".join(command))
        return
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.time()
    with open(out / "times.txt", "a") as times:
        times.write(f"{'':8} {len(corpora)} corpora, {len(runs)} runs, {args.workers} at a time, "
                    f"{os.cpu_count()} cores\n")
        corpus_runs = [(f"corpus-{kind}{seed}", corpus_command(kind, seed, args.workdir, spec.get("test_per_class")))
                       for kind, seed in corpora]
        made = run_all(corpus_runs, args.workers, out / "logs", times, args.deadline, start, env)
        failed = [name for name, code in made.items() if code != 0]
        if failed:
            raise SystemExit(f"could not make {failed}: see {out / 'logs'}")
        run_all(runs, args.workers, out / "logs", times, args.deadline, start, env)
    with open(out / "summary.txt", "w") as summary:
        for run_set in dict.fromkeys(group["results"] for group in spec["groups"]):  # groups may share a run set
            summary.write(f"# {run_set}\n")
            summary.flush()
            command = [sys.executable, str(HERE / "learning_results.py"), "summary", "--results",
                       str(out / RESULTS_FILE), "--run_set", run_set]  # fmt: skip
            subprocess.run(command, stdout=summary, stderr=subprocess.STDOUT, env=env)
    print((out / "summary.txt").read_text())


if __name__ == "__main__":
    main()
